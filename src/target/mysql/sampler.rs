//! What the sampler reads from MySQL/MariaDB, on a connection of its own, pacer's own
//! connections left out of every count:
//!
//! - lock waits on the table and who blocks each ([`super::lock_waits`]);
//! - the application's row writes: per table where the server counts them
//!   (`performance_schema.table_io_waits_summary_by_table` when performance_schema instruments
//!   table I/O, as MySQL 8 does by default; else MariaDB's `TABLE_STATISTICS` with
//!   `userstat=ON`), else server-wide (MariaDB `Handler_write` + `Handler_update` +
//!   `Handler_delete`, which leave temporary tables out; MySQL `Innodb_rows_*`), and then said
//!   to be so. Each counter counts a row when its statement runs, so pacer's own rows are taken
//!   out exactly: its batches' rows from its state row (`rows_updated`), and server-wide also
//!   its checkpoint (one row a batch) and heartbeat (`seq`) writes. Checked on MariaDB 10.11:
//!   an UPDATE that changes nothing counts nothing in all three;
//! - InnoDB's history list length (`Innodb_history_list_length`; MySQL: `INNODB_METRICS`
//!   `trx_rseg_history_len`), server-wide, as the table's dead rows (the purge's backlog);
//! - binlog bytes (`Binlog_bytes_written`, which keeps counting across rotations; MySQL: the
//!   sum of `SHOW BINARY LOGS` sizes, which a PURGE lowers: one gap), as the redo counter;
//! - `Threads_running` less pacer's own running connections, as the active sessions;
//! - the table's size (`DATA_LENGTH`) and each replica's lag (the heartbeat, [`super::lag`]).
//!
//! Each query's server error is a gap in its own figures; a lost connection or a round over its
//! bound (half the sample interval) is a gap in all of them, and the next round reconnects.
//! The session bounds each statement itself too (`max_statement_time`; MySQL
//! `max_execution_time`) and waits at most 1 s for a metadata lock.

use std::collections::HashMap;
use std::time::Duration;

use mysql_async::Value;

use super::blockers::{MdlView, mdl_view_of};
use super::connect::MyTarget;
use super::session::{Session, int_at, text_at};
use super::sql::{Flavor, q};
use crate::audit::Audit;
use crate::sampler::{DbSample, LockWaits, MetricSource, ReplicaLag, TableStats};

/// Why a figure has no value on this family yet.
pub const NOT_SAMPLED: &str = "not sampled on MySQL/MariaDB by this version of pacer";

/// How often the sampling queries run, in the audit log.
const EVERY_ROUND: &str = "every sample interval";
/// How often the sampler's session setup runs, in the audit log.
const EVERY_CONNECTION: &str = "on each sampler connection";

/// ER_NO_SUCH_TABLE: pacer's state or heartbeat table is not there (yet).
const NO_SUCH_TABLE: u16 = 1146;

/// Where the server counts the table's row writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteCounters {
    /// `performance_schema.table_io_waits_summary_by_table`: inserts, updates, deletes.
    PerformanceSchema,
    /// MariaDB's `information_schema.TABLE_STATISTICS` (`userstat=ON`): rows changed.
    UserStatistics,
    /// No per-table counter: the whole server's.
    ServerWide,
}

/// What the sampler found out about the server when it connected.
#[derive(Debug, Clone, Copy)]
struct ServerFacts {
    flavor: Flavor,
    mdl_view: MdlView,
    writes: WriteCounters,
}

/// The sampler's view of one MySQL/MariaDB migration.
pub struct MySource {
    conn: MyTarget,
    job: String,
    table: (String, String),
    /// pacer's state table `(database, table)`: its rows and heartbeats come from there.
    state: Option<(String, String)>,
    timeout: Duration,
    audit: Audit,
    session: Option<(Session, ServerFacts)>,
    replicas: Option<super::lag::Replicas>,
}

/// The figures of one round, each with its own outcome.
struct Round {
    lock_waits: Result<LockWaits, String>,
    redo_bytes: Result<u64, String>,
    table: Result<TableStats, String>,
    table_bytes: Result<u64, String>,
    active_sessions: Result<u32, String>,
}

impl MySource {
    /// A source for the table `(database, name)`; it connects on its first sample, and each
    /// round is bounded by half the sample interval.
    pub fn new(
        conn: MyTarget,
        job: &str,
        table: (String, String),
        sample_interval: Duration,
        audit: Audit,
    ) -> MySource {
        MySource {
            conn,
            job: job.to_string(),
            table,
            state: None,
            timeout: (sample_interval / 2).clamp(Duration::from_millis(50), Duration::from_secs(2)),
            audit,
            session: None,
            replicas: None,
        }
    }

