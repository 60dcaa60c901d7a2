//! What the sampler reads from MySQL/MariaDB, on a connection of its own: the sessions waiting
//! for a lock on the table (metadata-lock waiters from the process list, InnoDB row-lock
//! waiters with the transaction that blocks each), and the table's size.
//!
//! Replica lag (a heartbeat), the binlog rate and the table's write counters are not sampled on
//! this family yet: those figures are reported as not sampled (a gap on the chart, never a
//! zero), and the plan keys that would need them are refused before anything runs.

use std::time::Duration;

use mysql_async::Value;

use super::connect::MyTarget;
use super::session::{Session, float_at, int_at, text_at};
use crate::audit::Audit;
use crate::sampler::{DbSample, LockWait, LockWaits, MetricSource, ReplicaLag};
use crate::target::Blocker;

/// Why a figure has no value on this family yet.
pub const NOT_SAMPLED: &str = "not sampled on MySQL/MariaDB by this version of pacer";

/// How often the sampling queries run, in the audit log.
const EVERY_ROUND: &str = "every sample interval";

/// Sessions waiting for the table's metadata lock (the process list does not name the table a
/// waiter waits for: its statement text does) and InnoDB row-lock waits on the table, each
/// with how long it has waited and, for row locks, who blocks it.
const LOCK_WAITS_SQL: &str = "SELECT p.ID, p.USER, p.HOST, p.TIME_MS / 1000, LEFT(COALESCE(p.INFO, ''), 300), \
     NULL, NULL, NULL, NULL, NULL FROM information_schema.PROCESSLIST p \
     WHERE p.STATE = 'Waiting for table metadata lock' AND p.ID <> CONNECTION_ID() \
     AND p.INFO LIKE CONCAT('%', ?, '%') \
     UNION ALL \
     SELECT r.trx_mysql_thread_id, rp.USER, rp.HOST, TIMESTAMPDIFF(MICROSECOND, r.trx_wait_started, NOW(6)) / 1000000, \
     LEFT(COALESCE(r.trx_query, ''), 300), b.trx_mysql_thread_id, bp.USER, bp.HOST, \
     TIMESTAMPDIFF(MICROSECOND, b.trx_started, NOW(6)) / 1000000, LEFT(COALESCE(b.trx_query, bp.INFO, ''), 300) \
     FROM information_schema.INNODB_LOCK_WAITS w \
     JOIN information_schema.INNODB_TRX r ON r.trx_id = w.requesting_trx_id \
     JOIN information_schema.INNODB_TRX b ON b.trx_id = w.blocking_trx_id \
     JOIN information_schema.INNODB_LOCKS l ON l.lock_id = w.requested_lock_id \
     LEFT JOIN information_schema.PROCESSLIST rp ON rp.ID = r.trx_mysql_thread_id \
     LEFT JOIN information_schema.PROCESSLIST bp ON bp.ID = b.trx_mysql_thread_id \
     WHERE l.lock_table = ?";

/// The table's size: InnoDB's data and index pages.
const TABLE_BYTES_SQL: &str =
    "SELECT DATA_LENGTH FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?";

/// The sampler's view of one MySQL/MariaDB migration.
pub struct MySource {
    conn: MyTarget,
    job: String,
    table: (String, String),
    timeout: Duration,
    audit: Audit,
    session: Option<Session>,
    replicas: Option<super::lag::Replicas>,
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

    /// Each replica's lag (on the sampler's own connections).
    async fn replica_lags(&mut self) -> Result<Vec<ReplicaLag>, String> {
        let (Some(session), Some(replicas)) = (self.session.as_mut(), self.replicas.as_mut())
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

    async fn round(&mut self) -> Result<(LockWaits, u64), String> {
        if self.session.is_none() {
            let mut name = format!("pacer-sampler:{}", self.job);
            while name.len() > 64 {
                name.pop();
            }
            let conn = self.conn.connect(&name).await.map_err(|e| e.to_string())?;
            self.session = Some(Session::new(conn, "sampler", &self.job, self.audit.clone()));
        }
        let session = self.session.as_mut().expect("connected above");
        let quoted_table = format!(
            "`{}`.`{}`",
            self.table.0.replace('`', "``"),
            self.table.1.replace('`', "``")
        );
        let rows = session
            .rows_repeating(
                LOCK_WAITS_SQL,
                vec![Value::from(self.table.1.clone()), Value::from(quoted_table)],
                EVERY_ROUND,
            )
            .await
            .map_err(|e| super::errors::describe(&e))?;
        let waits = rows
            .iter()
            .map(|r| {
                let query = text_at(r, 4).unwrap_or_default();
                let blockers = text_at(r, 5)
                    .map(|id| {
                        let q = text_at(r, 9).unwrap_or_default();
                        vec![Blocker {
                            pid: id.parse().unwrap_or(0),
                            application: format!("from {}", text_at(r, 7).unwrap_or_default()),
                            user: text_at(r, 6).unwrap_or_default(),
                            state: "holds a row lock".into(),
                            xact_age_s: float_at(r, 8),
                            pacer: super::blockers::is_pacer(&q),
                            query: crate::target::postgres::redact_query(&q),
                        }]
                    })
                    .unwrap_or_default();
                LockWait {
                    pid: int_at(r, 0),
                    application: format!("from {}", text_at(r, 2).unwrap_or_default()),
                    wait_s: float_at(r, 3).unwrap_or(0.0),
                    pacer: super::blockers::is_pacer(&query),
                    blockers,
                }
            })
            .collect();
        let bytes = session
            .rows_repeating(
                TABLE_BYTES_SQL,
                vec![
                    Value::from(self.table.0.clone()),
                    Value::from(self.table.1.clone()),
                ],
                EVERY_ROUND,
            )
            .await
            .map_err(|e| super::errors::describe(&e))?
            .first()
            .map_or(0, |r| int_at(r, 0).max(0) as u64);
        Ok((LockWaits::from_waits(waits), bytes))
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
            Ok((lock_waits, table_bytes)) => DbSample {
                lock_waits: Ok(lock_waits),
                replicas: match tokio::time::timeout(self.timeout, self.replica_lags()).await {
                    Ok(r) => r,
                    Err(_) => {
                        Err("reading the replicas took longer than the sample's bound".into())
                    }
                },
                redo_bytes: Err(NOT_SAMPLED.into()),
                table: Err(NOT_SAMPLED.into()),
                table_bytes: Ok(table_bytes),
            },
            Err(message) => {
                // A round cut short leaves the connection mid-statement: start afresh.
                if let Some(s) = self.session.take() {
                    tokio::spawn(s.close());
                }
                DbSample::failed(&message)
            }
        }
    }
}
