//! Sampling a PostgreSQL primary: the SQL of every metric, on the sampler's own connection.
//!
//! The connection is pacer's third session (`pacer-sampler:<job>`), never the engine's. It is
//! opened on the first sample and again after it is lost (a lost connection is a gap and a log
//! line; the next tick retries). Every statement runs in autocommit, so statistics views are
//! read fresh each time (inside a transaction they would be a cached snapshot), under a short
//! `statement_timeout` and `lock_timeout`. The queries of one round are pipelined: one round
//! trip, each with its own result.
//!
//! Audit: these queries run every sample interval, so each distinct statement is written to
//! the audit log once, on first use (session "sampler", with `"repeats"` saying how often it
//! runs), not at every round.

use std::collections::HashMap;
use std::time::Duration;

use tokio_postgres::Row;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;

use super::errors::classify;
use super::lag::ReplicaPosition;
use super::session::{Prepared, Session};
use super::{PgTarget, is_pacer, redact_query};
use crate::audit::Audit;
use crate::sampler::{
    DbSample, LockWait, LockWaits, MaintenanceRun, MetricSource, ReplicaLag, TableStats,
};
use crate::target::Blocker;

/// Default `statement_timeout` of the sampling queries (a 1 s interval).
pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_millis(500);

/// Longest `lock_timeout` of the sampling queries. Only the table size takes a (weak) lock on
/// the table; it must never queue for long behind a DDL statement waiting for its lock.
const MAX_LOCK_TIMEOUT: Duration = Duration::from_millis(100);

/// Sessions waiting for a heavyweight lock, each with the sessions blocking it (one row per
/// waiter and blocker; a waiter without blockers has NULL blocker columns). pacer's own
/// sessions (application name `pacer…`) are listed and flagged; the caller does not count
/// them. The sampler's own session is left out. `{since}` is when the wait began: the lock's
/// `waitstart` (PostgreSQL 14+), else the start of the waiting query. A pid of 0 among the
/// blockers is a prepared transaction. Query texts are cut to 300 characters and redacted.
const LOCK_WAITS_SQL: &str = "\
SELECT w.pid, coalesce(w.application_name, ''), \
       greatest(extract(epoch FROM now() - {since}), 0)::float8 AS wait_s, \
       coalesce(w.application_name, '') LIKE 'pacer%', \
       bp.pid, b.pid IS NOT NULL, coalesce(b.application_name, ''), coalesce(b.usename::text, ''), \
       coalesce(b.state, ''), extract(epoch FROM now() - b.xact_start)::float8, \
       left(coalesce(b.query, ''), 300) \
FROM pg_stat_activity w {join} \
LEFT JOIN LATERAL unnest(pg_blocking_pids(w.pid)) AS bp(pid) ON true \
LEFT JOIN pg_stat_activity b ON b.pid = bp.pid \
WHERE w.wait_event_type = 'Lock' AND w.pid <> pg_backend_pid() \
ORDER BY wait_s DESC, w.pid, b.xact_start NULLS LAST";

/// Replicas streaming from this primary, as the primary sees them: replay lag in time (NULL
/// when the primary cannot tell, e.g. the replica is idle and caught up), in bytes of WAL
/// written here and not yet replayed there, and the replay position with the time of the
/// reply that carried it (for the replay rate).
/// Needs superuser or pg_read_all_stats to see the positions (else NULL: unknown lag, not
/// zero). Also read by the engine's throttle, on its own session, several times a second.
pub const REPLICAS_SQL: &str = "\
SELECT pid, coalesce(application_name, ''), coalesce(host(client_addr), ''), coalesce(state, ''), \
       extract(epoch FROM replay_lag)::float8, \
       greatest(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn), 0)::bigint, \
       pg_wal_lsn_diff(replay_lsn, '0/0')::bigint, extract(epoch FROM reply_time)::float8 \
FROM pg_stat_replication ORDER BY application_name, client_addr, pid";

