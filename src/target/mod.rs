//! The database boundary: one trait the engine drives, one implementation per database.
//!
//! Everything here is engine-neutral. SQL text lives in the implementations (`postgres/`;
//! `mysql/` refuses for now). [`family`] picks the implementation from the target URL.

pub mod any;
pub mod family;
pub mod mysql;
pub mod postgres;
pub(crate) mod runner;

use std::fmt;
use std::future::Future;

use serde::{Deserialize, Serialize};

use crate::plan::{Finding, Phase, PhasePlan, Plan};
use family::Family;

/// The key values of one row, in key-column order, as the database prints them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Key(pub Vec<String>);

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.as_slice() {
            [one] => f.write_str(one),
            many => write!(f, "({})", many.join(", ")),
        }
    }
}

/// A half-open key range `(lo, hi]`; `lo = None` means "from the first row".
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyRange {
    /// Exclusive lower bound.
    pub lo: Option<Key>,
    /// Inclusive upper bound.
    pub hi: Key,
}

/// A column of the key pacer walks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyColumn {
    /// Column name.
    pub name: String,
    /// Its SQL type as the database formats it.
    pub sql_type: String,
}

/// What preflight learned about the table.
#[derive(Debug, Clone, Serialize)]
pub struct TableInfo {
    /// Schema-qualified table name as the database resolved it.
    pub table: String,
    /// The key batches walk, in order.
    pub key: Vec<KeyColumn>,
    /// Where the key comes from (`primary key orders_pkey`).
    pub key_source: String,
    /// Estimated row count from statistics, if there are statistics.
    pub estimated_rows: Option<u64>,
    /// Table (heap + TOAST) size in bytes.
    pub table_bytes: u64,
    /// Size of all indexes in bytes.
    pub index_bytes: u64,
    /// Server version string.
    pub server_version: String,
    /// The server product (`PostgreSQL`, `MariaDB`, `MySQL`).
    pub server_product: String,
    /// Warnings and notes found by looking at the database.
    pub findings: Vec<Finding>,
}

/// The outcome recorded for a migration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Phases are still to run (or a runner is running them).
    Running,
    /// Every phase finished.
    Done,
    /// Stopped by an error; resumable.
    Failed,
    /// Stopped by the operator; resumable.
    Aborted,
}

impl Outcome {
    /// The word stored in the state table.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Running => "running",
            Outcome::Done => "done",
            Outcome::Failed => "failed",
            Outcome::Aborted => "aborted",
        }
    }

    /// Parses the stored word; None for a word this pacer does not know (a newer pacer's, or
    /// a hand edit), which must not be taken for any outcome.
    pub fn parse(s: &str) -> Option<Outcome> {
        match s {
            "running" => Some(Outcome::Running),
            "done" => Some(Outcome::Done),
            "failed" => Some(Outcome::Failed),
            "aborted" => Some(Outcome::Aborted),
            _ => None,
        }
    }
}

/// A migration's recorded state, read from the state table in the target database.
#[derive(Debug, Clone, Serialize)]
pub struct JobState {
    /// The migration's id (`schema.table.column`).
    pub job: String,
    /// Digest of the plan definition that started it.
    pub plan_digest: String,
    /// Outcome so far.
    pub outcome: Outcome,
    /// The phase running or next to run.
    pub phase: String,
    /// Phases finished.
    pub phases_done: Vec<Phase>,
    /// Whether this migration added the column.
    pub column_created: bool,
    /// Last checkpoint: every key up to and including this one is backfilled.
    pub last_key: Option<Key>,
    /// End of the backfill range, fixed when the backfill began.
    pub range_end: Option<Key>,
    /// Keys walked by the backfill.
    pub rows_done: u64,
    /// Rows the backfill actually changed.
    pub rows_updated: u64,
    /// Estimated rows to walk (statistics at backfill start).
    pub rows_total: Option<u64>,
    /// Batches committed.
    pub batches: u64,
    /// Who runs (or last ran) it: host and process id.
    pub runner: Option<String>,
    /// Last message (error or note).
    pub message: Option<String>,
    /// When it started (RFC 3339, UTC).
    pub started_at: String,
    /// When its state last changed.
    pub updated_at: String,
    /// When it finished, if it did.
    pub finished_at: Option<String>,
}

