//! Who blocks pacer's DDL: the sessions a DDL waits for (polled while it waits, so a lock
//! timeout can name them), and the long lock holders a DDL should not queue behind at all.

use std::time::Duration;

use tokio_postgres::Row;

use super::Postgres;
use super::session::Session;
use crate::target::{Blocker, TargetError};

impl Postgres {
    /// Sessions that hold a lock on the table and will likely keep it: autovacuum (which yields
    /// to a waiting DDL only after `deadlock_timeout`, 1 s by default, while every query on
    /// the table queues behind the DDL) and transactions older than `lock_timeout` (the DDL
    /// would only time out behind them, after blocking the application as long). Read on the
    /// observer session; a failed read finds none (the DDL's own lock_timeout still bounds it).
    pub(super) async fn long_lock_holders(&self, lock_timeout: Duration) -> Vec<Blocker> {
        let Some(observer) = self.observer.as_ref() else {
            return Vec::new();
        };
        let table = self.plan.table.quoted();
        let secs = lock_timeout.as_secs_f64();
        match observer.query(LOCK_HOLDERS_SQL, &[&table, &secs]).await {
            Ok(rows) => rows.iter().map(blocker_from_row).collect(),
            Err(e) => {
                tracing::warn!("looking for sessions holding a lock on {table} failed: {e}");
                Vec::new()
            }
        }
    }
}

/// What to do about the long lock holders found just before a DDL step.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum InTheWay {
    /// None: send the step.
    Clear,
    /// Only ordinary autovacuums (these pids): cancel them, then send the step. PostgreSQL
    /// itself cancels such an autovacuum once a conflicting lock request has waited
    /// `deadlock_timeout`; cancelling it first saves the table's queries that wait, queued
    /// behind the DDL, meanwhile.
    CancelAutovacuum(Vec<i64>),
    /// Do not send the step (why, as the lock timeout's detail).
    Wait(String),
}

/// An autovacuum PostgreSQL would cancel for a conflicting lock: any but the anti-wraparound
/// kind (`autovacuum: VACUUM public.t (to prevent wraparound)`), which it never cancels.
pub(super) fn is_ordinary_autovacuum(b: &Blocker) -> bool {
    b.application == "autovacuum worker" && !b.query.contains("to prevent wraparound")
}

/// Decides, from the long lock holders of the table, whether a DDL step goes ahead.
pub(super) fn in_the_way(holders: &[Blocker], table: &str, cancel_autovacuum: bool) -> InTheWay {
    if holders.is_empty() {
        return InTheWay::Clear;
    }
    let who = if holders.len() == 1 {
        "a session".to_string()
    } else {
        format!("{} sessions", holders.len())
    };
    let them = if holders.len() == 1 { "it" } else { "them" };
    if holders.iter().all(is_ordinary_autovacuum) {
        if cancel_autovacuum {
            return InTheWay::CancelAutovacuum(holders.iter().map(|b| b.pid).collect());
        }
        return InTheWay::Wait(format!(
            "not attempted: autovacuum held a lock on {table}, and the plan says              cancel_autovacuum = false; the DDL would queue behind {them} and every query on              the table behind the DDL. pacer waits for {them} to finish"
        ));
    }
    let why = if holders
        .iter()
        .any(|b| b.application == "autovacuum worker" && !is_ordinary_autovacuum(b))
    {
        "(an anti-wraparound autovacuum, which PostgreSQL does not cancel for a DDL, or a          transaction older than lock_timeout)"
    } else {
        "in a transaction older than lock_timeout"
    };
    InTheWay::Wait(format!(
        "not attempted: {who} held a lock on {table} {why}; the DDL would queue behind {them}          and every query on the table behind the DDL"
    ))
}

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

const BLOCKERS_SQL: &str = "SELECT a.pid, coalesce(a.application_name, ''), coalesce(a.usename::text, ''), \
     coalesce(a.state, ''), extract(epoch FROM now() - a.xact_start)::float8, \
     left(coalesce(a.query, ''), 300) \
     FROM pg_stat_activity a WHERE a.pid = ANY (pg_blocking_pids($1)) ORDER BY a.xact_start";

/// Cancels the autovacuum workers `$1` (`pg_cancel_backend`: true, or false for one that
/// has already ended). Needs superuser on PostgreSQL 15 and 16 (`pg_signal_autovacuum_worker`
/// from 17 on).
pub(super) const CANCEL_AUTOVACUUM_SQL: &str = "SELECT count(*) FILTER (WHERE pg_cancel_backend(a.pid))::int8      FROM pg_stat_activity a WHERE a.pid = ANY ($1::int4[]) AND a.backend_type = 'autovacuum worker'";

/// The server's `deadlock_timeout`, in milliseconds.
pub(super) const DEADLOCK_TIMEOUT_SQL: &str =
    "SELECT setting::int8 FROM pg_settings WHERE name = 'deadlock_timeout'";