/// The server's current WAL write position in bytes since 0/0: a counter for the WAL rate.
const WAL_SQL: &str = "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint";

/// The table's activity counters and dead tuples (lock-free statistics views; other backends
/// flush them every 1–10 s, so they lag), and a vacuum working on it, if any (autovacuum or
/// manual, flagged when it prevents wraparound: such a worker does not yield to DDL). No row
/// means the table does not exist (or pacer's user cannot see it).
const TABLE_SQL: &str = "\
SELECT s.n_tup_upd, s.n_tup_hot_upd, s.n_tup_ins, s.n_dead_tup, s.n_live_tup, \
       v.phase, v.automatic, v.wraparound, v.heap_blks_scanned, v.heap_blks_total, s.n_tup_del \
FROM pg_stat_all_tables s \
LEFT JOIN LATERAL ( \
    SELECT p.phase, coalesce(a.backend_type = 'autovacuum worker', false) AS automatic, \
           coalesce(a.query LIKE '%(to prevent wraparound)%', false) AS wraparound, \
           p.heap_blks_scanned, p.heap_blks_total \
    FROM pg_stat_progress_vacuum p LEFT JOIN pg_stat_activity a ON a.pid = p.pid \
    WHERE p.relid = s.relid LIMIT 1) v ON true \
WHERE s.relid = to_regclass($1::text)";

/// The table's size (heap, free space map, visibility map and TOAST). `pg_table_size` takes
/// an ACCESS SHARE lock on the table: while someone holds or waits for an exclusive lock, it
/// fails fast on `lock_timeout` (a gap) instead of joining the lock queue. NULL: no such table.
const TABLE_SIZE_SQL: &str = "SELECT pg_table_size(to_regclass($1::text))";

/// Client sessions running a statement now (`state = 'active'`, waiting on a lock included),
/// pacer's own (application name `pacer…`) and this one left out; background workers,
/// parallel workers and WAL senders are not client backends and do not count.
const ACTIVE_SQL: &str = "\
SELECT count(*)::int FROM pg_stat_activity \
WHERE state = 'active' AND backend_type = 'client backend' AND pid <> pg_backend_pid() \
  AND coalesce(application_name, '') NOT LIKE 'pacer%'";

/// The statement timeout that suits a sample interval: half of it, at most 500 ms, at least
/// 20 ms.
pub fn statement_timeout_for(interval: Duration) -> Duration {
    (interval / 2).clamp(Duration::from_millis(20), DEFAULT_STATEMENT_TIMEOUT)
}

/// How often the sampling queries run, in the audit log.
const EVERY_ROUND: &str = "every sample interval";
/// How often the sampler's session setup runs, in the audit log.
const EVERY_CONNECTION: &str = "on each sampler connection";

struct Statements {
    lock_waits: Prepared,
    replicas: Prepared,
    wal: Prepared,
    table: Prepared,
    table_size: Prepared,
    active: Prepared,
    /// PostgreSQL 15 or later: pacer's batches flush their statistics at commit (see
    /// [`TableStats::pacer_flushed`]).
    flushes_per_batch: bool,
}

/// Samples a PostgreSQL primary on its own connection.
pub struct PgSource {
    conn: PgTarget,
    application_name: String,
    table: String,
    statement_timeout: Duration,
    audit: Audit,
    session: Option<(Session, Statements)>,
    /// Set while a round's queries run: still set at the next call means the round was
    /// dropped half-way (timed out), so the connection may have a query stuck on it.
    in_flight: bool,
}

impl PgSource {
    /// A source for `table` (quoted, schema-qualified: `"public"."orders"`) of migration `job`
    /// (`schema.table.column`). Connects on the first sample.
    pub fn new(conn: PgTarget, job: &str, table: String) -> PgSource {
        PgSource {
            conn,
            application_name: application_name(job),
            table,
            statement_timeout: DEFAULT_STATEMENT_TIMEOUT,
            audit: Audit::disabled(),
            session: None,
            in_flight: false,
        }
    }

