//! The DDL steps: each checks first whether its work is already done, then runs in one short
//! transaction under `lock_timeout` (watched for blockers), or, for the steps that may take
//! long but let reads and writes go on (VALIDATE, CREATE INDEX CONCURRENTLY), alone with the
//! timeouts off.

use std::time::Duration;

use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;

use super::blockers::{
    CANCEL_AUTOVACUUM_SQL, DEADLOCK_TIMEOUT_SQL, InTheWay, in_the_way, watch_blockers,
    with_blockers,
};
use super::errors::{StatementError, classify};
use super::sql::{self, PgSql};
use super::{Postgres, TextParams};
use crate::target::{Blocker, DdlStep, StepOutcome, TargetError, TargetResult};

/// How much longer than `deadlock_timeout` a DDL's `lock_timeout` must be for pacer to let it
/// queue behind an autovacuum it may not cancel: PostgreSQL cancels the autovacuum once the
/// DDL has waited `deadlock_timeout`, and the autovacuum then needs a moment to let go.
const QUEUE_MARGIN_MS: i64 = 250;

impl Postgres {
    /// Runs one attempt of one DDL step.
    pub(super) async fn run_ddl_step(&mut self, step: DdlStep) -> TargetResult<StepOutcome> {
        let sql = self.sql().clone();
        let lock_timeout = self.plan.safety.lock_timeout;
        let job = self.job.clone();
        let state = self.plan.state_table.quoted();
        match step {
            DdlStep::AddColumn => {
                let created = self.job_row().await?.is_some_and(|j| j.column_created);
                if created && self.column_state().await?.is_some() {
                    return Ok(StepOutcome::AlreadyDone);
                }
                // The column and the record that pacer created it commit together, so a
                // resume can always tell its own column from someone else's.
                self.ddl_transaction(
                    vec![
                        (sql.add_column(), vec![]),
                        (
                            format!(
                                "UPDATE {state} SET column_created = true, updated_at = now() WHERE job = $1::text"
                            ),
                            vec![Some(job)],
                        ),
                    ],
                    lock_timeout,
                    &format!("adding column {} to {}", self.plan.column.name, sql.table),
                )
                .await?;
                Ok(StepOutcome::Done)
            }
            DdlStep::InstallSync => {
                let names = sql::sync_trigger_names(&self.plan.column.name);
                let table = sql.table.quoted();
                let all: Vec<String> = names.all().iter().map(|n| n.to_string()).collect();
                let present: Vec<String> = self
                    .query(
                        "SELECT tgname::text FROM pg_trigger WHERE tgrelid = to_regclass($1::text) AND tgname = ANY ($2::text[])",
                        &[&table, &all],
                        "looking for the sync triggers",
                    )
                    .await?
                    .iter()
                    .map(|r| r.get(0))
                    .collect();
                let has = |name: &str| present.iter().any(|p| p == name);
                // The single trigger of an earlier pacer keeps the same rule: the migration it
                // started keeps it until cleanup (replacing it would take an ACCESS EXCLUSIVE
                // lock in the middle of the migration; only the backfill's speed differs).
                if has(&names.legacy) || (has(&names.insert) && has(&names.update)) {
                    return Ok(StepOutcome::AlreadyDone);
                }
                let function = sql.create_sync_function().ok_or_else(|| {
                    TargetError::Failed("sync phase without a backfill expression".into())
                })?;
                let mut statements = vec![(function, vec![])];
                if !has(&names.insert) {
                    statements.push((sql.create_sync_insert_trigger(), vec![]));
                }
                if !has(&names.update) {
                    statements.push((sql.create_sync_update_trigger(), vec![]));
                }
                self.ddl_transaction(
                    statements,
                    lock_timeout,
                    &format!(
                        "installing sync triggers {} and {} on {}",
                        names.insert, names.update, sql.table
                    ),
                )
                .await?;
                Ok(StepOutcome::Done)
            }
            DdlStep::AddNotNullCheck => {
                let (not_null, check_exists) = self.column_state().await?.unwrap_or((false, false));
                if not_null || check_exists {
                    return Ok(StepOutcome::AlreadyDone);
                }
                self.ddl_transaction(
                    vec![(sql.add_not_null_check(), vec![])],
                    lock_timeout,
                    "adding the NOT VALID check constraint",
                )
                .await?;
                Ok(StepOutcome::Done)
            }
            DdlStep::ValidateNotNullCheck => {
                let table = sql.table.quoted();
                let rows = self
                    .query(
                        "SELECT convalidated FROM pg_constraint WHERE conrelid = to_regclass($1::text) AND conname = $2::text",
                        &[&table, &sql::not_null_check_name(&self.plan.column.name)],
                        "reading the check constraint",
                    )
                    .await?;
                let not_null = self.column_state().await?.is_some_and(|c| c.0);
                if not_null || rows.first().is_some_and(|r| r.get::<_, bool>(0)) {
                    return Ok(StepOutcome::AlreadyDone);
                }
                self.long_statement(
                    &sql.validate_not_null_check(),
                    "validating the NOT NULL check constraint",
                )
                .await
                .map_err(|e| match e.failed_with(&SqlState::CHECK_VIOLATION) {
                    Some(m) => TargetError::Failed(format!(
                        "{m}. Some rows of {} have NULL in {}; the verify phase should have caught \
                         this: a writer may have set NULL since. Fix those rows and run pacer again.",
                        sql.table, self.plan.column.name
                    )),
                    None => e.into(),
                })?;
                Ok(StepOutcome::Done)
            }
            DdlStep::SetNotNull => {
                let (not_null, check_exists) = self.column_state().await?.unwrap_or((false, false));
                if not_null && !check_exists {
                    return Ok(StepOutcome::AlreadyDone);
                }
                self.ddl_transaction(
                    vec![
                        (sql.set_not_null(), vec![]),
                        (sql.drop_not_null_check(), vec![]),
                    ],
                    lock_timeout,
                    "setting NOT NULL",
                )
                .await?;
                Ok(StepOutcome::Done)
            }
            DdlStep::BuildIndex => self.build_index(&sql).await,
            DdlStep::DropSync => {
                let mut statements: Vec<_> = sql
                    .drop_sync_triggers()
                    .into_iter()
                    .map(|s| (s, vec![]))
                    .collect();
                statements.push((sql.drop_sync_function(), vec![]));
                self.ddl_transaction(statements, lock_timeout, "dropping the sync triggers")
                    .await?;
                Ok(StepOutcome::Done)
            }
        }
    }

