//! The charts: throughput, lock waits, replication lag and batch duration over the time window.
//! Each run of samples is its own dataset, so a failed sample shows as a gap in the line.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Axis, Chart, Dataset, GraphType, Paragraph};

use super::format::{truncate, width};
use super::{bold, label, panel, styled};
use crate::format::{UNKNOWN, compact, plain, with_unit};
use crate::tui::theme::Theme;
use crate::tui::view::{ChartView, ViewModel};

const MIN_W: u16 = 20;
const MIN_H: u16 = 5;

/// Draw as many charts as fit in `area`, in the view's order.
pub fn draw(frame: &mut Frame, area: Rect, view: &ViewModel, theme: &Theme) {
    if area.is_empty() || view.charts.is_empty() {
        return;
    }
    for (chart, cell) in view.charts.iter().zip(grid(area, view.charts.len())) {
        one(frame, cell, chart, view, theme);
    }
}

/// Cells for `n` charts: show as many as fit, then waste no cell, then keep each chart about
/// four times as wide as tall (in cells), which reads well for a time series.
fn grid(area: Rect, n: usize) -> Vec<Rect> {
    let cols_max = usize::from((area.width / MIN_W).max(1));
    let rows_max = usize::from((area.height / MIN_H).max(1));
    let best = (1..=n.min(cols_max))
        .map(|cols| {
            let rows = n.div_ceil(cols).min(rows_max);
            let shown = n.min(cols * rows);
            let waste = cols * rows - shown;
            let cw = f64::from(area.width) / cols as f64;
            let ch = f64::from(area.height) / rows as f64;
            let aspect = (cw / (4.0 * ch)).ln().abs();
            (cols, rows, shown, waste, aspect)
        })
        .min_by(|a, b| b.2.cmp(&a.2).then(a.3.cmp(&b.3)).then(a.4.total_cmp(&b.4)));
    let Some((cols, rows, shown, _, _)) = best else {
        return Vec::new();
    };
    let row_areas = Layout::vertical(vec![Constraint::Fill(1); rows]).split(area);
    let mut cells = Vec::with_capacity(shown);
    for (r, row) in row_areas.iter().enumerate() {
        let in_row = cols.min(shown - r * cols);
        let parts = Layout::horizontal(vec![Constraint::Fill(1); in_row]).split(*row);
        cells.extend(parts.iter().copied());
    }
    cells
}

fn one(frame: &mut Frame, area: Rect, chart: &ChartView, view: &ViewModel, theme: &Theme) {
    let room = (area.width as usize).saturating_sub(2);
    let (top, bottom) = titles(chart, room, theme);
    let mut block = panel(top, theme);
    if let Some(bottom) = bottom {
        block = block.title_bottom(bottom.right_aligned());
    }
    let inner = block.inner(area);

    if let Some(note) = &chart.note {
        frame.render_widget(block, area);
        centered_note(frame, inner, note, theme);
        return;
    }

    // Owned, finite runs of points; a non-finite value splits a run like a failed sample.
    let window = view.window_secs.max(1) as f64;
    let runs: Vec<(usize, Vec<(f64, f64)>)> = chart
        .series
        .iter()
        .flat_map(|s| s.segments.iter().map(move |seg| (s.slot, seg)))
        .flat_map(|(slot, seg)| {
            seg.split(|(x, y)| !x.is_finite() || !y.is_finite())
                .filter(|run| !run.is_empty())
                .map(move |run| (slot, run.to_vec()))
        })
        .collect();
    if runs.is_empty() {
        frame.render_widget(block, area);
        centered_note(frame, inner, "no samples yet", theme);
        return;
    }
    let max_y = runs
        .iter()
        .flat_map(|(_, run)| run.iter().map(|p| p.1))
        .fold(0.0_f64, f64::max);
    let top = nice_ceil((max_y * 1.1).max(floor(&chart.unit)));

    let marker = if view.braille {
        Marker::Braille
    } else {
        Marker::Dot
    };
    let datasets: Vec<Dataset> = runs
        .iter()
        .map(|(slot, run)| {
            Dataset::default()
                .data(run)
                .marker(marker)
                .graph_type(GraphType::Line)
                .style(Style::new().fg(theme.series(*slot)))
        })
        .collect();

    let x_labels: Vec<Line> = if inner.height >= 6 {
        let mut labels = vec![Line::from(ago(view.window_secs))];
        if inner.width >= 30 {
            labels.push(Line::from(ago(view.window_secs / 2)));
        }
        labels.push(Line::from("now"));
        labels
    } else {
        Vec::new()
    };
    let y_labels: Vec<Line> = if inner.height >= 7 {
        vec![0.0, top / 2.0, top]
    } else {
        vec![0.0, top]
    }
    .into_iter()
    .map(|v| Line::from(compact(v)))
    .collect();

    let mut y_axis = Axis::default()
        .bounds([0.0, top])
        .labels(y_labels)
        .style(theme.muted);
    if inner.height >= 8 {
        // The unit at the top of the y axis; the scale headroom keeps data clear of it.
        y_axis = y_axis.title(label(chart.unit.clone(), theme));
    }
    let widget = Chart::new(datasets)
        .block(block)
        .legend_position(None)
        .x_axis(
            Axis::default()
                .bounds([-window, 0.0])
                .labels(x_labels)
                .style(theme.muted),
        )
        .y_axis(y_axis);
    frame.render_widget(widget, area);
}

