//! Samples into time series: what the charts draw, the latest figures, and sampling errors for
//! the event log. Pure: every call takes its time `t` (seconds since the sampler started).

use std::time::Duration;

use super::failures::{FailureLog, SampleLog};
use super::host::{HostSample, cpu_pct_from_ms_per_s};
use super::rate::Counter;
use super::series::{Recent, Series, capacity_for};
use super::{DbSample, LockWaits, ReplicaLag, TableStats};

/// Batches kept for the duration percentiles.
const RECENT_BATCHES: usize = 100;
/// Replicas that get a series of their own (the worst-replica series covers all of them).
const MAX_REPLICA_SERIES: usize = 8;

/// The figures kept as time series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SeriesId {
    /// Keys walked by pacer's batches per second, per sample interval (0 while paused).
    PacerRowsPerS,
    /// Longest batch of each sample interval, ms (a gap when no batch finished in it).
    BatchMs,
    /// Sessions waiting on locks (pacer's own not counted).
    LockWaiters,
    /// Longest current lock wait, seconds.
    LongestLockWaitS,
    /// Replay lag of the worst replica, seconds (a gap when there is no replica).
    ReplicaLagS,
    /// Replay lag of the worst replica, bytes of WAL (a gap when there is no replica).
    ReplicaLagBytes,
    /// The application's writes to the table per second: its inserts, updates and deletes,
    /// less the rows of pacer's own batches (see [`Latest::app_writes_exact`]).
    AppWritesPerS,
    /// WAL written by the server, bytes per second.
    RedoBytesPerS,
    /// Dead tuples in the table (MySQL/MariaDB: the server's history list length).
    DeadRows,
    /// Table size (heap and TOAST), bytes.
    TableBytes,
    /// Host CPU use, percent of all cores.
    HostCpuPct,
    /// Host memory in use, bytes.
    HostMemBytes,
    /// pacer's own CPU use, percent of one core.
    OwnCpuPct,
    /// pacer's own resident memory, bytes.
    OwnMemBytes,
    /// Host network received, bytes per second.
    NetRxPerS,
    /// Host network sent, bytes per second.
    NetTxPerS,
    /// Sessions running a statement, pacer's own not counted.
    ActiveSessions,
    /// The slowest foreground probe of each sample interval, ms (a gap when none ran).
    ProbeMs,
}

impl SeriesId {
    /// Every series, in a stable order.
    pub const ALL: [SeriesId; 18] = [
        SeriesId::PacerRowsPerS,
        SeriesId::BatchMs,
        SeriesId::LockWaiters,
        SeriesId::LongestLockWaitS,
        SeriesId::ReplicaLagS,
        SeriesId::ReplicaLagBytes,
        SeriesId::AppWritesPerS,
        SeriesId::RedoBytesPerS,
        SeriesId::DeadRows,
        SeriesId::TableBytes,
        SeriesId::HostCpuPct,
        SeriesId::HostMemBytes,
        SeriesId::OwnCpuPct,
        SeriesId::OwnMemBytes,
        SeriesId::NetRxPerS,
        SeriesId::NetTxPerS,
        SeriesId::ActiveSessions,
        SeriesId::ProbeMs,
    ];

    fn index(self) -> usize {
        self as usize
    }
}

/// Host figures from the latest sample.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostFigures {
    /// CPU use of the machine, percent of all cores.
    pub cpu_pct: Option<f64>,
    /// Memory in use, bytes.
    pub mem_used: Option<u64>,
    /// Memory in all, bytes.
    pub mem_total: Option<u64>,
    /// Network received, bytes per second.
    pub net_rx_per_s: Option<f64>,
    /// Network sent, bytes per second.
    pub net_tx_per_s: Option<f64>,
    /// pacer's own CPU, percent of one core.
    pub own_cpu_pct: Option<f64>,
    /// pacer's own resident memory, bytes.
    pub own_mem: Option<u64>,
}

