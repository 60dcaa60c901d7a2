//! Realistic view models for every state the screen shows, for snapshot tests.
//!
//! The story: `public.orders` (50 million rows) gets `amount numeric(14,2)` computed from
//! `amount_cents`, on a primary with two replicas. Every figure is computed from integers:
//! no clocks, no randomness, the same bytes on every machine.

use std::path::Path;
use std::time::Duration;

use crate::plan::{Phase, Plan};
use crate::target::postgres::render;
use crate::target::postgres::sql::PgSql;
use crate::target::{Blocker, KeyColumn};
use crate::tui::model::step_views;
use crate::tui::view::{
    ChartView, DbView, HostView, KeyHelp, Level, Limits, LogLine, Pace, PhaseRow, PhaseStatus,
    Popup, ProgressView, ReplicaView, SeriesView, StatusView, ViewModel,
};

const WINDOW: u64 = 900;
const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;

/// Mid-backfill, healthy: 42% done, charts full of data with one failed sample (a gap).
pub fn running() -> ViewModel {
    ViewModel {
        target: "app@db1.prod.internal:5432/shop".into(),
        table: "public.orders".into(),
        column: "amount".into(),
        phase: Some(Phase::Backfill),
        status: StatusView::Running,
        elapsed: Duration::from_secs(42 * 60 + 17),
        phases: phases(Phase::Backfill, PhaseStatus::Running),
        selected_phase: 3,
        progress: ProgressView {
            rows_done: 21_004_000,
            rows_total: Some(50_000_000),
            rows_per_s: 9_120.0,
            avg_rows_per_s: 8_752.0,
            eta: Some(Duration::from_secs(53 * 60 + 9)),
            batch_size: 2_000,
            batch_size_source: "plan".into(),
            batch_size_cut: false,
            batch_p50_ms: Some(168.0),
            batch_p95_ms: Some(231.0),
            checkpoint: Some("21004000".into()),
            pace: Pace::Moving,
            foreground: None,
        },
        charts: charts(Shape::Healthy),
        window_secs: WINDOW,
        blockers: Vec::new(),
        db: DbView {
            lock_waiters: Some(0),
            longest_wait_s: None,
            replicas: Some(vec![
                replica("replica-a", Some(0.4), 2 * MIB),
                replica("replica-b", Some(0.3), 1_400_000),
            ]),
            limits: Limits {
                lag_s: Some(10.0),
                ..Limits::default()
            },
            words: Default::default(),
            maintenance: None,
            table_bytes: Some(38 * GIB + 210 * MIB),
            dead_rows: Some(1_204_332),
            redo_bytes_per_s: Some(8.4 * MIB as f64),
            active_sessions: Some(4),
            app_writes_per_s: Some(312.0),
            app_writes_exact: true,
            app_writes_server_wide: false,
        },
        host: HostView {
            cpu_pct: Some(23.5),
            mem_used: Some(6 * GIB + 120 * MIB),
            mem_total: Some(15 * GIB + 620 * MIB),
            net_rx_per_s: Some(1.2 * MIB as f64),
            net_tx_per_s: Some(350.0 * 1024.0),
            own_cpu_pct: Some(4.1),
            own_mem: Some(38 * MIB),
        },
        log: running_log(),
        log_scroll: 0,
        popup: None,
        keys: keys(),
        braille: true,
        companion_status: None,
    }
}

/// Pause asked for: the batch in flight finishes first.
pub fn pausing() -> ViewModel {
    let mut v = running();
    v.status = StatusView::Pausing;
    v.log
        .push(info("12:02:21", "pause asked by the operator (key p)"));
    v
}

/// Paused at a batch boundary: no rate, no ETA, the throughput line drops to zero.
pub fn paused() -> ViewModel {
    let mut v = running();
    v.status = StatusView::Paused;
    v.elapsed = Duration::from_secs(44 * 60 + 2);
    v.progress.rows_per_s = 0.0;
    v.progress.avg_rows_per_s = 8_580.0;
    v.progress.eta = None;
    v.progress.pace = Pace::Stopped("paused");
    v.charts = charts(Shape::Paused);
    v.db.app_writes_per_s = Some(310.0);
    v.db.redo_bytes_per_s = Some(0.6 * MIB as f64);
    v.log
        .push(info("12:02:21", "pause asked by the operator (key p)"));
    v.log.push(info(
        "12:02:21",
        "paused at a batch boundary after key 21004000",
    ));
    v
}

