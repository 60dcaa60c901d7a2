//! Who holds pacer's DDL up on MySQL/MariaDB: the connections that hold a metadata lock on the
//! table (an ALTER waits for every one of them, and every later query on the table queues
//! behind the ALTER), and the long holders a DDL should not queue behind at all.
//!
//! Granted metadata locks are visible through MariaDB's `METADATA_LOCK_INFO` plugin or
//! `performance_schema.metadata_locks` (MySQL 8; MariaDB with performance_schema on). Without
//! either, the open transactions of other connections are named instead, as candidates: one
//! of them holds the lock, and pacer cannot tell which.

use std::time::Duration;

use mysql_async::{Row, Value};

use super::MySql;
use super::session::{Session, float_at, int_at, text_at};
use crate::target::{Blocker, TargetError};

/// How this server shows metadata locks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MdlView {
    /// `information_schema.METADATA_LOCK_INFO` (MariaDB plugin).
    Plugin,
    /// `performance_schema.metadata_locks`.
    PerformanceSchema,
    /// Neither: open transactions are named as candidates.
    None,
}

/// Columns every blocker query returns: id, user, host, command, state, age of its
/// transaction (s), time in its state (s), query.
const COLUMNS: &str = "p.ID, p.USER, p.HOST, p.COMMAND, COALESCE(p.STATE, ''), \
     TIMESTAMPDIFF(MICROSECOND, t.trx_started, NOW(6)) / 1000000, p.TIME, LEFT(COALESCE(p.INFO, ''), 300)";

fn holders_sql(view: MdlView) -> String {
    match view {
        MdlView::Plugin => format!(
            "SELECT DISTINCT {COLUMNS} FROM information_schema.METADATA_LOCK_INFO m \
             JOIN information_schema.PROCESSLIST p ON p.ID = m.THREAD_ID \
             LEFT JOIN information_schema.INNODB_TRX t ON t.trx_mysql_thread_id = p.ID \
             WHERE m.TABLE_SCHEMA = ? AND m.TABLE_NAME = ? AND p.ID <> CONNECTION_ID() AND p.ID <> ? \
             ORDER BY t.trx_started"
        ),
        MdlView::PerformanceSchema => format!(
            "SELECT DISTINCT {COLUMNS} FROM performance_schema.metadata_locks m \
             JOIN performance_schema.threads th ON th.THREAD_ID = m.OWNER_THREAD_ID \
             JOIN information_schema.PROCESSLIST p ON p.ID = th.PROCESSLIST_ID \
             LEFT JOIN information_schema.INNODB_TRX t ON t.trx_mysql_thread_id = p.ID \
             WHERE m.OBJECT_TYPE = 'TABLE' AND m.OBJECT_SCHEMA = ? AND m.OBJECT_NAME = ? \
             AND m.LOCK_STATUS = 'GRANTED' AND p.ID <> CONNECTION_ID() AND p.ID <> ? \
             ORDER BY t.trx_started"
        ),
        MdlView::None => format!(
            "SELECT {COLUMNS} FROM information_schema.INNODB_TRX t \
             JOIN information_schema.PROCESSLIST p ON p.ID = t.trx_mysql_thread_id \
             WHERE ? IS NOT NULL AND ? IS NOT NULL AND p.ID <> CONNECTION_ID() AND p.ID <> ? \
             ORDER BY t.trx_started"
        ),
    }
}

/// How often the blocker watch runs, in the audit log (which records it once per session).
const WATCH_REPEATS: &str = "every 150 ms while a DDL statement waits";

/// Reads a row of [`COLUMNS`].
fn blocker_from_row(r: &Row, view: MdlView) -> Blocker {
    let query = text_at(r, 7).unwrap_or_default();
    let state = text_at(r, 4).unwrap_or_default();
    let command = text_at(r, 3).unwrap_or_default();
    let xact_age_s = float_at(r, 5);
    let mut described = if state.is_empty() {
        command.clone()
    } else {
        format!("{command}, {state}")
    };
    if view == MdlView::None {
        described.push_str(", open transaction: may hold the table's metadata lock");
    }
    Blocker {
        pid: int_at(r, 0),
        application: format!("from {}", text_at(r, 2).unwrap_or_default()),
        user: text_at(r, 1).unwrap_or_default(),
        state: described,
        xact_age_s,
        pacer: is_pacer(&query),
        query: crate::target::postgres::redact_query(&query),
        family: crate::target::family::Family::MySql,
    }
}