    /// Runs DDL statements (with text parameters) in one transaction under `lock_timeout`,
    /// watching from a second session who blocks it so a timeout can name them.
    async fn ddl_transaction(
        &mut self,
        statements: Vec<(String, TextParams)>,
        lock_timeout: Duration,
        context: &str,
    ) -> TargetResult<()> {
        let pid = self.backend_pid;
        self.observer().await;
        let holders = self.long_lock_holders(lock_timeout).await;
        let table = self.plan.table.quoted();
        match in_the_way(&holders, &table, self.plan.postgres.cancel_autovacuum()) {
            InTheWay::Clear => {}
            InTheWay::Wait(detail) => {
                return Err(TargetError::LockTimeout {
                    detail,
                    blockers: holders,
                    skipped: true,
                });
            }
            InTheWay::CancelAutovacuum(pids) => {
                let note = self.clear_autovacuum(&holders, &pids, lock_timeout).await;
                match note {
                    Ok(note) => self.cleared = Some(note),
                    Err(detail) => {
                        return Err(TargetError::LockTimeout {
                            detail,
                            blockers: holders,
                            skipped: true,
                        });
                    }
                }
            }
        }
        let client = self.client()?;
        let observer = self.observer.as_ref();
        let work = async {
            client
                .batch_execute(&format!(
                    "BEGIN; SET LOCAL lock_timeout = '{}ms'; SET LOCAL statement_timeout = 0",
                    lock_timeout.as_millis()
                ))
                .await?;
            for (sql, params) in &statements {
                let refs: Vec<&(dyn ToSql + Sync)> =
                    params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
                client.execute(sql.as_str(), &refs).await?;
            }
            client.batch_execute("COMMIT").await
        };
        let result = watch_blockers(work, observer, pid).await;
        match result {
            Ok(()) => Ok(()),
            Err((e, blockers)) => {
                self.rollback().await;
                Err(with_blockers(classify(&e, context), blockers))
            }
        }
    }

