//! The progress panel: a gauge of rows done, the rates and ETA, the batch size and who set it,
//! batch durations and the last checkpoint.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Modifier;
use ratatui::text::Span;
use ratatui::widgets::{Gauge, Paragraph};

use super::format::{Item, flow, width};
use super::{figures, label, panel, styled, title_with, value};
use crate::format::{UNKNOWN, human, millis, percent_done, thousands, thousands_f};
use crate::tui::theme::Theme;
use crate::tui::view::{Pace, ViewModel};

/// Draw the progress panel; `with_figures` adds the database and host figures in the rows
/// left over (the compact layout has no room for a panel of their own).
pub fn draw(frame: &mut Frame, area: Rect, view: &ViewModel, theme: &Theme, with_figures: bool) {
    let block = panel(title_with("progress", String::new(), theme), theme);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if inner.is_empty() {
        return;
    }
    let [gauge_row, rest] =
        Layout::vertical([Constraint::Length(1), Constraint::Fill(1)]).areas(inner);
    gauge(frame, gauge_row, view, theme);
    let w = rest.width as usize;
    let groups = items(view, theme);
    let lines = if with_figures {
        // Packed densely; the checkpoint goes first when rows run short.
        let mut items: Vec<Item> = groups.into_iter().flatten().collect();
        let figures = figures::compact_lines(view, theme, w);
        let mut lines = flow(vec![items.clone()], w, "  ");
        if lines.len() + figures.len() > rest.height as usize {
            items.pop();
            lines = flow(vec![items], w, "  ");
        }
        lines.extend(figures);
        lines
    } else {
        flow(groups, w, "  ")
    };
    frame.render_widget(Paragraph::new(lines), rest);
}

/// The gauge of rows done, labelled with the percentage (the counts are on the next line).
pub fn gauge(frame: &mut Frame, area: Rect, view: &ViewModel, theme: &Theme) {
    if area.is_empty() {
        return;
    }
    let p = &view.progress;
    let (ratio, text) = match p.rows_total {
        Some(total) if total > 0 => {
            let ratio = p.rows_done as f64 / total as f64;
            (ratio.clamp(0.0, 1.0), percent_done(ratio))
        }
        Some(_) if p.rows_done > 0 => (1.0, "100%".to_string()),
        _ => (0.0, "total unknown".to_string()),
    };
    let text = if width(&text) + 2 <= area.width as usize {
        text
    } else {
        String::new()
    };
    let gauge = Gauge::default()
        .ratio(ratio)
        .use_unicode(true)
        .gauge_style(theme.gauge)
        .label(Span::styled(text, theme.text.add_modifier(Modifier::BOLD)));
    frame.render_widget(gauge, area);
}

/// `21,004,000 / ~50,000,000 rows` (the total is an estimate).
fn counts(view: &ViewModel, theme: &Theme) -> Item {
    let p = &view.progress;
    let mut item = vec![value(thousands(p.rows_done), theme)];
    match p.rows_total {
        Some(total) => {
            item.push(label(" / ", theme));
            item.push(value(format!("~{}", thousands(total)), theme));
            item.push(label(" rows", theme));
        }
        None => item.push(label(" rows of an unknown total", theme)),
    }
    item
}

/// The rate and the ETA: `9,120 rows/s  avg 8,752  ETA 53m 09s` while batches run;
/// `paused  avg 8,752  ETA stopped` while they do not; `avg 8,752 rows/s` once the backfill
/// is over.
fn rate_items(view: &ViewModel, theme: &Theme) -> Vec<Item> {
    let p = &view.progress;
    let avg = |unit: &str| {
        let mut item = vec![label("avg ", theme)];
        if p.avg_rows_per_s > 0.0 {
            item.push(value(thousands_f(p.avg_rows_per_s), theme));
            item.push(label(unit.to_string(), theme));
        } else {
            item.push(label(UNKNOWN, theme));
        }
        item
    };
    match p.pace {
        Pace::Moving => vec![
            vec![
                value(thousands_f(p.rows_per_s), theme),
                label(" rows/s", theme),
            ],
            avg(""),
            vec![
                label("ETA ", theme),
                match p.eta {
                    Some(eta) => value(human(eta), theme),
                    None => label(UNKNOWN, theme),
                },
            ],
        ],
        Pace::Stopped(why) => vec![
            vec![styled(why, theme.paused)],
            avg(""),
            vec![label("ETA ", theme), styled("stopped", theme.paused)],
        ],
        Pace::Over => vec![avg(" rows/s")],
    }
}

fn items(view: &ViewModel, theme: &Theme) -> Vec<Vec<Item>> {
    let p = &view.progress;
    let source_style = if p.batch_size_cut {
        theme.warn
    } else {
        theme.muted
    };
    let mut batch: Item = vec![
        label("batch ", theme),
        value(thousands(p.batch_size), theme),
    ];
    if !p.batch_size_source.is_empty() {
        batch.push(styled(format!(" ({})", p.batch_size_source), source_style));
    }
    let ms = |x: Option<f64>| match x {
        Some(x) => value(millis(x), theme),
        None => label(UNKNOWN, theme),
    };
    vec![
        vec![counts(view, theme)],
        rate_items(view, theme),
        vec![
            batch,
            vec![label("p50 ", theme), ms(p.batch_p50_ms)],
            vec![label("p95 ", theme), ms(p.batch_p95_ms)],
        ],
        foreground_items(view, theme),
        vec![vec![
            label("checkpoint ", theme),
            match &p.checkpoint {
                Some(key) => styled(key.clone(), theme.text),
                None => label(UNKNOWN, theme),
            },
        ]],
    ]
}

/// The foreground guard: `foreground p99 1.31 ms  1.4× of 0.92 ms (bound 1.5x)  duty 50%`,
/// the impact as a warning when over the bound; `foreground guard off`.
fn foreground_items(view: &ViewModel, theme: &Theme) -> Vec<Item> {
    let Some(f) = &view.progress.foreground else {
        return Vec::new();
    };
    if !f.on {
        return vec![vec![
            label("foreground guard ", theme),
            styled("off", theme.muted),
        ]];
    }
    let ms = |x: Option<f64>| match x {
        Some(x) => value(millis(x), theme),
        None => label(UNKNOWN, theme),
    };
    let over = matches!((f.p99_ms, f.limit_ms), (Some(p), Some(l)) if p > l);
    let mut impact = vec![label("foreground p99 ", theme), ms(f.p99_ms)];
    if let Some(x) = f.impact() {
        impact.push(label("  ", theme));
        impact.push(styled(
            format!("{x:.1}×"),
            if over { theme.warn } else { theme.text },
        ));
        impact.push(label(" of ", theme));
        impact.push(ms(f.baseline_p99_ms));
    }
    impact.push(label(format!(" (bound {})", f.bound), theme));
    let pacing = crate::engine::guard::Pacing {
        duty: f.duty,
        batch_cap: f.batch_cap,
    };
    let limited = pacing != crate::engine::guard::Pacing::FULL;
    vec![
        impact,
        vec![styled(
            pacing.to_string(),
            if limited { theme.warn } else { theme.muted },
        )],
    ]
}
