//! Database and host figures from the latest sample: sessions (waiting for locks, running),
//! replica lag, autovacuum, table size, dead rows, redo (WAL) rate, each in the target family's
//! words (MySQL/MariaDB: threads running, purge with the history list, binlog), each against
//! the plan's throttle limit where it sets one; the machine's CPU, memory and network, and
//! pacer's own.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::format::{Item, flow};
use super::{bold, label, panel, styled, title_with, value};
use crate::format::{UNKNOWN, bytes, bytes_per_s, percent, secs, thousands, thousands_f};
use crate::tui::theme::Theme;
use crate::tui::view::{DbView, HostView, ReplicaView, ViewModel};

const LABEL_W: usize = 13;

/// Draw the figures in a panel of their own, one labelled row per subject.
pub fn draw(frame: &mut Frame, area: Rect, view: &ViewModel, theme: &Theme) {
    let block = panel(title_with("database · host", String::new(), theme), theme);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if inner.is_empty() {
        return;
    }
    let w = inner.width as usize;
    let mut lines = Vec::new();
    for (name, items) in rows(&view.db, &view.host, theme) {
        let flowed = flow(vec![items], w.saturating_sub(LABEL_W).max(1), " · ");
        for (i, line) in flowed.into_iter().enumerate() {
            let head = if i == 0 {
                label(format!("{name:<LABEL_W$}"), theme)
            } else {
                Span::raw(" ".repeat(LABEL_W))
            };
            let mut spans = vec![head];
            spans.extend(line.spans);
            lines.push(Line::from(spans));
        }
    }
    frame.render_widget(Paragraph::new(lines), inner);
}

/// The figures as flowing lines, most telling first: lock waits, worst lag, WAL (and the
/// figures the plan throttles on); the host; then the table's size and dead tuples.
pub fn compact_lines(view: &ViewModel, theme: &Theme, w: usize) -> Vec<Line<'static>> {
    let db = &view.db;
    let host = &view.host;
    let mut db_items: Vec<Item> = vec![
        vec![styled("db", theme.title)],
        waiters(db, theme, "waits "),
        vec![label("lag ", theme), lag_summary(db, theme, false)],
    ];
    if let Some(phase) = &db.maintenance {
        db_items.push(vec![
            label(format!("{} ", db.words.maintenance), theme),
            styled(phase.clone(), theme.info),
        ]);
    }
    db_items.push(vec![
        label(format!("{} ", db.words.redo), theme),
        redo_rate(db, theme),
    ]);
    // Little room: the running sessions and the history only when the plan throttles on them.
    if db.limits.active.is_some() {
        db_items.push(vec![
            label(format!("{} ", db.words.active), theme),
            active(db, theme),
        ]);
    }
    if db.words.dead_rows_server_wide && db.limits.history.is_some() {
        db_items.push(vec![
            label(format!("{} ", db.words.dead_rows), theme),
            history(db, theme),
        ]);
    }

    let mut host_items: Vec<Item> = vec![vec![styled("host", theme.title)]];
    host_items.extend(host_figures(host, theme));
    host_items.push(own_figures(host, theme, "pacer "));
    let mut table_items: Vec<Item> = vec![
        vec![styled("table", theme.title)],
        vec![label("size ", theme), size(db.table_bytes, theme)],
    ];
    if !db.words.dead_rows_server_wide {
        table_items.push(vec![label("dead ", theme), count(db.dead_rows, theme)]);
    } else if db.limits.history.is_none() {
        table_items.push(vec![
            label(format!("{} ", db.words.dead_rows), theme),
            history(db, theme),
        ]);
    }
    flow(vec![db_items, host_items, table_items], w, "  ")
}

