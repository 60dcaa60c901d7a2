//! The view model: everything the screen shows, as plain data. Built from engine state, events
//! and sampled metrics; drawn by pure functions; snapshot-tested without a database.

use std::time::Duration;

use crate::plan::Phase;
/// Host figures (the machine pacer runs on) and pacer's own cost: as the sampler keeps them.
pub use crate::sampler::metrics::HostFigures as HostView;
use crate::target::Blocker;

/// What the whole screen shows.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewModel {
    /// The target, without password (`user@host:port/db`).
    pub target: String,
    /// The table, schema-qualified.
    pub table: String,
    /// The column being added.
    pub column: String,
    /// The phase running (or last run).
    pub phase: Option<Phase>,
    /// The state in words, with its reason.
    pub status: StatusView,
    /// Time since this run started.
    pub elapsed: Duration,
    /// Every phase of the plan, in order.
    pub phases: Vec<PhaseRow>,
    /// Index into `phases` of the phase whose SQL is shown.
    pub selected_phase: usize,
    /// Backfill progress.
    pub progress: ProgressView,
    /// The charts, in display order: throughput, lock waits, replication lag, batch duration.
    pub charts: Vec<ChartView>,
    /// Width of the charts' time window, in seconds.
    pub window_secs: u64,
    /// Sessions blocking pacer (shown when it waits for a lock).
    pub blockers: Vec<Blocker>,
    /// Database figures from the latest sample.
    pub db: DbView,
    /// Host figures from the latest sample.
    pub host: HostView,
    /// Event log, oldest first.
    pub log: Vec<LogLine>,
    /// How many lines the log is scrolled up from its end (0 = follow the end).
    pub log_scroll: usize,
    /// A popup over the screen, if any.
    pub popup: Option<Popup>,
    /// Every key with its meaning, from the keymap (for the help overlay and the key bar).
    pub keys: Vec<KeyHelp>,
    /// Draw chart lines with Braille dots (false: plain dots, for terminals without the glyphs).
    pub braille: bool,
    /// One short line from the program around the migration (`pacer demo`: its application's
    /// transactions/s and failures), shown the whole time.
    pub companion_status: Option<String>,
}

/// The migration's state, as the header shows it.
#[derive(Debug, Clone, PartialEq)]
pub enum StatusView {
    /// Read-only checks.
    Preflight,
    /// Working.
    Running,
    /// Pause asked for; the current batch finishes first.
    Pausing,
    /// Paused at a batch boundary.
    Paused,
    /// Throttled by a health signal (reason: value against limit).
    Throttled(String),
    /// A DDL statement waits for its lock; the blocking pids.
    WaitingForLock(Vec<i64>),
    /// Waiting for the operator to proceed past a gate before this phase.
    Gate(Phase),
    /// Reconnecting after a lost connection.
    Reconnecting,
    /// Every phase finished.
    Done,
    /// Stopped by an error (message).
    Failed(String),
    /// Stopped by the operator.
    Aborted,
    /// This screen lost its runner (the process ended or the socket closed): what it shows is
    /// the last it heard (why).
    Lost(String),
}

/// A phase's status in the plan panel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhaseStatus {
    /// Not started.
    Pending,
    /// Running now.
    Running,
    /// Finished (in this run or an earlier one).
    Done,
    /// Stopped by an error.
    Failed,
}

/// One row of the plan panel.
#[derive(Debug, Clone, PartialEq)]
pub struct PhaseRow {
    /// The phase.
    pub phase: Phase,
    /// Its status.
    pub status: PhaseStatus,
    /// One line on what it does.
    pub summary: String,
    /// Its statements.
    pub steps: Vec<StepView>,
}

/// One statement of a phase.
#[derive(Debug, Clone, PartialEq)]
pub struct StepView {
    /// What it does.
    pub title: String,
    /// The exact SQL.
    pub sql: String,
    /// The lock it takes, e.g. `ACCESS EXCLUSIVE, brief`.
    pub lock: String,
}

/// Backfill progress figures.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ProgressView {
    /// Keys walked.
    pub rows_done: u64,
    /// Estimated keys in all.
    pub rows_total: Option<u64>,
    /// Rows per second over the last seconds.
    pub rows_per_s: f64,
    /// Rows per second since this run started.
    pub avg_rows_per_s: f64,
    /// Time left at the current rate.
    pub eta: Option<Duration>,
    /// Whether the backfill moves now: the rate and ETA read differently when it does not.
    pub pace: Pace,
    /// Keys per batch now.
    pub batch_size: u64,
    /// Who set the batch size and why (`plan`, `operator`, `timeout: halved` …).
    pub batch_size_source: String,
    /// The size was last cut because a batch timed out (drawn as a warning).
    pub batch_size_cut: bool,
    /// Batch duration percentiles over recent batches, in ms.
    pub batch_p50_ms: Option<f64>,
    /// 95th percentile.
    pub batch_p95_ms: Option<f64>,
    /// Last checkpoint key.
    pub checkpoint: Option<String>,
    /// The foreground guard (None: the target has no probe).
    pub foreground: Option<crate::engine::guard::ForegroundView>,
}

