//! The PostgreSQL target (12 and later).
//!
//! `mod.rs` holds the connection and its sessions and the [`Target`] impl; the work behind each
//! trait method lives with its concern: `state` (the state table and the claim), `ddl` (the DDL
//! steps), `backfill` (batches, checkpoints, verify), `blockers` (who holds a DDL up),
//! `observer` (the second session's reads), `catalog` (preflight), `render` and `sql` (SQL
//! text), `connect` (targets, TLS, connection errors), `errors` (driver errors → engine errors).

mod backfill;
mod blockers;
pub mod catalog;
pub mod connect;
mod ddl;
pub mod errors;
pub mod lag;
mod observer;
mod probe;
pub mod render;
pub mod sampler;
#[cfg(test)]
mod sampler_tests;
pub mod session;
pub mod sql;
mod state;
mod wal;

use std::collections::HashMap;
use std::time::Duration;

use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::audit::Audit;
use crate::engine::throttle::ReplicaReading;
use crate::plan::{Phase, PhasePlan, Plan};
use crate::target::{
    BackfillStart, BatchOutcome, DdlStep, JobState, Key, Outcome, Preflight, StepOutcome, Target,
    TargetError, TargetResult, VerifyChunk, VerifyCursor,
};

use crate::target::runner::runner_id;
pub use backfill::FORCE_FLUSH_VERSION;
pub use blockers::{is_pacer, redact_query};
pub use connect::{ConnectError, PgTarget};
use errors::classify;
use session::{Prepared, Session};
use sql::PgSql;
pub use state::job_id;

/// Oldest server pacer supports: `SET NOT NULL` must be able to use a valid CHECK (12+).
pub const MIN_SERVER_VERSION: i32 = 120000;

/// A PostgreSQL database that a migration runs against.
pub struct Postgres {
    conn: PgTarget,
    plan: Plan,
    job: String,
    client: Option<Session>,
    observer: Option<Session>,
    audit: Audit,
    backend_pid: i32,
    server_version: i32,
    /// Pages in the next verify chunk (0: not sized yet).
    verify_pages: u64,
    statements: HashMap<String, Prepared>,
    sql: Option<PgSql>,
    runner: String,
    /// Forecasts each replica's lag from its WAL positions.
    lag: lag::LagForecast,
    /// The foreground probe's samples, and its task once `open_job` started it.
    probe_log: crate::probe::ProbeLog,
    probe: Option<tokio::task::JoinHandle<()>>,
    /// What the running DDL step did to get its lock (an autovacuum cancelled), for its event.
    cleared: Option<String>,
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Some(h) = self.probe.take() {
            h.abort();
        }
    }
}

/// How PostgreSQL does each DDL phase: NOT NULL through a NOT VALID check that is validated
/// without blocking writes and then lets SET NOT NULL skip its scan; the index concurrently;
/// cleanup drops the sync triggers (only a backfilled column has them).
pub fn ddl_steps(plan: &Plan, phase: Phase) -> Vec<DdlStep> {
    match phase {
        Phase::AddColumn => vec![DdlStep::AddColumn],
        Phase::Sync => vec![DdlStep::InstallSync],
        Phase::NotNull => vec![
            DdlStep::AddNotNullCheck,
            DdlStep::ValidateNotNullCheck,
            DdlStep::SetNotNull,
        ],
        Phase::Index => vec![DdlStep::BuildIndex],
        Phase::Cleanup if plan.column.backfill.is_some() => vec![DdlStep::DropSync],
        Phase::Preflight | Phase::Backfill | Phase::Verify | Phase::Cleanup => Vec::new(),
    }
}

/// One parameter list of text values (keys travel as text and are cast in SQL).
type TextParams = Vec<Option<String>>;

impl Postgres {
    /// Connects for a plan: one session for changes, claimed later by `open_job`. Every
    /// statement sent on pacer's sessions is written to `audit` first.
    pub async fn connect(
        conn: PgTarget,
        plan: &Plan,
        audit: Audit,
    ) -> Result<Postgres, ConnectError> {
        let job = job_id(plan, None);
        let mut target = Postgres {
            conn,
            plan: plan.clone(),
            job,
            client: None,
            observer: None,
            audit,
            backend_pid: 0,
            server_version: 0,
            verify_pages: 0,
            statements: HashMap::new(),
            sql: None,
            runner: runner_id(),
            lag: lag::LagForecast::new(crate::engine::LAG_POLL),
            probe_log: crate::probe::ProbeLog::new(),
            probe: None,
            cleared: None,
        };
        let client = target
            .conn
            .connect(&application_name("pacer", &target.job))
            .await?;
        target.client = Some(Session::new(client, "main", target.audit.clone()));
        Ok(target)
    }