/// The smallest y range worth drawing, so a flat line of tiny values is not blown up.
fn floor(unit: &str) -> f64 {
    match unit {
        "s" => 1.0,
        "ms" | "rows/s" => 100.0,
        _ => 1.0,
    }
}

/// `-15m`, `-7m`, `-30s`: how long ago a point of the x axis is.
fn ago(secs: u64) -> String {
    match secs {
        0 => "now".into(),
        s if s >= 7200 && s % 3600 == 0 => format!("-{}h", s / 3600),
        s if s >= 120 => format!("-{}m", s / 60),
        s => format!("-{s}s"),
    }
}

/// The chart's titles: the name and the current value of each series (in its series colour)
/// on the top border when they fit; else the values, or the series names, on the bottom one.
fn titles(chart: &ChartView, room: usize, theme: &Theme) -> (Line<'static>, Option<Line<'static>>) {
    let spans_w = |spans: &[Span]| spans.iter().map(Span::width).sum::<usize>();
    let name = styled(format!(" {} ", chart.title), theme.title);
    if chart.note.is_some() || chart.series.is_empty() || width(&name.content) > room {
        let name = truncate(&format!(" {} ", chart.title), room);
        return (Line::from(styled(name, theme.title)), None);
    }

    // Short units stick to each value (`0.4s`); long ones are said once at the end.
    let glued = matches!(
        chart.unit.as_str(),
        "s" | "ms" | "%" | "B" | "B/s" | "bytes" | ""
    );
    let series = &chart.series;
    let value = |i: usize| {
        let text = match series[i].current {
            None => UNKNOWN.to_string(),
            Some(v) if glued => with_unit(v, &chart.unit),
            Some(v) => plain(v),
        };
        match (series[i].current, chart.limit) {
            // Over the plan's limit: a warning, marked so it reads without colour too.
            (Some(v), Some(limit)) if v > limit => styled(format!("{text}!"), bold(theme.warn)),
            _ => styled(text, bold(series_style(theme, series[i].slot))),
        }
    };
    let finish = |mut spans: Vec<Span<'static>>| {
        if !glued {
            spans.push(label(format!(" {}", chart.unit), theme));
        }
        spans.push(Span::raw(" "));
        spans
    };
    let mut named = vec![];
    let mut bare = vec![];
    let mut legend = vec![Span::raw(" ")];
    for (i, s) in series.iter().enumerate() {
        if i > 0 {
            named.push(label(" · ", theme));
            bare.push(label(" · ", theme));
            legend.push(label(" · ", theme));
        }
        named.push(styled(format!("{} ", s.name), theme.text));
        named.push(value(i));
        bare.push(value(i));
        legend.push(styled(s.name.clone(), series_style(theme, s.slot)));
    }
    legend.push(Span::raw(" "));
    let (named, bare, first) = (finish(named), finish(bare), finish(vec![value(0)]));
    let with_name = |values: &[Span<'static>]| {
        let mut spans = vec![name.clone()];
        spans.extend_from_slice(values);
        spans
    };
    let name_w = name.width();
    let fits_top = |values: &[Span<'static>]| name_w + spans_w(values) <= room;
    let fits_bottom = |values: &[Span<'static>]| spans_w(values) < room;

    if series.len() == 1 || fits_top(&named) {
        let values = if series.len() == 1 { &first } else { &named };
        if fits_top(values) {
            return (Line::from(with_name(values)), None);
        }
    } else if fits_top(&bare) {
        let bottom = fits_bottom(&legend).then(|| Line::from(legend));
        return (Line::from(with_name(&bare)), bottom);
    }
    let bottom = [named, bare, first]
        .into_iter()
        .find(|v| fits_bottom(v))
        .map(|mut v| {
            v.insert(0, Span::raw(" "));
            Line::from(v)
        });
    (Line::from(name), bottom)
}

/// The style of series `slot`: its palette colour, or plain text without a palette.
fn series_style(theme: &Theme, slot: usize) -> Style {
    if theme.chart.is_empty() {
        theme.text
    } else {
        Style::new().fg(theme.series(slot))
    }
}

fn centered_note(frame: &mut Frame, inner: Rect, note: &str, theme: &Theme) {
    if inner.is_empty() {
        return;
    }
    let text = truncate(note, inner.width as usize);
    let y = inner.y + inner.height.saturating_sub(1) / 2;
    let row = Rect {
        y,
        height: 1,
        ..inner
    };
    frame.render_widget(Paragraph::new(label(text, theme)).centered(), row);
}

/// The smallest "round" number (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8 × 10ⁿ) not below `x`.
fn nice_ceil(x: f64) -> f64 {
    if !x.is_finite() || x <= 0.0 {
        return 1.0;
    }
    let exp = 10f64.powf(x.log10().floor());
    let f = x / exp;
    let step = [1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0]
        .into_iter()
        .find(|s| *s >= f - 1e-9)
        .unwrap_or(10.0);
    step * exp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_y_axis_tops_at_a_round_number() {
        assert_eq!(nice_ceil(41_910.0), 50_000.0);
        assert_eq!(nice_ceil(1.1), 1.2);
        assert_eq!(nice_ceil(0.0), 1.0);
    }
}
