//! The help overlay: every key with what it does.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Text};
use ratatui::widgets::{Cell, Clear, Row, Table};

use super::format::{width, wrap};
use super::popup::{centered, popup_block};
use super::{label, styled};
use crate::tui::theme::Theme;
use crate::tui::view::ViewModel;

/// Draw the help overlay centred over `area`.
pub fn draw(frame: &mut Frame, area: Rect, view: &ViewModel, theme: &Theme) {
    let key_w = view
        .keys
        .iter()
        .map(|k| width(&k.keys))
        .max()
        .unwrap_or(0)
        .clamp(3, 16);
    let desc_w = view.keys.iter().map(|k| width(&k.desc)).max().unwrap_or(0);
    // Border and padding take 4 columns, the gap between the columns 2.
    let w = (key_w + desc_w + 7).max(30).min(area.width as usize);
    let desc_room = w.saturating_sub(key_w + 6).max(8);
    // A description too long for the box wraps under itself.
    let descs: Vec<Vec<String>> = view.keys.iter().map(|k| wrap(&k.desc, desc_room)).collect();
    let h = (descs.iter().map(|d| d.len().max(1)).sum::<usize>().max(1) + 2) as u16;
    let rect = centered(area, w as u16, h);
    let block = popup_block(" keys ", theme)
        .title_bottom(Line::from(label(" Esc closes ", theme)).right_aligned());
    let inner = block.inner(rect);
    frame.render_widget(Clear, rect);
    frame.render_widget(block, rect);
    if view.keys.is_empty() {
        frame.render_widget(label("no keys", theme), inner);
        return;
    }
    let rows = view.keys.iter().zip(descs).map(|(k, desc)| {
        let height = desc.len().max(1) as u16;
        let text: Vec<Line> = desc
            .into_iter()
            .map(|l| Line::from(styled(l, theme.text)))
            .collect();
        Row::new([
            Cell::from(styled(k.keys.clone(), theme.key)),
            Cell::from(Text::from(text)),
        ])
        .height(height)
    });
    let table = Table::new(
        rows,
        [Constraint::Length(key_w as u16), Constraint::Fill(1)],
    )
    .column_spacing(2);
    frame.render_widget(table, inner);
}