    /// Gets an ordinary autovacuum out of a DDL step's way: cancels it when pacer may (as
    /// PostgreSQL would after `deadlock_timeout`, but before the table's queries queue up
    /// behind the DDL); when pacer may not, lets the DDL queue behind it if `lock_timeout`
    /// outlasts `deadlock_timeout`, so PostgreSQL cancels it in time. Ok: what was done, for
    /// the step's event; Err: why the step is not sent.
    async fn clear_autovacuum(
        &mut self,
        holders: &[Blocker],
        pids: &[i64],
        lock_timeout: Duration,
    ) -> Result<String, String> {
        let table = self.plan.table.quoted();
        let what = holders
            .iter()
            .map(|b| format!("pid {} ({})", b.pid, b.query))
            .collect::<Vec<_>>()
            .join(", ");
        let Some(observer) = self.observer.as_ref() else {
            return Err(format!(
                "not attempted: autovacuum held a lock on {table} ({what}) and pacer's observer \
                 session is down"
            ));
        };
        let pids: Vec<i32> = pids.iter().filter_map(|&p| i32::try_from(p).ok()).collect();
        let refused = match observer.query(CANCEL_AUTOVACUUM_SQL, &[&pids]).await {
            Ok(_) => None,
            Err(e) => Some(
                e.as_db_error()
                    .map_or_else(|| e.to_string(), |d| d.message().to_string()),
            ),
        };
        let Some(refused) = refused else {
            tracing::info!("cancelled autovacuum on {table} for a DDL step: {what}");
            return Ok(format!(
                "cancelled autovacuum on {table} first ({what}): PostgreSQL would have \
                 cancelled it once the DDL had waited deadlock_timeout, with the table's queries \
                 queued behind the DDL meanwhile; autovacuum runs again later"
            ));
        };
        let deadlock_ms: Option<i64> = observer
            .query(DEADLOCK_TIMEOUT_SQL, &[])
            .await
            .ok()
            .and_then(|rows| rows.first().map(|r| r.get(0)));
        let lock_ms = i64::try_from(lock_timeout.as_millis()).unwrap_or(i64::MAX);
        match deadlock_ms {
            Some(d) if d.saturating_add(QUEUE_MARGIN_MS) <= lock_ms => Ok(format!(
                "queued behind autovacuum on {table} ({what}): pacer may not cancel it \
                 ({refused}); the DDL waited until PostgreSQL cancelled it (after \
                 deadlock_timeout, {d} ms) or it ended, the table's queries waiting meanwhile. Let pacer cancel it (superuser, or \
                 pg_signal_autovacuum_worker on PostgreSQL 17+) to spare them the wait"
            )),
            d => Err(format!(
                "not attempted: autovacuum held a lock on {table} ({what}); pacer may not \
                 cancel it ({refused}), and lock_timeout ({lock_ms} ms) would end before \
                 PostgreSQL cancels it after deadlock_timeout ({}). pacer waits for it to \
                 finish; to spare that wait, let pacer cancel it (superuser, or \
                 pg_signal_autovacuum_worker on PostgreSQL 17+) or raise lock_timeout above \
                 deadlock_timeout",
                d.map_or("unknown".to_string(), |d| format!("{d} ms"))
            )),
        }
    }

