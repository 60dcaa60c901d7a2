//! Who waits for a lock on the table, and who blocks each waiter, on MySQL/MariaDB: the SQL
//! the sampler runs every interval and how its rows become [`LockWaits`].
//!
//! - **Metadata-lock waiters** are the process list's sessions in state `Waiting for table
//!   metadata lock` whose statement names the table (the process list does not say which
//!   table a session waits for). Their blockers are the sessions holding a metadata lock on
//!   the table ([`super::blockers`]: `METADATA_LOCK_INFO` or `performance_schema.metadata_locks`;
//!   without either, every open transaction, named as a candidate). A query queued behind a
//!   waiting ALTER lists the ALTER among its blockers (it holds the table's upgradable lock):
//!   the "soft block" PostgreSQL's `pg_blocking_pids` reports too.
//! - **Row-lock waiters** are InnoDB transactions waiting for a row lock on the table, each
//!   with the transaction holding it: MariaDB `INNODB_LOCK_WAITS` ⨝ `INNODB_TRX` ⨝
//!   `INNODB_LOCKS`; MySQL 8 `performance_schema.data_lock_waits` ⨝ `data_locks` (written from
//!   the manual; MySQL 8 dropped the `INNODB_LOCK*` tables).
//!
//! pacer's own sessions are flagged (listed, not counted): a statement carrying pacer's tag,
//! or the connection holding the migration's claim (`IS_USED_LOCK`), which is pacer's main
//! connection even between statements, when the process list shows no statement for it.

use mysql_async::{Row, Value};

use super::blockers::{MdlView, is_pacer, lock_holders};
use super::session::{Session, float_at, int_at, text_at};
use super::sql::Flavor;
use crate::sampler::{LockWait, LockWaits};
use crate::target::Blocker;
use crate::target::postgres::redact_query;

/// How often the lock-wait queries run, in the audit log.
const EVERY_ROUND: &str = "every sample interval";

/// What a row of [`lock_waits_sql`] is about.
const METADATA: &str = "metadata";

/// Columns: 0 waiter id, 1 user, 2 host, 3 waited (s), 4 query, 5 kind (`metadata`, `row`),
/// then the blocker's 6 id, 7 user, 8 host, 9 transaction age (s), 10 query, 11 command
/// (NULL blocker columns for a metadata-lock waiter: its blockers come from another query).
/// Parameters: the table's name (for the statement text), then the table as the row-lock view
/// names it (MariaDB: `` `db`.`t` ``; MySQL: schema and name).
pub fn lock_waits_sql(flavor: Flavor) -> String {
    let (waited, rows) = match flavor {
        // MariaDB's process list has TIME_MS; MySQL's TIME is whole seconds.
        Flavor::MariaDb => (
            "p.TIME_MS / 1000",
            "FROM information_schema.INNODB_LOCK_WAITS w \
             JOIN information_schema.INNODB_TRX r ON r.trx_id = w.requesting_trx_id \
             JOIN information_schema.INNODB_TRX b ON b.trx_id = w.blocking_trx_id \
             JOIN information_schema.INNODB_LOCKS l ON l.lock_id = w.requested_lock_id \
             LEFT JOIN information_schema.PROCESSLIST rp ON rp.ID = r.trx_mysql_thread_id \
             LEFT JOIN information_schema.PROCESSLIST bp ON bp.ID = b.trx_mysql_thread_id \
             WHERE l.lock_table = ?",
        ),
        Flavor::MySql => (
            "p.TIME",
            "FROM performance_schema.data_lock_waits w \
             JOIN information_schema.INNODB_TRX r ON r.trx_id = w.REQUESTING_ENGINE_TRANSACTION_ID \
             JOIN information_schema.INNODB_TRX b ON b.trx_id = w.BLOCKING_ENGINE_TRANSACTION_ID \
             JOIN performance_schema.data_locks l ON l.ENGINE_LOCK_ID = w.REQUESTING_ENGINE_LOCK_ID \
             LEFT JOIN information_schema.PROCESSLIST rp ON rp.ID = r.trx_mysql_thread_id \
             LEFT JOIN information_schema.PROCESSLIST bp ON bp.ID = b.trx_mysql_thread_id \
             WHERE CONCAT(l.OBJECT_SCHEMA, '.', l.OBJECT_NAME) = ?",
        ),
    };
    format!(
        "SELECT p.ID, p.USER, p.HOST, {waited}, LEFT(COALESCE(p.INFO, ''), 300), '{METADATA}', \
         NULL, NULL, NULL, NULL, NULL, NULL FROM information_schema.PROCESSLIST p \
         WHERE p.STATE = 'Waiting for table metadata lock' AND p.ID <> CONNECTION_ID() \
         AND p.INFO LIKE CONCAT('%', ?, '%') \
         UNION ALL \
         SELECT r.trx_mysql_thread_id, rp.USER, rp.HOST, \
         TIMESTAMPDIFF(MICROSECOND, r.trx_wait_started, NOW(6)) / 1000000, \
         LEFT(COALESCE(r.trx_query, ''), 300), 'row', b.trx_mysql_thread_id, bp.USER, bp.HOST, \
         TIMESTAMPDIFF(MICROSECOND, b.trx_started, NOW(6)) / 1000000, \
         LEFT(COALESCE(b.trx_query, bp.INFO, ''), 300), bp.COMMAND {rows}"
    )
}