    fn client(&self) -> TargetResult<&Session> {
        self.client
            .as_ref()
            .ok_or_else(|| TargetError::ConnectionLost("not connected".into()))
    }

    fn sql(&self) -> &PgSql {
        self.sql.as_ref().expect("preflight ran before any phase")
    }

    /// Applies the session settings every statement of the migration relies on.
    async fn apply_session_settings(&mut self) -> TargetResult<()> {
        let client = self.client()?;
        let row = client
            .query_one(
                "SELECT current_setting('server_version_num')::int, pg_backend_pid()",
                &[],
            )
            .await
            .map_err(|e| classify(&e, "reading the server version"))?;
        self.server_version = row.get(0);
        self.backend_pid = row.get(1);
        let s = &self.plan.safety;
        let mut settings = format!(
            "SET lock_timeout = '{}ms'; SET statement_timeout = '{}ms'; \
             SET idle_in_transaction_session_timeout = '10min'; SET TimeZone = 'UTC'; \
             SET DateStyle = 'ISO, YMD'; SET extra_float_digits = 3",
            s.lock_timeout.as_millis(),
            s.batch_timeout.as_millis()
        );
        if self.server_version >= 140000 {
            // Lets the server stop a batch soon after pacer dies, instead of finishing it.
            settings.push_str("; SET client_connection_check_interval = '1s'");
        }
        self.client()?
            .batch_execute(&settings)
            .await
            .map_err(|e| classify(&e, "applying session settings"))?;
        self.statements.clear();
        Ok(())
    }

    async fn prepared(&mut self, sql: &str) -> TargetResult<Prepared> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let statement = self
            .client()?
            .prepare(sql)
            .await
            .map_err(|e| classify(&e, "preparing a statement"))?;
        self.statements.insert(sql.to_string(), statement.clone());
        Ok(statement)
    }

    async fn query(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        context: &str,
    ) -> TargetResult<Vec<Row>> {
        let statement = self.prepared(sql).await?;
        self.client()?
            .query(&statement, params)
            .await
            .map_err(|e| classify(&e, context))
    }

    async fn execute(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        context: &str,
    ) -> TargetResult<u64> {
        let statement = self.prepared(sql).await?;
        self.client()?
            .execute(&statement, params)
            .await
            .map_err(|e| classify(&e, context))
    }

    async fn simple(&self, sql: &str, context: &str) -> TargetResult<()> {
        self.client()?
            .batch_execute(sql)
            .await
            .map_err(|e| classify(&e, context))
    }

    /// Creates pacer's heartbeat row and starts the foreground probe on it (once).
    async fn start_probe(&mut self) -> TargetResult<()> {
        if self.probe.as_ref().is_some_and(|h| !h.is_finished()) {
            return Ok(());
        }
        let [create, insert] = probe::create_heartbeat(&self.plan.state_table);
        self.simple(&create, "creating pacer's heartbeat table")
            .await?;
        let job = self.job.clone();
        self.execute(&insert, &[&job], "recording the heartbeat row")
            .await?;
        self.probe = Some(probe::spawn(
            self.conn.clone(),
            job,
            self.plan.state_table.clone(),
            self.audit.clone(),
            self.probe_log.clone(),
        ));
        Ok(())
    }

    async fn rollback(&self) {
        if let Some(c) = &self.client {
            let _ = c.batch_execute("ROLLBACK").await;
        }
    }

    /// Drops the connection(s) and connects again, re-applying session settings and the claim.
    async fn reconnect_sessions(&mut self) -> TargetResult<()> {
        let previous = self.backend_pid;
        self.client = None;
        self.observer = None;
        self.statements.clear();
        let client = self
            .conn
            .connect(&application_name("pacer", &self.job))
            .await
            .map_err(|e| {
                if e.is_retryable() {
                    TargetError::ConnectionLost(e.to_string())
                } else {
                    TargetError::Failed(e.to_string())
                }
            })?;
        self.client = Some(Session::new(client, "main", self.audit.clone()));
        self.apply_session_settings().await?;
        if self.sql.is_some() && self.job_row().await?.is_some() {
            self.claim(Some(previous)).await?;
        }
        Ok(())
    }
}

