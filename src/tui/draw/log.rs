//! The event log: the newest lines that fit, or older ones when scrolled up; level by colour
//! and by a marker (`!` warning, `✗` error) so it reads without colour too. A long line wraps
//! under its own text (a socket path, a throttle reason with its figures), never cut. Its
//! bottom border carries the companion's status line (`pacer demo`'s application), if any.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::format::{truncate, wrap};
use super::{label, panel, styled, title_with};
use crate::tui::theme::Theme;
use crate::tui::view::{Level, ViewModel};

/// Draw the log panel.
pub fn draw(frame: &mut Frame, area: Rect, view: &ViewModel, theme: &Theme) {
    if area.is_empty() {
        return;
    }
    let inner_w = area.width.saturating_sub(2) as usize;
    let (first, end, _) = window(view, area.height.saturating_sub(2) as usize, inner_w);
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

/// Width of the time and the level marker before each line's text.
const HEAD_W: usize = "12:04:29 ! ".len();

/// Rows a log line takes at width `w`: its text wraps under itself, never cut.
fn rows_of(text: &str, w: usize) -> Vec<String> {
    let room = w.saturating_sub(HEAD_W).max(1);
    let rows = wrap(text, room);
    if rows.is_empty() {
        vec![String::new()]
    } else {
        rows
    }
}

/// The entries `first..end` that fill `rows` rows at width `w`, honouring the scroll offset
/// (in entries), and the rows the oldest of them may show (its last ones, when it does not
/// fit whole).
fn window(view: &ViewModel, rows: usize, w: usize) -> (usize, usize, usize) {
    let len = view.log.len();
    let mut end = len.saturating_sub(view.log_scroll);
    // Scrolled up too far to fill the panel: show the oldest screenful instead.
    let mut used = 0;
    let mut first = end;
    while first > 0 && used < rows {
        let n = rows_of(&view.log[first - 1].text, w).len();
        used += n;
        first -= 1;
    }
    while used < rows && end < len {
        used += rows_of(&view.log[end].text, w).len();
        end += 1;
    }
    let over = used.saturating_sub(rows);
    (first, end, over)
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
    let w = area.width as usize;
    let (first, end, over) = window(view, area.height as usize, w);
    let mut lines: Vec<Line> = Vec::new();
    for line in &view.log[first..end] {
        let (mark, style) = match line.level {
            Level::Info => (" ", theme.text),
            Level::Warn => ("!", theme.warn),
            Level::Error => ("✗", theme.critical),
        };
        for (i, row) in rows_of(&line.text, w).into_iter().enumerate() {
            let head = if i == 0 {
                vec![
                    label(format!("{} ", line.time), theme),
                    styled(format!("{mark} "), style),
                ]
            } else {
                vec![Span::raw(" ".repeat(HEAD_W))]
            };
            let mut spans = head;
            spans.push(styled(truncate(&row, w.saturating_sub(HEAD_W)), style));
            lines.push(Line::from(spans));
        }
    }
    // The oldest entry shown may not fit whole: its first rows go.
    let lines: Vec<Line> = lines.into_iter().skip(over).collect();
    frame.render_widget(Paragraph::new(lines), area);
}