fn rows(db: &DbView, host: &HostView, theme: &Theme) -> Vec<(&'static str, Vec<Item>)> {
    let mut longest = waiters(db, theme, "");
    longest.push(label(" lock waits", theme));
    if let Some(s) = db.longest_wait_s
        && db.lock_waiters.unwrap_or(0) > 0
    {
        longest.push(label(format!(", longest {}", secs(s)), theme));
    }
    let mut running = vec![
        active(db, theme),
        label(format!(" {}", db.words.active), theme),
    ];
    if let Some(limit) = db.limits.active {
        running.push(label(format!(" (max {limit})"), theme));
    }
    let replicas: Vec<Item> = match &db.replicas {
        None => vec![vec![label(UNKNOWN, theme)]],
        Some(list) if list.is_empty() => vec![vec![label("no replicas", theme)]],
        Some(list) => list
            .iter()
            .map(|r| replica(r, db.limits.lag_s, theme))
            .collect(),
    };
    let mut maintenance = vec![match &db.maintenance {
        Some(phase) => vec![styled(phase.clone(), theme.info)],
        // The server's backlog of old row versions (all tables') is what its purge works on.
        None if db.words.dead_rows_server_wide => {
            let mut item = vec![
                label(format!("{} ", db.words.dead_rows), theme),
                history(db, theme),
            ];
            if let Some(limit) = db.limits.history {
                item.push(label(format!(" (max {})", thousands(limit)), theme));
            }
            item
        }
        None => vec![label("not on this table", theme)],
    }];
    if db.words.dead_rows_server_wide && db.maintenance.is_some() {
        maintenance.push(vec![
            label(format!("{} ", db.words.dead_rows), theme),
            history(db, theme),
        ]);
    }
    let mut table = vec![vec![size(db.table_bytes, theme)]];
    if !db.words.dead_rows_server_wide {
        table.push(vec![
            count(db.dead_rows, theme),
            label(format!(" {}", db.words.dead_rows), theme),
        ]);
    }
    let mut redo = vec![
        label(format!("{} ", db.words.redo), theme),
        redo_rate(db, theme),
    ];
    if let Some(limit) = db.limits.redo_bytes_per_s {
        redo.push(label(format!(" (max {})", bytes_per_s(limit)), theme));
    }
    vec![
        ("sessions", vec![longest, running]),
        ("replica lag", replicas),
        (db.words.maintenance, maintenance),
        ("table", table),
        (
            "writes",
            vec![
                redo,
                vec![
                    label(
                        // Unknown yet: nothing to qualify.
                        if db.app_writes_per_s.is_none() {
                            "app "
                        } else if db.app_writes_server_wide {
                            "server-wide "
                        } else if db.app_writes_exact {
                            "app "
                        } else {
                            "all sessions "
                        },
                        theme,
                    ),
                    match db.app_writes_per_s {
                        Some(x) => value(thousands_f(x), theme),
                        None => label(UNKNOWN, theme),
                    },
                    label(" rows/s", theme),
                ],
            ],
        ),
        ("host", host_figures(host, theme)),
        ("pacer", vec![own_figures(host, theme, "")]),
    ]
}

fn waiters(db: &DbView, theme: &Theme, prefix: &'static str) -> Item {
    let n = match db.lock_waiters {
        None => label(UNKNOWN, theme),
        Some(0) => value("0", theme),
        Some(n) => styled(thousands(u64::from(n)), bold(theme.warn)),
    };
    if prefix.is_empty() {
        vec![n]
    } else {
        vec![label(prefix, theme), n]
    }
}

/// A lag in seconds, as a warning when it is over the plan's limit.
fn lag_value(s: f64, limit: Option<f64>, theme: &Theme) -> Span<'static> {
    if limit.is_some_and(|limit| s > limit) {
        styled(secs(s), bold(theme.warn))
    } else {
        value(secs(s), theme)
    }
}

fn replica(r: &ReplicaView, limit: Option<f64>, theme: &Theme) -> Item {
    let lag = match (r.lag_s, r.lag_bytes) {
        (Some(s), _) => lag_value(s, limit, theme),
        (None, Some(b)) => value(format!("{} behind", bytes(b)), theme),
        (None, None) => label(UNKNOWN, theme),
    };
    vec![styled(format!("{} ", r.name), theme.text), lag]
}