/// The table as the row-lock view of `flavor` names it.
pub fn row_lock_table(flavor: Flavor, table: &(String, String)) -> String {
    match flavor {
        Flavor::MariaDb => format!(
            "`{}`.`{}`",
            table.0.replace('`', "``"),
            table.1.replace('`', "``")
        ),
        Flavor::MySql => format!("{}.{}", table.0, table.1),
    }
}

/// Reads the lock waits on `table`, on the sampler's `session`; `pacer_main` is the connection
/// holding the migration's claim, if any.
pub async fn read(
    session: &mut Session,
    flavor: Flavor,
    view: MdlView,
    table: &(String, String),
    pacer_main: Option<i64>,
) -> Result<LockWaits, mysql_async::Error> {
    let rows = session
        .rows_repeating(
            &lock_waits_sql(flavor),
            vec![
                Value::from(table.1.clone()),
                Value::from(row_lock_table(flavor, table)),
            ],
            EVERY_ROUND,
        )
        .await?;
    let mut waits = waits_from_rows(&rows, pacer_main);
    if waits.iter().any(|(kind, _)| kind == METADATA) {
        // Pass 0 as "pacer's main connection" so that pacer's own holders are listed (flagged)
        // rather than left out: an application query may queue behind pacer's ALTER.
        let holders = lock_holders(session, view, table, 0, true).await?;
        for (_, w) in waits.iter_mut().filter(|(kind, _)| kind == METADATA) {
            w.blockers = holders
                .iter()
                .filter(|b| b.pid != w.pid)
                .cloned()
                .map(|b| flag_pacer(b, pacer_main))
                .collect();
        }
    }
    let mut waits: Vec<LockWait> = waits.into_iter().map(|(_, w)| w).collect();
    waits.sort_by(|a, b| b.wait_s.total_cmp(&a.wait_s));
    Ok(LockWaits::from_waits(waits))
}

fn flag_pacer(mut b: Blocker, pacer_main: Option<i64>) -> Blocker {
    b.pacer |= pacer_main == Some(b.pid);
    b
}

/// Groups rows of [`lock_waits_sql`] (one per waiter and blocker) by waiter and kind.
fn waits_from_rows(rows: &[Row], pacer_main: Option<i64>) -> Vec<(String, LockWait)> {
    let mut out: Vec<(String, LockWait)> = Vec::new();
    for r in rows {
        let pid = int_at(r, 0);
        let kind = text_at(r, 5).unwrap_or_default();
        let idx = match out.iter().position(|(k, w)| *k == kind && w.pid == pid) {
            Some(i) => i,
            None => {
                let query = text_at(r, 4).unwrap_or_default();
                out.push((
                    kind.clone(),
                    LockWait {
                        pid,
                        application: format!("from {}", text_at(r, 2).unwrap_or_default()),
                        wait_s: float_at(r, 3).unwrap_or(0.0).max(0.0),
                        pacer: is_pacer(&query) || pacer_main == Some(pid),
                        blockers: Vec::new(),
                    },
                ));
                out.len() - 1
            }
        };
        let Some(blocker) = text_at(r, 6).and_then(|id| id.parse::<i64>().ok()) else {
            continue;
        };
        if out[idx].1.blockers.iter().any(|b| b.pid == blocker) {
            continue;
        }
        let query = text_at(r, 10).unwrap_or_default();
        let command = text_at(r, 11).unwrap_or_default();
        out[idx].1.blockers.push(Blocker {
            pid: blocker,
            application: format!("from {}", text_at(r, 8).unwrap_or_default()),
            user: text_at(r, 7).unwrap_or_default(),
            state: row_holder_state(&command),
            xact_age_s: float_at(r, 9),
            pacer: is_pacer(&query) || pacer_main == Some(blocker),
            query: redact_query(&query),
            family: crate::target::family::Family::MySql,
        });
    }
    out
}

/// A row lock's holder in words: an idle one is a transaction left open, the usual culprit.
fn row_holder_state(command: &str) -> String {
    match command {
        "Sleep" => "idle in transaction, holds the row lock".into(),
        "" => "holds the row lock".into(),
        c => format!("{c}, holds the row lock"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_flavor_reads_row_locks_from_its_own_views() {
        let maria = lock_waits_sql(Flavor::MariaDb);
        assert!(maria.contains("INNODB_LOCK_WAITS") && maria.contains("TIME_MS"));
        assert!(!maria.contains("data_lock_waits"));
        let mysql = lock_waits_sql(Flavor::MySql);
        assert!(mysql.contains("performance_schema.data_lock_waits"));
        assert!(!mysql.contains("INNODB_LOCKS") && !mysql.contains("TIME_MS"));
        for sql in [maria, mysql] {
            assert_eq!(sql.matches('?').count(), 2, "{sql}");
        }
        let t = ("shop".to_string(), "or`ders".to_string());
        assert_eq!(row_lock_table(Flavor::MariaDb, &t), "`shop`.`or``ders`");
        assert_eq!(row_lock_table(Flavor::MySql, &t), "shop.or`ders");
    }

    #[test]
    fn an_idle_holder_reads_as_a_transaction_left_open() {
        assert_eq!(
            row_holder_state("Sleep"),
            "idle in transaction, holds the row lock"
        );
        assert_eq!(row_holder_state("Query"), "Query, holds the row lock");
        assert_eq!(row_holder_state(""), "holds the row lock");
    }
}
