//! The event log: the newest lines that fit, or older ones when scrolled up; level by colour
//! and by a marker (`!` warning, `✗` error) so it reads without colour too. Its bottom border
//! carries the companion's status line (`pacer demo`'s application), when there is one.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::Line;
use ratatui::widgets::Paragraph;

use super::format::{truncate, width};
use super::{label, panel, styled, title_with};
use crate::tui::theme::Theme;
use crate::tui::view::{Level, ViewModel};

/// Draw the log panel.
pub fn draw(frame: &mut Frame, area: Rect, view: &ViewModel, theme: &Theme) {
    if area.is_empty() {
        return;
    }
    let (first, end) = window(view, area.height.saturating_sub(2) as usize);
    let remark = match view.log.len() - end {
        0 => String::new(),
        below => format!("scrolled up: {below} newer below, {first} older above"),
    };
    let mut block = panel(title_with("log", remark, theme), theme);
    // The program around the migration (the demo's application) says how it is doing on the
    // bottom border, so it is on screen the whole time without a panel of its own.
    if let Some(status) = &view.companion_status {
        let room = (area.width as usize).saturating_sub(4);
        if room >= 8 {
            block = block.title_bottom(
                Line::from(label(format!(" {} ", truncate(status, room - 2)), theme))
                    .right_aligned(),
            );
        }
    }
    let inner = block.inner(area);
    frame.render_widget(block, area);
    lines(frame, inner, view, theme);
}

/// The visible lines `first..end` for `rows` rows, honouring the scroll offset.
fn window(view: &ViewModel, rows: usize) -> (usize, usize) {
    let len = view.log.len();
    let end = len.saturating_sub(view.log_scroll).max(rows.min(len));
    (end.saturating_sub(rows), end)
}

/// The log lines without a panel (also used by the tiny layout).
pub fn lines(frame: &mut Frame, area: Rect, view: &ViewModel, theme: &Theme) {
    if area.is_empty() {
        return;
    }
    if view.log.is_empty() {
        frame.render_widget(Paragraph::new(label("no events yet", theme)), area);
        return;
    }
    let (first, end) = window(view, area.height as usize);
    let w = area.width as usize;
    let lines: Vec<Line> = view.log[first..end]
        .iter()
        .map(|line| {
            let (mark, style) = match line.level {
                Level::Info => (" ", theme.text),
                Level::Warn => ("!", theme.warn),
                Level::Error => ("✗", theme.critical),
            };
            let head = format!("{} ", line.time);
            let room = w.saturating_sub(width(&head) + 2);
            Line::from(vec![
                label(head, theme),
                styled(format!("{mark} "), style),
                styled(truncate(&line.text, room), style),
            ])
        })
        .collect();
    frame.render_widget(Paragraph::new(lines), area);
}
