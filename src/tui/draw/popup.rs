//! Popups over the screen: help, a yes/no question, and typing an exact batch size.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::Line;
use ratatui::widgets::{Block, BorderType, Clear, Padding, Paragraph};

use super::format::{width, wrap};
use super::{bold, help, label, styled, value};
use crate::format::thousands;
use crate::tui::theme::Theme;
use crate::tui::view::{Popup, ViewModel};

/// Draw `popup` centred over `area`, clearing what is under it.
pub fn draw(frame: &mut Frame, area: Rect, view: &ViewModel, popup: &Popup, theme: &Theme) {
    match popup {
        Popup::Help => help::draw(frame, area, view, theme),
        Popup::Confirm(question) => confirm(frame, area, question, theme),
        Popup::Leave => leave(frame, area, theme),
        Popup::BatchSize { input, error } => batch_size(frame, area, view, input, error, theme),
    }
}

/// A `w`×`h` rectangle centred in `area`, no larger than it.
pub fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    }
}

/// The frame of a popup: it has the keyboard, so its border stands out.
pub fn popup_block(title: &'static str, theme: &Theme) -> Block<'static> {
    Block::bordered()
        .border_type(BorderType::Rounded)
        .border_style(theme.border_focus)
        .title(Line::from(styled(title, theme.title)))
        .padding(Padding::horizontal(1))
}

fn confirm(frame: &mut Frame, area: Rect, question: &str, theme: &Theme) {
    let w = (width(question) + 4).clamp(34, 60).min(area.width as usize);
    let mut lines: Vec<Line> = wrap(question, w.saturating_sub(4))
        .into_iter()
        .map(|l| Line::from(styled(l, bold(theme.text))))
        .collect();
    lines.push(Line::default());
    lines.push(Line::from(vec![
        styled("y", theme.key),
        label(": yes   ", theme),
        styled("n", theme.key),
        label("/", theme),
        styled("Esc", theme.key),
        label(": no", theme),
    ]));
    show(frame, area, " confirm ", lines, w as u16, theme);
}

/// Leaving while the migration runs: what each choice does to it.
fn leave(frame: &mut Frame, area: Rect, theme: &Theme) {
    let w = 60.min(area.width as usize);
    let mut lines = vec![
        Line::from(styled("Leave the screen?", bold(theme.text))),
        Line::default(),
    ];
    let choices = [
        (
            "d",
            "detach: the migration goes on; `pacer attach` brings this screen back",
        ),
        (
            "a",
            "abort: it stops at the next batch boundary and stays resumable",
        ),
        ("c", "cancel: back to the screen (also Esc)"),
    ];
    for (key, text) in choices {
        // Inside the border and padding (4), after the key column (5).
        for (i, part) in wrap(text, w.saturating_sub(9)).into_iter().enumerate() {
            let lead = if i == 0 {
                styled(format!("  {key}  "), theme.key)
            } else {
                label("     ", theme)
            };
            lines.push(Line::from(vec![lead, label(part, theme)]));
        }
    }
    show(frame, area, " leave ", lines, w as u16, theme);
}

fn batch_size(
    frame: &mut Frame,
    area: Rect,
    view: &ViewModel,
    input: &str,
    error: &Option<String>,
    theme: &Theme,
) {
    let p = &view.progress;
    let mut lines = vec![Line::from(vec![
        label("Batch size: ", theme),
        value(input.to_string(), theme),
        styled("▏", theme.text),
    ])];
    match error {
        Some(error) => lines.push(Line::from(styled(error.clone(), theme.critical))),
        None => {
            let mut now = format!("now {} rows", thousands(p.batch_size));
            if !p.batch_size_source.is_empty() {
                now.push_str(&format!(" ({})", p.batch_size_source));
            }
            lines.push(Line::from(label(now, theme)));
        }
    }
    lines.push(Line::default());
    lines.push(Line::from(vec![
        styled("Enter", theme.key),
        label(": set   ", theme),
        styled("Esc", theme.key),
        label(": cancel", theme),
    ]));
    let w = lines.iter().map(Line::width).max().unwrap_or(0) + 4;
    show(frame, area, " batch size ", lines, w.max(36) as u16, theme);
}

fn show(
    frame: &mut Frame,
    area: Rect,
    title: &'static str,
    lines: Vec<Line<'static>>,
    w: u16,
    theme: &Theme,
) {
    let h = lines.len() as u16 + 2;
    let rect = centered(area, w, h);
    frame.render_widget(Clear, rect);
    frame.render_widget(Paragraph::new(lines).block(popup_block(title, theme)), rect);
}