/// A session that holds a lock someone else waits for.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Blocker {
    /// The server's id of the session (PostgreSQL: its backend pid; MySQL: its connection id).
    pub pid: i64,
    /// Its application name.
    pub application: String,
    /// Its database user.
    pub user: String,
    /// Its state (`active`, `idle in transaction` …).
    pub state: String,
    /// Age of its transaction in seconds, if it is in one.
    pub xact_age_s: Option<f64>,
    /// Its current or last query (shortened).
    pub query: String,
    /// One of pacer's own sessions (the target recognises them by the name it gives them).
    #[serde(default)]
    pub pacer: bool,
    /// The family of the server it is on: what its id and its origin are called.
    #[serde(default)]
    pub family: Family,
}

impl fmt::Display for Blocker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let words = self.family.figure_words();
        write!(
            f,
            "{} {} ({}, user {}, {}",
            words.session,
            self.pid,
            if self.application.is_empty() {
                match self.family {
                    Family::Postgres => "no application name",
                    Family::MySql => "client unknown",
                }
            } else {
                &self.application
            },
            self.user,
            self.state
        )?;
        if let Some(age) = self.xact_age_s {
            write!(f, ", transaction open {}", crate::format::secs(age))?;
        }
        write!(f, "): {}", self.query)
    }
}

/// One committed batch.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BatchOutcome {
    /// The range the batch covered.
    pub range: KeyRange,
    /// Keys in the range (rows walked).
    pub keys: u64,
    /// Rows changed (rows already filled, e.g. by the sync trigger, are skipped).
    pub rows_updated: u64,
    /// Whether this batch reached the end of the backfill range.
    pub last: bool,
}

/// Where the backfill stands when it (re)starts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BackfillStart {
    /// Resume after this key (None: from the first row).
    pub after: Option<Key>,
    /// Last key of the range (None: the table was empty when the backfill began).
    pub end: Option<Key>,
    /// Keys walked so far.
    pub rows_done: u64,
    /// Rows changed so far.
    pub rows_updated: u64,
    /// Estimated keys in the whole range.
    pub rows_total: Option<u64>,
}

/// Where verify has got to: the last key checked (key ranges), or the first page not yet
/// checked (a target that reads the table by physical position, e.g. PostgreSQL's TID range
/// scans). The target that returns a cursor is the one that reads it back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerifyCursor {
    /// Keys up to and including this one are checked.
    Key(Key),
    /// Pages before this one are checked.
    Page(u64),
}

impl fmt::Display for VerifyCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VerifyCursor::Key(k) => write!(f, "key {k}"),
            VerifyCursor::Page(p) => write!(f, "page {p}"),
        }
    }
}

/// The error for rows verify found unfilled in `range` of `table` (`unfilled`: NULL although
/// the expression gives a value; `nulls`: NULL because it gives NULL, under NOT NULL), naming
/// the first such key when known. `coalesce` is how the server spells it in the advice.
pub fn unfilled_error(
    range: &str,
    table: &str,
    column: &str,
    (unfilled, nulls): (i64, i64),
    first: Option<&Key>,
    coalesce: &str,
) -> TargetError {
    let example = first
        .map(|k| format!(" (first: key {k})"))
        .unwrap_or_default();
    TargetError::Failed(if unfilled > 0 {
        format!(
            "verify found {unfilled} rows in {range} of {table} whose {column} was never filled{example}, \
             although the backfill expression gives them a value. A writer may have set them \
             back after their batch. Fix or re-fill those rows, then run pacer again: verify \
             checks every chunk again."
        )
    } else {
        format!(
            "verify found {nulls} rows in {range} of {table} where {column} is NULL because the backfill \
             expression gives NULL for them{example}; NOT NULL cannot be set. Make the \
             expression give a value for every row (e.g. {coalesce}(…, 0)) and start a new \
             migration, or set not_null = false."
        )
    })
}