/// The latest figures. `None` means not sampled yet, or the latest sample of it failed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Latest {
    /// When the latest round was recorded (seconds since the sampler started).
    pub t: Option<f64>,
    /// Lock waits and blockers.
    pub lock_waits: Option<LockWaits>,
    /// Replicas and their lag; `Some(empty)`: there is no replica ("no replicas").
    pub replicas: Option<Vec<ReplicaLag>>,
    /// The table's counters, dead tuples and vacuum.
    pub table: Option<TableStats>,
    /// Table size, bytes.
    pub table_bytes: Option<u64>,
    /// WAL written, bytes per second.
    pub redo_bytes_per_s: Option<f64>,
    /// The application's writes to the table per second.
    pub app_writes_per_s: Option<f64>,
    /// Whether pacer's own rows could be taken out of `app_writes_per_s` exactly (PostgreSQL
    /// 15+); when false it counts every session's writes, pacer's included.
    pub app_writes_exact: bool,
    /// Whether `app_writes_per_s` counts the writes to every table of the server, not to this
    /// table alone (MySQL/MariaDB without per-table counters).
    pub app_writes_server_wide: bool,
    /// Sessions running a statement, pacer's own not counted.
    pub active_sessions: Option<u32>,
    /// pacer's rows per second over the latest interval (None before its first batch).
    pub pacer_rows_per_s: Option<f64>,
    /// When pacer's latest batch finished.
    pub last_batch_t: Option<f64>,
    /// Host figures.
    pub host: HostFigures,
}

/// One replica's own series.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicaSeries {
    /// The replica's name.
    pub name: String,
    /// Its replay lag, seconds.
    pub lag_s: Series,
    /// Its replay lag, bytes.
    pub lag_bytes: Series,
    last_seen: f64,
}

#[derive(Debug, Clone, Default, PartialEq)]
struct BatchBucket {
    rows: u64,
    longest_ms: Option<f64>,
    slowest_probe_ms: Option<f64>,
}

/// Every figure's time series over the chart window, the latest figures, and sampling errors.
#[derive(Debug, Clone)]
pub struct Metrics {
    window: Duration,
    interval: Duration,
    series: Vec<Series>,
    replicas: Vec<ReplicaSeries>,
    latest: Latest,
    wal: Counter,
    /// The table's writes and pacer's rows at the previous sample.
    last_writes: Option<WriteCounts>,
    /// Rows pacer's batches have updated so far (from their BatchDone events).
    pacer_updated: u64,
    net_rx: Counter,
    net_tx: Counter,
    own_cpu_ms: Counter,
    bucket: BatchBucket,
    batches_seen: bool,
    last_interval_end: Option<f64>,
    recent_batches: Recent,
    failures: FailureLog,
    throttled: Vec<(f64, Option<f64>)>,
    /// The redo figure's name in the sampling log (`WAL rate`, `binlog rate`).
    redo_rate: &'static str,
}

/// The write counters at one sample, and how they were counted: a change of either means a
/// new baseline, not a rate.
#[derive(Debug, Clone, Copy, PartialEq)]
struct WriteCounts {
    /// (t, writes, pacer's rows).
    at: (f64, u64, u64),
    /// pacer's rows came from the source (`TableStats::pacer_writes`), not from its batches.
    source_counted: bool,
    server_wide: bool,
}

/// The application's writes per second between two samples of (t, the table's writes, pacer's
/// rows). With `exact`, pacer's rows are taken out (a batch that commits between the query
/// and its recording moves one batch's rows into the next interval: never below 0). None after
/// a statistics reset (the counters went down) or when no time passed.
pub fn app_writes_rate(before: (f64, u64, u64), now: (f64, u64, u64), exact: bool) -> Option<f64> {
    let dt = now.0 - before.0;
    if dt.is_nan() || dt <= 0.0 || now.1 < before.1 {
        return None;
    }
    let mut rows = now.1 - before.1;
    if exact {
        rows = rows.saturating_sub(now.2.saturating_sub(before.2));
    }
    Some(rows as f64 / dt)
}

/// One thing recorded into [`Metrics`]. The runner publishes these as they happen, so a viewer
/// in another process (`pacer attach`) rebuilds the same series by applying them in order.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "m", rename_all = "snake_case")]
pub enum MetricInput {
    /// One sampling round at `t`: the database and the host; ends the interval.
    Round {
        t: f64,
        db: Box<DbSample>,
        host: HostSample,
    },
    /// One of pacer's batches finished at `t`.
    Batch {
        t: f64,
        keys: u64,
        ms: f64,
        /// Rows it updated (fewer than its keys where the sync trigger had filled them).
        #[serde(default)]
        updated: u64,
    },
    /// Throttling began (`on`) or ended at `t`.
    Throttle { t: f64, on: bool },
    /// Foreground probes that finished by `t`: each one's latency, ms (a failed one's until
    /// it failed).
    Probes { t: f64, ms: Vec<f64> },
}

