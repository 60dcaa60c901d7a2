//! The blockers table: the sessions holding the lock pacer waits for, with what they run.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::Line;
use ratatui::widgets::{Cell, Paragraph, Row, Table};

use super::format::{collapse, truncate, width};
use super::{bold, label, panel, styled, title_with};
use crate::format::{UNKNOWN, secs};
use crate::tui::theme::Theme;
use crate::tui::view::ViewModel;

/// Transactions open longer than this are shown as a warning.
const OLD_XACT_S: f64 = 60.0;

/// Draw the blockers table (or why it is empty).
pub fn draw(frame: &mut Frame, area: Rect, view: &ViewModel, theme: &Theme) {
    let n = view.blockers.len();
    let remark = match n {
        0 => String::new(),
        1 => "1 session holds the lock pacer waits for".into(),
        n => format!("{n} sessions hold the lock pacer waits for"),
    };
    let block = panel(title_with("blockers", remark, theme), theme);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if inner.is_empty() {
        return;
    }
    if n == 0 {
        let text = label("no blocking session identified yet", theme);
        frame.render_widget(Paragraph::new(Line::from(text)), inner);
        return;
    }

    let col = |header: &str, values: &mut dyn Iterator<Item = usize>, cap: usize| {
        values.max().unwrap_or(0).max(width(header)).min(cap) as u16
    };
    let b = &view.blockers;
    let wide = inner.width >= 70;
    let words = &view.db.words;
    let pid_w = col(
        words.session,
        &mut b.iter().map(|x| x.pid.to_string().len()),
        10,
    );
    let app_w = col(
        words.client,
        &mut b.iter().map(|x| width(&x.application)),
        20,
    );
    let user_w = col("user", &mut b.iter().map(|x| width(&x.user)), 14);
    let state_w = col("state", &mut b.iter().map(|x| width(&x.state)), 19);
    let age_w = col(words.transaction_age, &mut b.iter().map(|_| 7), 8);
    let mut widths = vec![pid_w];
    if wide {
        widths.extend([app_w, user_w]);
    }
    widths.extend([state_w, age_w]);
    let fixed: u16 = widths.iter().sum::<u16>() + widths.len() as u16;
    let query_w = inner.width.saturating_sub(fixed) as usize;

    let mut header = vec![words.session];
    if wide {
        header.extend([words.client, "user"]);
    }
    header.extend(["state", words.transaction_age, "query"]);
    let header = Row::new(header.into_iter().map(|h| Cell::from(label(h, theme))));

    let rows = b.iter().map(|x| {
        let state_style = if x.state.starts_with("idle in transaction") {
            bold(theme.warn)
        } else {
            theme.text
        };
        let age = match x.xact_age_s {
            Some(s) if s >= OLD_XACT_S => styled(secs(s), bold(theme.warn)),
            Some(s) => styled(secs(s), theme.text),
            None => label(UNKNOWN, theme),
        };
        let mut cells = vec![Cell::from(styled(x.pid.to_string(), bold(theme.warn)))];
        if wide {
            let app = if x.application.is_empty() {
                label("(none)", theme)
            } else {
                styled(x.application.clone(), theme.text)
            };
            cells.push(Cell::from(app));
            cells.push(Cell::from(styled(x.user.clone(), theme.text)));
        }
        cells.push(Cell::from(styled(x.state.clone(), state_style)));
        cells.push(Cell::from(age));
        cells.push(Cell::from(styled(
            truncate(&collapse(&x.query), query_w),
            theme.muted,
        )));
        Row::new(cells)
    });

    let constraints = widths
        .into_iter()
        .map(Constraint::Length)
        .chain([Constraint::Fill(1)]);
    let table = Table::new(rows, constraints)
        .header(header)
        .column_spacing(1);
    frame.render_widget(table, inner);
}