/// Throttled: a replica fell behind; batches wait until it catches up.
pub fn throttled() -> ViewModel {
    let mut v = running();
    // Two signals at once, as the engine words them for the header (the log has the figures).
    v.status = StatusView::Throttled(
        "replication lag 14.2s forecast > 10s (replica-a); sessions waiting on pacer's locks \
         3 > 2"
            .into(),
    );
    v.elapsed = Duration::from_secs(44 * 60 + 51);
    v.progress.rows_done = 21_950_000;
    v.progress.checkpoint = Some("21950000".into());
    v.progress.rows_per_s = 0.0;
    v.progress.eta = None;
    v.progress.pace = Pace::Stopped("throttled");
    v.progress.batch_size = 12_500;
    v.progress.batch_size_source = "operator: holds until r".into();
    v.charts = charts(Shape::Throttled);
    v.db.replicas = Some(vec![
        replica("replica-a", Some(14.2), 96 * MIB),
        replica("replica-b", Some(0.3), 3 * MIB),
    ]);
    v.log.push(info(
        "12:03:02",
        "batch size 2,000 → 12,500 (operator: holds until r)",
    ));
    v.log.push(warn(
        "12:04:29",
        "throttled: replication lag (replica-a) 14.2s forecast (96.0 MiB behind, replaying \
         6.8 MiB/s, last reply 0.1s ago) > 10s; batches wait until it is clear",
    ));
    v
}

/// Mid-backfill with the foreground guard limiting pacer: the probe's p99 is over the bound,
/// the duty cycle is down to a quarter.
pub fn guarded() -> ViewModel {
    let mut v = running();
    v.progress.rows_per_s = 2_310.0;
    v.progress.foreground = Some(crate::engine::guard::ForegroundView {
        bound: "1.5x".into(),
        on: true,
        baseline_p99_ms: Some(0.92),
        p99_ms: Some(1.61),
        limit_ms: Some(1.38),
        duty: 0.25,
        batch_cap: None,
        last_ms: Some(0.8),
        reason: "probe p99 1.61 ms against 1.38 ms (1.5x of the 0.92 ms baseline): 3 of 41 over"
            .into(),
    });
    v
}

/// Adding the column: the ALTER waits for its lock behind two sessions.
pub fn waiting_for_lock() -> ViewModel {
    let mut v = running();
    v.phase = Some(Phase::AddColumn);
    v.status = StatusView::WaitingForLock(vec![4711, 5120]);
    v.elapsed = Duration::from_secs(74);
    v.phases = phases(Phase::AddColumn, PhaseStatus::Running);
    v.selected_phase = 1;
    v.progress = ProgressView {
        rows_total: Some(50_000_000),
        batch_size: 2_000,
        batch_size_source: "plan".into(),
        pace: Pace::Over,
        ..ProgressView::default()
    };
    v.charts = charts(Shape::Starting);
    v.blockers = vec![
        Blocker {
            pacer: false,
            pid: 4711,
            application: "metabase".into(),
            user: "analyst".into(),
            state: "idle in transaction".into(),
            xact_age_s: Some(1_325.0),
            query: "SELECT o.customer_id, sum(o.amount_cents)\n  FROM public.orders o\n WHERE o.created_at > now() - interval '30 days'\n GROUP BY 1 ORDER BY 2 DESC".into(),
            family: crate::target::family::Family::Postgres,
        },
        Blocker {
            pacer: false,
            pid: 5120,
            application: String::new(),
            user: "postgres".into(),
            state: "active".into(),
            xact_age_s: Some(42.5),
            query: "VACUUM (VERBOSE, ANALYZE) public.orders".into(),
            family: crate::target::family::Family::Postgres,
        },
    ];
    v.db.lock_waiters = Some(3);
    v.db.longest_wait_s = Some(1.4);
    v.db.maintenance = None;
    v.log = vec![
        info(
            "11:20:03",
            "preflight: PostgreSQL 16.4, public.orders ≈ 50,000,000 rows (38 GiB), key id bigint",
        ),
        info("11:20:04", "preflight passed: no findings"),
        info(
            "11:20:04",
            "add_column: ALTER TABLE public.orders ADD COLUMN IF NOT EXISTS amount numeric(14,2)",
        ),
        warn(
            "11:20:06",
            "lock wait: ALTER TABLE gave up after lock_timeout 2s (attempt 1/30); blocked by pid 4711, 5120",
        ),
        warn(
            "11:20:38",
            "lock wait: ALTER TABLE gave up after lock_timeout 2s (attempt 12/30); blocked by pid 4711, 5120",
        ),
        warn(
            "11:21:17",
            "lock wait: ALTER TABLE gave up after lock_timeout 2s (attempt 24/30); blocked by pid 4711, 5120",
        ),
    ];
    v
}