    /// Uses this `statement_timeout` (see [`statement_timeout_for`]).
    pub fn with_statement_timeout(mut self, timeout: Duration) -> PgSource {
        self.statement_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// Writes each distinct sampling statement to `audit`, once.
    pub fn with_audit(mut self, audit: Audit) -> PgSource {
        self.audit = audit;
        self
    }

    async fn connect(&self) -> Result<(Session, Statements), String> {
        let client = self
            .conn
            .connect(&self.application_name)
            .await
            .map_err(|e| e.to_string())?;
        let client = Session::new(client, "sampler", self.audit.clone());
        let setup = client.repeating(EVERY_CONNECTION);
        let lock_timeout = MAX_LOCK_TIMEOUT.min(self.statement_timeout / 2);
        let settings = format!(
            "SET statement_timeout = '{}ms'; SET lock_timeout = '{}ms'; \
             SET idle_in_transaction_session_timeout = '10s'",
            self.statement_timeout.as_millis(),
            lock_timeout.as_millis().max(1)
        );
        let context = format!("preparing the sampling queries on {}", self.conn.redacted());
        setup
            .batch_execute(&settings)
            .await
            .map_err(|e| classify(&e, &context).to_string())?;
        let version: i32 = setup
            .query_one("SELECT current_setting('server_version_num')::int", &[])
            .await
            .map_err(|e| classify(&e, &context).to_string())?
            .get(0);
        let lock_waits = lock_waits_sql(version);
        let (lock_waits, replicas, wal, table, table_size, active) = tokio::join!(
            client.prepare(&lock_waits),
            client.prepare(REPLICAS_SQL),
            client.prepare(WAL_SQL),
            client.prepare(TABLE_SQL),
            client.prepare(TABLE_SIZE_SQL),
            client.prepare(ACTIVE_SQL),
        );
        let err = |e: tokio_postgres::Error| classify(&e, &context).to_string();
        let statements = Statements {
            lock_waits: lock_waits.map_err(err)?,
            replicas: replicas.map_err(err)?,
            wal: wal.map_err(err)?,
            table: table.map_err(err)?,
            table_size: table_size.map_err(err)?,
            active: active.map_err(err)?,
            flushes_per_batch: version >= super::FORCE_FLUSH_VERSION,
        };
        Ok((client, statements))
    }

    async fn round(&self, session: &Session, st: &Statements) -> (DbSample, bool) {
        let table = self.table.as_str();
        let params: [&(dyn ToSql + Sync); 1] = [&table];
        let client = session.repeating(EVERY_ROUND);
        let (lock_waits, replicas, wal, stats, size, active) = tokio::join!(
            client.query(&st.lock_waits, &[]),
            client.query(&st.replicas, &[]),
            client.query_one(&st.wal, &[]),
            client.query_opt(&st.table, &params),
            client.query_one(&st.table_size, &params),
            client.query_one(&st.active, &[]),
        );
        let mut lost = false;
        let mut fail = |e: tokio_postgres::Error, context: &str| {
            lost |= e.is_closed();
            classify(&e, context).to_string()
        };
        let sample = DbSample {
            lock_waits: lock_waits
                .map(|rows| lock_waits_from_rows(&rows))
                .map_err(|e| fail(e, "reading lock waits")),
            replicas: replicas
                .map(|rows| replicas_from_rows(&rows))
                .map_err(|e| fail(e, "reading pg_stat_replication")),
            redo_bytes: wal
                .map_err(|e| fail(e, "reading the WAL position"))
                .and_then(|row| non_negative(row.get(0), "WAL position")),
            table: stats
                .map_err(|e| fail(e, &format!("reading statistics of table {table}")))
                .and_then(|row| match row {
                    Some(row) => Ok(table_stats_from_row(&row, st.flushes_per_batch)),
                    None => Err(missing_table(table)),
                }),
            table_bytes: size
                .map_err(|e| {
                    if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) {
                        format!(
                            "size of table {table} not read: its lock queue is blocked \
                             (someone holds or waits for an exclusive lock on it)"
                        )
                    } else {
                        fail(e, &format!("reading the size of table {table}"))
                    }
                })
                .and_then(|row| match row.get::<_, Option<i64>>(0) {
                    Some(bytes) => non_negative(bytes, "table size"),
                    None => Err(missing_table(table)),
                }),
            active_sessions: active
                .map_err(|e| fail(e, "counting active sessions in pg_stat_activity"))
                .map(|row| u32::try_from(row.get::<_, i32>(0)).unwrap_or(0)),
        };
        (sample, lost)
    }
}