    /// Also reads these replicas' lag by the heartbeat, each on a connection of its own.
    pub fn with_replicas(mut self, replicas: super::lag::Replicas) -> MySource {
        self.replicas = Some(replicas);
        self
    }

    /// pacer's state table `(database, table)`, where the sampler counts pacer's own writes
    /// (without it, the metrics take pacer's rows from its batches alone).
    pub fn with_state(mut self, state: (String, String)) -> MySource {
        self.state = Some(state);
        self
    }

    /// Each replica's lag (on the sampler's own connections).
    async fn replica_lags(&mut self) -> Result<Vec<ReplicaLag>, String> {
        let (Some((session, _)), Some(replicas)) = (self.session.as_mut(), self.replicas.as_mut())
        else {
            return Err(NOT_SAMPLED.into());
        };
        let readings = replicas.read(session).await?;
        Ok(readings
            .into_iter()
            .map(|r| ReplicaLag {
                name: r.name,
                state: r.state,
                replay_lag_s: r.lag_s,
                lag_bytes: None,
            })
            .collect())
    }

    async fn connect(&self) -> Result<(Session, ServerFacts), String> {
        let mut name = format!("pacer-sampler:{}", self.job);
        while name.len() > 64 {
            name.pop();
        }
        let conn = self.conn.connect(&name).await.map_err(|e| e.to_string())?;
        let mut session = Session::new(conn, "sampler", &self.job, self.audit.clone());
        let version = session
            .rows_repeating("SELECT VERSION()", vec![], EVERY_CONNECTION)
            .await
            .map_err(|e| super::errors::describe(&e))?
            .first()
            .and_then(|r| text_at(r, 0))
            .unwrap_or_default();
        let flavor = super::Server::parse(&version).flavor;
        let bound = self.timeout.as_secs_f64();
        let setup = match flavor {
            Flavor::MariaDb => {
                format!("SET SESSION max_statement_time = {bound:.3}, lock_wait_timeout = 1")
            }
            Flavor::MySql => format!(
                "SET SESSION max_execution_time = {}, lock_wait_timeout = 1",
                self.timeout.as_millis().max(1)
            ),
        };
        session
            .rows_repeating(&setup, vec![], EVERY_CONNECTION)
            .await
            .map_err(|e| super::errors::describe(&e))?;
        let mdl_view = mdl_view_of(&mut session).await;
        let writes = write_counters(&mut session, flavor).await;
        Ok((
            session,
            ServerFacts {
                flavor,
                mdl_view,
                writes,
            },
        ))
    }

    /// One round of queries. `Err` only when the connection is in doubt (lost, or a driver
    /// error): every figure is a gap then, and the next round reconnects.
    async fn round(&mut self) -> Result<Round, String> {
        if self.session.is_none() {
            self.session = Some(self.connect().await?);
        }
        let (session, facts) = self.session.as_mut().expect("connected above");
        let facts = *facts;
        let claim = Value::from(super::state::lock_name(&self.job));

        let status = match session
            .rows_repeating(
                &status_sql(facts.flavor),
                vec![claim.clone(), claim],
                EVERY_ROUND,
            )
            .await
        {
            Ok(rows) => Ok(Status::from_rows(
                rows.iter()
                    .filter_map(|r| Some((text_at(r, 0)?, text_at(r, 1)))),
            )),
            Err(e) => Err(figure_error(e, "reading the server's status")?),
        };
        let pacer_main = status.as_ref().ok().and_then(|s| s.pacer_main);

        let lock_waits = match super::lock_waits::read(
            session,
            facts.flavor,
            facts.mdl_view,
            &self.table,
            pacer_main,
        )
        .await
        {
            Ok(w) => Ok(w),
            Err(e) => Err(figure_error(e, "reading lock waits")?),
        };

        let (database, name) = (&self.table.0, &self.table.1);
        let size = match session
            .rows_repeating(
                "SELECT DATA_LENGTH, TABLE_ROWS FROM information_schema.TABLES \
                 WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
                vec![Value::from(database.clone()), Value::from(name.clone())],
                EVERY_ROUND,
            )
            .await
        {
            Ok(rows) => rows
                .first()
                .map(|r| (non_negative(int_at(r, 0)), non_negative(int_at(r, 1))))
                .ok_or_else(|| missing_table(&self.table)),
            Err(e) => Err(figure_error(e, "reading the table's size")?),
        };

        let counters = match table_counters(session, facts.writes, &self.table).await {
            Ok(c) => Ok(c),
            Err(e) => Err(figure_error(e, "reading the table's write counters")?),
        };
        let pacer = match &self.state {
            Some(state) => match pacer_writes(session, state, &self.job).await {
                Ok(p) => Ok(Some(p)),
                Err(e) => Err(figure_error(e, "reading pacer's own writes")?),
            },
            None => Ok(None),
        };

        let redo_bytes = match &status {
            Err(e) => Err(e.clone()),
            Ok(s) if !s.log_bin => Err(BINLOG_OFF.into()),
            Ok(s) => match facts.flavor {
                Flavor::MariaDb => s.get("BINLOG_BYTES_WRITTEN").ok_or_else(|| {
                    "the server's status has no Binlog_bytes_written: no binlog rate".to_string()
                }),
                Flavor::MySql => match binlog_sizes(session).await {
                    Ok(b) => Ok(b),
                    Err(e) => Err(figure_error(e, "reading SHOW BINARY LOGS")?),
                },
            },
        };

        let active_sessions = status.as_ref().map_err(Clone::clone).and_then(|s| {
            s.active_sessions()
                .ok_or_else(|| "the server's status has no Threads_running".to_string())
        });
        let table = table_stats(
            facts,
            status.as_ref().map_err(Clone::clone),
            counters,
            size.clone().map(|(_, rows)| rows),
            pacer,
        );
        Ok(Round {
            lock_waits,
            redo_bytes,
            table,
            table_bytes: size.map(|(bytes, _)| bytes),
            active_sessions,
        })
    }
}

