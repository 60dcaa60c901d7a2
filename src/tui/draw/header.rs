//! The header: the state in words and colour, the phase and the elapsed time; then what is
//! being changed where.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};

use super::format::{truncate, width};
use super::{bold, label, styled};
use crate::format::{clock, human, percent_done};
use crate::target::family::FigureWords;
use crate::tui::theme::Theme;
use crate::tui::view::{KeyHelp, Pace, StatusView, ViewModel};

/// The state as a word (`THROTTLED`) and what it is about (`replication lag 4.2s > 1s`).
/// A blocked DDL names its blockers as the family identifies sessions (`pid`, `connection`).
pub fn status_words(
    status: &StatusView,
    keys: &[KeyHelp],
    words: &FigureWords,
) -> (&'static str, String) {
    match status {
        StatusView::Preflight => ("PREFLIGHT", "read-only checks".into()),
        StatusView::Running => ("RUNNING", String::new()),
        StatusView::Pausing => ("PAUSING", "takes effect at the next batch boundary".into()),
        StatusView::Paused => ("PAUSED", "at a batch boundary".into()),
        StatusView::Throttled(reason) => ("THROTTLED", reason.clone()),
        StatusView::WaitingForLock(pids) => ("WAITING FOR LOCK", blocked_by(pids, words.session)),
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
        StatusView::Lost(why) => ("RUNNER GONE", why.clone()),
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
        StatusView::Failed(_) | StatusView::Lost(_) => theme.critical,
    }
}

fn blocked_by(pids: &[i64], session: &str) -> String {
    const SHOWN: usize = 5;
    if pids.is_empty() {
        return "blocker not identified yet".into();
    }
    let mut text = pids
        .iter()
        .take(SHOWN)
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    if pids.len() > SHOWN {
        text.push_str(&format!(" +{} more", pids.len() - SHOWN));
    }
    format!("blocked by {session} {text}")
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

/// Draw the header into `area` (one or two rows): the state row, then what is being changed
/// where. A long reason is cut to the room left on the state row (the event log has it whole);
/// it never pushes the progress, the ETA or the clock off the row, nor the target off the
/// second.
pub fn draw(frame: &mut Frame, area: Rect, view: &ViewModel, theme: &Theme) {
    if area.is_empty() {
        return;
    }
    frame.render_widget(Block::new().style(theme.header), area);
    draw_state(frame, Rect { height: 1, ..area }, view, theme);
    if area.height >= 2 {
        let row = Rect {
            y: area.y + 1,
            height: 1,
            ..area
        };
        draw_identity(frame, row, view, theme);
    }
}

/// `[ THROTTLED ] replication lag 4.2s > 1s · phase backfill (4/8) … 42.0% · ETA 53m  elapsed 0:42:17`.
/// What goes first when the row is short: the phase, then the `elapsed` label, then the
/// reason is cut; the badge, the progress and the clock stay.
fn draw_state(frame: &mut Frame, row: Rect, view: &ViewModel, theme: &Theme) {
    let (word, detail) = status_words(&view.status, &view.keys, &view.db.words);
    let style = status_style(&view.status, theme);
    let total = row.width as usize;
    let badge = format!(" {word} ");
    let badge_w = width(&badge);
    let spans_w = |spans: &[Span]| spans.iter().map(Span::width).sum::<usize>();

    let time = styled(clock(view.elapsed), bold(theme.text));
    let summary = progress_summary(view, theme);
    // The right end, from the most to the least room it takes.
    let candidates = [
        [
            summary.clone(),
            vec![label("elapsed ", theme), time.clone()],
        ]
        .concat(),
        [summary.clone(), vec![time.clone()]].concat(),
        vec![time.clone()],
        Vec::new(),
    ];
    // Room the reason needs before the right end gives something up: most of it. The
    // progress and the clock give way only on a row too short for them and a few words.
    let want = if detail.is_empty() {
        0
    } else {
        width(&detail).min(12) + 1
    };
    let want_label = if detail.is_empty() {
        0
    } else {
        width(&detail) + 1
    };
    // The `elapsed` label is the first to go for a reason.
    let candidates: Vec<Vec<Span<'static>>> = candidates
        .into_iter()
        .enumerate()
        .filter(|(i, c)| *i != 0 || badge_w + want_label + spans_w(c) + 2 <= total)
        .map(|(_, c)| c)
        .collect();
    let mut right = Vec::new();
    for candidate in candidates {
        if badge_w + want + spans_w(&candidate) + 2 <= total {
            right = candidate;
            break;
        }
    }
    if !right.is_empty() {
        right.push(Span::raw(" "));
    }
    let room = total.saturating_sub(spans_w(&right) + 1);

    let mut left = vec![styled(
        truncate(&badge, room),
        bold(style).add_modifier(Modifier::REVERSED),
    )];
    if !detail.is_empty() && badge_w + 2 < room {
        left.push(Span::raw(" "));
        left.push(styled(truncate(&detail, room - badge_w - 1), bold(style)));
    }
    let phase = phase_text(view);
    let sep = if detail.is_empty() { "  " } else { "  ·  " };
    if !phase.is_empty() && spans_w(&left) + width(sep) + width(&phase) <= room {
        left.push(label(sep, theme));
        left.push(styled(phase, theme.text));
    }
    let right_w = spans_w(&right);
    render_row(frame, row, left, right, right_w);
}

/// `42.0% · ETA 53m 09s`, when the total is known (`ETA stopped` while no batch runs).
fn progress_summary(view: &ViewModel, theme: &Theme) -> Vec<Span<'static>> {
    let p = &view.progress;
    let Some(total) = p.rows_total.filter(|t| *t > 0 && p.rows_done > 0) else {
        return Vec::new();
    };
    let mut spans = vec![styled(
        percent_done(p.rows_done as f64 / total as f64),
        bold(theme.text),
    )];
    match (p.pace, p.eta) {
        (Pace::Moving, Some(eta)) => {
            spans.push(label(" · ETA ", theme));
            spans.push(styled(human(eta), bold(theme.text)));
        }
        (Pace::Stopped(_), _) => {
            spans.push(label(" · ETA ", theme));
            spans.push(styled("stopped", bold(theme.paused)));
        }
        _ => {}
    }
    spans.push(Span::raw("  "));
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
