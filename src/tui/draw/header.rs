//! The header: the state in words and colour, the phase and the elapsed time; then what is
//! being changed where.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};

use super::format::{clock, human, truncate, width};
use super::{bold, label, styled};
use crate::tui::theme::Theme;
use crate::tui::view::{KeyHelp, StatusView, ViewModel};

/// The state as a word (`THROTTLED`) and what it is about (`replication lag 4.2s > 1s`).
pub fn status_words(status: &StatusView, keys: &[KeyHelp]) -> (&'static str, String) {
    match status {
        StatusView::Preflight => ("PREFLIGHT", "read-only checks".into()),
        StatusView::Running => ("RUNNING", String::new()),
        StatusView::Pausing => (
            "PAUSING",
            "pause takes effect at the next batch boundary".into(),
        ),
        StatusView::Paused => ("PAUSED", "at a batch boundary".into()),
        StatusView::Throttled(reason) => ("THROTTLED", reason.clone()),
        StatusView::WaitingForLock(pids) => ("WAITING FOR LOCK", blocked_by(pids)),
        StatusView::Gate(phase) => (
            "GATE",
            format!(
                "waiting for operator (press {}) before {phase}",
                key_for(keys, &["proceed", "gate"]).unwrap_or("g")
            ),
        ),
        StatusView::Reconnecting => ("RECONNECTING", "connection lost, retrying".into()),
        StatusView::Done => ("DONE", "every phase finished".into()),
        StatusView::Failed(message) => ("FAILED", message.clone()),
        StatusView::Aborted => ("ABORTED", "stopped by the operator; resumable".into()),
    }
}

/// The theme style for a state.
pub fn status_style(status: &StatusView, theme: &Theme) -> Style {
    match status {
        StatusView::Preflight | StatusView::Gate(_) => theme.info,
        StatusView::Running | StatusView::Done => theme.ok,
        StatusView::Pausing | StatusView::Paused => theme.paused,
        StatusView::Throttled(_)
        | StatusView::WaitingForLock(_)
        | StatusView::Reconnecting
        | StatusView::Aborted => theme.warn,
        StatusView::Failed(_) => theme.critical,
    }
}

fn blocked_by(pids: &[i32]) -> String {
    const SHOWN: usize = 5;
    if pids.is_empty() {
        return "blocker not identified yet".into();
    }
    let mut text = pids
        .iter()
        .take(SHOWN)
        .map(i32::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    if pids.len() > SHOWN {
        text.push_str(&format!(" +{} more", pids.len() - SHOWN));
    }
    format!("blocked by pid {text}")
}

/// The first key of the keymap entry whose description mentions one of `words`.
fn key_for<'a>(keys: &'a [KeyHelp], words: &[&str]) -> Option<&'a str> {
    keys.iter()
        .find(|k| {
            let desc = k.desc.to_lowercase();
            words.iter().any(|w| desc.contains(w))
        })
        .and_then(|k| k.keys.split(", ").next())
}

/// Draw the header into `area` (one or two rows).
pub fn draw(frame: &mut Frame, area: Rect, view: &ViewModel, theme: &Theme) {
    if area.is_empty() {
        return;
    }
    frame.render_widget(Block::new().style(theme.header), area);
    let state_row = Rect { height: 1, ..area };
    let two_rows = area.height >= 2;
    let overflow = draw_state(frame, state_row, view, theme, two_rows);
    if two_rows {
        let row = Rect {
            y: area.y + 1,
            height: 1,
            ..area
        };
        match overflow {
            // Why it failed matters more than what it was doing.
            Some((indent, rest)) => {
                let style = bold(status_style(&view.status, theme));
                let text = truncate(&rest, (row.width as usize).saturating_sub(indent));
                let line = Line::from(vec![Span::raw(" ".repeat(indent)), styled(text, style)]);
                frame.render_widget(Paragraph::new(line), row);
            }
            None => draw_identity(frame, row, view, theme),
        }
    }
}

/// Split `text` at a space so the head fits `max` cells; the rest is trimmed.
fn split_at_space(text: &str, max: usize) -> (String, String) {
    let mut cut = 0;
    for (i, c) in text.char_indices() {
        if width(&text[..i]) > max {
            break;
        }
        if c == ' ' {
            cut = i;
        }
    }
    if cut == 0 {
        let head = truncate(text, max);
        let head = head.trim_end_matches('…').to_string();
        let rest = text[head.len()..].to_string();
        return (head, rest);
    }
    (
        text[..cut].to_string(),
        text[cut..].trim_start().to_string(),
    )
}