/// One verified chunk.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VerifyChunk {
    /// Where the next chunk starts (None: nothing left).
    pub next: Option<VerifyCursor>,
    /// Rows checked.
    pub rows: u64,
}

/// One idempotent DDL step, as a target names it in [`Target::ddl_steps`]; each checks first
/// whether its work is already done. The variants are the steps the families use; the engine
/// names none of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DdlStep {
    /// Add the column (and record that this migration created it, atomically).
    AddColumn,
    /// Create the sync function and trigger.
    InstallSync,
    /// Add the NOT VALID check constraint.
    AddNotNullCheck,
    /// Validate it (reads and writes go on).
    ValidateNotNullCheck,
    /// Set NOT NULL (using the valid check, no scan) and drop the check.
    SetNotNull,
    /// Drop an INVALID index left by an earlier attempt, then build the index concurrently.
    BuildIndex,
    /// Drop the sync trigger and function.
    DropSync,
}

impl DdlStep {
    /// A short name for events and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            DdlStep::AddColumn => "add column",
            DdlStep::InstallSync => "install sync trigger",
            DdlStep::AddNotNullCheck => "add NOT VALID check",
            DdlStep::ValidateNotNullCheck => "validate check",
            DdlStep::SetNotNull => "set NOT NULL",
            DdlStep::BuildIndex => "build index",
            DdlStep::DropSync => "drop sync trigger",
        }
    }
}

/// What a DDL step did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum StepOutcome {
    /// It ran.
    Done,
    /// Its work was already there; nothing ran.
    AlreadyDone,
    /// It ran, after repairing something left by an earlier attempt (described).
    Repaired(String),
    /// It ran, after clearing its way (described: an autovacuum cancelled, or waited out).
    Cleared(String),
}

/// Errors the engine reacts to differently.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TargetError {
    /// A lock wait reached lock_timeout, or (`skipped`) the DDL was not sent because a session
    /// held the table for too long; retry later. Carries who held the lock.
    #[error("lock not taken ({detail})")]
    LockTimeout {
        /// Who held the lock while pacer waited (or looked).
        blockers: Vec<Blocker>,
        /// The database's message, or why the statement was not sent.
        detail: String,
        /// The statement was not sent: queued, it would only have timed out.
        skipped: bool,
    },
    /// A statement reached statement_timeout.
    #[error("statement timed out: {0}")]
    StatementTimeout(String),
    /// The connection is gone (server restart, network cut, backend terminated).
    #[error("connection lost: {0}")]
    ConnectionLost(String),
    /// Something is in progress elsewhere that this step must wait for.
    #[error("{0}")]
    Busy(String),
    /// The checkpoint moved under pacer: another runner is working on this migration.
    #[error("{0}")]
    CheckpointMoved(String),
    /// Preflight refuses to run (bad table, key, expression …); nothing was changed.
    #[error("{0}")]
    Refused(String),
    /// Anything else; the migration stops (resumable).
    #[error("{0}")]
    Failed(String),
}

/// Result of a target operation.
pub type TargetResult<T> = Result<T, TargetError>;

/// Preflight's answer.
#[derive(Debug, Clone)]
pub struct Preflight {
    /// The table.
    pub info: TableInfo,
    /// The migration's recorded state, when it has run before.
    pub job: Option<JobState>,
}

/// The engine-neutral database boundary. One attempt per call; the engine retries.
pub trait Target: Send {
    /// The sampler of this target's database: its monitoring SQL, on a connection of its own.
    type Source: crate::sampler::MetricSource + 'static;

    /// A sampler for this migration (it connects on its first sample), whose statements run
    /// under a timeout that suits `sample_interval` and are written to `audit`.
    fn metric_source(
        &self,
        sample_interval: std::time::Duration,
        audit: crate::audit::Audit,
    ) -> Self::Source;

