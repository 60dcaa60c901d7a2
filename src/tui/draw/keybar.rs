//! The key bar: the main keys that fit on the bottom line, and `? help` at its right.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::format::width;
use super::{label, styled};
use crate::tui::theme::Theme;
use crate::tui::view::{KeyHelp, StatusView, ViewModel};

/// Draw the key bar.
pub fn draw(frame: &mut Frame, area: Rect, view: &ViewModel, theme: &Theme) {
    if area.is_empty() {
        return;
    }
    let help: Vec<Span> = vec![styled(" ? ", theme.key), label(" help ", theme)];
    let help_w: usize = help.iter().map(Span::width).sum();
    let total = area.width as usize;
    let room = total.saturating_sub(help_w + 1);

    let mut entries: Vec<&KeyHelp> = view
        .keys
        .iter()
        .filter(|k| !k.bar.is_empty() && !k.keys.split(", ").any(|k| k == "?"))
        .collect();
    // At a gate, the key that passes it comes first.
    if matches!(view.status, StatusView::Gate(_)) {
        entries.sort_by_key(|k| !k.bar.starts_with("proceed"));
    }
    let mut spans = Vec::new();
    let mut used = 0;
    for entry in entries {
        // The first of several keys is enough here; the help overlay lists them all.
        let key = entry.keys.split(", ").next().unwrap_or(&entry.keys);
        let w = width(key) + 2 + width(&entry.bar) + 2;
        if used + w > room {
            continue;
        }
        spans.push(styled(format!(" {key} "), theme.key));
        spans.push(label(format!(" {} ", entry.bar), theme));
        used += w;
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
    if help_w <= total {
        let right = Rect {
            x: area.right() - help_w as u16,
            width: help_w as u16,
            ..area
        };
        frame.render_widget(Paragraph::new(Line::from(help)), right);
    }
}
