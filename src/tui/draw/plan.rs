//! The plan panel: every phase with its status, and the selected phase's statements with the
//! lock each one takes and its exact SQL.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::format::{collapse, truncate, width, wrap};
use super::{bold, label, panel, styled, title_with};
use crate::tui::theme::Theme;
use crate::tui::view::{PhaseRow, PhaseStatus, StepView, ViewModel};

/// Marker and word for a phase status; the marker alone still reads without colour.
pub fn status_mark(status: PhaseStatus) -> (&'static str, &'static str) {
    match status {
        PhaseStatus::Done => ("✓", "done"),
        PhaseStatus::Running => ("▶", "running"),
        PhaseStatus::Pending => ("·", "pending"),
        PhaseStatus::Failed => ("✗", "failed"),
    }
}

fn status_style(status: PhaseStatus, theme: &Theme) -> Style {
    match status {
        PhaseStatus::Done => theme.ok,
        PhaseStatus::Running => bold(theme.ok),
        PhaseStatus::Pending => theme.muted,
        PhaseStatus::Failed => theme.critical,
    }
}

/// Draw the plan panel.
pub fn draw(frame: &mut Frame, area: Rect, view: &ViewModel, theme: &Theme) {
    let done = view
        .phases
        .iter()
        .filter(|p| p.status == PhaseStatus::Done)
        .count();
    let remark = if view.phases.is_empty() {
        String::new()
    } else {
        format!("{done}/{} done", view.phases.len())
    };
    let block = panel(title_with("plan", remark, theme), theme);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if inner.is_empty() {
        return;
    }
    if view.phases.is_empty() {
        frame.render_widget(Paragraph::new(label("no phases", theme)), inner);
        return;
    }
    let selected = view.phases.get(view.selected_phase);
    let n = view.phases.len() as u16;
    let name_w = view
        .phases
        .iter()
        .map(|p| width(p.phase.as_str()))
        .max()
        .unwrap_or(0)
        + 2;

    if inner.width >= 44 && inner.height >= n + 6 {
        // Tall: the list with words and summaries, the selected phase's statements below.
        let [list, detail] =
            Layout::vertical([Constraint::Length(n), Constraint::Fill(1)]).areas(inner);
        phase_list(frame, list, view, theme, name_w, true);
        if let Some(row) = selected {
            let detail = Rect {
                y: detail.y + 1,
                height: detail.height - 1,
                ..detail
            };
            statements(frame, detail, row, theme, true);
        }
    } else if inner.width as usize >= name_w + 26 {
        // Short: the list of markers and names, the statements beside it.
        let [list, bar, detail] = Layout::horizontal([
            Constraint::Length(name_w as u16),
            Constraint::Length(2),
            Constraint::Fill(1),
        ])
        .areas(inner);
        phase_list(frame, list, view, theme, name_w, false);
        let rule: Vec<Line> = (0..bar.height)
            .map(|_| Line::from(styled("│", theme.border)))
            .collect();
        frame.render_widget(Paragraph::new(rule), bar);
        if let Some(row) = selected {
            statements(frame, detail, row, theme, false);
        }
    } else {
        phase_list(frame, inner, view, theme, name_w, false);
    }
}

/// One row per phase, scrolled to keep the selected phase in view.
fn phase_list(
    frame: &mut Frame,
    area: Rect,
    view: &ViewModel,
    theme: &Theme,
    name_w: usize,
    full: bool,
) {
    let h = area.height as usize;
    let selected = view.selected_phase.min(view.phases.len().saturating_sub(1));
    let first = (selected + 1).saturating_sub(h);
    let total_w = area.width as usize;
    let lines: Vec<Line> = view
        .phases
        .iter()
        .enumerate()
        .skip(first)
        .take(h)
        .map(|(i, row)| {
            let (mark, word) = status_mark(row.status);
            let style = status_style(row.status, theme);
            let name_style = if row.status == PhaseStatus::Running {
                bold(theme.text)
            } else {
                theme.text
            };
            let mut spans = vec![
                styled(mark, style),
                Span::raw(" "),
                styled(
                    format!("{:<w$}", row.phase.as_str(), w = name_w - 2),
                    name_style,
                ),
            ];
            if full {
                spans.push(Span::raw("  "));
                spans.push(styled(format!("{word:<8}"), style));
                let used = name_w + 10;
                spans.push(label(
                    truncate(&row.summary, total_w.saturating_sub(used)),
                    theme,
                ));
            }
            let line = Line::from(spans);
            if i == selected {
                highlight(line, total_w, theme.selection)
            } else {
                line
            }
        })
        .collect();
    frame.render_widget(Paragraph::new(lines), area);
}

