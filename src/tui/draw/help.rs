//! The help overlay: every key with what it does.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::Line;
use ratatui::widgets::{Cell, Clear, Row, Table};

use super::format::width;
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
    let w = (key_w + desc_w + 7).max(30) as u16;
    let h = (view.keys.len().max(1) + 2) as u16;
    let rect = centered(area, w, h);
    let block = popup_block(" keys ", theme)
        .title_bottom(Line::from(label(" Esc closes ", theme)).right_aligned());
    let inner = block.inner(rect);
    frame.render_widget(Clear, rect);
    frame.render_widget(block, rect);
    if view.keys.is_empty() {
        frame.render_widget(label("no keys", theme), inner);
        return;
    }
    let rows = view.keys.iter().map(|k| {
        Row::new([
            Cell::from(styled(k.keys.clone(), theme.key)),
            Cell::from(styled(k.desc.clone(), theme.text)),
        ])
    });
    let table = Table::new(
        rows,
        [Constraint::Length(key_w as u16), Constraint::Fill(1)],
    )
    .column_spacing(2);
    frame.render_widget(table, inner);
}
