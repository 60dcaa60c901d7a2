//! The DDL steps on MySQL/MariaDB: each checks first whether its work is already done, then
//! sends one statement whose metadata-lock wait is bounded by `lock_timeout` (MariaDB
//! `WAIT n`, else the session's `lock_wait_timeout`), watched from the observer connection so
//! a timeout can name who held the lock. MySQL DDL commits on its own: there is no
//! transaction to put a step and its record in, so each step is written to be safe to repeat.

use std::time::Duration;

use mysql_async::Value;

use super::MySql;
use super::blockers::{lock_holders, with_blockers};
use super::errors::{self, classify};
use super::session::{int_at, text_at};
use super::sql::sync_trigger_names;
use crate::target::{DdlStep, StepOutcome, TargetError, TargetResult};

/// A failed DDL statement: the error the engine sees, and the server's error code for the
/// steps that give a refusal its own advice.
#[derive(Debug)]
struct DdlError {
    error: TargetError,
    code: Option<u16>,
}

impl From<TargetError> for DdlError {
    fn from(error: TargetError) -> DdlError {
        DdlError { error, code: None }
    }
}

impl From<DdlError> for TargetError {
    fn from(e: DdlError) -> TargetError {
        e.error
    }
}

/// How often the blocker watch polls while a DDL statement waits or runs.
const WATCH_EVERY: Duration = Duration::from_millis(150);

impl MySql {
    /// Runs one attempt of one DDL step.
    pub(super) async fn run_ddl_step(&mut self, step: DdlStep) -> TargetResult<StepOutcome> {
        let sql = self.sql().clone();
        let table = sql.table_name();
        let column = self.plan.column.name.clone();
        match step {
            DdlStep::AddColumn => {
                let created = self.job_row_raw().await?.map_or(0, |(_, c)| c);
                if self.column_not_null().await?.is_some() {
                    if created == 2 {
                        // The ALTER landed, and the connection dropped before it was recorded.
                        self.set_column_created(1).await?;
                    }
                    return Ok(StepOutcome::AlreadyDone);
                }
                // Recorded before the ALTER (which commits on its own): a resume then knows the
                // column it finds is this migration's.
                self.set_column_created(2).await?;
                self.watched_ddl(
                    &sql.add_column(),
                    &format!("adding column {column} to {table} (waiting for its metadata lock)"),
                )
                .await
                .map_err(|e| match e.code {
                    Some(c) if errors::ALTER_NOT_SUPPORTED.contains(&c) => {
                        let m = e.error;
                        TargetError::Refused(format!(
                            "{m}. The server cannot add column {column} to {table} instantly, and \
                             pacer does not let it copy the table (that would block writes for \
                             the whole copy and lag every replica by as long). Nothing was changed. \
                             Instant ADD COLUMN needs a nullable column or a constant default, no \
                             FULLTEXT index, and no ROW_FORMAT=COMPRESSED; on MySQL, fewer than 64 \
                             instant changes since the table was last rebuilt."
                        ))
                    }
                    _ => e.error,
                })?;
                self.set_column_created(1).await?;
                Ok(StepOutcome::Done)
            }
            DdlStep::InstallSync => {
                let names = sync_trigger_names(&column);
                let present = self
                    .present_triggers(&[&names.insert, &names.update])
                    .await?;
                let has = |n: &str| present.iter().any(|p| p == n);
                if has(&names.insert) && has(&names.update) {
                    return Ok(StepOutcome::AlreadyDone);
                }
                // The update trigger first: between the two statements an insert is left for
                // the backfill (its column is pending), while an update of a filled row is
                // already kept right.
                if !has(&names.update) {
                    let create = sql.create_sync_update_trigger().ok_or_else(|| {
                        TargetError::Failed("sync phase without a backfill expression".into())
                    })?;
                    self.watched_ddl(
                        &create,
                        &format!(
                            "creating trigger {} on {table} (waiting for its metadata lock)",
                            names.update
                        ),
                    )
                    .await?;
                }
                if !has(&names.insert) {
                    let create = sql.create_sync_insert_trigger().ok_or_else(|| {
                        TargetError::Failed("sync phase without a backfill expression".into())
                    })?;
                    self.watched_ddl(
                        &create,
                        &format!(
                            "creating trigger {} on {table} (waiting for its metadata lock)",
                            names.insert
                        ),
                    )
                    .await?;
                }
                Ok(StepOutcome::Done)
            }
            DdlStep::SetNotNull => {
                let index = sql.index_name().map(str::to_string);
                let index_missing = match &index {
                    Some(i) => !self.index_exists(i).await?,
                    None => false,
                };
                if self.column_not_null().await? == Some(true) {
                    return Ok(StepOutcome::AlreadyDone);
                }
                let statement = sql.set_not_null(index_missing);
                self.watched_ddl(
                    &statement,
                    &format!(
                        "setting {column} NOT NULL{} on {table} (an online rebuild; its metadata lock \
                         is waited for at its start and end)",
                        if index_missing { " and building its index" } else { "" }
                    ),
                )
                .await
                .map_err(|e| match e.code {
                    Some(c) if errors::DATA_ERRORS.contains(&c) => {
                        let m = e.error;
                        TargetError::Failed(format!(
                            "{m}. Some rows of {table} have NULL in {column}; the verify phase should \
                             have caught this: a writer may have set NULL since. Nothing was changed \
                             (the rebuild was rolled back). Fix those rows and run pacer again."
                        ))
                    }
                    Some(errors::DUP_ENTRY) => {
                        let m = e.error;
                        TargetError::Failed(format!(
                            "{m}. The unique index cannot be built because {column} has duplicate \
                             values; nothing was changed. Remove the duplicates or set unique = false."
                        ))
                    }
                    _ => e.error,
                })?;
                Ok(StepOutcome::Done)
            }
            DdlStep::BuildIndex => {
                let Some(index) = sql.index_name().map(str::to_string) else {
                    return Ok(StepOutcome::AlreadyDone);
                };
                if self.index_exists(&index).await? {
                    return Ok(StepOutcome::AlreadyDone);
                }
                let statement = sql.add_index().expect("index planned");
                self.watched_ddl(
                    &statement,
                    &format!("building index {index} on {table} (online; its metadata lock is waited for at its start and end)"),
                )
                .await
                .map_err(|e| match e.code {
                    Some(errors::DUP_ENTRY) => {
                        let m = e.error;
                        TargetError::Failed(format!(
                            "{m}. The unique index {index} cannot be built because {column} has \
                             duplicate values; nothing was changed. Remove the duplicates or set \
                             unique = false."
                        ))
                    }
                    _ => e.error,
                })?;
                Ok(StepOutcome::Done)
            }
            DdlStep::DropSync => {
                for drop in sql.drop_sync_triggers() {
                    self.watched_ddl(
                        &drop,
                        &format!(
                            "dropping a sync trigger on {table} (waiting for its metadata lock)"
                        ),
                    )
                    .await?;
                }
                Ok(StepOutcome::Done)
            }
            other => Err(TargetError::Failed(format!(
                "the {} step is PostgreSQL's; MySQL/MariaDB does not run it",
                other.as_str()
            ))),
        }
    }