impl MetricSource for PgSource {
    async fn sample(&mut self) -> DbSample {
        if self.in_flight || self.session.as_ref().is_some_and(|(c, _)| c.is_closed()) {
            // The previous round was abandoned mid-query, or the server went away.
            self.session = None;
            self.in_flight = false;
        }
        if self.session.is_none() {
            match self.connect().await {
                Ok(session) => self.session = Some(session),
                Err(message) => return DbSample::failed(&message),
            }
        }
        let Some((client, statements)) = &self.session else {
            return DbSample::failed("not connected");
        };
        self.in_flight = true;
        let (sample, lost) = self.round(client, statements).await;
        self.in_flight = false;
        if lost {
            self.session = None;
        }
        sample
    }
}

/// `pacer-sampler:<job>`, cut to PostgreSQL's 63 bytes.
fn application_name(job: &str) -> String {
    let mut name = format!("pacer-sampler:{job}");
    while name.len() > 63 {
        name.pop();
    }
    name
}

fn lock_waits_sql(server_version: i32) -> String {
    let (since, join) = if server_version >= 140000 {
        (
            "coalesce(l.waitstart, w.query_start)",
            "LEFT JOIN pg_locks l ON l.pid = w.pid AND NOT l.granted",
        )
    } else {
        ("w.query_start", "")
    };
    LOCK_WAITS_SQL
        .replace("{since}", since)
        .replace("{join}", join)
}

fn missing_table(table: &str) -> String {
    format!("table {table} not found: was it dropped or renamed, or may pacer's user not see it?")
}

fn non_negative(value: i64, what: &str) -> Result<u64, String> {
    u64::try_from(value).map_err(|_| format!("{what}: the server returned {value}"))
}

fn count(row: &Row, idx: usize) -> u64 {
    row.get::<_, Option<i64>>(idx)
        .and_then(|v| u64::try_from(v).ok())
        .unwrap_or(0)
}

/// Groups [`LOCK_WAITS_SQL`] rows (one per waiter and blocker) by waiter.
fn lock_waits_from_rows(rows: &[Row]) -> LockWaits {
    let mut waits: Vec<LockWait> = Vec::new();
    for r in rows {
        let pid = i64::from(r.get::<_, i32>(0));
        let idx = match waits.iter().position(|w| w.pid == pid) {
            Some(i) => i,
            None => {
                waits.push(LockWait {
                    pid,
                    application: r.get(1),
                    wait_s: r.get::<_, Option<f64>>(2).unwrap_or(0.0),
                    pacer: r.get(3),
                    blockers: Vec::new(),
                });
                waits.len() - 1
            }
        };
        let Some(blocker_pid) = r.get::<_, Option<i32>>(4).map(i64::from) else {
            continue;
        };
        if waits[idx].blockers.iter().any(|b| b.pid == blocker_pid) {
            continue;
        }
        let seen: bool = r.get(5);
        let blocker = if seen {
            let application: String = r.get(6);
            Blocker {
                pid: blocker_pid,
                pacer: is_pacer(&application),
                application,
                user: r.get(7),
                state: r.get(8),
                xact_age_s: r.get(9),
                query: redact_query(&r.get::<_, String>(10)),
                family: crate::target::family::Family::Postgres,
            }
        } else {
            unlisted_blocker(blocker_pid)
        };
        waits[idx].blockers.push(blocker);
    }
    LockWaits::from_waits(waits)
}