/// Failed during the backfill: the connection could not be re-established.
pub fn failed() -> ViewModel {
    let mut v = running();
    v.status = StatusView::Failed(
        "lost connection to db1.prod.internal:5432 and 5 reconnects failed; resumable from key 21004000".into(),
    );
    v.phases = phases(Phase::Backfill, PhaseStatus::Failed);
    v.progress.rows_per_s = 0.0;
    v.progress.eta = None;
    v.progress.pace = Pace::Over;
    v.charts = charts(Shape::Failed);
    v.db = DbView::default();
    v.host.net_rx_per_s = Some(0.0);
    v.host.net_tx_per_s = Some(0.0);
    v.log.push(error(
        "12:02:24",
        "connection lost: server closed the connection unexpectedly",
    ));
    v.log.push(warn("12:02:25", "reconnecting (1/5) in 1s"));
    v.log.push(warn("12:02:41", "reconnecting (5/5) in 16s"));
    v.log.push(error(
        "12:02:57",
        "gave up: 5 reconnects failed (connection refused); run pacer again to resume from key 21004000",
    ));
    v
}

/// Every phase finished.
pub fn done() -> ViewModel {
    let mut v = running();
    v.phase = Some(Phase::Cleanup);
    v.status = StatusView::Done;
    v.elapsed = Duration::from_secs(2 * 3600 + 41 * 60 + 9);
    v.phases = phases(Phase::Cleanup, PhaseStatus::Done);
    v.selected_phase = 7;
    v.progress.rows_done = 50_000_000;
    v.progress.rows_per_s = 0.0;
    v.progress.eta = Some(Duration::ZERO);
    v.progress.pace = Pace::Over;
    v.progress.checkpoint = Some("50000000".into());
    v.charts = charts(Shape::Done);
    v.db.table_bytes = Some(41 * GIB + 620 * MIB);
    v.db.dead_rows = Some(48_112_004);
    v.db.maintenance = Some("vacuuming heap".into());
    v.log.extend([
        info("13:40:12", "backfill done: 50,000,000 rows in 2h 20m"),
        info("13:52:40", "verify: 10,000 chunks, 0 unfilled rows"),
        info("13:52:41", "not_null: NOT NULL set without a table scan"),
        info(
            "14:01:07",
            "index: orders_amount_idx built concurrently in 8m 26s",
        ),
        info(
            "14:01:12",
            "cleanup: sync trigger and function dropped; migration recorded as done",
        ),
    ]);
    v
}

/// A primary without replicas: the lag chart says so instead of drawing a flat zero.
pub fn no_replicas() -> ViewModel {
    let mut v = running();
    v.db.replicas = Some(Vec::new());
    if let Some(lag) = v.charts.get_mut(2) {
        lag.series.clear();
        lag.note = Some("no replicas".into());
    }
    v
}

/// The sampler struggles: several failed samples, the latest one too; figures unknown.
pub fn sample_gaps() -> ViewModel {
    let mut v = running();
    v.charts = charts(Shape::Gappy);
    v.db.lock_waiters = None;
    v.db.replicas = None;
    v.db.redo_bytes_per_s = None;
    v.db.dead_rows = None;
    v.host.cpu_pct = None;
    v.log.push(warn(
        "12:02:21",
        "sample failed: metrics query timed out after 900 ms (gap in the charts)",
    ));
    v
}

/// The help overlay over a running migration.
pub fn help_popup() -> ViewModel {
    let mut v = running();
    v.popup = Some(Popup::Help);
    v
}

/// Quitting while the migration runs asks first.
pub fn confirm_quit() -> ViewModel {
    let mut v = running();
    v.popup = Some(Popup::Confirm(
        "Quit? The backfill stops at the next batch boundary; run pacer again to resume.".into(),
    ));
    v
}

/// At the gate before not_null, the operator pressed g: the question names the locks.
pub fn confirm_proceed() -> ViewModel {
    let mut v = gate();
    v.popup = Some(Popup::Confirm(
        "Proceed to not_null? It takes ACCESS EXCLUSIVE briefly; SHARE UPDATE EXCLUSIVE for \
         the whole statement."
            .into(),
    ));
    v
}