    /// Sends one DDL statement on the main connection, unless a connection has held the
    /// table's metadata lock for longer than `lock_timeout` (the DDL would queue behind it and
    /// every query on the table behind the DDL); polls from the observer connection who holds
    /// the lock while it waits.
    async fn watched_ddl(&mut self, statement: &str, context: &str) -> Result<(), DdlError> {
        let lock_timeout = self.plan.safety.lock_timeout;
        let holders = self.long_lock_holders(lock_timeout).await;
        if !holders.is_empty() {
            return Err(DdlError::from(TargetError::LockTimeout {
                detail: format!(
                    "not attempted: {} held the metadata lock of {}.{} in a transaction older than \
                     lock_timeout; the DDL would queue behind {} and every query on the table behind the DDL",
                    if holders.len() == 1 {
                        "a connection".to_string()
                    } else {
                        format!("{} connections", holders.len())
                    },
                    self.database,
                    self.plan.table.name,
                    if holders.len() == 1 { "it" } else { "them" }
                ),
                blockers: holders,
                skipped: true,
            }));
        }
        let view = self.mdl_view;
        let table = (self.database.clone(), self.plan.table.name.clone());
        let main_id = self.connection_id;
        self.observer().await;
        let main = self
            .main
            .as_mut()
            .ok_or_else(|| TargetError::ConnectionLost("not connected".into()))?;
        let mut observer = self.observer.as_mut();
        let work = main.simple(statement);
        tokio::pin!(work);
        let mut seen = Vec::new();
        let mut tick = tokio::time::interval(WATCH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let result = loop {
            tokio::select! {
                r = &mut work => break r,
                _ = tick.tick() => {
                    if let Some(obs) = observer.as_deref_mut()
                        && let Ok(found) = lock_holders(obs, view, &table, main_id, true).await
                        && !found.is_empty()
                    {
                        seen = found;
                    }
                }
            }
        };
        result.map_err(|e| DdlError {
            error: with_blockers(classify(&e, context), seen),
            code: errors::code(&e),
        })
    }

    /// The new column's NOT NULL (None: the column does not exist).
    pub(super) async fn column_not_null(&mut self) -> TargetResult<Option<bool>> {
        let params = vec![
            Value::from(self.database.clone()),
            Value::from(self.plan.table.name.clone()),
            Value::from(self.plan.column.name.clone()),
        ];
        let rows = self
            .rows(
                "SELECT IS_NULLABLE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? \
                 AND TABLE_NAME = ? AND COLUMN_NAME = ?",
                params,
                "reading the column",
            )
            .await?;
        Ok(rows
            .first()
            .map(|r| text_at(r, 0).is_some_and(|n| n.eq_ignore_ascii_case("NO"))))
    }

    /// Whether the table has an index of this name.
    pub(super) async fn index_exists(&mut self, index: &str) -> TargetResult<bool> {
        let params = vec![
            Value::from(self.database.clone()),
            Value::from(self.plan.table.name.clone()),
            Value::from(index),
        ];
        let rows = self
            .rows(
                "SELECT COUNT(*) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? \
                 AND TABLE_NAME = ? AND INDEX_NAME = ?",
                params,
                "looking for the index",
            )
            .await?;
        Ok(rows.first().is_some_and(|r| int_at(r, 0) > 0))
    }

    /// Which of these triggers exist on the table.
    pub(super) async fn present_triggers(&mut self, names: &[&str]) -> TargetResult<Vec<String>> {
        let params = vec![
            Value::from(self.database.clone()),
            Value::from(self.plan.table.name.clone()),
        ];
        let rows = self
            .rows(
                "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ? \
                 AND EVENT_OBJECT_TABLE = ?",
                params,
                "looking for the sync triggers",
            )
            .await?;
        Ok(rows
            .iter()
            .filter_map(|r| text_at(r, 0))
            .filter(|n| names.contains(&n.as_str()))
            .collect())
    }
}