/// Sessions holding a lock on a table (`$1`) that a DDL should not queue behind: autovacuum,
/// or a transaction open longer than `$2` seconds (pacer's lock_timeout). Same columns as
/// [`BLOCKERS_SQL`]; autovacuum shows as its backend type.
const LOCK_HOLDERS_SQL: &str = "SELECT DISTINCT ON (a.pid) a.pid, \
     coalesce(nullif(a.application_name, ''), a.backend_type, ''), coalesce(a.usename::text, ''), \
     coalesce(a.state, ''), extract(epoch FROM now() - a.xact_start)::float8, \
     left(coalesce(a.query, ''), 300) \
     FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
     WHERE l.locktype = 'relation' AND l.relation = to_regclass($1::text) AND l.granted \
     AND l.pid <> pg_backend_pid() \
     AND (a.backend_type = 'autovacuum worker' \
          OR a.xact_start < now() - make_interval(secs => $2::float8)) \
     ORDER BY a.pid";

/// How often [`BLOCKERS_SQL`] runs, in the audit log (which records it once per session).
const WATCH_REPEATS: &str = "every 150 ms while a DDL statement waits";

/// Drives `work` while polling, from the observer session, who blocks backend `pid`.
pub(super) async fn watch_blockers<F>(
    work: F,
    observer: Option<&Session>,
    pid: i32,
) -> Result<(), (tokio_postgres::Error, Vec<Blocker>)>
where
    F: std::future::Future<Output = Result<(), tokio_postgres::Error>>,
{
    let mut seen: Vec<Blocker> = Vec::new();
    tokio::pin!(work);
    let mut tick = tokio::time::interval(Duration::from_millis(150));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            result = &mut work => return result.map_err(|e| (e, seen)),
            _ = tick.tick() => {
                if let Some(obs) = observer
                    && let Ok(rows) = obs
                        .repeating(WATCH_REPEATS)
                        .query(BLOCKERS_SQL, &[&pid])
                        .await
                    && !rows.is_empty()
                {
                    seen = rows.iter().map(blocker_from_row).collect();
                }
            }
        }
    }
}

/// Reads a row of [`BLOCKERS_SQL`]-shaped columns.
pub(super) fn blocker_from_row(r: &Row) -> Blocker {
    let query: String = r.get(5);
    let application: String = r.get(1);
    Blocker {
        pid: i64::from(r.get::<_, i32>(0)),
        pacer: is_pacer(&application),
        application,
        user: r.get(2),
        state: r.get(3),
        xact_age_s: r.get(4),
        query: redact_query(&query),
        family: crate::target::family::Family::Postgres,
    }
}

/// Whether a session is one of pacer's: every pacer session's `application_name` starts with
/// `pacer` (`pacer:<job>`, `pacer-observer:<job>`, `pacer-sampler:<job>`).
pub fn is_pacer(application_name: &str) -> bool {
    application_name.starts_with("pacer")
}

/// Query text of other sessions may hold a password (`ALTER ROLE … PASSWORD`): hide those.
pub fn redact_query(query: &str) -> String {
    let lower = query.to_ascii_lowercase();
    if lower.contains("password") || lower.contains("passwd") {
        return "(query text hidden: it mentions a password)".into();
    }
    query.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holder(pid: i64, application: &str, query: &str) -> Blocker {
        Blocker {
            pid,
            application: application.into(),
            user: String::new(),
            state: "active".into(),
            xact_age_s: Some(12.0),
            query: query.into(),
            pacer: false,
            family: crate::target::family::Family::Postgres,
        }
    }

    const T: &str = "public.orders";

    #[test]
    fn nothing_in_the_way_sends_the_step() {
        assert_eq!(in_the_way(&[], T, true), InTheWay::Clear);
    }

    #[test]
    fn an_ordinary_autovacuum_is_cancelled_unless_the_plan_says_wait() {
        let av = [
            holder(
                7,
                "autovacuum worker",
                "autovacuum: VACUUM ANALYZE public.orders",
            ),
            holder(8, "autovacuum worker", "autovacuum: ANALYZE public.orders"),
        ];
        assert_eq!(
            in_the_way(&av, T, true),
            InTheWay::CancelAutovacuum(vec![7, 8])
        );
        let InTheWay::Wait(why) = in_the_way(&av, T, false) else {
            panic!("cancel_autovacuum = false waits");
        };
        assert!(why.contains("cancel_autovacuum = false"), "{why}");
        assert!(why.contains("public.orders"), "{why}");
    }

    #[test]
    fn an_anti_wraparound_autovacuum_or_an_old_transaction_is_waited_for() {
        let wrap = holder(
            9,
            "autovacuum worker",
            "autovacuum: VACUUM public.orders (to prevent wraparound)",
        );
        let InTheWay::Wait(why) = in_the_way(std::slice::from_ref(&wrap), T, true) else {
            panic!("PostgreSQL never cancels an anti-wraparound autovacuum, nor does pacer");
        };
        assert!(why.contains("anti-wraparound"), "{why}");

        let old = holder(10, "psql", "SELECT count(*) FROM orders");
        let ordinary = holder(7, "autovacuum worker", "autovacuum: VACUUM public.orders");
        let InTheWay::Wait(why) = in_the_way(&[ordinary, old], T, true) else {
            panic!("an old transaction beside an autovacuum still holds the table");
        };
        assert!(why.contains("2 sessions"), "{why}");
        assert!(why.contains("older than lock_timeout"), "{why}");
    }
}
