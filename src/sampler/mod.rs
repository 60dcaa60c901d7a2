//! Sampling the target database and the host, into fixed-size time series.
//!
//! - [`MetricSource`] is the engine-neutral boundary: one round of database queries giving a
//!   [`DbSample`], with one `Result` per query so that one failing query is one gap, not all.
//!   Each target family implements it with its own SQL (PostgreSQL:
//!   `target::postgres::sampler::PgSource`); nothing here knows a database.
//! - [`host::HostSampler`] reads the machine pacer runs on and pacer's own process.
//! - [`Metrics`] turns samples into [`series::Series`] (ring buffers covering the chart window)
//!   and keeps the latest figures and the sampling errors for the event log.
//! - [`spawn`] runs a source every interval on its own task and publishes into
//!   [`SharedMetrics`], a `tokio::sync::watch` channel: the TUI awaits `changed()` to redraw.

// Wired into `pacer run` by the TUI integration; until then nothing outside the tests calls it.

pub mod failures;
pub mod host;
pub mod metrics;
pub mod rate;
pub mod runner;
pub mod series;

use std::fmt;
use std::future::Future;
use std::time::Duration;

use crate::target::Blocker;

// The sampler's API in one place.
pub use metrics::{MetricInput, Metrics, SeriesId};
pub use runner::{SharedMetrics, spawn};

/// How far back the series reach: the charts' widest window.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(15 * 60);

/// One round of database queries. Each figure is sampled by its own query: an `Err` (the
/// query's error, in words, without any password) is a gap in that figure's chart only.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DbSample {
    /// Sessions waiting on locks and who blocks them.
    pub lock_waits: Result<LockWaits, String>,
    /// Replicas streaming from the target; `Ok(empty)` means there is none.
    pub replicas: Result<Vec<ReplicaLag>, String>,
    /// The server's WAL (redo) position in bytes: a counter, turned into bytes/s.
    pub redo_bytes: Result<u64, String>,
    /// Activity counters, dead tuples and any vacuum of the table.
    pub table: Result<TableStats, String>,
    /// The table's size (heap and TOAST), bytes.
    pub table_bytes: Result<u64, String>,
    /// Sessions running a statement now, pacer's own not counted (PostgreSQL: active backends;
    /// MySQL/MariaDB: `Threads_running`).
    #[serde(default = "not_recorded")]
    pub active_sessions: Result<u32, String>,
}

/// A figure a recorded sample from an older pacer does not have.
fn not_recorded<T>() -> Result<T, String> {
    Err("not recorded by this runner's version of pacer".into())
}

impl DbSample {
    /// A round where nothing could be sampled (connection lost, round timed out).
    pub fn failed(message: &str) -> DbSample {
        DbSample {
            lock_waits: Err(message.to_string()),
            replicas: Err(message.to_string()),
            redo_bytes: Err(message.to_string()),
            table: Err(message.to_string()),
            table_bytes: Err(message.to_string()),
            active_sessions: Err(message.to_string()),
        }
    }
}

/// Lock waits at one moment.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LockWaits {
    /// Sessions waiting for a lock, pacer's own sessions not counted.
    pub waiting: u32,
    /// The longest of their current waits, seconds (0 when none waits).
    pub longest_s: f64,
    /// Every waiting session, pacer's own included, longest wait first, with its blockers.
    pub waits: Vec<LockWait>,
}

impl LockWaits {
    /// Counts the waits: pacer's own sessions are listed but not counted.
    pub fn from_waits(waits: Vec<LockWait>) -> LockWaits {
        let others = waits.iter().filter(|w| !w.pacer);
        let waiting = u32::try_from(others.clone().count()).unwrap_or(u32::MAX);
        let longest_s = others.map(|w| w.wait_s).fold(0.0, f64::max);
        LockWaits {
            waiting,
            longest_s,
            waits,
        }
    }

    /// Who blocks pacer's own sessions (its DDL waiting for a lock), without duplicates.
    pub fn blocking_pacer(&self) -> Vec<Blocker> {
        let mut out: Vec<Blocker> = Vec::new();
        for b in self
            .waits
            .iter()
            .filter(|w| w.pacer)
            .flat_map(|w| &w.blockers)
        {
            if !out.iter().any(|o| o.pid == b.pid) {
                out.push(b.clone());
            }
        }
        out
    }
}

