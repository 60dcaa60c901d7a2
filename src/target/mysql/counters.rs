//! The server's counters the MySQL/MariaDB sampler reads, and how they become its figures:
//! the status variables (threads running, server-wide row writes, the history list, binlog
//! bytes) read with pacer's own running connections in one statement, the table's own write
//! counters where the server keeps them, and pacer's own writes from its state and heartbeat
//! tables (see [`super::sampler`] for which figure comes from where, and why).

use std::collections::HashMap;

use mysql_async::Value;

use super::session::{Session, int_at};
use super::sql::{Flavor, q};
use crate::sampler::TableStats;

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

/// The server's status figures the sampler reads, in one statement with pacer's running
/// connections counted beside them (so both are of one moment). Parameters: the migration's
/// claim (`GET_LOCK` name) twice. Rows: upper-case name, value.
pub(super) fn status_sql(flavor: Flavor) -> String {
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
pub(super) struct Status {
    values: HashMap<String, u64>,
    /// The connection holding the migration's claim: pacer's main connection.
    pub(super) pacer_main: Option<i64>,
    pub(super) log_bin: bool,
}

impl Status {
    pub(super) fn from_rows(rows: impl Iterator<Item = (String, Option<String>)>) -> Status {
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

    pub(super) fn get(&self, name: &str) -> Option<u64> {
        self.values.get(name).copied()
    }

    /// `Threads_running` less pacer's own running connections (the sampler's included).
    pub(super) fn active_sessions(&self) -> Option<u32> {
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
pub(super) async fn write_counters(session: &mut Session, flavor: Flavor) -> WriteCounters {
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
pub(super) async fn table_counters(
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
pub(super) struct PacerWrites {
    batch_rows: u64,
    checkpoints: u64,
    heartbeats: u64,
}

pub(super) async fn pacer_writes(
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
pub(super) async fn binlog_sizes(session: &mut Session) -> Result<u64, mysql_async::Error> {
    let rows = session
        .rows_repeating("SHOW BINARY LOGS", vec![], EVERY_ROUND)
        .await?;
    Ok(rows.iter().map(|r| non_negative(int_at(r, 1))).sum())
}

/// The table figure from its parts: the write counters (the table's, else the server's from
/// the status), the history list length (from the status), the row estimate, pacer's writes.
pub(super) fn table_stats(
    flavor: Flavor,
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
                .server_writes(flavor)
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

fn non_negative(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
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
            Flavor::MariaDb,
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
            Flavor::MariaDb,
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
        let err = table_stats(Flavor::MariaDb, Ok(&s), Ok(None), Ok(0), Ok(None));
        assert_eq!(
            err.unwrap_err(),
            "the server reports no InnoDB history list length"
        );
        let s = status(&[("INNODB_HISTORY_LIST_LENGTH", Some("3"))]);
        let err = table_stats(Flavor::MySql, Ok(&s), Ok(None), Ok(0), Ok(None));
        assert_eq!(
            err.unwrap_err(),
            "the server's status has no row-write counters"
        );
        let err = table_stats(
            Flavor::MariaDb,
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