impl MetricInput {
    /// When it was recorded.
    pub fn t(&self) -> f64 {
        match self {
            MetricInput::Round { t, .. }
            | MetricInput::Batch { t, .. }
            | MetricInput::Throttle { t, .. }
            | MetricInput::Probes { t, .. } => *t,
        }
    }
}

impl Metrics {
    /// Series covering `window` at one point per `interval` (e.g. 15 min at 1 s: 901 points).
    pub fn new(window: Duration, interval: Duration) -> Metrics {
        let capacity = capacity_for(window, interval);
        Metrics {
            window,
            interval,
            series: SeriesId::ALL
                .iter()
                .map(|_| Series::with_capacity(capacity))
                .collect(),
            replicas: Vec::new(),
            latest: Latest::default(),
            wal: Counter::new(),
            last_writes: None,
            pacer_updated: 0,
            net_rx: Counter::new(),
            net_tx: Counter::new(),
            own_cpu_ms: Counter::new(),
            bucket: BatchBucket::default(),
            batches_seen: false,
            last_interval_end: None,
            recent_batches: Recent::with_capacity(RECENT_BATCHES),
            failures: FailureLog::default(),
            throttled: Vec::new(),
            redo_rate: "WAL rate",
        }
    }

    /// Names the figures in the sampling log in the target family's words.
    pub fn with_words(mut self, words: crate::target::family::FigureWords) -> Metrics {
        self.redo_rate = words.redo_rate;
        self
    }

    /// One figure's series.
    pub fn series(&self, id: SeriesId) -> &Series {
        &self.series[id.index()]
    }

    /// Each replica's own series (at most 8, those seen within the window).
    pub fn replica_series(&self) -> &[ReplicaSeries] {
        &self.replicas
    }

    /// The latest figures.
    pub fn latest(&self) -> &Latest {
        &self.latest
    }

    /// The series' width: the charts' widest window.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// The sampling interval the series were made for.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Applies one recorded input (see [`MetricInput`]).
    pub fn apply(&mut self, input: &MetricInput) {
        match input {
            MetricInput::Round { t, db, host } => {
                self.record_db(*t, db);
                self.record_host(*t, host);
                self.end_interval(*t);
            }
            MetricInput::Batch {
                t,
                keys,
                ms,
                updated,
            } => self.record_batch(*t, *keys, *ms, *updated),
            MetricInput::Throttle { t, on } => self.mark_throttle(*t, *on),
            MetricInput::Probes { ms, .. } => self.record_probes(ms),
        }
    }

    /// Notes that throttling began (`on`) or ended at `t`; intervals older than the window
    /// are forgotten.
    pub fn mark_throttle(&mut self, t: f64, on: bool) {
        let open = self.throttled.last().is_some_and(|(_, end)| end.is_none());
        match (on, open) {
            (true, false) => self.throttled.push((t, None)),
            (false, true) => {
                if let Some(last) = self.throttled.last_mut() {
                    last.1 = Some(t);
                }
            }
            _ => {}
        }
        let horizon = t - self.window.as_secs_f64();
        self.throttled
            .retain(|(_, end)| end.is_none_or(|end| end >= horizon));
    }

    /// Throttled intervals (start, end; None while it lasts), oldest first.
    pub fn throttled(&self) -> &[(f64, Option<f64>)] {
        &self.throttled
    }

    /// The `p`-th percentile (0–100) of the last 100 batch durations, ms.
    pub fn batch_ms_percentile(&self, p: f64) -> Option<f64> {
        self.recent_batches.percentile(p)
    }

    /// Sampling failures and recoveries since the last call, oldest first.
    pub fn take_errors(&mut self) -> Vec<SampleLog> {
        self.failures.take()
    }

    fn push(&mut self, id: SeriesId, t: f64, value: Option<f64>) {
        self.series[id.index()].push(t, value);
    }

