//! Drawing the whole screen from the view model: pure functions of (`ViewModel`, `Theme`, size),
//! one module per panel. No I/O, no clocks: the same view always draws the same frame.
//!
//! Two layouts: *wide* (≥ 120×36) puts the plan in a full-height left column and shows every
//! figure; *compact* (80×24 and smaller) stacks plan+progress, blockers, charts and the log,
//! dropping charts first when rows run out. Below 30×8 only the state and a gauge remain.

mod blockers;
mod charts;
mod figures;
mod format;
mod header;
mod help;
mod keybar;
mod log;
mod plan;
mod popup;
mod progress;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType};

use super::theme::Theme;
use super::view::{StatusView, ViewModel};

/// Draw the whole screen.
pub fn draw(frame: &mut Frame, view: &ViewModel, theme: &Theme) {
    let area = frame.area();
    if area.is_empty() {
        return;
    }
    let header_h = if area.height >= 12 { 2 } else { 1 };
    let keys_h = u16::from(area.height >= 5);
    let [header_area, body, keys_area] = Layout::vertical([
        Constraint::Length(header_h),
        Constraint::Fill(1),
        Constraint::Length(keys_h),
    ])
    .areas(area);

    header::draw(frame, header_area, view, theme);
    if body.height < 6 || body.width < 30 {
        minimal(frame, body, view, theme);
    } else if body.width >= 120 && area.height >= 36 {
        wide(frame, body, view, theme);
    } else {
        compact(frame, body, view, theme);
    }
    keybar::draw(frame, keys_area, view, theme);

    if let Some(popup) = &view.popup {
        popup::draw(frame, area, view, popup, theme);
    }
}

/// The state in one word, as the header shows it (`PAUSED`, `WAITING FOR LOCK` …).
#[cfg(test)]
pub fn state_word(status: &StatusView) -> &'static str {
    header::status_words(status, &[], &Default::default()).0
}

/// Whether the blockers table has something to show, or must say that nothing is known.
fn shows_blockers(view: &ViewModel) -> bool {
    !view.blockers.is_empty() || matches!(view.status, StatusView::WaitingForLock(_))
}

/// Rows the blockers table wants: borders, its header, one row per blocker (at least one).
fn blockers_height(view: &ViewModel) -> u16 {
    if shows_blockers(view) {
        (view.blockers.len().max(1) as u16).saturating_add(3)
    } else {
        0
    }
}

/// 160×48 and up: plan on the left; progress, figures, blockers, charts and log on the right.
fn wide(frame: &mut Frame, body: Rect, view: &ViewModel, theme: &Theme) {
    let left_w = (body.width * 36 / 100).clamp(48, 64);
    let [left, right] =
        Layout::horizontal([Constraint::Length(left_w), Constraint::Fill(1)]).areas(body);
    plan::draw(frame, left, view, theme);

    let top_h = 9;
    let blockers_h = blockers_height(view).min(10);
    let rest = right.height.saturating_sub(top_h + blockers_h);
    let charts_h = if view.charts.is_empty() {
        0
    } else {
        (rest * 60 / 100).max(10).min(rest.saturating_sub(5))
    };
    let [top, blockers_area, charts_area, log_area] = Layout::vertical([
        Constraint::Length(top_h),
        Constraint::Length(blockers_h),
        Constraint::Length(charts_h),
        Constraint::Fill(1),
    ])
    .areas(right);
    let [progress_area, figures_area] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(top);
    progress::draw(frame, progress_area, view, theme, false);
    figures::draw(frame, figures_area, view, theme);
    if blockers_h > 0 {
        blockers::draw(frame, blockers_area, view, theme);
    }
    charts::draw(frame, charts_area, view, theme);
    log::draw(frame, log_area, view, theme);
}

/// 80×24 down to 30×8: plan and progress side by side, then blockers, charts and the log.
fn compact(frame: &mut Frame, body: Rect, view: &ViewModel, theme: &Theme) {
    let h = body.height;
    let top_h = (h * 10 / 21).clamp(5, 10);
    let mut rest = h - top_h;
    let mut blockers_h = blockers_height(view).min(7).min(rest.saturating_sub(3));
    if blockers_h < 4 {
        blockers_h = 0;
    }
    rest -= blockers_h;
    let charts_h = if view.charts.is_empty() || rest < 8 {
        0
    } else if rest >= 11 {
        (rest * 45 / 100).max(6)
    } else {
        5
    };
    // A log with no room for a line gives its rows to the plan and progress.
    let mut top_h = top_h;
    let mut log_h = rest - charts_h;
    if log_h < 3 {
        top_h += log_h;
        log_h = 0;
    }
    let [top, blockers_area, charts_area, log_area] = Layout::vertical([
        Constraint::Length(top_h),
        Constraint::Length(blockers_h),
        Constraint::Length(charts_h),
        Constraint::Length(log_h),
    ])
    .areas(body);

    let plan_w = if body.width >= 72 {
        body.width / 2
    } else {
        (body.width * 2 / 5).max(16)
    };
    let [plan_area, progress_area] =
        Layout::horizontal([Constraint::Length(plan_w), Constraint::Fill(1)]).areas(top);
    plan::draw(frame, plan_area, view, theme);
    progress::draw(frame, progress_area, view, theme, true);
    if blockers_h > 0 {
        blockers::draw(frame, blockers_area, view, theme);
    }
    if charts_h > 0 {
        charts::draw(frame, charts_area, view, theme);
    }
    if log_h > 0 {
        log::draw(frame, log_area, view, theme);
    }
}

/// Tiny terminals: a gauge line and the latest log lines, no borders.
fn minimal(frame: &mut Frame, body: Rect, view: &ViewModel, theme: &Theme) {
    if body.is_empty() {
        return;
    }
    let [gauge, log_area] =
        Layout::vertical([Constraint::Length(1), Constraint::Fill(1)]).areas(body);
    progress::gauge(frame, gauge, view, theme);
    log::lines(frame, log_area, view, theme);
}

/// A panel with a rounded border in the border style.
fn panel<'a>(title: Line<'a>, theme: &Theme) -> Block<'a> {
    Block::bordered()
        .border_type(BorderType::Rounded)
        .border_style(theme.border)
        .title(title)
}

/// A panel title, with a muted remark after it when not empty (`log  scrolled up 12`).
fn title_with(title: &str, remark: String, theme: &Theme) -> Line<'static> {
    let mut spans = vec![Span::styled(format!(" {title} "), theme.title)];
    if !remark.is_empty() {
        spans.push(Span::styled(format!("{remark} "), theme.muted));
    }
    Line::from(spans)
}

/// The style of a label before a value.
fn label(text: impl Into<String>, theme: &Theme) -> Span<'static> {
    Span::styled(text.into(), theme.muted)
}

/// A value in the text style, emphasised.
fn value(text: impl Into<String>, theme: &Theme) -> Span<'static> {
    Span::styled(text.into(), bold(theme.text))
}

/// A value in a given style.
fn styled(text: impl Into<String>, style: Style) -> Span<'static> {
    Span::styled(text.into(), style)
}

fn bold(style: Style) -> Style {
    style.add_modifier(ratatui::style::Modifier::BOLD)
}