/// Whether the backfill's batches run now (from the engine's state).
pub use crate::engine::Pace;

/// One chart.
#[derive(Debug, Clone, PartialEq)]
pub struct ChartView {
    /// Title, e.g. `throughput`.
    pub title: String,
    /// Unit of the y axis, e.g. `rows/s`, `s`, `ms`.
    pub unit: String,
    /// Its series.
    pub series: Vec<SeriesView>,
    /// Shown instead of an empty chart, e.g. `no replicas`.
    pub note: Option<String>,
    /// A value over this is a warning (the plan's throttle limit), e.g. `max_replication_lag`.
    pub limit: Option<f64>,
}

/// One line of a chart: x is seconds relative to now (negative, the window's start to 0).
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesView {
    /// Legend name.
    pub name: String,
    /// Contiguous runs of points; a failed sample splits runs (a gap in the line).
    pub segments: Vec<Vec<(f64, f64)>>,
    /// The latest value, if the latest sample had one.
    pub current: Option<f64>,
    /// Colour slot in the theme's chart palette (0, 1, 2 …).
    pub slot: usize,
}

/// Database figures.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DbView {
    /// Sessions waiting on locks (None: not sampled yet or the sample failed).
    pub lock_waiters: Option<u32>,
    /// Longest current lock wait, seconds.
    pub longest_wait_s: Option<f64>,
    /// Replicas and their lag (None: unknown; Some(empty): no replicas).
    pub replicas: Option<Vec<ReplicaView>>,
    /// The plan's throttle limits: a figure over its limit is drawn as a warning.
    pub limits: Limits,
    /// What the target's family calls these figures (WAL, autovacuum, dead tuples on
    /// PostgreSQL).
    pub words: crate::target::family::FigureWords,
    /// Autovacuum working on the table (its phase), if any.
    pub maintenance: Option<String>,
    /// Table size in bytes.
    pub table_bytes: Option<u64>,
    /// Dead tuples in the table (MySQL/MariaDB: the server's history list length).
    pub dead_rows: Option<u64>,
    /// WAL (MySQL/MariaDB: binlog) written by the server, bytes per second.
    pub redo_bytes_per_s: Option<f64>,
    /// Sessions running a statement, pacer's own not counted.
    pub active_sessions: Option<u32>,
    /// The application's writes to the table per second (pacer's own rows left out).
    pub app_writes_per_s: Option<f64>,
    /// False where pacer's rows cannot be left out (before PostgreSQL 15): the figure is every
    /// session's writes, and says so.
    pub app_writes_exact: bool,
    /// The application's writes are the whole server's (MySQL/MariaDB without per-table
    /// counters), and say so.
    pub app_writes_server_wide: bool,
}

/// The plan's throttle limits on the figures the screen shows (None: not set).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Limits {
    /// `max_replication_lag`, seconds.
    pub lag_s: Option<f64>,
    /// `max_threads_running`.
    pub active: Option<u32>,
    /// `max_history_length`.
    pub history: Option<u64>,
    /// `max_wal_rate` or `max_binlog_rate`, bytes per second.
    pub redo_bytes_per_s: Option<f64>,
}

impl Limits {
    /// The limits a plan's `[throttle]` section sets.
    pub fn of(t: &crate::plan::ThrottleSpec) -> Limits {
        Limits {
            lag_s: t.max_replication_lag.map(|d| d.as_secs_f64()),
            active: t.max_threads_running,
            history: t.max_history_length,
            redo_bytes_per_s: t.write_volume_limit().map(|(l, _)| l as f64),
        }
    }
}

/// One replica's lag.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicaView {
    /// Its name (application_name, else address).
    pub name: String,
    /// Replay lag in seconds (None while the primary cannot tell).
    pub lag_s: Option<f64>,
    /// Replay lag in bytes of WAL.
    pub lag_bytes: Option<u64>,
}

/// How much an event-log line matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Routine.
    Info,
    /// Worth a look (retries, lock waits, lost connections, warnings).
    Warn,
    /// Errors.
    Error,
}

/// One event-log line.
#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    /// Wall-clock time, `HH:MM:SS`.
    pub time: String,
    /// How much it matters.
    pub level: Level,
    /// The text.
    pub text: String,
}

/// A popup over the screen.
#[derive(Debug, Clone, PartialEq)]
pub enum Popup {
    /// The help overlay: every key.
    Help,
    /// A yes/no question (answered with y, or n/Esc).
    Confirm(String),
    /// Leaving the screen while the migration runs: detach, abort, or cancel.
    Leave,
    /// Typing an exact batch size; the text typed so far, and an error for bad input.
    BatchSize {
        input: String,
        error: Option<String>,
    },
}

/// A key and what it does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyHelp {
    /// The key(s) as shown, e.g. `p, space`.
    pub keys: String,
    /// What it does.
    pub desc: String,
    /// Its name in the key bar (empty: only in the help).
    pub bar: String,
}
