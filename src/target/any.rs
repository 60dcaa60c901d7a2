//! A target of any family, for the commands: they connect to whatever the URL names and drive
//! it through [`Target`] without naming a database. One variant per family; each method hands
//! the call to the family's own target.

use std::time::Duration;

use super::mysql::{MySql, sampler::MySource};
use super::postgres::{Postgres, sampler::PgSource};
use super::{
    BackfillStart, BatchOutcome, DdlStep, JobState, Key, Outcome, Preflight, StepOutcome, Target,
    TargetResult, VerifyChunk, VerifyCursor,
};
use crate::audit::Audit;
use crate::engine::throttle::ReplicaReading;
use crate::plan::{Phase, PhasePlan, Plan};
use crate::sampler::{DbSample, MetricSource};

/// Where a target of one of pacer's families is, resolved but not connected.
#[derive(Clone)]
pub enum AnyConn {
    /// PostgreSQL.
    Postgres(Box<super::postgres::PgTarget>),
    /// MySQL or MariaDB.
    MySql(Box<super::mysql::MyTarget>),
}

impl AnyConn {
    /// The target as shown to people (never with a password).
    pub fn redacted(&self) -> String {
        match self {
            AnyConn::Postgres(c) => c.redacted(),
            AnyConn::MySql(c) => c.redacted(),
        }
    }
}

/// A connected target of one of pacer's families.
pub enum AnyTarget {
    /// PostgreSQL.
    Postgres(Box<Postgres>),
    /// MySQL or MariaDB.
    MySql(Box<MySql>),
}

/// The metric source of an [`AnyTarget`].
pub enum AnySource {
    /// PostgreSQL's.
    Postgres(Box<PgSource>),
    /// MySQL's or MariaDB's.
    MySql(Box<MySource>),
}

impl MetricSource for AnySource {
    async fn sample(&mut self) -> DbSample {
        match self {
            AnySource::Postgres(s) => s.sample().await,
            AnySource::MySql(s) => s.sample().await,
        }
    }
}

impl Target for AnyTarget {
    type Source = AnySource;

    fn metric_source(&self, sample_interval: Duration, audit: Audit) -> AnySource {
        match self {
            AnyTarget::Postgres(t) => {
                AnySource::Postgres(Box::new(t.metric_source(sample_interval, audit)))
            }
            AnyTarget::MySql(t) => {
                AnySource::MySql(Box::new(t.metric_source(sample_interval, audit)))
            }
        }
    }

    fn describe(&self) -> String {
        match self {
            AnyTarget::Postgres(t) => t.describe(),
            AnyTarget::MySql(t) => t.describe(),
        }
    }

    fn describe_connection(&self) -> String {
        match self {
            AnyTarget::Postgres(t) => t.describe_connection(),
            AnyTarget::MySql(t) => t.describe_connection(),
        }
    }

    fn job_id(&self) -> String {
        match self {
            AnyTarget::Postgres(t) => t.job_id(),
            AnyTarget::MySql(t) => t.job_id(),
        }
    }

    async fn preflight(&mut self, plan: &Plan) -> TargetResult<Preflight> {
        match self {
            AnyTarget::Postgres(t) => t.preflight(plan).await,
            AnyTarget::MySql(t) => t.preflight(plan).await,
        }
    }

    fn render(&self, plan: &Plan) -> Vec<PhasePlan> {
        match self {
            AnyTarget::Postgres(t) => t.render(plan),
            AnyTarget::MySql(t) => t.render(plan),
        }
    }

    async fn locate(&mut self) -> TargetResult<()> {
        match self {
            AnyTarget::Postgres(t) => t.locate().await,
            AnyTarget::MySql(t) => t.locate().await,
        }
    }

    async fn load_job(&mut self) -> TargetResult<Option<JobState>> {
        match self {
            AnyTarget::Postgres(t) => t.load_job().await,
            AnyTarget::MySql(t) => t.load_job().await,
        }
    }

    async fn open_job(&mut self) -> TargetResult<JobState> {
        match self {
            AnyTarget::Postgres(t) => t.open_job().await,
            AnyTarget::MySql(t) => t.open_job().await,
        }
    }

    fn ddl_steps(&self, phase: Phase) -> Vec<DdlStep> {
        match self {
            AnyTarget::Postgres(t) => t.ddl_steps(phase),
            AnyTarget::MySql(t) => t.ddl_steps(phase),
        }
    }

    async fn ddl(&mut self, step: DdlStep) -> TargetResult<StepOutcome> {
        match self {
            AnyTarget::Postgres(t) => t.ddl(step).await,
            AnyTarget::MySql(t) => t.ddl(step).await,
        }
    }

    async fn complete_phase(&mut self, phase: Phase, next: Option<Phase>) -> TargetResult<()> {
        match self {
            AnyTarget::Postgres(t) => t.complete_phase(phase, next).await,
            AnyTarget::MySql(t) => t.complete_phase(phase, next).await,
        }
    }

    async fn backfill_start(&mut self) -> TargetResult<BackfillStart> {
        match self {
            AnyTarget::Postgres(t) => t.backfill_start().await,
            AnyTarget::MySql(t) => t.backfill_start().await,
        }
    }

    async fn run_batch(
        &mut self,
        after: Option<&Key>,
        end: &Key,
        size: u64,
    ) -> TargetResult<BatchOutcome> {
        match self {
            AnyTarget::Postgres(t) => t.run_batch(after, end, size).await,
            AnyTarget::MySql(t) => t.run_batch(after, end, size).await,
        }
    }

    async fn verify_chunk(
        &mut self,
        after: Option<&VerifyCursor>,
        size: u64,
    ) -> TargetResult<VerifyChunk> {
        match self {
            AnyTarget::Postgres(t) => t.verify_chunk(after, size).await,
            AnyTarget::MySql(t) => t.verify_chunk(after, size).await,
        }
    }

    async fn finish(&mut self, outcome: Outcome, message: &str) -> TargetResult<()> {
        match self {
            AnyTarget::Postgres(t) => t.finish(outcome, message).await,
            AnyTarget::MySql(t) => t.finish(outcome, message).await,
        }
    }

    async fn throttle_query(&mut self, sql: &str) -> TargetResult<f64> {
        match self {
            AnyTarget::Postgres(t) => t.throttle_query(sql).await,
            AnyTarget::MySql(t) => t.throttle_query(sql).await,
        }
    }

    async fn replica_lags(&mut self) -> TargetResult<Vec<ReplicaReading>> {
        match self {
            AnyTarget::Postgres(t) => t.replica_lags().await,
            AnyTarget::MySql(t) => t.replica_lags().await,
        }
    }

    async fn reconnect(&mut self) -> TargetResult<()> {
        match self {
            AnyTarget::Postgres(t) => t.reconnect().await,
            AnyTarget::MySql(t) => t.reconnect().await,
        }
    }

    fn probe_log(&self) -> Option<crate::probe::ProbeLog> {
        match self {
            AnyTarget::Postgres(t) => t.probe_log(),
            AnyTarget::MySql(t) => t.probe_log(),
        }
    }
}