    /// Records one round of database queries taken at `t`.
    pub fn record_db(&mut self, t: f64, sample: &DbSample) {
        self.latest.t = Some(t);
        let mut outcomes: Vec<(&'static str, Result<(), &str>)> = Vec::new();

        match &sample.lock_waits {
            Ok(lw) => {
                self.push(SeriesId::LockWaiters, t, Some(f64::from(lw.waiting)));
                self.push(SeriesId::LongestLockWaitS, t, Some(lw.longest_s));
                self.latest.lock_waits = Some(lw.clone());
            }
            Err(_) => {
                self.push(SeriesId::LockWaiters, t, None);
                self.push(SeriesId::LongestLockWaitS, t, None);
                self.latest.lock_waits = None;
            }
        }
        outcomes.push(("lock waits", status(&sample.lock_waits)));

        self.record_replicas(t, sample.replicas.as_ref().ok());
        outcomes.push(("replication lag", status(&sample.replicas)));

        let wal_rate = match &sample.redo_bytes {
            Ok(bytes) => self.wal.update(t, *bytes),
            Err(_) => None,
        };
        self.push(SeriesId::RedoBytesPerS, t, wal_rate);
        self.latest.redo_bytes_per_s = wal_rate;
        outcomes.push((self.redo_rate, status(&sample.redo_bytes)));

        match &sample.table {
            Ok(stats) => {
                let writes = stats
                    .n_tup_ins
                    .saturating_add(stats.n_tup_upd)
                    .saturating_add(stats.n_tup_del);
                let now = WriteCounts {
                    at: (t, writes, stats.pacer_writes.unwrap_or(self.pacer_updated)),
                    source_counted: stats.pacer_writes.is_some(),
                    server_wide: stats.server_wide,
                };
                let exact = stats.pacer_flushed || stats.pacer_writes.is_some();
                let rate = self
                    .last_writes
                    .replace(now)
                    .filter(|before| {
                        (before.source_counted, before.server_wide)
                            == (now.source_counted, now.server_wide)
                    })
                    .and_then(|before| app_writes_rate(before.at, now.at, exact));
                self.push(SeriesId::AppWritesPerS, t, rate);
                self.push(SeriesId::DeadRows, t, Some(stats.dead_rows as f64));
                self.latest.app_writes_per_s = rate;
                self.latest.app_writes_exact = exact;
                self.latest.app_writes_server_wide = stats.server_wide;
                self.latest.table = Some(stats.clone());
            }
            Err(_) => {
                self.push(SeriesId::AppWritesPerS, t, None);
                self.push(SeriesId::DeadRows, t, None);
                self.latest.app_writes_per_s = None;
                self.latest.table = None;
            }
        }
        outcomes.push(("table statistics", status(&sample.table)));

        let bytes = sample.table_bytes.as_ref().ok().copied();
        self.push(SeriesId::TableBytes, t, bytes.map(|b| b as f64));
        self.latest.table_bytes = bytes;
        outcomes.push(("table size", status(&sample.table_bytes)));

        let active = sample.active_sessions.as_ref().ok().copied();
        self.push(SeriesId::ActiveSessions, t, active.map(f64::from));
        self.latest.active_sessions = active;
        outcomes.push(("active sessions", status(&sample.active_sessions)));

        self.failures.record(t, &outcomes, self.interval);
    }

    /// Worst-replica series, and one series per replica. No replica at all is a gap in the
    /// worst-replica series (never a zero: "no replicas" is not "no lag"); the view shows it
    /// from `latest().replicas == Some(empty)`.
    fn record_replicas(&mut self, t: f64, replicas: Option<&Vec<ReplicaLag>>) {
        let (worst_s, worst_bytes) = match replicas {
            Some(list) => (
                list.iter()
                    .filter_map(ReplicaLag::effective_lag_s)
                    .reduce(f64::max),
                list.iter().filter_map(|r| r.lag_bytes).max(),
            ),
            None => (None, None),
        };
        self.push(SeriesId::ReplicaLagS, t, worst_s);
        self.push(SeriesId::ReplicaLagBytes, t, worst_bytes.map(|b| b as f64));
        self.latest.replicas = replicas.cloned();

        let capacity = self.series(SeriesId::ReplicaLagS).capacity();
        for r in replicas.into_iter().flatten() {
            let known = self.replicas.iter().any(|s| s.name == r.name);
            if !known && self.replicas.len() < MAX_REPLICA_SERIES {
                self.replicas.push(ReplicaSeries {
                    name: r.name.clone(),
                    lag_s: Series::with_capacity(capacity),
                    lag_bytes: Series::with_capacity(capacity),
                    last_seen: t,
                });
            }
        }
        for s in &mut self.replicas {
            let now = replicas.into_iter().flatten().find(|r| r.name == s.name);
            s.lag_s.push(t, now.and_then(ReplicaLag::effective_lag_s));
            s.lag_bytes
                .push(t, now.and_then(|r| r.lag_bytes).map(|b| b as f64));
            if now.is_some() {
                s.last_seen = t;
            }
        }
        let window = self.window.as_secs_f64();
        self.replicas.retain(|s| t - s.last_seen <= window);
    }

    /// Records one host reading taken at `t`.
    pub fn record_host(&mut self, t: f64, sample: &HostSample) {
        let rx = sample.net_rx_bytes.and_then(|b| self.net_rx.update(t, b));
        let tx = sample.net_tx_bytes.and_then(|b| self.net_tx.update(t, b));
        let own_cpu = sample
            .own_cpu_ms
            .and_then(|ms| self.own_cpu_ms.update(t, ms))
            .map(cpu_pct_from_ms_per_s);
        self.latest.host = HostFigures {
            cpu_pct: sample.cpu_pct,
            mem_used: sample.mem_used,
            mem_total: sample.mem_total,
            net_rx_per_s: rx,
            net_tx_per_s: tx,
            own_cpu_pct: own_cpu,
            own_mem: sample.own_rss,
        };
        self.push(SeriesId::HostCpuPct, t, sample.cpu_pct);
        self.push(SeriesId::HostMemBytes, t, sample.mem_used.map(|b| b as f64));
        self.push(SeriesId::OwnCpuPct, t, own_cpu);
        self.push(SeriesId::OwnMemBytes, t, sample.own_rss.map(|b| b as f64));
        self.push(SeriesId::NetRxPerS, t, rx);
        self.push(SeriesId::NetTxPerS, t, tx);
    }

    /// Records one of pacer's batches (from the engine's BatchDone event): `keys` walked in
    /// `duration_ms`. It shows in the charts when the current interval ends.
    pub fn record_batch(&mut self, t: f64, keys: u64, duration_ms: f64, updated: u64) {
        self.batches_seen = true;
        self.pacer_updated = self.pacer_updated.saturating_add(updated);
        self.bucket.rows = self.bucket.rows.saturating_add(keys);
        if duration_ms.is_finite() {
            self.bucket.longest_ms = Some(
                self.bucket
                    .longest_ms
                    .map_or(duration_ms, |m| m.max(duration_ms)),
            );
            self.recent_batches.push(duration_ms);
        }
        self.latest.last_batch_t = Some(self.latest.last_batch_t.map_or(t, |l| l.max(t)));
    }

    /// Records foreground probes; the slowest of the interval shows when it ends.
    pub fn record_probes(&mut self, ms: &[f64]) {
        for &m in ms.iter().filter(|m| m.is_finite()) {
            self.bucket.slowest_probe_ms =
                Some(self.bucket.slowest_probe_ms.map_or(m, |s| s.max(m)));
        }
    }

    /// Ends the sample interval at `t`: pacer's rows/s over it (0 when no batch finished, once
    /// the first batch was seen; nothing before that) and its longest batch (a gap when none).
    pub fn end_interval(&mut self, t: f64) {
        let since = self.last_interval_end.replace(t);
        let bucket = std::mem::take(&mut self.bucket);
        if bucket.slowest_probe_ms.is_some() || !self.series(SeriesId::ProbeMs).is_empty() {
            self.push(SeriesId::ProbeMs, t, bucket.slowest_probe_ms);
        }
        if !self.batches_seen {
            return;
        }
        let rows_per_s = since
            .map(|t0| t - t0)
            .filter(|dt| *dt > 0.0)
            .map(|dt| bucket.rows as f64 / dt);
        self.push(SeriesId::PacerRowsPerS, t, rows_per_s);
        self.push(SeriesId::BatchMs, t, bucket.longest_ms);
        self.latest.pacer_rows_per_s = rows_per_s;
    }
}

fn status<T>(r: &Result<T, String>) -> Result<(), &str> {
    r.as_ref().map(|_| ()).map_err(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sampler::{LockWait, MaintenanceRun};
    use crate::target::Blocker;

    fn metrics() -> Metrics {
        Metrics::new(Duration::from_secs(900), Duration::from_secs(1))
    }

    fn ok_sample() -> DbSample {
        DbSample {
            lock_waits: Ok(LockWaits::default()),
            replicas: Ok(Vec::new()),
            redo_bytes: Ok(0),
            table: Ok(TableStats::default()),
            table_bytes: Ok(8192),
            active_sessions: Ok(3),
        }
    }

    fn replica(name: &str, lag_s: Option<f64>, lag_bytes: Option<u64>) -> ReplicaLag {
        ReplicaLag {
            name: name.into(),
            state: "streaming".into(),
            replay_lag_s: lag_s,
            lag_bytes,
        }
    }

    fn blocker(pid: i64) -> Blocker {
        Blocker {
            pacer: false,
            pid,
            application: "psql".into(),
            user: "alice".into(),
            state: "idle in transaction".into(),
            xact_age_s: Some(12.0),
            query: "LOCK TABLE t".into(),
            family: crate::target::family::Family::Postgres,
        }
    }

    #[test]
    fn fifteen_minutes_at_one_hertz_fit_in_every_series() {
        let mut m = metrics();
        for i in 0..2000 {
            m.record_db(f64::from(i), &ok_sample());
        }
        let s = m.series(SeriesId::TableBytes);
        assert_eq!(s.capacity(), 901);
        assert_eq!(s.len(), 901);
        assert_eq!(s.iter().next().unwrap().0, 1099.0);
    }

    #[test]
    fn rates_come_from_counter_differences() {
        let mut m = metrics();
        let mut s = ok_sample();
        s.redo_bytes = Ok(1_000);
        s.table = Ok(TableStats {
            n_tup_upd: 50,
            ..TableStats::default()
        });
        m.record_db(0.0, &s);
        assert_eq!(m.latest().redo_bytes_per_s, None, "no rate from one sample");
        s.redo_bytes = Ok(3_000);
        s.table = Ok(TableStats {
            n_tup_upd: 250,
            ..TableStats::default()
        });
        m.record_db(2.0, &s);
        assert_eq!(m.latest().redo_bytes_per_s, Some(1_000.0));
        assert_eq!(m.latest().app_writes_per_s, Some(100.0));
        assert_eq!(m.series(SeriesId::RedoBytesPerS).latest(), Some(1_000.0));
    }

    #[test]
    fn the_application_writes_leave_out_pacer_s_own_rows_where_they_flush_at_commit() {
        let stats = |ins, upd, del, flushed| {
            Ok(TableStats {
                n_tup_ins: ins,
                n_tup_upd: upd,
                n_tup_del: del,
                pacer_flushed: flushed,
                ..TableStats::default()
            })
        };
        let mut m = metrics();
        let mut s = ok_sample();
        s.table = stats(1_000, 50_000, 10, true);
        m.record_db(0.0, &s);
        // In one second pacer updates 15,000 rows in 50 batches; the application inserts 40,
        // updates 100 and deletes 2.
        for i in 1..=50 {
            m.record_batch(f64::from(i) / 50.0, 300, 20.0, 300);
        }
        s.table = stats(1_040, 50_000 + 15_000 + 100, 12, true);
        m.record_db(1.0, &s);
        assert_eq!(m.latest().app_writes_per_s, Some(142.0));
        assert!(m.latest().app_writes_exact);
        assert_eq!(m.series(SeriesId::AppWritesPerS).latest(), Some(142.0));

        // Where pacer's rows land a second at a time (before PostgreSQL 15), nothing is
        // subtracted, and the figure says it counts every session.
        let mut m = metrics();
        s.table = stats(1_000, 50_000, 10, false);
        m.record_db(0.0, &s);
        m.record_batch(0.5, 300, 20.0, 300);
        s.table = stats(1_000, 50_300, 10, false);
        m.record_db(1.0, &s);
        assert_eq!(m.latest().app_writes_per_s, Some(300.0));
        assert!(!m.latest().app_writes_exact);
    }

    #[test]
    fn server_wide_writes_leave_out_the_writes_the_source_counted_as_pacer_s() {
        let stats = |upd, pacer| {
            Ok(TableStats {
                n_tup_upd: upd,
                server_wide: true,
                pacer_flushed: true,
                pacer_writes: Some(pacer),
                ..TableStats::default()
            })
        };
        let mut m = metrics();
        let mut s = ok_sample();
        s.table = stats(10_000, 2_000);
        m.record_db(0.0, &s);
        // The source's count wins over the batch events (which miss checkpoints, heartbeats).
        m.record_batch(0.5, 1_000, 20.0, 1_000);
        s.table = stats(11_250, 3_005);
        m.record_db(1.0, &s);
        assert_eq!(m.latest().app_writes_per_s, Some(245.0));
        assert!(m.latest().app_writes_exact && m.latest().app_writes_server_wide);

        // A source that stops counting pacer's writes itself starts a new baseline: no rate
        // from two counts of different kinds.
        s.table = Ok(TableStats {
            n_tup_upd: 12_000,
            server_wide: true,
            pacer_flushed: true,
            ..TableStats::default()
        });
        m.record_db(2.0, &s);
        assert_eq!(m.latest().app_writes_per_s, None);
    }

    #[test]
    fn active_sessions_are_charted_and_a_failed_count_is_a_gap() {
        let mut m = metrics();
        m.record_db(0.0, &ok_sample());
        assert_eq!(m.latest().active_sessions, Some(3));
        let mut s = ok_sample();
        s.active_sessions = Err("no privilege".into());
        m.record_db(1.0, &s);
        assert_eq!(m.latest().active_sessions, None);
        assert_eq!(
            m.series(SeriesId::ActiveSessions).points_since(0.0),
            vec![vec![(0.0, 3.0)]]
        );
    }

    #[test]
    fn a_batch_that_commits_between_query_and_record_never_makes_the_rate_negative() {
        assert_eq!(
            app_writes_rate((0.0, 1_000, 0), (1.0, 1_000, 300), true),
            Some(0.0)
        );
        assert_eq!(
            app_writes_rate((0.0, 1_000, 0), (1.0, 900, 0), true),
            None,
            "a reset"
        );
        assert_eq!(app_writes_rate((1.0, 0, 0), (1.0, 10, 0), true), None);
    }

    #[test]
    fn one_failing_query_is_one_gap_and_one_log_line() {
        let mut m = metrics();
        m.record_db(0.0, &ok_sample());
        let mut s = ok_sample();
        s.table_bytes = Err("lock wait timed out".into());
        m.record_db(1.0, &s);
        m.record_db(2.0, &s);
        assert_eq!(m.series(SeriesId::TableBytes).latest(), None);
        assert_eq!(m.series(SeriesId::LockWaiters).latest(), Some(0.0));
        assert_eq!(m.latest().table_bytes, None);
        let logs = m.take_errors();
        assert_eq!(logs.len(), 1, "{logs:?}");
        assert!(logs[0].failed);
        assert!(logs[0].text.contains("table size"), "{}", logs[0].text);
        assert!(
            logs[0].text.contains("lock wait timed out"),
            "{}",
            logs[0].text
        );

        m.record_db(3.0, &ok_sample());
        let logs = m.take_errors();
        assert_eq!(logs.len(), 1);
        assert!(!logs[0].failed);
        assert_eq!(
            logs[0].text,
            "sampling table size again, after 2 failed samples"
        );
        assert!(m.take_errors().is_empty());
        let segments = m.series(SeriesId::TableBytes).points_since(0.0);
        assert_eq!(segments, vec![vec![(0.0, 8192.0)], vec![(3.0, 8192.0)]]);
    }

    #[test]
    fn a_lost_connection_is_one_line_not_one_per_figure() {
        let mut m = metrics();
        m.record_db(0.0, &DbSample::failed("connection lost"));
        let logs = m.take_errors();
        assert_eq!(logs.len(), 1, "{logs:?}");
        assert!(logs[0].text.starts_with(
            "sampling lock waits, replication lag, WAL rate, table statistics, table size, \
             active sessions failed"
        ));
        let mut mysql = metrics().with_words(crate::target::family::Family::MySql.figure_words());
        mysql.record_db(0.0, &DbSample::failed("connection lost"));
        assert!(
            mysql.take_errors()[0].text.contains("binlog rate"),
            "in the family's words"
        );
        m.record_db(1.0, &DbSample::failed("connection lost"));
        assert!(m.take_errors().is_empty());
        m.record_db(2.0, &DbSample::failed("could not reach PostgreSQL"));
        assert_eq!(m.take_errors().len(), 1, "a new reason is logged");
    }

    #[test]
    fn no_replicas_is_a_gap_not_a_zero() {
        let mut m = metrics();
        m.record_db(0.0, &ok_sample());
        assert_eq!(m.latest().replicas, Some(Vec::new()));
        assert_eq!(
            m.series(SeriesId::ReplicaLagS).last_point(),
            Some((0.0, None))
        );
        assert_eq!(
            m.series(SeriesId::ReplicaLagBytes).last_point(),
            Some((0.0, None))
        );
        assert!(m.replica_series().is_empty());
    }

    #[test]
    fn the_worst_replica_is_charted_and_each_replica_has_its_own_series() {
        let mut m = metrics();
        let mut s = ok_sample();
        s.replicas = Ok(vec![
            replica("a", Some(0.5), Some(100)),
            replica("b", Some(2.0), Some(50)),
            replica("caught-up", None, Some(0)),
        ]);
        m.record_db(0.0, &s);
        assert_eq!(m.series(SeriesId::ReplicaLagS).latest(), Some(2.0));
        assert_eq!(m.series(SeriesId::ReplicaLagBytes).latest(), Some(100.0));
        let names: Vec<&str> = m.replica_series().iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "caught-up"]);
        assert_eq!(m.replica_series()[2].lag_s.latest(), Some(0.0));

        // Replica b goes away: a gap in its series, dropped once out of the window.
        s.replicas = Ok(vec![replica("a", Some(0.1), Some(10))]);
        m.record_db(1.0, &s);
        assert_eq!(m.replica_series()[1].lag_s.latest(), None);
        m.record_db(902.0, &s);
        let names: Vec<&str> = m.replica_series().iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["a"]);
    }

    #[test]
    fn pacer_throughput_is_bucketed_per_interval_and_zero_while_idle() {
        let mut m = metrics();
        m.end_interval(0.0);
        assert!(
            m.series(SeriesId::PacerRowsPerS).is_empty(),
            "nothing before the first batch"
        );
        m.record_batch(0.3, 1_000, 40.0, 1_000);
        m.record_batch(0.6, 1_000, 90.0, 1_000);
        m.end_interval(1.0);
        assert_eq!(m.series(SeriesId::PacerRowsPerS).latest(), Some(2_000.0));
        assert_eq!(m.series(SeriesId::BatchMs).latest(), Some(90.0));
        m.end_interval(2.0);
        assert_eq!(m.series(SeriesId::PacerRowsPerS).latest(), Some(0.0));
        assert_eq!(
            m.series(SeriesId::BatchMs).latest(),
            None,
            "no batch, no duration"
        );
        assert_eq!(m.latest().pacer_rows_per_s, Some(0.0));
        assert_eq!(m.latest().last_batch_t, Some(0.6));
        assert_eq!(m.batch_ms_percentile(50.0), Some(40.0));
        assert_eq!(m.batch_ms_percentile(95.0), Some(90.0));
    }

    #[test]
    fn host_counters_become_rates() {
        let mut m = metrics();
        let mut h = HostSample {
            cpu_pct: Some(12.5),
            mem_used: Some(1 << 30),
            mem_total: Some(4 << 30),
            net_rx_bytes: Some(1_000),
            net_tx_bytes: Some(500),
            own_cpu_ms: Some(100),
            own_rss: Some(20 << 20),
        };
        m.record_host(0.0, &h);
        assert_eq!(m.latest().host.net_rx_per_s, None);
        h.net_rx_bytes = Some(3_000);
        h.net_tx_bytes = Some(600);
        h.own_cpu_ms = Some(150);
        m.record_host(2.0, &h);
        let host = &m.latest().host;
        assert_eq!(host.net_rx_per_s, Some(1_000.0));
        assert_eq!(host.net_tx_per_s, Some(50.0));
        assert_eq!(host.own_cpu_pct, Some(2.5));
        assert_eq!(host.own_mem, Some(20 << 20));
        assert_eq!(m.series(SeriesId::HostCpuPct).latest(), Some(12.5));
    }

    #[test]
    fn pacer_sessions_are_listed_but_not_counted() {
        let waits = vec![
            LockWait {
                pid: 10,
                application: "pacer:public.t.c".into(),
                wait_s: 9.0,
                pacer: true,
                blockers: vec![blocker(1), blocker(1)],
            },
            LockWait {
                pid: 11,
                application: "app".into(),
                wait_s: 3.0,
                pacer: false,
                blockers: vec![blocker(10)],
            },
        ];
        let lw = LockWaits::from_waits(waits);
        assert_eq!(lw.waiting, 1);
        assert_eq!(lw.longest_s, 3.0);
        assert_eq!(lw.waits.len(), 2);
        assert_eq!(lw.blocking_pacer(), vec![blocker(1)]);
        assert_eq!(LockWaits::from_waits(Vec::new()).longest_s, 0.0);
    }

    #[test]
    fn a_vacuum_says_what_it_does() {
        let v = MaintenanceRun {
            automatic: true,
            wraparound: true,
            phase: "scanning heap".into(),
            scanned_pct: Some(41.7),
        };
        assert_eq!(
            v.to_string(),
            "autovacuum (to prevent wraparound): scanning heap, 42% of the heap scanned"
        );
        let manual = MaintenanceRun {
            automatic: false,
            wraparound: false,
            phase: "vacuuming indexes".into(),
            scanned_pct: None,
        };
        assert_eq!(manual.to_string(), "VACUUM: vacuuming indexes");
    }
}