/// One session waiting for a lock.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LockWait {
    /// Backend process id of the waiting session.
    pub pid: i64,
    /// Its application name.
    pub application: String,
    /// How long it has waited, seconds.
    pub wait_s: f64,
    /// Whether it is one of pacer's own sessions (application name `pacer…`).
    pub pacer: bool,
    /// The sessions it waits for; may be empty when they finished meanwhile.
    pub blockers: Vec<Blocker>,
}

/// One replica's lag, as the primary sees it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ReplicaLag {
    /// Its name: application name, else address; made unique within a sample.
    pub name: String,
    /// Its state (`streaming`, `catchup` …).
    pub state: String,
    /// Replay lag in seconds (None while the primary cannot tell, e.g. caught up and idle).
    pub replay_lag_s: Option<f64>,
    /// WAL bytes written by the primary and not yet replayed (None: unknown, e.g. no privilege).
    pub lag_bytes: Option<u64>,
}

impl ReplicaLag {
    /// Replay lag in seconds, counting a replica that has replayed everything as 0 s behind
    /// (the primary reports no time lag then).
    pub fn effective_lag_s(&self) -> Option<f64> {
        self.replay_lag_s
            .or_else(|| (self.lag_bytes == Some(0)).then_some(0.0))
    }
}

/// The table's counters and state.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TableStats {
    /// Rows updated (all sessions, HOT included) since statistics were reset: a counter.
    pub n_tup_upd: u64,
    /// Of those, HOT updates (no index change).
    pub n_tup_hot_upd: u64,
    /// Rows inserted: a counter.
    pub n_tup_ins: u64,
    /// Rows deleted: a counter.
    #[serde(default)]
    pub n_tup_del: u64,
    /// pacer's own rows are in these counters as soon as its batch commits (PostgreSQL 15+:
    /// every batch asks for its statistics to be flushed at commit), so subtracting the rows
    /// pacer knows it updated leaves exactly the application's writes. Otherwise a session's
    /// statistics land in chunks of about a second, and pacer's cannot be told apart.
    #[serde(default)]
    pub pacer_flushed: bool,
    /// The write counters count every table of the server, not this table alone (MySQL/MariaDB
    /// without per-table counters: `Handler_write`, `Handler_update`, `Handler_delete`).
    #[serde(default)]
    pub server_wide: bool,
    /// pacer's own row writes inside the write counters, counted by the source (MySQL/MariaDB:
    /// its batches' rows, checkpoints and heartbeats, from its state and heartbeat tables): a
    /// counter. None: the metrics take pacer's rows from its batches (see `pacer_flushed`).
    #[serde(default)]
    pub pacer_writes: Option<u64>,
    /// Dead tuples now (MySQL/MariaDB: InnoDB's history list length, server-wide: undo logs
    /// of committed transactions not purged yet).
    pub dead_rows: u64,
    /// Live tuples now (estimate).
    pub live_tuples: u64,
    /// A vacuum working on the table, if any.
    pub maintenance: Option<MaintenanceRun>,
}

/// A vacuum running on the table.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MaintenanceRun {
    /// Started by autovacuum (else by someone's VACUUM).
    pub automatic: bool,
    /// An anti-wraparound autovacuum: it does not yield to DDL lock requests.
    pub wraparound: bool,
    /// Its phase (`scanning heap`, `vacuuming indexes` …).
    pub phase: String,
    /// Share of the heap scanned, percent (None: not known yet).
    pub scanned_pct: Option<f64>,
}

impl fmt::Display for MaintenanceRun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.automatic {
            "autovacuum"
        } else {
            "VACUUM"
        })?;
        if self.wraparound {
            f.write_str(" (to prevent wraparound)")?;
        }
        write!(f, ": {}", self.phase)?;
        if let Some(pct) = self.scanned_pct {
            write!(f, ", {pct:.0}% of the heap scanned")?;
        }
        Ok(())
    }
}

/// A database that can be sampled: one round of queries per call. Implementations never
/// panic and never hang for long (short statement timeouts); the runner also bounds each
/// call, so a dropped call must leave the source usable (it reconnects if in doubt).
pub trait MetricSource: Send {
    /// Samples everything once.
    fn sample(&mut self) -> impl Future<Output = DbSample> + Send;
}