/// The worst lag over all replicas, with how many there are when `count`.
fn lag_summary(db: &DbView, theme: &Theme, count: bool) -> Span<'static> {
    match &db.replicas {
        None => label(UNKNOWN, theme),
        Some(list) if list.is_empty() => label("no replicas", theme),
        Some(list) => {
            let worst = list
                .iter()
                .filter_map(|r| r.lag_s)
                .filter(|s| s.is_finite())
                .fold(None, |m: Option<f64>, s| Some(m.map_or(s, |m| m.max(s))));
            let n = list.len();
            let of = if n == 1 || !count {
                String::new()
            } else {
                format!(" ({n} replicas)")
            };
            match worst {
                Some(s) => {
                    let mut span = lag_value(s, db.limits.lag_s, theme);
                    span.content = format!("{}{of}", span.content).into();
                    span
                }
                None => label(format!("{UNKNOWN}{of}"), theme),
            }
        }
    }
}

fn host_figures(host: &HostView, theme: &Theme) -> Vec<Item> {
    let mem = match (host.mem_used, host.mem_total) {
        (Some(used), Some(total)) => value(used_of(used, total), theme),
        (Some(used), None) => value(bytes(used), theme),
        _ => label(UNKNOWN, theme),
    };
    let rate_or_unknown = |x: Option<f64>| x.map_or(UNKNOWN.to_string(), bytes_per_s);
    vec![
        vec![label("cpu ", theme), pct(host.cpu_pct, theme)],
        vec![label("mem ", theme), mem],
        vec![
            label("net ", theme),
            value(
                format!(
                    "↓{} ↑{}",
                    rate_or_unknown(host.net_rx_per_s),
                    rate_or_unknown(host.net_tx_per_s)
                ),
                theme,
            ),
        ],
    ]
}

fn own_figures(host: &HostView, theme: &Theme, prefix: &'static str) -> Item {
    let mut item = Vec::new();
    if !prefix.is_empty() {
        item.push(label(prefix, theme));
    }
    item.push(label("cpu ", theme));
    item.push(pct(host.own_cpu_pct, theme));
    item.push(label(" mem ", theme));
    item.push(size(host.own_mem, theme));
    item
}

fn pct(x: Option<f64>, theme: &Theme) -> Span<'static> {
    x.map_or_else(|| label(UNKNOWN, theme), |x| value(percent(x), theme))
}

fn size(x: Option<u64>, theme: &Theme) -> Span<'static> {
    x.map_or_else(|| label(UNKNOWN, theme), |x| value(bytes(x), theme))
}

fn count(x: Option<u64>, theme: &Theme) -> Span<'static> {
    x.map_or_else(|| label(UNKNOWN, theme), |x| value(thousands(x), theme))
}

/// A figure as a warning when it is over the plan's limit.
fn against(text: String, over: bool, theme: &Theme) -> Span<'static> {
    if over {
        styled(text, bold(theme.warn))
    } else {
        value(text, theme)
    }
}

/// The redo (WAL, binlog) rate against `max_wal_rate` / `max_binlog_rate`.
fn redo_rate(db: &DbView, theme: &Theme) -> Span<'static> {
    match db.redo_bytes_per_s {
        None => label(UNKNOWN, theme),
        Some(x) => against(
            bytes_per_s(x),
            db.limits.redo_bytes_per_s.is_some_and(|l| x > l),
            theme,
        ),
    }
}

/// The sessions running a statement against `max_threads_running`.
fn active(db: &DbView, theme: &Theme) -> Span<'static> {
    match db.active_sessions {
        None => label(UNKNOWN, theme),
        Some(n) => against(
            thousands(u64::from(n)),
            db.limits.active.is_some_and(|l| n > l),
            theme,
        ),
    }
}

/// The history list length against `max_history_length`.
fn history(db: &DbView, theme: &Theme) -> Span<'static> {
    match db.dead_rows {
        None => label(UNKNOWN, theme),
        Some(n) => against(
            thousands(n),
            db.limits.history.is_some_and(|l| n > l),
            theme,
        ),
    }
}

/// `6.1 / 15.6 GiB`, or `512 MiB / 15.6 GiB` when the units differ.
fn used_of(used: u64, total: u64) -> String {
    let (u, t) = (bytes(used), bytes(total));
    match (u.split_once(' '), t.split_once(' ')) {
        (Some((u_num, u_unit)), Some((_, t_unit))) if u_unit == t_unit => format!("{u_num} / {t}"),
        _ => format!("{u} / {t}"),
    }
}