/// Whether a statement is one of pacer's (its comment tag).
pub fn is_pacer(query: &str) -> bool {
    query.contains("/* pacer:")
}

/// Connections holding a metadata lock on `(database, table)` (or, without a view of
/// metadata locks, other connections' open transactions), read on `observer`.
pub(super) async fn lock_holders(
    observer: &mut Session,
    view: MdlView,
    table: &(String, String),
    main_id: u32,
    repeating: bool,
) -> Result<Vec<Blocker>, mysql_async::Error> {
    let repeats = repeating.then_some(WATCH_REPEATS);
    lock_holders_repeating(observer, view, table, main_id, repeats).await
}

/// [`lock_holders`], audited as running as often as `repeats` says (once per session), or at
/// every call when None.
pub(super) async fn lock_holders_repeating(
    observer: &mut Session,
    view: MdlView,
    table: &(String, String),
    main_id: u32,
    repeats: Option<&'static str>,
) -> Result<Vec<Blocker>, mysql_async::Error> {
    let params = vec![
        Value::from(table.0.clone()),
        Value::from(table.1.clone()),
        Value::from(main_id),
    ];
    let sql = holders_sql(view);
    let rows = match repeats {
        Some(repeats) => observer.rows_repeating(&sql, params, repeats).await?,
        None => observer.rows(&sql, params).await?,
    };
    Ok(rows.iter().map(|r| blocker_from_row(r, view)).collect())
}

/// How the server `session` is connected to shows metadata locks: the plugin when it is
/// active, else `performance_schema` when it is on and instruments metadata locks. A failed
/// look finds neither.
pub(super) async fn mdl_view_of(session: &mut Session) -> MdlView {
    let plugin = session
        .rows(
            "SELECT COUNT(*) FROM information_schema.PLUGINS WHERE PLUGIN_NAME = 'METADATA_LOCK_INFO' \
             AND PLUGIN_STATUS = 'ACTIVE'",
            vec![],
        )
        .await
        .ok()
        .and_then(|r| r.first().map(|r| int_at(r, 0) > 0))
        .unwrap_or(false);
    if plugin {
        return MdlView::Plugin;
    }
    let ps = session
        .rows(
            "SELECT ENABLED FROM performance_schema.setup_instruments WHERE NAME = 'wait/lock/metadata/sql/mdl' \
             AND @@GLOBAL.performance_schema = 1",
            vec![],
        )
        .await
        .ok()
        .and_then(|r| r.first().and_then(|r| text_at(r, 0)))
        .is_some_and(|e| e.eq_ignore_ascii_case("YES"));
    if ps {
        MdlView::PerformanceSchema
    } else {
        MdlView::None
    }
}

impl MySql {
    /// Connections that hold a metadata lock on the table and will likely keep it: in a
    /// transaction (or a statement) older than `lock_timeout`. The DDL would only time out
    /// behind them, after blocking the application as long. Only where metadata locks can be
    /// seen; elsewhere the DDL's own bounded wait is the guard. A failed read finds none.
    pub(super) async fn long_lock_holders(&mut self, lock_timeout: Duration) -> Vec<Blocker> {
        let view = self.mdl_view;
        if view == MdlView::None {
            return Vec::new();
        }
        let table = (self.database.clone(), self.plan.table.name.clone());
        let main_id = self.connection_id;
        let Some(observer) = self.observer().await else {
            return Vec::new();
        };
        let secs = lock_timeout.as_secs_f64();
        match lock_holders(observer, view, &table, main_id, false).await {
            Ok(holders) => holders
                .into_iter()
                .filter(|b| !b.pacer)
                .filter(|b| b.xact_age_s.is_some_and(|a| a > secs))
                .collect(),
            Err(e) => {
                tracing::warn!(
                    "looking for connections holding a metadata lock on {}.{} failed: {e}",
                    table.0,
                    table.1
                );
                Vec::new()
            }
        }
    }
}

/// Puts the blockers seen while a DDL waited into its lock timeout.
pub(super) fn with_blockers(error: TargetError, seen: Vec<Blocker>) -> TargetError {
    match error {
        TargetError::LockTimeout {
            detail, skipped, ..
        } => TargetError::LockTimeout {
            blockers: seen,
            detail,
            skipped,
        },
        other => other,
    }
}