    /// Runs one statement outside a transaction (CREATE/DROP INDEX CONCURRENTLY, VALIDATE)
    /// with lock and statement timeouts off: their locks let reads and writes go on, and
    /// they must be allowed to wait for old transactions.
    /// A failure keeps its SQLSTATE, for the steps that advise on a violation.
    async fn long_statement(&mut self, sql: &str, context: &str) -> Result<(), StatementError> {
        let pid = self.backend_pid;
        self.simple("SET lock_timeout = 0; SET statement_timeout = 0", context)
            .await?;
        self.observer().await;
        let client = self.client()?;
        let observer = self.observer.as_ref();
        let result = watch_blockers(client.batch_execute(sql), observer, pid).await;
        let restore = format!(
            "SET lock_timeout = '{}ms'; SET statement_timeout = '{}ms'",
            self.plan.safety.lock_timeout.as_millis(),
            self.plan.safety.batch_timeout.as_millis()
        );
        let restored = self.simple(&restore, "restoring session timeouts").await;
        result.map_err(|(e, blockers)| {
            let failed = StatementError::classify(&e, context);
            StatementError {
                error: with_blockers(failed.error, blockers),
                code: failed.code,
            }
        })?;
        Ok(restored?)
    }

    pub(super) async fn column_state(&mut self) -> TargetResult<Option<(bool, bool)>> {
        let table = self.sql().table.quoted();
        let col = self.plan.column.name.clone();
        let rows = self
            .query(
                "SELECT a.attnotnull, EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conrelid = a.attrelid \
                 AND c.conname = $3::text) FROM pg_attribute a \
                 WHERE a.attrelid = to_regclass($1::text) AND a.attname = $2::text AND NOT a.attisdropped",
                &[&table, &col, &sql::not_null_check_name(&col)],
                "reading the column",
            )
            .await?;
        Ok(rows.first().map(|r| (r.get(0), r.get(1))))
    }

    async fn build_index(&mut self, sql: &PgSql) -> TargetResult<StepOutcome> {
        let Some(index) = sql.index_name() else {
            return Ok(StepOutcome::AlreadyDone);
        };
        let table = sql.table.quoted();
        let state = self
            .query(
                "SELECT i.indisvalid, i.indrelid = to_regclass($2::text) FROM pg_index i \
                 WHERE i.indexrelid = to_regclass($1::text)",
                &[&index.quoted(), &table],
                "looking for the index",
            )
            .await?;
        let mut repaired = None;
        if let Some(row) = state.first() {
            let (valid, ours): (bool, bool) = (row.get(0), row.get(1));
            if !ours {
                return Err(TargetError::Failed(format!(
                    "an index named {} already exists on another table; name the index in the plan \
                     (index = {{ name = \"…\" }})",
                    index
                )));
            }
            if valid {
                return Ok(StepOutcome::AlreadyDone);
            }
            let building: i64 = self
                .query(
                    "SELECT count(*) FROM pg_stat_progress_create_index WHERE relid = to_regclass($1::text) \
                     AND pid <> pg_backend_pid()",
                    &[&table],
                    "looking for index builds in progress",
                )
                .await?[0]
                .get(0);
            if building > 0 {
                return Err(TargetError::Busy(format!(
                    "index {index} is INVALID and another session is building an index on {} right now; \
                     waiting for that build to end",
                    sql.table
                )));
            }
            let drop = sql.drop_index().expect("index planned");
            self.long_statement(
                &drop,
                "dropping the INVALID index left by an earlier attempt",
            )
            .await?;
            repaired = Some(format!(
                "found INVALID index {index} left by an earlier attempt (a plain IF NOT EXISTS would \
                 have kept it); dropped it concurrently and rebuilt it"
            ));
        }
        let create = sql.create_index().expect("index planned");
        match self
            .long_statement(&create, &format!("building index {index}"))
            .await
        {
            Ok(()) => Ok(repaired.map_or(StepOutcome::Done, StepOutcome::Repaired)),
            Err(e) => match e.failed_with(&SqlState::UNIQUE_VIOLATION) {
                Some(m) => {
                    let message = format!(
                        "{m}. The unique index {index} cannot be built because the column has duplicate \
                         values; its INVALID remains were dropped. Remove the duplicates or set unique = false."
                    );
                    let drop = sql.drop_index().expect("index planned");
                    let _ = self
                        .long_statement(&drop, "dropping the failed unique index")
                        .await;
                    Err(TargetError::Failed(message))
                }
                None => Err(e.into()),
            },
        }
    }
}
