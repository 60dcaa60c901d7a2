//! pacer's state table in the target database: the migration's id, its row (read, created,
//! advanced phase by phase, finished), and the advisory lock that lets one runner at a time
//! work on it.

use std::time::Duration;

use tokio_postgres::Row;

use super::Postgres;
use crate::plan::{Phase, Plan};
use crate::target::runner::{LocalRunner, local_runner, stored_words};
use crate::target::{JobState, Key, Outcome, TargetError, TargetResult};

impl Postgres {
    /// Takes the migration's advisory lock, so that a second runner is refused. Waits a
    /// little when the holder is this runner's own dead session (after kill -9, its backend
    /// may need a moment to notice), and ends an orphaned session of this runner.
    pub(super) async fn claim(&mut self, previous_backend: Option<i32>) -> TargetResult<()> {
        let job = self.job.clone();
        let started = std::time::Instant::now();
        loop {
            let got: bool = self
                .query(
                    "SELECT pg_try_advisory_lock(hashtext('pacer'), hashtext($1::text))",
                    &[&job],
                    "taking the migration lock",
                )
                .await?[0]
                .get(0);
            if got {
                return Ok(());
            }
            let holder = self
                .query(
                    "SELECT a.pid, coalesce(a.application_name, ''), coalesce(host(a.client_addr), 'local socket'), \
                     coalesce(a.state, '') FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
                     WHERE l.locktype = 'advisory' AND l.classid = hashtext('pacer')::oid \
                     AND l.objid = hashtext($1::text)::oid AND l.objsubid = 2 AND l.granted",
                    &[&job],
                    "looking up who runs the migration",
                )
                .await?;
            let holder_pid: Option<i32> = holder.first().map(|r| r.get(0));
            if let (Some(h), Some(prev)) = (holder_pid, previous_backend)
                && h == prev
            {
                // Our own session from before a network cut: end it so we can go on.
                let _ = self
                    .query(
                        "SELECT pg_terminate_backend($1)",
                        &[&h],
                        "ending pacer's orphaned session",
                    )
                    .await;
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            let recorded_runner = self.job_row().await?.and_then(|j| j.runner);
            // A live pacer on this host is refused at once; a dead one's backend may need a
            // moment to notice (up to a batch); elsewhere we cannot tell, so wait briefly.
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
                    "database session pid {} ({}, from {}, {})",
                    r.get::<_, i32>(0),
                    r.get::<_, String>(1),
                    r.get::<_, String>(2),
                    r.get::<_, String>(3)
                ),
                None => "another session".into(),
            };
            return Err(TargetError::Refused(format!(
                "migration {job} is already being run by {} — {who}. pacer refuses to run the same \
                 migration twice at once (batches would be applied twice). Wait for it to finish, \
                 or stop that runner first; `pacer status` shows its progress.",
                recorded_runner.unwrap_or_else(|| "another pacer".into())
            )));
        }
    }

    pub(super) async fn job_row(&mut self) -> TargetResult<Option<JobState>> {
        let state = self.plan.state_table.quoted();
        let exists: bool = self
            .query(
                "SELECT to_regclass($1::text) IS NOT NULL",
                &[&state],
                "looking for the state table",
            )
            .await?[0]
            .get(0);
        if !exists {
            return Ok(None);
        }
        let sql = format!(
            "SELECT job, plan_digest, outcome, phase, phases_done, column_created, last_key, range_end, \
             rows_done, rows_updated, rows_total, batches, runner, message, \
             to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), \
             to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), \
             to_char(finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') \
             FROM {state} WHERE job = $1::text"
        );
        let job = self.job.clone();
        let rows = self
            .query(&sql, &[&job], "reading the migration state")
            .await?;
        rows.first()
            .map(|r| job_from_row(r, &self.plan.state_table.to_string()))
            .transpose()
    }

    /// Creates the state table and the migration's row if needed, after claiming it.
    pub(super) async fn open_job_row(&mut self) -> TargetResult<JobState> {
        let sql = self.sql().clone();
        self.simple(&sql.create_state_schema(), "creating pacer's state schema")
            .await
            .map_err(|e| state_table_hint(e, &self.plan))?;
        self.simple(&sql.create_state_table(), "creating pacer's state table")
            .await
            .map_err(|e| state_table_hint(e, &self.plan))?;
        self.claim(None).await?;
        let keys: Vec<String> = sql.key.iter().map(|k| k.name.clone()).collect();
        let insert = format!(
            "INSERT INTO {} AS s (job, table_name, column_name, plan_digest, phase, key_columns, runner) \
             VALUES ($1::text, $2::text, $3::text, $4::text, 'add_column', $5::text[], $6::text) \
             ON CONFLICT (job) DO UPDATE SET runner = EXCLUDED.runner, message = NULL, updated_at = now(), \
             outcome = CASE WHEN s.outcome = 'done' THEN 'done' ELSE 'running' END",
            self.plan.state_table.quoted()
        );
        let (job, table, column, digest, runner) = (
            self.job.clone(),
            sql.table.to_string(),
            self.plan.column.name.clone(),
            self.plan.digest(),
            self.runner.clone(),
        );
        self.execute(
            &insert,
            &[&job, &table, &column, &digest, &keys, &runner],
            "recording the migration",
        )
        .await?;
        self.job_row().await?.ok_or_else(|| {
            TargetError::Failed("the state row vanished right after it was written".into())
        })
    }

    /// Records a phase as finished and which one runs next.
    pub(super) async fn record_phase(
        &mut self,
        phase: Phase,
        next: Option<Phase>,
    ) -> TargetResult<()> {
        let sql = format!(
            "UPDATE {} SET phases_done = CASE WHEN $2::text = ANY (phases_done) THEN phases_done \
             ELSE array_append(phases_done, $2::text) END, phase = $3::text, updated_at = now() \
             WHERE job = $1::text",
            self.plan.state_table.quoted()
        );
        let job = self.job.clone();
        let next = next.map_or("done", |p| p.as_str()).to_string();
        self.execute(&sql, &[&job, &phase.as_str(), &next], "recording the phase")
            .await?;
        Ok(())
    }

    /// Records the outcome and its message (a finished migration also gets its end time).
    pub(super) async fn record_outcome(
        &mut self,
        outcome: Outcome,
        message: &str,
    ) -> TargetResult<()> {
        let sql = format!(
            "UPDATE {} SET outcome = $2::text, message = $3::text, updated_at = now(), \
             finished_at = CASE WHEN $2::text = 'done' THEN now() ELSE finished_at END WHERE job = $1::text",
            self.plan.state_table.quoted()
        );
        let job = self.job.clone();
        let message = if message.is_empty() {
            None
        } else {
            Some(message.to_string())
        };
        self.execute(
            &sql,
            &[&job, &outcome.as_str(), &message],
            "recording the outcome",
        )
        .await?;
        Ok(())
    }

    /// Resolves the table's schema (which names the migration) without the other checks.
    pub(super) async fn locate_table(&mut self) -> TargetResult<()> {
        self.apply_session_settings().await?;
        let wanted = self.plan.table.quoted();
        let rows = self
            .query(
                "SELECT n.nspname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.oid = to_regclass($1::text)",
                &[&wanted],
                "looking up the table",
            )
            .await?;
        if let Some(r) = rows.first() {
            self.job = job_id(&self.plan, Some(r.get::<_, &str>(0)));
            self.audit.set_job(&self.job);
        }
        Ok(())
    }
}