impl MetricSource for MySource {
    async fn sample(&mut self) -> DbSample {
        let result = match tokio::time::timeout(self.timeout, self.round()).await {
            Ok(r) => r,
            Err(_) => Err(format!(
                "the sample took longer than {}",
                humantime::format_duration(self.timeout)
            )),
        };
        match result {
            Ok(round) => DbSample {
                lock_waits: round.lock_waits,
                replicas: match tokio::time::timeout(self.timeout, self.replica_lags()).await {
                    Ok(r) => r,
                    Err(_) => {
                        Err("reading the replicas took longer than the sample's bound".into())
                    }
                },
                redo_bytes: round.redo_bytes,
                table: round.table,
                table_bytes: round.table_bytes,
                active_sessions: round.active_sessions,
            },
            Err(message) => {
                // A round cut short leaves the connection mid-statement: start afresh.
                if let Some((s, _)) = self.session.take() {
                    tokio::spawn(s.close());
                }
                DbSample::failed(&message)
            }
        }
    }
}

/// Why there is no binlog rate on a server without a binary log.
const BINLOG_OFF: &str = "the binary log is off on this server (log_bin=OFF): no binlog rate to \
     chart (and no replica can stream from it)";

/// A server error is a gap in the figures of one query (`Ok(why)`); any other error leaves the
/// connection in doubt (`Err`: the round ends).
fn figure_error(e: mysql_async::Error, context: &str) -> Result<String, String> {
    let text = format!("{context}: {}", super::errors::describe(&e));
    match e {
        mysql_async::Error::Server(_) => Ok(text),
        _ => Err(text),
    }
}