/// Typing a batch size that is not a number.
pub fn batch_size_error() -> ViewModel {
    let mut v = running();
    v.popup = Some(Popup::BatchSize {
        input: "12k".into(),
        error: Some("not a whole number: `12k` (10 – 100,000)".into()),
    });
    v
}

/// Backfill and verify done; the plan asks the operator before tightening to NOT NULL.
pub fn gate() -> ViewModel {
    let mut v = running();
    v.phase = Some(Phase::NotNull);
    v.status = StatusView::Gate(Phase::NotNull);
    v.elapsed = Duration::from_secs(2 * 3600 + 32 * 60 + 40);
    v.phases = phases(Phase::NotNull, PhaseStatus::Pending);
    v.selected_phase = 5;
    v.progress.rows_done = 50_000_000;
    v.progress.rows_per_s = 0.0;
    v.progress.eta = Some(Duration::ZERO);
    v.progress.pace = Pace::Over;
    v.progress.checkpoint = Some("50000000".into());
    v.charts = charts(Shape::Done);
    v.log.extend([
        info("13:40:12", "backfill done: 50,000,000 rows in 2h 20m"),
        info("13:52:40", "verify: 10,000 chunks, 0 unfilled rows"),
        info(
            "13:52:40",
            "gate before not_null: press g to proceed (takes ACCESS EXCLUSIVE briefly)",
        ),
    ]);
    v
}

/// Nothing known yet: no phases, no samples, no log.
pub fn empty() -> ViewModel {
    ViewModel {
        target: "app@db1:5432/shop".into(),
        table: "public.orders".into(),
        column: "amount".into(),
        phase: None,
        status: StatusView::Preflight,
        elapsed: Duration::ZERO,
        phases: Vec::new(),
        selected_phase: 0,
        progress: ProgressView::default(),
        charts: Vec::new(),
        window_secs: WINDOW,
        blockers: Vec::new(),
        db: DbView::default(),
        host: HostView::default(),
        log: Vec::new(),
        log_scroll: 0,
        popup: None,
        keys: Vec::new(),
        braille: false,
        companion_status: None,
    }
}

/// Leaving the screen of a migration that runs in a runner: detach, abort or cancel.
pub fn leave_popup() -> ViewModel {
    let mut v = running();
    v.popup = Some(Popup::Leave);
    v
}

/// The runner went away under an attached screen: what is shown is the last it sent.
pub fn runner_gone() -> ViewModel {
    let mut v = running();
    v.status = StatusView::Lost(
        "the runner is gone: its connection closed: the process ended or the socket went \
         away; shown: the last it sent"
            .into(),
    );
    v.progress.pace = Pace::Stopped("runner gone");
    v.log.push(error(
        "12:02:31",
        "the runner is gone: its connection closed: the process ended or the socket went away",
    ));
    v
}

/// Every fixture with its name, for tests that go over all of them.
pub fn all() -> Vec<(&'static str, ViewModel)> {
    vec![
        ("running", running()),
        ("guarded", guarded()),
        ("pausing", pausing()),
        ("paused", paused()),
        ("throttled", throttled()),
        ("waiting_for_lock", waiting_for_lock()),
        ("failed", failed()),
        ("done", done()),
        ("no_replicas", no_replicas()),
        ("sample_gaps", sample_gaps()),
        ("help_popup", help_popup()),
        ("confirm_quit", confirm_quit()),
        ("batch_size_error", batch_size_error()),
        ("gate", gate()),
        ("confirm_proceed", confirm_proceed()),
        ("leave_popup", leave_popup()),
        ("runner_gone", runner_gone()),
        ("empty", empty()),
    ]
}

/// The real keymap, so the help and the key bar are drawn with the texts the screen shows.
pub(super) fn keys() -> Vec<KeyHelp> {
    crate::tui::keymap::help()
}

pub(super) fn replica(name: &str, lag_s: Option<f64>, lag_bytes: u64) -> ReplicaView {
    ReplicaView {
        name: name.into(),
        lag_s,
        lag_bytes: Some(lag_bytes),
    }
}

pub(super) fn info(time: &str, text: &str) -> LogLine {
    line(time, Level::Info, text)
}

pub(super) fn warn(time: &str, text: &str) -> LogLine {
    line(time, Level::Warn, text)
}

fn error(time: &str, text: &str) -> LogLine {
    line(time, Level::Error, text)
}

fn line(time: &str, level: Level, text: &str) -> LogLine {
    LogLine {
        time: time.into(),
        level,
        text: text.into(),
    }
}