/// `schema.table.column`: the migration's id in the state table.
pub fn job_id(plan: &Plan, resolved_schema: Option<&str>) -> String {
    let schema = plan
        .table
        .schema
        .as_deref()
        .or(resolved_schema)
        .unwrap_or("public");
    format!("{schema}.{}.{}", plan.table.name, plan.column.name)
}

fn key_from(value: Option<Vec<String>>) -> Option<Key> {
    value.map(Key)
}

fn job_from_row(r: &Row, state_table: &str) -> TargetResult<JobState> {
    let job: String = r.get(0);
    let phases: Vec<String> = r.get(4);
    let (outcome, phases_done) = stored_words(&job, state_table, r.get(2), &phases)?;
    Ok(JobState {
        job,
        plan_digest: r.get(1),
        outcome,
        phase: r.get(3),
        phases_done,
        column_created: r.get(5),
        last_key: key_from(r.get(6)),
        range_end: key_from(r.get(7)),
        rows_done: r.get::<_, i64>(8) as u64,
        rows_updated: r.get::<_, i64>(9) as u64,
        rows_total: r.get::<_, Option<i64>>(10).map(|v| v as u64),
        batches: r.get::<_, i64>(11) as u64,
        runner: r.get(12),
        message: r.get(13),
        started_at: r.get(14),
        updated_at: r.get(15),
        finished_at: r.get(16),
    })
}

fn state_table_hint(e: TargetError, plan: &Plan) -> TargetError {
    match e {
        TargetError::Failed(m) => TargetError::Failed(format!(
            "{m}. pacer keeps its progress in {} in the target database; the user needs the right \
             to create it (or set `state_table` in the plan to a schema it may write to).",
            plan.state_table
        )),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(outcome: &str, phases: &[&str]) -> TargetResult<(Outcome, Vec<Phase>)> {
        let phases: Vec<String> = phases.iter().map(|p| p.to_string()).collect();
        stored_words("public.orders.amount", "pacer.migrations", outcome, &phases)
    }

    #[test]
    fn stored_outcomes_and_phases_read_back_as_written() {
        for outcome in [
            Outcome::Running,
            Outcome::Done,
            Outcome::Failed,
            Outcome::Aborted,
        ] {
            let (read, _) = words(outcome.as_str(), &[]).unwrap();
            assert_eq!(read, outcome);
        }
        let all: Vec<&str> = Phase::ALL.iter().map(|p| p.as_str()).collect();
        assert_eq!(words("done", &all).unwrap().1, Phase::ALL);
    }

    #[test]
    fn an_unknown_stored_outcome_is_an_error_not_running() {
        let err = words("paused", &["add_column"]).unwrap_err().to_string();
        assert!(err.contains("records outcome \"paused\""), "{err}");
        assert!(err.contains("public.orders.amount"), "{err}");
        assert!(err.contains("pacer.migrations"), "{err}");
        assert!(err.contains("running, done, failed and aborted"), "{err}");
    }

    #[test]
    fn an_unknown_finished_phase_is_an_error_not_dropped() {
        let err = words("running", &["add_column", "rewrite"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("records phase \"rewrite\" as done"), "{err}");
        assert!(err.contains("add_column"), "{err}");
    }
}