fn non_negative(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn missing_table(table: &(String, String)) -> String {
    format!(
        "table {}.{} not found: was it dropped or renamed, or may pacer's user not see it?",
        q(&table.0),
        q(&table.1)
    )
}

/// The server's status figures the sampler reads, in one statement with pacer's running
/// connections counted beside them (so both are of one moment). Parameters: the migration's
/// claim (`GET_LOCK` name) twice. Rows: upper-case name, value.
fn status_sql(flavor: Flavor) -> String {
    let status = match flavor {
        Flavor::MariaDb => {
            "SELECT UPPER(VARIABLE_NAME), VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS \
             WHERE VARIABLE_NAME IN ('THREADS_RUNNING', 'HANDLER_WRITE', 'HANDLER_UPDATE', \
             'HANDLER_DELETE', 'INNODB_HISTORY_LIST_LENGTH', 'BINLOG_BYTES_WRITTEN')"
        }
        Flavor::MySql => {
            "SELECT UPPER(VARIABLE_NAME), VARIABLE_VALUE FROM performance_schema.global_status \
             WHERE VARIABLE_NAME IN ('Threads_running', 'Innodb_rows_inserted', \
             'Innodb_rows_updated', 'Innodb_rows_deleted') \
             UNION ALL SELECT 'INNODB_HISTORY_LIST_LENGTH', COUNT FROM information_schema.INNODB_METRICS \
             WHERE NAME = 'trx_rseg_history_len'"
        }
    };
    format!(
        "{status} \
         UNION ALL SELECT 'PACER_RUNNING', COUNT(*) FROM information_schema.PROCESSLIST \
         WHERE COMMAND <> 'Sleep' AND (ID = CONNECTION_ID() OR ID = IS_USED_LOCK(?) \
         OR INFO LIKE '%/* pacer:%') \
         UNION ALL SELECT 'PACER_MAIN', IS_USED_LOCK(?) \
         UNION ALL SELECT 'LOG_BIN', @@GLOBAL.log_bin"
    )
}

/// One reading of [`status_sql`].
#[derive(Debug, Clone, Default, PartialEq)]
struct Status {
    values: HashMap<String, u64>,
    /// The connection holding the migration's claim: pacer's main connection.
    pacer_main: Option<i64>,
    log_bin: bool,
}

impl Status {
    fn from_rows(rows: impl Iterator<Item = (String, Option<String>)>) -> Status {
        let mut s = Status::default();
        for (name, value) in rows {
            let number = value.as_deref().and_then(|v| v.trim().parse::<u64>().ok());
            match name.as_str() {
                "PACER_MAIN" => s.pacer_main = number.and_then(|n| i64::try_from(n).ok()),
                "LOG_BIN" => s.log_bin = number == Some(1),
                _ => {
                    if let Some(n) = number {
                        s.values.insert(name, n);
                    }
                }
            }
        }
        s
    }

    fn get(&self, name: &str) -> Option<u64> {
        self.values.get(name).copied()
    }

    /// `Threads_running` less pacer's own running connections (the sampler's included).
    fn active_sessions(&self) -> Option<u32> {
        let running = self.get("THREADS_RUNNING")?;
        let pacer = self.get("PACER_RUNNING").unwrap_or(0);
        Some(u32::try_from(running.saturating_sub(pacer)).unwrap_or(u32::MAX))
    }

    /// The server-wide row writes (inserted, updated, deleted) of `flavor`.
    fn server_writes(&self, flavor: Flavor) -> Option<(u64, u64, u64)> {
        let names = match flavor {
            Flavor::MariaDb => ["HANDLER_WRITE", "HANDLER_UPDATE", "HANDLER_DELETE"],
            Flavor::MySql => [
                "INNODB_ROWS_INSERTED",
                "INNODB_ROWS_UPDATED",
                "INNODB_ROWS_DELETED",
            ],
        };
        Some((
            self.get(names[0])?,
            self.get(names[1])?,
            self.get(names[2])?,
        ))
    }
}

/// Which per-table write counters this server keeps, if any.
async fn write_counters(session: &mut Session, flavor: Flavor) -> WriteCounters {
    let yes = |rows: Result<Vec<mysql_async::Row>, _>| {
        rows.ok()
            .and_then(|r| r.first().map(|r| int_at(r, 0) == 1))
            .unwrap_or(false)
    };
    let table_io = yes(session
        .rows_repeating(
            "SELECT @@GLOBAL.performance_schema = 1 \
             AND (SELECT ENABLED FROM performance_schema.setup_instruments \
                  WHERE NAME = 'wait/io/table/sql/handler') = 'YES' \
             AND (SELECT ENABLED FROM performance_schema.setup_consumers \
                  WHERE NAME = 'global_instrumentation') = 'YES'",
            vec![],
            EVERY_CONNECTION,
        )
        .await);
    if table_io {
        return WriteCounters::PerformanceSchema;
    }
    if flavor == Flavor::MariaDb
        && yes(session
            .rows_repeating("SELECT @@GLOBAL.userstat", vec![], EVERY_CONNECTION)
            .await)
    {
        return WriteCounters::UserStatistics;
    }
    WriteCounters::ServerWide
}

/// The table's own write counters (inserted, updated, deleted), None when the server keeps
/// none. A table not in the view has written nothing since the server started (or the view was
/// reset): zeros.
async fn table_counters(
    session: &mut Session,
    writes: WriteCounters,
    table: &(String, String),
) -> Result<Option<(u64, u64, u64)>, mysql_async::Error> {
    let sql = match writes {
        WriteCounters::ServerWide => return Ok(None),
        WriteCounters::PerformanceSchema => {
            "SELECT COUNT_INSERT, COUNT_UPDATE, COUNT_DELETE \
             FROM performance_schema.table_io_waits_summary_by_table \
             WHERE OBJECT_TYPE = 'TABLE' AND OBJECT_SCHEMA = ? AND OBJECT_NAME = ?"
        }
        // Rows changed, all kinds together: counted as updates.
        WriteCounters::UserStatistics => {
            "SELECT 0, ROWS_CHANGED, 0 FROM information_schema.TABLE_STATISTICS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?"
        }
    };
    let rows = session
        .rows_repeating(
            sql,
            vec![Value::from(table.0.clone()), Value::from(table.1.clone())],
            EVERY_ROUND,
        )
        .await?;
    Ok(Some(rows.first().map_or((0, 0, 0), |r| {
        (
            non_negative(int_at(r, 0)),
            non_negative(int_at(r, 1)),
            non_negative(int_at(r, 2)),
        )
    })))
}

/// pacer's own writes so far: its batches' rows, its checkpoints (one row a batch) and its
/// heartbeats, from its state and heartbeat tables (zeros while those do not exist yet).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct PacerWrites {
    batch_rows: u64,
    checkpoints: u64,
    heartbeats: u64,
}

