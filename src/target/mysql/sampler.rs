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

use std::time::Duration;

use mysql_async::Value;

use super::blockers::{MdlView, mdl_view_of};
use super::connect::MyTarget;
use super::counters::{
    Status, WriteCounters, binlog_sizes, pacer_writes, status_sql, table_counters, table_stats,
    write_counters,
};
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
            facts.flavor,
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