/// Pad a line to the full width and lay a style over it.
fn highlight(line: Line<'static>, total_w: usize, style: Style) -> Line<'static> {
    let pad = total_w.saturating_sub(line.width());
    let mut spans: Vec<Span> = line.spans;
    spans.push(Span::raw(" ".repeat(pad)));
    Line::from(
        spans
            .into_iter()
            .map(|s| s.patch_style(style))
            .collect::<Vec<_>>(),
    )
}

/// The selected phase's statements, fitted to the area: SQL wrapped in full when it fits,
/// else with whitespace collapsed, else cut (with `…`) to an even share of the rows.
fn statements(frame: &mut Frame, area: Rect, row: &PhaseRow, theme: &Theme, heading: bool) {
    let w = area.width as usize;
    let h = area.height as usize;
    if w == 0 || h == 0 {
        return;
    }
    let mut lines: Vec<Line> = Vec::new();
    if heading {
        let name = format!("── {} ", row.phase);
        let rule = "─".repeat(w.saturating_sub(width(&name)));
        lines.push(Line::from(vec![
            styled(name, theme.title),
            styled(rule, theme.border),
        ]));
    }
    if heading || row.steps.is_empty() {
        for text in wrap(&row.summary, w) {
            lines.push(Line::from(label(text, theme)));
        }
    }
    if row.steps.is_empty() {
        lines.push(Line::from(label("no statements: reads only", theme)));
        frame.render_widget(Paragraph::new(lines), area);
        return;
    }
    if heading {
        lines.push(Line::default());
    }

    let indent = if w >= 40 { 3 } else { 0 };
    let sql_w = w.saturating_sub(indent).max(1);
    let heads: Vec<Vec<Line>> = row
        .steps
        .iter()
        .enumerate()
        .map(|(i, step)| step_head(i, step, w, theme))
        .collect();
    let head_rows: usize = heads.iter().map(Vec::len).sum();
    let room = h.saturating_sub(lines.len());
    let gaps = row.steps.len() - 1;

    let as_written: Vec<Vec<String>> = row.steps.iter().map(|s| wrap(&s.sql, sql_w)).collect();
    let collapsed: Vec<Vec<String>> = row
        .steps
        .iter()
        .map(|s| wrap(&collapse(&s.sql), sql_w))
        .collect();
    let rows_of = |sql: &[Vec<String>]| head_rows + sql.iter().map(Vec::len).sum::<usize>();
    let (sql, gap) = if rows_of(&as_written) + gaps <= room {
        (as_written, true)
    } else if rows_of(&collapsed) + gaps <= room {
        (collapsed, true)
    } else if rows_of(&collapsed) <= room {
        (collapsed, false)
    } else {
        // An even share of the rows left after the step titles, cut with an ellipsis.
        let budget = room.saturating_sub(head_rows);
        let n = row.steps.len();
        let cut = collapsed
            .into_iter()
            .enumerate()
            .map(|(i, lines)| {
                let share = budget / n + usize::from(i < budget % n);
                cut_lines(lines, share, sql_w)
            })
            .collect();
        (cut, false)
    };

    let mut shown = 0;
    for (i, (head, sql)) in heads.into_iter().zip(sql).enumerate() {
        if lines.len() + head.len() > h {
            break;
        }
        if i > 0 && gap {
            lines.push(Line::default());
        }
        lines.extend(head);
        for text in sql {
            lines.push(Line::from(vec![
                Span::raw(" ".repeat(indent)),
                styled(text, theme.text),
            ]));
        }
        shown += 1;
    }
    if shown < row.steps.len() && h > 0 {
        lines.truncate(h - 1);
        let more = row.steps.len() - shown;
        lines.push(Line::from(label(
            format!("… {more} more step{}", if more == 1 { "" } else { "s" }),
            theme,
        )));
    }
    frame.render_widget(Paragraph::new(lines), area);
}

/// `1. add column  lock ACCESS EXCLUSIVE, brief`, on two lines when narrow (where the lock
/// mode, in capitals, goes without its label).
fn step_head(i: usize, step: &StepView, w: usize, theme: &Theme) -> Vec<Line<'static>> {
    let title = format!("{}. {}", i + 1, step.title);
    let lock = if step.lock.is_empty() {
        "no table lock".to_string()
    } else {
        step.lock.clone()
    };
    let lock_style = if step.lock.contains("ACCESS EXCLUSIVE") {
        bold(theme.warn)
    } else {
        theme.text
    };
    let lock_label = if w >= 40 && !step.lock.is_empty() {
        "lock "
    } else {
        ""
    };
    if width(&title) + 2 + width(lock_label) + width(&lock) <= w {
        return vec![Line::from(vec![
            styled(title, bold(theme.text)),
            Span::raw("  "),
            label(lock_label, theme),
            styled(lock, lock_style),
        ])];
    }
    let indent = if w >= 40 { "   " } else { " " };
    let lock_w = w.saturating_sub(width(indent) + width(lock_label));
    vec![
        Line::from(styled(truncate(&title, w), bold(theme.text))),
        Line::from(vec![
            Span::raw(indent),
            label(lock_label, theme),
            styled(truncate(&lock, lock_w), lock_style),
        ]),
    ]
}

/// Keep at most `max` lines, marking the cut with `…` at the end of the last one kept.
fn cut_lines(mut lines: Vec<String>, max: usize, w: usize) -> Vec<String> {
    if lines.len() <= max {
        return lines;
    }
    lines.truncate(max);
    if let Some(last) = lines.last_mut() {
        let mut text = truncate(last, w.saturating_sub(1));
        if !text.ends_with('…') {
            text.push('…');
        }
        *last = text;
    }
    lines
}