async fn pacer_writes(
    session: &mut Session,
    state: &(String, String),
    job: &str,
) -> Result<PacerWrites, mysql_async::Error> {
    let one_row = |r: Result<Vec<mysql_async::Row>, mysql_async::Error>| match r {
        Ok(rows) => Ok(rows.first().map(|r| (int_at(r, 0), int_at(r, 1)))),
        Err(e) if super::errors::code(&e) == Some(NO_SUCH_TABLE) => Ok(None),
        Err(e) => Err(e),
    };
    let job_param = || vec![Value::from(job.to_string())];
    let batches = one_row(
        session
            .rows_repeating(
                &format!(
                    "SELECT rows_updated, batches FROM {}.{} WHERE job = ?",
                    q(&state.0),
                    q(&state.1)
                ),
                job_param(),
                EVERY_ROUND,
            )
            .await,
    )?;
    let heartbeat = one_row(
        session
            .rows_repeating(
                &format!(
                    "SELECT seq, 0 FROM {} WHERE job = ?",
                    super::lag::heartbeat_table(&state.0)
                ),
                job_param(),
                EVERY_ROUND,
            )
            .await,
    )?;
    let (batch_rows, checkpoints) = batches.unwrap_or((0, 0));
    Ok(PacerWrites {
        batch_rows: non_negative(batch_rows),
        checkpoints: non_negative(checkpoints),
        heartbeats: heartbeat.map_or(0, |(seq, _)| non_negative(seq)),
    })
}

/// The binary logs' sizes together (MySQL: no counter of bytes written).
async fn binlog_sizes(session: &mut Session) -> Result<u64, mysql_async::Error> {
    let rows = session
        .rows_repeating("SHOW BINARY LOGS", vec![], EVERY_ROUND)
        .await?;
    Ok(rows.iter().map(|r| non_negative(int_at(r, 1))).sum())
}