fn running_log() -> Vec<LogLine> {
    vec![
        info(
            "11:20:02",
            "public.orders.amount runs in pid 48213; control socket \
             /run/user/1000/pacer/public.orders.amount.48213.sock (pacer ctl, pacer attach)",
        ),
        info(
            "11:20:03",
            "preflight: PostgreSQL 16.4, public.orders ≈ 50,000,000 rows (38 GiB), key id bigint",
        ),
        info("11:20:04", "preflight passed: no findings"),
        info(
            "11:20:04",
            "add_column: ALTER TABLE public.orders ADD COLUMN IF NOT EXISTS amount numeric(14,2)",
        ),
        warn(
            "11:20:06",
            "lock wait: ALTER TABLE gave up after lock_timeout 2s (attempt 1/30); blocked by pid 4711",
        ),
        info("11:20:09", "add_column: done in 5.1s"),
        info("11:20:09", "sync: done in 0.1s"),
        info(
            "11:20:10",
            "backfill: from the first key, 2,000 rows per batch",
        ),
        warn(
            "11:35:41",
            "batch timed out after statement_timeout 5s at key 8112000; retrying at 1,000 rows",
        ),
        info("11:35:52", "batch size back to 2,000 (p95 231 ms)"),
        warn(
            "11:52:13",
            "sample failed: replica lag query timed out (gap in the charts)",
        ),
        info("12:00:00", "checkpoint 20,000,000 rows (40.0%)"),
        info("12:02:20", "checkpoint 21,004,000 rows (42.0%)"),
    ]
}

/// The story's plan, as a plan file would say it.
const PLAN: &str = r#"table = "public.orders"

[column]
name = "amount"
type = "numeric(14,2)"
backfill = "amount_cents / 100.0"
not_null = true
index = true
"#;

/// The plan's phases as `pacer plan` renders them for PostgreSQL (the real renderer, so the
/// screen shows the statements pacer runs), with `current` in `status`: earlier ones done,
/// later ones pending.
pub(super) fn phases(current: Phase, status: PhaseStatus) -> Vec<PhaseRow> {
    let plan = Plan::parse(Path::new("orders.toml"), PLAN).expect("the fixture plan parses");
    let key = vec![KeyColumn {
        name: "id".into(),
        sql_type: "bigint".into(),
    }];
    let sql = PgSql::new(&plan, plan.table.clone(), key);
    render::phases(&plan, &sql)
        .into_iter()
        .map(|p| PhaseRow {
            phase: p.phase,
            status: match p.phase.cmp(&current) {
                std::cmp::Ordering::Less => PhaseStatus::Done,
                std::cmp::Ordering::Equal => status,
                std::cmp::Ordering::Greater => PhaseStatus::Pending,
            },
            summary: p.summary,
            steps: step_views(&p.steps),
        })
        .collect()
}

/// How the last 15 minutes went.
#[derive(Clone, Copy, PartialEq)]
pub(super) enum Shape {
    Healthy,
    Paused,
    Throttled,
    Starting,
    Failed,
    Done,
    Gappy,
}

/// Deterministic noise in [0, 1) from a sample index.
fn noise(i: u64, salt: u64) -> f64 {
    let h = (i.wrapping_add(salt).wrapping_mul(2_654_435_761)) % 1_000_003;
    (h % 1000) as f64 / 1000.0
}

/// A triangle wave in [-1, 1] with the given period, in samples.
fn wave(i: u64, period: u64) -> f64 {
    let p = i % period;
    let half = period / 2;
    let up = if p < half { p } else { period - p };
    (up as f64 / half as f64) * 2.0 - 1.0
}

/// Seconds ago (900 … 0) of sample `i`.
fn ago(i: u64) -> u64 {
    WINDOW - i
}

fn missing(shape: Shape, i: u64) -> bool {
    let failed_sample = (340..=369).contains(&ago(i));
    match shape {
        Shape::Healthy | Shape::Paused | Shape::Throttled | Shape::Done => failed_sample,
        Shape::Starting => ago(i) > 74,
        Shape::Failed => failed_sample || ago(i) < 33,
        Shape::Gappy => {
            failed_sample || (600..=640).contains(&ago(i)) || i.is_multiple_of(97) || ago(i) < 3
        }
    }
}