    /// The target as shown to people (never with a password).
    fn describe(&self) -> String;

    /// The target with where its settings came from, for `pacer plan` (never a password).
    fn describe_connection(&self) -> String {
        self.describe()
    }

    /// The migration's id in the state table.
    fn job_id(&self) -> String;

    /// Read-only checks; refuses (`TargetError::Refused`) when the plan cannot run safely.
    fn preflight(&mut self, plan: &Plan) -> impl Future<Output = TargetResult<Preflight>> + Send;

    /// The statements each phase runs (pure; call after preflight).
    fn render(&self, plan: &Plan) -> Vec<PhasePlan>;

    /// Resolves the table's name (which names the migration) without preflight's other checks,
    /// for reading the recorded state.
    fn locate(&mut self) -> impl Future<Output = TargetResult<()>> + Send;

    /// Reads the migration's recorded state (None: never started).
    fn load_job(&mut self) -> impl Future<Output = TargetResult<Option<JobState>>> + Send;

    /// Claims the migration for this runner (refusing a second runner) and creates its state
    /// row if needed. The first write pacer makes.
    fn open_job(&mut self) -> impl Future<Output = TargetResult<JobState>> + Send;

    /// The DDL steps of `phase`, in order, as this target does that phase (empty: the phase
    /// runs no DDL here). The engine runs them one by one with retries, a batch boundary
    /// between two; it knows none of them by name, so a family may tighten NOT NULL or build
    /// the index its own way.
    fn ddl_steps(&self, phase: Phase) -> Vec<DdlStep>;

    /// Runs one attempt of one DDL step.
    fn ddl(&mut self, step: DdlStep) -> impl Future<Output = TargetResult<StepOutcome>> + Send;

    /// Records a phase as finished.
    fn complete_phase(
        &mut self,
        phase: Phase,
        next: Option<Phase>,
    ) -> impl Future<Output = TargetResult<()>> + Send;

    /// Fixes the backfill range on first call (recording it), returns where to resume.
    fn backfill_start(&mut self) -> impl Future<Output = TargetResult<BackfillStart>> + Send;

    /// Runs one batch after `after` of at most `size` keys, up to `end`, with its checkpoint,
    /// in one transaction.
    fn run_batch(
        &mut self,
        after: Option<&Key>,
        end: &Key,
        size: u64,
    ) -> impl Future<Output = TargetResult<BatchOutcome>> + Send;

    /// Checks one chunk after `after` (about `size` rows; a target may size chunks by time
    /// instead); fails when a row is unfilled, naming the first such key.
    fn verify_chunk(
        &mut self,
        after: Option<&VerifyCursor>,
        size: u64,
    ) -> impl Future<Output = TargetResult<VerifyChunk>> + Send;

    /// Records the outcome (done, failed, aborted) with a message.
    fn finish(
        &mut self,
        outcome: Outcome,
        message: &str,
    ) -> impl Future<Output = TargetResult<()>> + Send;

    /// Runs the plan's throttle_query (on a session other than the one that changes data) and
    /// returns its number.
    fn throttle_query(&mut self, sql: &str) -> impl Future<Output = TargetResult<f64>> + Send;

    /// Each replica's lag in seconds, as the target measures it or, where it can, forecasts
    /// it (on a session other than the one that changes data), with the figures behind it in
    /// words, for the replication-lag throttle. Empty: no replicas.
    fn replica_lags(
        &mut self,
    ) -> impl Future<Output = TargetResult<Vec<crate::engine::throttle::ReplicaReading>>> + Send;

    /// Drops the connection(s) and connects again, re-applying session settings and the claim.
    fn reconnect(&mut self) -> impl Future<Output = TargetResult<()>> + Send;

    /// The foreground probe's log (see [`crate::probe`]): samples arrive once `open_job` has
    /// started the probe, on a connection of its own. None: this target has no probe, and
    /// the foreground guard stays off.
    fn probe_log(&self) -> Option<crate::probe::ProbeLog> {
        None
    }
}