/// The table figure from its parts: the write counters (the table's, else the server's from
/// the status), the history list length (from the status), the row estimate, pacer's writes.
fn table_stats(
    facts: ServerFacts,
    status: Result<&Status, String>,
    counters: Result<Option<(u64, u64, u64)>, String>,
    live_rows: Result<u64, String>,
    pacer: Result<Option<PacerWrites>, String>,
) -> Result<TableStats, String> {
    let status = status?;
    let dead_rows = status
        .get("INNODB_HISTORY_LIST_LENGTH")
        .ok_or("the server reports no InnoDB history list length")?;
    let (per_table, (ins, upd, del)) = match counters? {
        Some(c) => (true, c),
        None => (
            false,
            status
                .server_writes(facts.flavor)
                .ok_or("the server's status has no row-write counters")?,
        ),
    };
    let pacer_writes = pacer?.map(|p| {
        if per_table {
            p.batch_rows
        } else {
            // Server-wide, pacer's checkpoint and heartbeat rows are in the counters too.
            p.batch_rows + p.checkpoints + p.heartbeats
        }
    });
    Ok(TableStats {
        n_tup_ins: ins,
        n_tup_upd: upd,
        n_tup_hot_upd: 0,
        n_tup_del: del,
        // Counted when each statement runs: pacer's rows are in as soon as its batch commits.
        pacer_flushed: true,
        server_wide: !per_table,
        pacer_writes,
        dead_rows,
        live_tuples: live_rows.unwrap_or(0),
        maintenance: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(pairs: &[(&str, Option<&str>)]) -> Status {
        Status::from_rows(
            pairs
                .iter()
                .map(|(n, v)| (n.to_string(), v.map(str::to_string))),
        )
    }

    fn facts(flavor: Flavor) -> ServerFacts {
        ServerFacts {
            flavor,
            mdl_view: MdlView::None,
            writes: WriteCounters::ServerWide,
        }
    }

    #[test]
    fn threads_running_leaves_out_pacer_s_own_running_connections() {
        let s = status(&[
            ("THREADS_RUNNING", Some("7")),
            ("PACER_RUNNING", Some("2")),
            ("PACER_MAIN", Some("41")),
            ("LOG_BIN", Some("1")),
        ]);
        assert_eq!(s.active_sessions(), Some(5));
        assert_eq!(s.pacer_main, Some(41));
        assert!(s.log_bin);
        let unclaimed = status(&[("PACER_MAIN", None), ("LOG_BIN", Some("0"))]);
        assert_eq!(unclaimed.pacer_main, None);
        assert!(!unclaimed.log_bin);
        assert_eq!(unclaimed.active_sessions(), None, "unknown, never 0");
    }

    #[test]
    fn server_wide_writes_take_out_pacer_s_rows_checkpoints_and_heartbeats() {
        let s = status(&[
            ("HANDLER_WRITE", Some("10")),
            ("HANDLER_UPDATE", Some("5000")),
            ("HANDLER_DELETE", Some("2")),
            ("INNODB_HISTORY_LIST_LENGTH", Some("321")),
        ]);
        let pacer = PacerWrites {
            batch_rows: 4000,
            checkpoints: 4,
            heartbeats: 50,
        };
        let t = table_stats(
            facts(Flavor::MariaDb),
            Ok(&s),
            Ok(None),
            Ok(1_000_000),
            Ok(Some(pacer)),
        )
        .unwrap();
        assert!(t.server_wide && t.pacer_flushed);
        assert_eq!((t.n_tup_ins, t.n_tup_upd, t.n_tup_del), (10, 5000, 2));
        assert_eq!(t.pacer_writes, Some(4054));
        assert_eq!((t.dead_rows, t.live_tuples), (321, 1_000_000));

        // Per table: only the batches' rows are pacer's on this table.
        let t = table_stats(
            facts(Flavor::MariaDb),
            Ok(&s),
            Ok(Some((1, 4100, 0))),
            Ok(1),
            Ok(Some(pacer)),
        )
        .unwrap();
        assert!(!t.server_wide);
        assert_eq!(t.pacer_writes, Some(4000));
    }

    #[test]
    fn a_missing_counter_is_a_gap_never_a_zero() {
        let s = status(&[("HANDLER_WRITE", Some("10"))]);
        let err = table_stats(facts(Flavor::MariaDb), Ok(&s), Ok(None), Ok(0), Ok(None));
        assert_eq!(
            err.unwrap_err(),
            "the server reports no InnoDB history list length"
        );
        let s = status(&[("INNODB_HISTORY_LIST_LENGTH", Some("3"))]);
        let err = table_stats(facts(Flavor::MySql), Ok(&s), Ok(None), Ok(0), Ok(None));
        assert_eq!(
            err.unwrap_err(),
            "the server's status has no row-write counters"
        );
        let err = table_stats(
            facts(Flavor::MariaDb),
            Err("status failed".into()),
            Ok(None),
            Ok(0),
            Ok(None),
        );
        assert_eq!(err.unwrap_err(), "status failed");
    }

    #[test]
    fn each_flavor_reads_its_own_status_table_with_the_claim_twice() {
        let maria = status_sql(Flavor::MariaDb);
        assert!(maria.contains("information_schema.GLOBAL_STATUS"));
        assert!(maria.contains("BINLOG_BYTES_WRITTEN") && maria.contains("HANDLER_UPDATE"));
        let mysql = status_sql(Flavor::MySql);
        assert!(mysql.contains("performance_schema.global_status"));
        assert!(mysql.contains("trx_rseg_history_len") && mysql.contains("Innodb_rows_updated"));
        for sql in [maria, mysql] {
            assert_eq!(sql.matches('?').count(), 2, "{sql}");
            assert!(sql.contains("IS_USED_LOCK(?)") && sql.contains("@@GLOBAL.log_bin"));
        }
    }
}