/// A blocker that `pg_stat_activity` does not list: a prepared transaction (pid 0), or a
/// session that ended between the two looks.
fn unlisted_blocker(pid: i64) -> Blocker {
    let (application, state) = if pid == 0 {
        ("prepared transaction (see pg_prepared_xacts)", "prepared")
    } else {
        ("", "ended")
    };
    Blocker {
        pid,
        application: application.into(),
        user: String::new(),
        state: state.into(),
        xact_age_s: None,
        query: String::new(),
        pacer: false,
        family: crate::target::family::Family::Postgres,
    }
}

/// The replicas in rows of [`REPLICAS_SQL`], named, for the charts.
pub fn replicas_from_rows(rows: &[Row]) -> Vec<ReplicaLag> {
    named_replicas(rows)
        .map(|(name, r)| ReplicaLag {
            name,
            state: r.state,
            replay_lag_s: r.replay_lag_s,
            lag_bytes: r.lag_bytes,
        })
        .collect()
}

/// The replicas in rows of [`REPLICAS_SQL`], named as in the charts, with the positions the
/// engine's lag forecast needs.
pub fn replica_positions_from_rows(rows: &[Row]) -> Vec<ReplicaPosition> {
    named_replicas(rows)
        .map(|(name, r)| ReplicaPosition {
            name,
            replay_lag_s: r.replay_lag_s,
            backlog_bytes: r.lag_bytes,
            replayed_bytes: r.replayed_bytes,
            reply_at: r.reply_at,
        })
        .collect()
}

/// The replicas in rows of [`REPLICAS_SQL`], each with the name the charts and the throttle give it.
fn named_replicas(rows: &[Row]) -> impl Iterator<Item = (String, RawReplica)> {
    let raw = raw_replicas(rows);
    replica_names(&raw).into_iter().zip(raw)
}

fn raw_replicas(rows: &[Row]) -> Vec<RawReplica> {
    let bytes = |r: &Row, i: usize| {
        r.get::<_, Option<i64>>(i)
            .and_then(|b| u64::try_from(b).ok())
    };
    rows.iter()
        .map(|r| RawReplica {
            pid: r.get(0),
            application: r.get(1),
            address: r.get(2),
            state: r.get(3),
            replay_lag_s: r.get::<_, Option<f64>>(4).map(|s| s.max(0.0)),
            lag_bytes: bytes(r, 5),
            replayed_bytes: bytes(r, 6),
            reply_at: r.get(7),
        })
        .collect()
}

/// One row of [`REPLICAS_SQL`].
#[derive(Debug, Clone, PartialEq)]
struct RawReplica {
    pid: i32,
    application: String,
    address: String,
    state: String,
    replay_lag_s: Option<f64>,
    lag_bytes: Option<u64>,
    replayed_bytes: Option<u64>,
    reply_at: Option<f64>,
}

/// Names replicas by application name, else address, else walsender pid. Replicas often share
/// the default name (`walreceiver`): duplicates get their address, then their pid, appended,
/// so each keeps its own series.
fn replica_names(raw: &[RawReplica]) -> Vec<String> {
    let base = |r: &RawReplica| -> String {
        if !r.application.is_empty() {
            r.application.clone()
        } else if !r.address.is_empty() {
            r.address.clone()
        } else {
            format!("pid {}", r.pid)
        }
    };
    let mut counts: HashMap<String, usize> = HashMap::new();
    for r in raw {
        *counts.entry(base(r)).or_default() += 1;
    }
    let with_address = |r: &RawReplica| -> String {
        let name = base(r);
        if counts[&name] > 1 && !r.address.is_empty() && name != r.address {
            format!("{name}@{}", r.address)
        } else {
            name
        }
    };
    let mut counts2: HashMap<String, usize> = HashMap::new();
    for r in raw {
        *counts2.entry(with_address(r)).or_default() += 1;
    }
    raw.iter()
        .map(|r| {
            let name = with_address(r);
            if counts2[&name] > 1 {
                format!("{name}#{}", r.pid)
            } else {
                name
            }
        })
        .collect()
}