/// `[ THROTTLED ] replication lag 4.2s > 1s · phase backfill (4/8) … 42.0% · ETA 53m  elapsed 0:42:17`,
/// dropping from the right end of the left part first when the row is short. With `wrap`, a
/// detail too long for the row is cut at a word and the rest returned (with its indent).
fn draw_state(
    frame: &mut Frame,
    row: Rect,
    view: &ViewModel,
    theme: &Theme,
    wrap: bool,
) -> Option<(usize, String)> {
    let (word, detail) = status_words(&view.status, &view.keys);
    let style = status_style(&view.status, theme);
    let total = row.width as usize;
    let badge = format!(" {word} ");
    let badge_w = width(&badge);
    let spans_w = |spans: &[Span]| spans.iter().map(Span::width).sum::<usize>();

    let mut right = vec![
        label("elapsed ", theme),
        styled(clock(view.elapsed), bold(theme.text)),
        Span::raw(" "),
    ];
    let detail_too_long = badge_w + 1 + width(&detail) + spans_w(&right) + 1 > total;
    if badge_w + spans_w(&right) + 2 > total || (wrap && detail_too_long) {
        // A detail that takes two rows is worth more than the elapsed time.
        right.clear();
    }
    let room = total.saturating_sub(spans_w(&right) + 1);

    let mut left = vec![styled(
        truncate(&badge, room),
        bold(style).add_modifier(Modifier::REVERSED),
    )];
    let mut overflow = None;
    if !detail.is_empty() && badge_w + 2 < room {
        let max = room - badge_w - 1;
        let head = if width(&detail) > max && wrap {
            let (head, rest) = split_at_space(&detail, max);
            overflow = Some((badge_w + 1, rest));
            head
        } else {
            truncate(&detail, max)
        };
        left.push(Span::raw(" "));
        left.push(styled(head, bold(style)));
    }
    let phase = phase_text(view);
    let sep = if detail.is_empty() { "  " } else { "  ·  " };
    if overflow.is_none()
        && !phase.is_empty()
        && spans_w(&left) + width(sep) + width(&phase) <= room
    {
        left.push(label(sep, theme));
        left.push(styled(phase, theme.text));
    }
    let summary = progress_summary(view, theme);
    if overflow.is_none()
        && !summary.is_empty()
        && spans_w(&left) + spans_w(&summary) + spans_w(&right) + 2 <= total
    {
        right.splice(0..0, summary);
    }
    let right_w = spans_w(&right);
    render_row(frame, row, left, right, right_w);
    overflow
}

/// `42.0% · ETA 53m 09s`, when the total is known.
fn progress_summary(view: &ViewModel, theme: &Theme) -> Vec<Span<'static>> {
    let p = &view.progress;
    let Some(total) = p.rows_total.filter(|t| *t > 0 && p.rows_done > 0) else {
        return Vec::new();
    };
    let mut spans = vec![styled(
        super::progress::percent_done(p.rows_done as f64 / total as f64),
        bold(theme.text),
    )];
    if let Some(eta) = p.eta {
        spans.push(label(" · ETA ", theme));
        spans.push(styled(human(eta), bold(theme.text)));
    }
    spans.push(Span::raw("   "));
    spans
}

fn render_row(
    frame: &mut Frame,
    row: Rect,
    left: Vec<Span<'static>>,
    right: Vec<Span<'static>>,
    right_w: usize,
) {
    frame.render_widget(Paragraph::new(Line::from(left)), row);
    if right_w > 0 {
        let w = (right_w as u16).min(row.width);
        let area = Rect {
            x: row.right() - w,
            width: w,
            ..row
        };
        frame.render_widget(Paragraph::new(Line::from(right)), area);
    }
}

/// `phase backfill (4/8)`, or empty when no phase runs.
fn phase_text(view: &ViewModel) -> String {
    let Some(phase) = view.phase else {
        return String::new();
    };
    if matches!(view.status, StatusView::Gate(_) | StatusView::Done) {
        // The gate names the phase it guards; done needs no phase.
        return String::new();
    }
    match view.phases.iter().position(|row| row.phase == phase) {
        Some(i) => format!("phase {phase} ({}/{})", i + 1, view.phases.len()),
        None => format!("phase {phase}"),
    }
}

fn draw_identity(frame: &mut Frame, row: Rect, view: &ViewModel, theme: &Theme) {
    let column = format!("{}.{}", view.table, view.column);
    let fixed = " pacer   adding ".len() + width(&column) + " on ".len();
    let room = row.width as usize;
    let line = if fixed < room {
        Line::from(vec![
            styled(" pacer ", theme.title),
            label("  adding ", theme),
            styled(column, bold(theme.text)),
            label(" on ", theme),
            styled(truncate(&view.target, room - fixed), theme.text),
        ])
    } else {
        Line::from(styled(
            truncate(&format!(" {column}"), room),
            bold(theme.text),
        ))
    };
    frame.render_widget(Paragraph::new(line), row);
}