/// One series over the window; `value` is None where nothing was measured (no batches ran).
fn series(name: &str, slot: usize, shape: Shape, value: impl Fn(u64) -> Option<f64>) -> SeriesView {
    let sample = |i: u64| if missing(shape, i) { None } else { value(i) };
    let mut segments: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut run = Vec::new();
    for i in 0..=WINDOW {
        match sample(i) {
            Some(v) => run.push((-(ago(i) as f64), v)),
            None if !run.is_empty() => segments.push(std::mem::take(&mut run)),
            None => {}
        }
    }
    if !run.is_empty() {
        segments.push(run);
    }
    let current = sample(WINDOW);
    SeriesView {
        name: name.into(),
        segments,
        current,
        slot,
    }
}

pub(super) fn charts(shape: Shape) -> Vec<ChartView> {
    let throughput = move |i: u64| -> f64 {
        let a = ago(i);
        let healthy = 8_600.0 + 500.0 * wave(i, 240) + 400.0 * noise(i, 1);
        let v = match shape {
            Shape::Paused if a < 100 => 0.0,
            // Throttled for the last 90 s: no batch runs.
            Shape::Throttled if a < 90 => 0.0,
            Shape::Throttled if a < 180 => healthy * (a - 90) as f64 / 90.0,
            Shape::Done if a < 500 => 0.0,
            Shape::Starting => 0.0,
            _ => healthy,
        };
        match shape {
            _ if a > 0 || v == 0.0 => v,
            _ => 9_120.0,
        }
    };
    let waits = move |i: u64| -> f64 {
        let a = ago(i);
        match shape {
            Shape::Starting => (3 * (74 - a.min(74)) / 74) as f64,
            _ if (412..=430).contains(&a) => 1.0 + ((430 - a) % 3) as f64,
            _ if (700..=704).contains(&a) => 1.0,
            _ => 0.0,
        }
    };
    let lag = move |base: f64, salt: u64| {
        move |i: u64| -> f64 {
            let a = ago(i);
            let calm = base + 0.12 * wave(i + salt, 180) + 0.1 * noise(i, salt);
            match shape {
                Shape::Throttled if salt == 3 && a < 180 => {
                    let rise = (180 - a) as f64 / 180.0;
                    calm + 13.9 * rise.min(1.0) * if a == 0 { 1.0 } else { 0.97 }
                }
                _ if a == 0 && salt == 3 => 0.4,
                _ if a == 0 => 0.3,
                _ => calm,
            }
        }
    };
    let throttled_lag = move |i: u64| -> f64 {
        if shape == Shape::Throttled && ago(i) == 0 {
            14.2
        } else {
            lag(0.3, 3)(i)
        }
    };
    let batch = move |base: f64, spread: f64, salt: u64| {
        move |i: u64| -> Option<f64> {
            let a = ago(i);
            let idle = match shape {
                Shape::Paused => a < 100,
                Shape::Done => a < 500,
                Shape::Starting => true,
                _ => false,
            };
            let v = base + spread * noise(i, salt) + 0.2 * base * wave(i, 300).max(0.0);
            match shape {
                _ if idle => None,
                Shape::Throttled if a < 90 => None,
                _ => Some(v),
            }
        }
    };
    // The application writes a few hundred rows a second, whatever pacer does.
    let updates = move |i: u64| 300.0 + 60.0 * noise(i, 13);
    let mut charts = vec![
        ChartView {
            title: "throughput".into(),
            unit: "rows/s".into(),
            series: vec![
                series("pacer", 0, shape, |i| Some(throughput(i))),
                series("app writes", 1, shape, |i| Some(updates(i))),
            ],
            note: None,
            limit: None,
        },
        ChartView {
            title: "lock waits".into(),
            unit: "sessions".into(),
            series: vec![series("waiting", 0, shape, |i| Some(waits(i)))],
            note: None,
            limit: None,
        },
        ChartView {
            title: "replication lag".into(),
            unit: "s".into(),
            series: vec![
                series("replica-a", 0, shape, |i| Some(throttled_lag(i))),
                series("replica-b", 1, shape, |i| Some(lag(0.22, 5)(i))),
            ],
            note: None,
            limit: Some(10.0),
        },
        ChartView {
            title: "batch duration".into(),
            unit: "ms".into(),
            series: vec![series("longest batch", 0, shape, batch(205.0, 50.0, 11))],
            note: None,
            limit: None,
        },
    ];
    if shape == Shape::Starting {
        // Sampling starts with the run: 74 seconds of lock waits, nothing else yet.
        charts[0].series.truncate(1);
    }
    charts
}