fn application_name(prefix: &str, job: &str) -> String {
    let mut name = format!("{prefix}:{job}");
    while name.len() > 63 {
        name.pop();
    }
    name
}

/// Each method's work lives in the file of its concern: the state table (`state.rs`), DDL
/// steps (`ddl.rs`), backfill and verify (`backfill.rs`), the observer session (`observer.rs`).
impl Target for Postgres {
    type Source = sampler::PgSource;

    fn describe_connection(&self) -> String {
        format!(
            "{} (from {}, sslmode {})",
            self.describe(),
            self.conn.source(),
            self.conn.ssl_mode()
        )
    }

    fn metric_source(&self, sample_interval: Duration, audit: Audit) -> sampler::PgSource {
        sampler::PgSource::new(self.conn.clone(), &self.job, self.plan.table.quoted())
            .with_statement_timeout(sampler::statement_timeout_for(sample_interval))
            .with_audit(audit)
    }

    fn describe(&self) -> String {
        self.conn.redacted()
    }

    fn job_id(&self) -> String {
        self.job.clone()
    }

    async fn preflight(&mut self, plan: &Plan) -> TargetResult<Preflight> {
        self.apply_session_settings().await?;
        catalog::preflight(self, plan).await
    }

    fn render(&self, plan: &Plan) -> Vec<PhasePlan> {
        render::phases(plan, self.sql())
    }

    async fn locate(&mut self) -> TargetResult<()> {
        self.locate_table().await
    }

    async fn load_job(&mut self) -> TargetResult<Option<JobState>> {
        self.job_row().await
    }

    async fn open_job(&mut self) -> TargetResult<JobState> {
        let job = self.open_job_row().await?;
        self.start_probe().await?;
        Ok(job)
    }

    fn ddl_steps(&self, phase: Phase) -> Vec<DdlStep> {
        ddl_steps(&self.plan, phase)
    }

    async fn ddl(&mut self, step: DdlStep) -> TargetResult<StepOutcome> {
        self.cleared = None;
        let outcome = self.run_ddl_step(step).await?;
        Ok(match (outcome, self.cleared.take()) {
            (StepOutcome::Done, Some(note)) => StepOutcome::Cleared(note),
            (StepOutcome::Repaired(d), Some(note)) => StepOutcome::Repaired(format!("{d}; {note}")),
            (outcome, _) => outcome,
        })
    }

    async fn complete_phase(&mut self, phase: Phase, next: Option<Phase>) -> TargetResult<()> {
        self.record_phase(phase, next).await
    }

    async fn backfill_start(&mut self) -> TargetResult<BackfillStart> {
        self.fix_backfill_range().await
    }

    async fn run_batch(
        &mut self,
        after: Option<&Key>,
        end: &Key,
        size: u64,
    ) -> TargetResult<BatchOutcome> {
        let result = self.batch_transaction(after, end, size).await;
        if result.is_err() {
            self.rollback().await;
        }
        result
    }

    async fn verify_chunk(
        &mut self,
        after: Option<&VerifyCursor>,
        size: u64,
    ) -> TargetResult<VerifyChunk> {
        self.verify_next(after, size).await
    }

    async fn finish(&mut self, outcome: Outcome, message: &str) -> TargetResult<()> {
        self.record_outcome(outcome, message).await
    }

    async fn throttle_query(&mut self, sql: &str) -> TargetResult<f64> {
        self.run_throttle_query(sql).await
    }

    async fn replica_lags(&mut self) -> TargetResult<Vec<ReplicaReading>> {
        let positions = self.read_replica_positions().await?;
        Ok(self.lag.observe(std::time::Instant::now(), &positions))
    }

    async fn reconnect(&mut self) -> TargetResult<()> {
        self.reconnect_sessions().await
    }

    fn probe_log(&self) -> Option<crate::probe::ProbeLog> {
        Some(self.probe_log.clone())
    }
}
