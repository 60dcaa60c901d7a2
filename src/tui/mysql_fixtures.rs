//! View models of a MySQL/MariaDB migration, for snapshot tests: the same story as
//! [`super::fixtures`] (`orders` gets `amount`), on MariaDB, with the figures in that family's
//! words (threads running, purge and the history list, binlog, connection ids) and the
//! statements MySQL's renderer writes.

use std::path::Path;
use std::time::Duration;

use super::fixtures::{self, Shape, charts, info, replica, warn};
use crate::plan::{Phase, Plan};
use crate::target::family::Family;
use crate::target::mysql::render;
use crate::target::mysql::sql::{Flavor, KeyKind, KeyPart, MySqlText};
use crate::target::{Blocker, KeyColumn};
use crate::tui::model::step_views;
use crate::tui::view::{Limits, Pace, PhaseRow, PhaseStatus, ProgressView, StatusView, ViewModel};

const MIB: u64 = 1 << 20;

const PLAN: &str = r#"table = "orders"

[column]
name = "amount"
type = "decimal(14,2)"
backfill = "amount_cents / 100.0"
not_null = true
index = true

[throttle]
max_threads_running = 25
max_history_length = 1000000
max_binlog_rate = 52428800
"#;

/// The plan's phases as `pacer plan` renders them for MariaDB, `current` in `status`.
fn phases(current: Phase, status: PhaseStatus) -> Vec<PhaseRow> {
    let plan = Plan::parse(Path::new("orders.toml"), PLAN).expect("the fixture plan parses");
    let key = vec![KeyPart {
        column: KeyColumn {
            name: "id".into(),
            sql_type: "bigint(20)".into(),
        },
        kind: KeyKind::of("bigint", "bigint(20)").expect("a bigint key"),
    }];
    let sql = MySqlText::new(
        &plan,
        Flavor::MariaDb,
        ("shop".into(), "orders".into()),
        key,
        vec!["id".into(), "amount_cents".into(), "created_at".into()],
        ("pacer".into(), "migrations".into()),
    );
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

fn plan_limits() -> Limits {
    let plan = Plan::parse(Path::new("orders.toml"), PLAN).expect("the fixture plan parses");
    Limits::of(&plan.throttle)
}

/// One replica, read by the heartbeat (no byte figure), healthy; the plan sets no lag limit.
fn one_replica(v: &mut ViewModel) {
    v.charts[2] = charts(Shape::Healthy).swap_remove(2);
    let lag = &mut v.charts[2];
    lag.series.truncate(1);
    lag.series[0].name = "db2:3306".into();
    lag.limit = None;
    let mut r = replica("db2:3306", lag.series[0].current, 0);
    r.lag_bytes = None;
    v.db.replicas = Some(vec![r]);
}

/// Mid-backfill on MariaDB, throttled: 31 threads run (the limit is 25) and the purge is
/// behind (history over its limit); the binlog rate is under its own; the application's writes
/// are the whole server's (no per-table counters on this server).
pub fn throttled() -> ViewModel {
    let mut v = fixtures::running();
    v.target = "app@db1.prod.internal:3306/shop".into();
    v.table = "shop.orders".into();
    v.phases = phases(Phase::Backfill, PhaseStatus::Running);
    v.status = StatusView::Throttled(
        "threads running 31 > 25; history list length 1,234,567 > 1,000,000".into(),
    );
    v.progress.rows_per_s = 0.0;
    v.progress.eta = None;
    v.progress.pace = Pace::Stopped("throttled");
    v.charts = charts(Shape::Throttled);
    // Server-wide counters: the throughput legend says so.
    v.charts[0].series[1].name = crate::tui::app_writes_name(true, true).into();
    v.db.words = Family::MySql.figure_words();
    v.db.limits = plan_limits();
    v.db.active_sessions = Some(31);
    v.db.dead_rows = Some(1_234_567);
    v.db.redo_bytes_per_s = Some(8.4 * MIB as f64);
    v.db.app_writes_per_s = Some(280.0);
    v.db.app_writes_server_wide = true;
    one_replica(&mut v);
    v.log = vec![
        info(
            "11:20:03",
            "preflight: MariaDB 10.11.19, shop.orders ≈ 50,000,000 rows (38 GiB), key id bigint",
        ),
        info(
            "11:20:04",
            "add_column: ALTER TABLE `shop`.`orders` WAIT 2 ADD COLUMN `amount` decimal(14,2), \
             ALGORITHM=INSTANT, LOCK=NONE",
        ),
        info(
            "11:20:10",
            "backfill: from the first key, 2,000 rows per batch",
        ),
        warn(
            "12:04:29",
            "throttled: threads running 31 > 25; history list length 1,234,567 > 1,000,000; \
             batches wait until it is clear",
        ),
    ];
    v
}

/// Adding the column on MariaDB: the ALTER waits for the table's metadata lock behind an
/// application transaction left open.
pub fn waiting_for_lock() -> ViewModel {
    let mut v = throttled();
    v.phase = Some(Phase::AddColumn);
    v.status = StatusView::WaitingForLock(vec![4711]);
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
    one_replica(&mut v);
    v.blockers = vec![Blocker {
        pacer: false,
        pid: 4711,
        application: "from 10.0.3.7:51234".into(),
        user: "analyst".into(),
        state: "Sleep".into(),
        xact_age_s: Some(1_325.0),
        query: String::new(),
        family: crate::target::family::Family::MySql,
    }];
    v.db.lock_waiters = Some(3);
    v.db.longest_wait_s = Some(1.4);
    v.db.active_sessions = Some(6);
    v.db.dead_rows = Some(18_204);
    v.log.truncate(1);
    v.log.push(warn(
        "11:20:06",
        "lock wait: ALTER TABLE gave up after lock_timeout 2s (attempt 1/30); blocked by pid \
         4711 (from 10.0.3.7:51234, user analyst, Sleep, transaction open 22m 05s)",
    ));
    v
}
