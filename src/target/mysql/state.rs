//! pacer's state table on MySQL/MariaDB (`pacer.migrations` unless the plan names another):
//! the migration's row (read, created, advanced phase by phase, finished), and the named lock
//! (`GET_LOCK`) that lets one runner at a time work on it. The server releases a named lock
//! when its connection ends, so a runner killed with -9 frees it as soon as the server sees
//! the connection close.

use std::time::Duration;

use mysql_async::{Row, Value};

use super::MySql;
use super::session::{int_at, text_at};
use crate::plan::{Phase, Plan};
use crate::target::runner::{LocalRunner, local_runner, stored_words};
use crate::target::{JobState, Key, Outcome, TargetError, TargetResult};

/// `database.table.column`: the migration's id in the state table.
pub fn job_id(plan: &Plan, database: &str) -> String {
    format!("{database}.{}.{}", plan.table.name, plan.column.name)
}

/// The named lock of a migration (at most 64 characters, as the server allows).
pub fn lock_name(job: &str) -> String {
    let name = format!("pacer:{job}");
    if name.chars().count() <= 64 {
        return name;
    }
    // FNV-1a 64: stable across builds and machines, so every runner picks the same name.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in job.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let head: String = job.chars().take(64 - 6 - 17).collect();
    format!("pacer:{head}:{h:016x}")
}

fn keys_json(key: &Key) -> String {
    serde_json::to_string(&key.0).unwrap_or_else(|_| "[]".into())
}

fn key_from_json(text: Option<String>) -> TargetResult<Option<Key>> {
    match text {
        None => Ok(None),
        Some(t) => serde_json::from_str::<Vec<String>>(&t)
            .map(|v| Some(Key(v)))
            .map_err(|e| {
                TargetError::Failed(format!(
                    "a key recorded in pacer's state table is not a JSON list of text ({e}): {t}"
                ))
            }),
    }
}

/// The JSON text of a key as a parameter (NULL for none).
pub(super) fn key_param(key: Option<&Key>) -> Value {
    key.map_or(Value::NULL, |k| Value::from(keys_json(k)))
}