fn table_stats_from_row(r: &Row, pacer_flushed: bool) -> TableStats {
    let maintenance = r.get::<_, Option<String>>(5).map(|phase| MaintenanceRun {
        automatic: r.get::<_, Option<bool>>(6).unwrap_or(false),
        wraparound: r.get::<_, Option<bool>>(7).unwrap_or(false),
        phase,
        scanned_pct: scanned_pct(r.get(8), r.get(9)),
    });
    TableStats {
        n_tup_upd: count(r, 0),
        n_tup_hot_upd: count(r, 1),
        n_tup_ins: count(r, 2),
        n_tup_del: count(r, 10),
        pacer_flushed,
        server_wide: false,
        pacer_writes: None,
        dead_rows: count(r, 3),
        live_tuples: count(r, 4),
        maintenance,
    }
}

fn scanned_pct(scanned: Option<i64>, total: Option<i64>) -> Option<f64> {
    match (scanned, total) {
        (Some(s), Some(t)) if t > 0 => Some((s as f64 / t as f64 * 100.0).clamp(0.0, 100.0)),
        _ => None,
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    fn raw(pid: i32, app: &str, addr: &str) -> RawReplica {
        RawReplica {
            pid,
            application: app.into(),
            address: addr.into(),
            state: "streaming".into(),
            replay_lag_s: Some(1.0),
            lag_bytes: Some(10),
            replayed_bytes: Some(100),
            reply_at: Some(1.0),
        }
    }

    #[test]
    fn replicas_sharing_the_default_name_are_told_apart() {
        let names = replica_names(&[
            raw(1, "walreceiver", "10.0.0.5"),
            raw(2, "walreceiver", "10.0.0.6"),
            raw(3, "walreceiver", "10.0.0.6"),
            raw(4, "replica-b", "10.0.0.7"),
            raw(5, "", "10.0.0.8"),
            raw(6, "", ""),
        ]);
        assert_eq!(
            names,
            [
                "walreceiver@10.0.0.5",
                "walreceiver@10.0.0.6#2",
                "walreceiver@10.0.0.6#3",
                "replica-b",
                "10.0.0.8",
                "pid 6"
            ]
        );
    }

    #[test]
    fn the_application_name_is_pacers_and_fits_postgres() {
        assert_eq!(application_name("public.t.c"), "pacer-sampler:public.t.c");
        let long = application_name(&"é".repeat(60));
        assert!(long.len() <= 63 && long.starts_with("pacer-sampler:"));
    }

    #[test]
    fn wait_start_uses_waitstart_from_postgresql_14() {
        assert!(lock_waits_sql(150000).contains("l.waitstart"));
        let old = lock_waits_sql(130000);
        assert!(!old.contains("waitstart") && !old.contains('{'));
    }

    #[test]
    fn statement_timeout_follows_the_interval() {
        let ms = Duration::from_millis;
        assert_eq!(statement_timeout_for(Duration::from_secs(1)), ms(500));
        assert_eq!(statement_timeout_for(Duration::from_secs(5)), ms(500));
        assert_eq!(statement_timeout_for(ms(250)), ms(125));
        assert_eq!(statement_timeout_for(ms(10)), ms(20));
    }

    #[test]
    fn scanned_share_needs_a_total() {
        assert_eq!(scanned_pct(Some(50), Some(200)), Some(25.0));
        assert_eq!(scanned_pct(Some(0), Some(0)), None);
        assert_eq!(scanned_pct(None, Some(10)), None);
    }
}