impl MySql {
    /// Takes the migration's named lock, so that a second runner is refused. Ends this
    /// runner's own orphaned connection (from before a network cut) when it holds the lock;
    /// waits a little when the holder is a dead pacer's connection the server has not
    /// noticed yet.
    pub(super) async fn claim(&mut self, previous: Option<u32>) -> TargetResult<()> {
        let name = lock_name(&self.job);
        let started = std::time::Instant::now();
        loop {
            let got = self
                .rows(
                    "SELECT GET_LOCK(?, 0)",
                    vec![Value::from(name.clone())],
                    "taking the migration lock",
                )
                .await?;
            if got.first().is_some_and(|r| int_at(r, 0) == 1) {
                return Ok(());
            }
            let holder = self
                .rows(
                    "SELECT p.ID, p.USER, p.HOST, p.COMMAND, p.TIME FROM information_schema.PROCESSLIST p \
                     WHERE p.ID = IS_USED_LOCK(?)",
                    vec![Value::from(name.clone())],
                    "looking up who runs the migration",
                )
                .await?;
            let holder_id = holder.first().map(|r| int_at(r, 0) as u32);
            if let (Some(h), Some(prev)) = (holder_id, previous)
                && h == prev
            {
                // Our own connection from before a network cut: end it so we can go on.
                let _ = self
                    .execute(
                        &format!("KILL CONNECTION {h}"),
                        vec![],
                        "ending pacer's orphaned connection",
                    )
                    .await;
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            let recorded_runner = self.job_row().await?.and_then(|j| j.runner);
            let patience = match recorded_runner.as_deref().map(local_runner) {
                Some(LocalRunner::Alive) => Duration::ZERO,
                Some(LocalRunner::Gone) => self.plan.safety.batch_timeout + Duration::from_secs(10),
                _ => Duration::from_secs(3),
            };
            if started.elapsed() < patience {
                tokio::time::sleep(Duration::from_millis(250)).await;
                continue;
            }
            let who = match holder.first() {
                Some(r) => format!(
                    "connection {} (user {}, from {}, {} for {} s)",
                    int_at(r, 0),
                    text_at(r, 1).unwrap_or_default(),
                    text_at(r, 2).unwrap_or_default(),
                    text_at(r, 3).unwrap_or_default(),
                    int_at(r, 4)
                ),
                None => "another connection".into(),
            };
            return Err(TargetError::Refused(format!(
                "migration {} is already being run by {} — {who} holds its lock {name}. pacer \
                 refuses to run the same migration twice at once (batches would be applied \
                 twice). Wait for it to finish, or stop that runner first; `pacer status` shows \
                 its progress.",
                self.job,
                recorded_runner.unwrap_or_else(|| "another pacer".into())
            )));
        }
    }

    /// Whether the state table exists.
    async fn state_table_exists(&mut self) -> TargetResult<bool> {
        let (db, table) = self.state_names();
        let rows = self
            .rows(
                "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
                vec![Value::from(db), Value::from(table)],
                "looking for the state table",
            )
            .await?;
        Ok(rows.first().is_some_and(|r| int_at(r, 0) > 0))
    }

    /// The state table's database and name.
    pub(super) fn state_names(&self) -> (String, String) {
        state_names(&self.plan, &self.database)
    }

    fn state_quoted(&self) -> String {
        let (db, t) = self.state_names();
        format!("{}.{}", super::sql::q(&db), super::sql::q(&t))
    }

    /// The migration's row and its raw `column_created` (0, 1, or 2: ADD COLUMN sent, outcome
    /// not yet known).
    pub(super) async fn job_row_raw(&mut self) -> TargetResult<Option<(JobState, i64)>> {
        if !self.state_table_exists().await? {
            return Ok(None);
        }
        let sql = format!(
            "SELECT job, plan_digest, outcome, phase, phases_done, column_created, last_key, range_end, \
             rows_done, rows_updated, rows_total, batches, runner, message, \
             DATE_FORMAT(started_at, '%Y-%m-%dT%H:%i:%sZ'), DATE_FORMAT(updated_at, '%Y-%m-%dT%H:%i:%sZ'), \
             DATE_FORMAT(finished_at, '%Y-%m-%dT%H:%i:%sZ') FROM {} WHERE job = ?",
            self.state_quoted()
        );
        let job = self.job.clone();
        let rows = self
            .rows(&sql, vec![Value::from(job)], "reading the migration state")
            .await?;
        let state_table = {
            let (db, t) = self.state_names();
            format!("{db}.{t}")
        };
        rows.first()
            .map(|r| job_from_row(r, &state_table).map(|j| (j, int_at(r, 5))))
            .transpose()
    }

    pub(super) async fn job_row(&mut self) -> TargetResult<Option<JobState>> {
        Ok(self.job_row_raw().await?.map(|(j, _)| j))
    }

    /// Creates the state table and the migration's row if needed, after claiming it.
    pub(super) async fn open_job_row(&mut self) -> TargetResult<JobState> {
        let sql = self.sql().clone();
        let hint = |e: TargetError, plan: &Plan, db: &str| state_table_hint(e, plan, db);
        if !self.state_table_exists().await? {
            let (plan, db) = (self.plan.clone(), self.database.clone());
            self.simple(
                &sql.create_state_database(),
                "creating pacer's state database",
            )
            .await
            .map_err(|e| hint(e, &plan, &db))?;
            self.simple(&sql.create_state_table(), "creating pacer's state table")
                .await
                .map_err(|e| hint(e, &plan, &db))?;
        }
        self.claim(None).await?;
        self.start_heartbeat().await?;
        let keys: Vec<String> = sql.key.iter().map(|k| k.column.name.clone()).collect();
        let insert = format!(
            "INSERT INTO {} (job, table_name, column_name, plan_digest, phase, phases_done, key_columns, \
             runner, started_at, updated_at) VALUES (?, ?, ?, ?, 'add_column', '[]', ?, ?, \
             UTC_TIMESTAMP(6), UTC_TIMESTAMP(6)) ON DUPLICATE KEY UPDATE runner = VALUES(runner), \
             message = NULL, updated_at = UTC_TIMESTAMP(6), \
             outcome = IF(outcome = 'done', 'done', 'running')",
            self.state_quoted()
        );
        let params = vec![
            Value::from(self.job.clone()),
            Value::from(sql.table_name()),
            Value::from(self.plan.column.name.clone()),
            Value::from(self.plan.digest()),
            Value::from(serde_json::to_string(&keys).unwrap_or_default()),
            Value::from(self.runner.clone()),
        ];
        self.execute(&insert, params, "recording the migration")
            .await?;
        self.job_row().await?.ok_or_else(|| {
            TargetError::Failed("the state row vanished right after it was written".into())
        })
    }

    /// Sets `column_created` (see [`MySql::job_row_raw`]).
    pub(super) async fn set_column_created(&mut self, value: i64) -> TargetResult<()> {
        let sql = format!(
            "UPDATE {} SET column_created = ?, updated_at = UTC_TIMESTAMP(6) WHERE job = ?",
            self.state_quoted()
        );
        let job = self.job.clone();
        self.execute(
            &sql,
            vec![Value::from(value), Value::from(job)],
            "recording that pacer adds the column",
        )
        .await?;
        Ok(())
    }

    /// Records a phase as finished and which one runs next.
    pub(super) async fn record_phase(
        &mut self,
        phase: Phase,
        next: Option<Phase>,
    ) -> TargetResult<()> {
        let sql = format!(
            "UPDATE {} SET phases_done = IF(JSON_CONTAINS(phases_done, JSON_QUOTE(?)), phases_done, \
             JSON_ARRAY_APPEND(phases_done, '$', ?)), phase = ?, updated_at = UTC_TIMESTAMP(6) WHERE job = ?",
            self.state_quoted()
        );
        let next = next.map_or("done", |p| p.as_str()).to_string();
        let params = vec![
            Value::from(phase.as_str()),
            Value::from(phase.as_str()),
            Value::from(next),
            Value::from(self.job.clone()),
        ];
        self.execute(&sql, params, "recording the phase").await?;
        Ok(())
    }

    /// Records the outcome and its message (a finished migration also gets its end time).
    pub(super) async fn record_outcome(
        &mut self,
        outcome: Outcome,
        message: &str,
    ) -> TargetResult<()> {
        let sql = format!(
            "UPDATE {} SET outcome = ?, message = ?, updated_at = UTC_TIMESTAMP(6), \
             finished_at = IF(? = 'done', UTC_TIMESTAMP(6), finished_at) WHERE job = ?",
            self.state_quoted()
        );
        let message = if message.is_empty() {
            Value::NULL
        } else {
            Value::from(message)
        };
        let params = vec![
            Value::from(outcome.as_str()),
            message,
            Value::from(outcome.as_str()),
            Value::from(self.job.clone()),
        ];
        self.execute(&sql, params, "recording the outcome").await?;
        Ok(())
    }
}

/// The state table's database and name: the plan's `state_table`, whose schema is a database
/// on MySQL (`pacer.migrations` by default).
pub(super) fn state_names(plan: &Plan, database: &str) -> (String, String) {
    (
        plan.state_table
            .schema
            .clone()
            .unwrap_or_else(|| database.to_string()),
        plan.state_table.name.clone(),
    )
}

fn job_from_row(r: &Row, state_table: &str) -> TargetResult<JobState> {
    let job = text_at(r, 0).unwrap_or_default();
    let phases_text = text_at(r, 4).unwrap_or_else(|| "[]".into());
    let phases: Vec<String> = serde_json::from_str(&phases_text).map_err(|e| {
        TargetError::Failed(format!(
            "the finished phases recorded for {job} in {state_table} are not a JSON list ({e}): {phases_text}"
        ))
    })?;
    let outcome_text = text_at(r, 2).unwrap_or_default();
    let (outcome, phases_done) = stored_words(&job, state_table, &outcome_text, &phases)?;
    let opt_u64 = |i: usize| text_at(r, i).and_then(|t| t.parse::<u64>().ok());
    Ok(JobState {
        plan_digest: text_at(r, 1).unwrap_or_default(),
        outcome,
        phase: text_at(r, 3).unwrap_or_default(),
        phases_done,
        column_created: int_at(r, 5) == 1,
        last_key: key_from_json(text_at(r, 6))?,
        range_end: key_from_json(text_at(r, 7))?,
        rows_done: int_at(r, 8).max(0) as u64,
        rows_updated: int_at(r, 9).max(0) as u64,
        rows_total: opt_u64(10),
        batches: int_at(r, 11).max(0) as u64,
        runner: text_at(r, 12),
        message: text_at(r, 13),
        started_at: text_at(r, 14).unwrap_or_default(),
        updated_at: text_at(r, 15).unwrap_or_default(),
        finished_at: text_at(r, 16),
        job,
    })
}

fn state_table_hint(e: TargetError, plan: &Plan, database: &str) -> TargetError {
    match e {
        TargetError::Failed(m) => {
            let (db, t) = state_names(plan, database);
            TargetError::Failed(format!(
                "{m}. pacer keeps its progress in {db}.{t} on the target server; the user needs \
                 the right to create it (CREATE on database {db}, or on *.* to create the \
                 database), or set `state_table` in the plan to a database it may create tables \
                 in, e.g. state_table = \"{database}.pacer_migrations\"."
            ))
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_names_fit_the_servers_64_characters_and_stay_distinct() {
        assert_eq!(lock_name("shop.orders.amount"), "pacer:shop.orders.amount");
        let a = lock_name(&format!("{}.orders.a", "d".repeat(60)));
        let b = lock_name(&format!("{}.orders.b", "d".repeat(60)));
        assert_eq!(a.chars().count(), 64, "{a}");
        assert_ne!(a, b);
    }

    #[test]
    fn keys_round_trip_through_their_json_text() {
        let k = Key(vec!["7".into(), "a\"b".into()]);
        let text = keys_json(&k);
        assert_eq!(key_from_json(Some(text)).unwrap(), Some(k));
        assert!(key_from_json(Some("nope".into())).is_err());
    }
}
