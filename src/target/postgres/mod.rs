//! The PostgreSQL target (12 and later).

pub mod catalog;
pub mod connect;
pub mod errors;
pub mod lag;
pub mod render;
pub mod sampler;
pub mod session;
pub mod sql;

use std::collections::HashMap;
use std::time::Duration;

use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::audit::Audit;
use crate::engine::throttle::ReplicaReading;
use crate::plan::{Phase, PhasePlan, Plan};
use crate::target::{
    BackfillStart, BatchOutcome, Blocker, DdlStep, JobState, Key, KeyRange, Outcome, Preflight,
    StepOutcome, Target, TargetError, TargetResult, VerifyChunk,
};
use sampler::{REPLICAS_SQL, replica_positions_from_rows};

pub use connect::{ConnectError, PgTarget};
use errors::classify;
use session::{Prepared, Session};
use sql::PgSql;

/// Oldest server pacer supports: `SET NOT NULL` must be able to use a valid CHECK (12+).
pub const MIN_SERVER_VERSION: i32 = 120000;
/// From this version (15) on, each batch asks the server to flush its statistics when it
/// commits (`pg_stat_force_next_flush()`, in the same round trip as its BEGIN), so the table's
/// counters hold pacer's rows the moment the batch commits and the sampler can tell the
/// application's writes from pacer's. Without it a busy session flushes about once a second,
/// and the table's write rate swings between 0 and twice pacer's rate.
pub const FORCE_FLUSH_VERSION: i32 = 150000;
/// How a batch transaction begins.
const BATCH_BEGIN: &str = "BEGIN";
/// How a batch transaction begins on PostgreSQL 15 and later (see [`FORCE_FLUSH_VERSION`]).
const BATCH_BEGIN_FLUSH: &str = "BEGIN; SELECT pg_stat_force_next_flush()";

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
    statements: HashMap<String, Prepared>,
    sql: Option<PgSql>,
    runner: String,
    /// Forecasts each replica's lag from its WAL positions.
    lag: lag::LagForecast,
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
            statements: HashMap::new(),
            sql: None,
            runner: runner_id(),
            lag: lag::LagForecast::new(crate::engine::LAG_POLL),
        };
        let client = target
            .conn
            .connect(&application_name("pacer", &target.job))
            .await?;
        target.client = Some(Session::new(client, "main", target.audit.clone()));
        Ok(target)
    }

    /// How pacer reaches the database (no password in any of its output).
    pub fn connection(&self) -> &PgTarget {
        &self.conn
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

    async fn observer(&mut self) -> Option<&Session> {
        if self.observer.as_ref().is_some_and(|c| c.is_closed()) {
            self.observer = None;
        }
        if self.observer.is_none() {
            match self
                .conn
                .connect(&application_name("pacer-observer", &self.job))
                .await
            {
                Ok(c) => self.observer = Some(Session::new(c, "observer", self.audit.clone())),
                Err(e) => {
                    tracing::warn!("observer connection failed: {e}");
                    return None;
                }
            }
        }
        self.observer.as_ref()
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

    async fn rollback(&self) {
        if let Some(c) = &self.client {
            let _ = c.batch_execute("ROLLBACK").await;
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
        if !holders.is_empty() {
            return Err(TargetError::LockTimeout {
                detail: format!(
                    "not attempted: {} held a lock on {} {}; the DDL would queue behind {} and \
                     every query on the table behind the DDL",
                    if holders.len() == 1 {
                        "a session".to_string()
                    } else {
                        format!("{} sessions", holders.len())
                    },
                    self.plan.table.quoted(),
                    if holders.iter().any(|b| b.application == "autovacuum worker") {
                        "(autovacuum, or a transaction older than lock_timeout)"
                    } else {
                        "in a transaction older than lock_timeout"
                    },
                    if holders.len() == 1 { "it" } else { "them" }
                ),
                blockers: holders,
                skipped: true,
            });
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

    /// Sessions that hold a lock on the table and will likely keep it: autovacuum (which yields
    /// to a waiting DDL only after `deadlock_timeout`, 1 s by default, while every query on
    /// the table queues behind the DDL) and transactions older than `lock_timeout` (the DDL
    /// would only time out behind them, after blocking the application as long). Read on the
    /// observer session; a failed read finds none (the DDL's own lock_timeout still bounds it).
    async fn long_lock_holders(&self, lock_timeout: Duration) -> Vec<Blocker> {
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

    /// Runs one statement outside a transaction (CREATE/DROP INDEX CONCURRENTLY, VALIDATE)
    /// with lock and statement timeouts off: their locks let reads and writes go on, and
    /// they must be allowed to wait for old transactions.
    async fn long_statement(&mut self, sql: &str, context: &str) -> TargetResult<()> {
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
        result.map_err(|(e, blockers)| with_blockers(classify(&e, context), blockers))?;
        restored
    }

    /// Takes the migration's advisory lock, so that a second runner is refused. Waits a
    /// little when the holder is this runner's own dead session (after kill -9, its backend
    /// may need a moment to notice), and ends an orphaned session of this runner.
    async fn claim(&mut self, previous_backend: Option<i32>) -> TargetResult<()> {
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
            let recorded_runner = self.load_job().await?.and_then(|j| j.runner);
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

    async fn job_row(&mut self) -> TargetResult<Option<JobState>> {
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
        Ok(rows.first().map(job_from_row))
    }

    async fn column_state(&mut self) -> TargetResult<Option<(bool, bool)>> {
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

fn application_name(prefix: &str, job: &str) -> String {
    let mut name = format!("{prefix}:{job}");
    while name.len() > 63 {
        name.pop();
    }
    name
}

/// `host:pid` of this process.
fn runner_id() -> String {
    format!("{}:{}", crate::os::hostname(), std::process::id())
}

/// What a recorded runner (`host:pid`) is, seen from here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LocalRunner {
    /// Another host, or this very process: nothing can be told.
    Unknown,
    /// A pacer process on this host, still running.
    Alive,
    /// Ran on this host; its process is gone.
    Gone,
}

fn local_runner(runner: &str) -> LocalRunner {
    let Some((host, pid)) = runner.rsplit_once(':') else {
        return LocalRunner::Unknown;
    };
    let Ok(pid) = pid.parse::<u32>() else {
        return LocalRunner::Unknown;
    };
    if host != crate::os::hostname() || pid == std::process::id() {
        return LocalRunner::Unknown;
    }
    match crate::os::process_name(pid) {
        Some(name) if name == "pacer" => LocalRunner::Alive,
        _ => LocalRunner::Gone,
    }
}

fn key_from(value: Option<Vec<String>>) -> Option<Key> {
    value.map(Key)
}

fn job_from_row(r: &Row) -> JobState {
    let phases: Vec<String> = r.get(4);
    JobState {
        job: r.get(0),
        plan_digest: r.get(1),
        outcome: Outcome::parse(r.get::<_, &str>(2)),
        phase: r.get(3),
        phases_done: phases.iter().filter_map(|p| p.parse().ok()).collect(),
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
    }
}

fn key_params(key: Option<&Key>) -> Vec<String> {
    key.map(|k| k.0.clone()).unwrap_or_default()
}

fn with_blockers(error: TargetError, seen: Vec<Blocker>) -> TargetError {
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
const LAG_REPEATS: &str = "at batch boundaries, at most every 100 ms, for max_replication_lag";

/// Drives `work` while polling, from the observer session, who blocks backend `pid`.
async fn watch_blockers<F>(
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
pub fn blocker_from_row(r: &Row) -> Blocker {
    let query: String = r.get(5);
    let application: String = r.get(1);
    Blocker {
        pid: r.get(0),
        pacer: is_pacer(&application),
        application,
        user: r.get(2),
        state: r.get(3),
        xact_age_s: r.get(4),
        query: redact_query(&query),
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

impl Target for Postgres {
    type Source = sampler::PgSource;

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

    async fn load_job(&mut self) -> TargetResult<Option<JobState>> {
        self.job_row().await
    }

    async fn open_job(&mut self) -> TargetResult<JobState> {
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

    fn ddl_steps(&self, phase: Phase) -> Vec<DdlStep> {
        ddl_steps(&self.plan, phase)
    }

    async fn ddl(&mut self, step: DdlStep) -> TargetResult<StepOutcome> {
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
                .map_err(|e| match e {
                    TargetError::Failed(m) if m.contains("23514") => TargetError::Failed(format!(
                        "{m}. Some rows of {} have NULL in {}; the verify phase should have caught \
                         this: a writer may have set NULL since. Fix those rows and run pacer again.",
                        sql.table, self.plan.column.name
                    )),
                    other => other,
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

    async fn complete_phase(&mut self, phase: Phase, next: Option<Phase>) -> TargetResult<()> {
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

    async fn backfill_start(&mut self) -> TargetResult<BackfillStart> {
        let sql = self.sql().clone();
        let state = self.plan.state_table.quoted();
        let job = self.job.clone();
        let fixed: bool = self
            .query(
                &format!("SELECT range_fixed FROM {state} WHERE job = $1::text"),
                &[&job],
                "reading the backfill range",
            )
            .await?[0]
            .get(0);
        if !fixed {
            let end: Option<Vec<String>> = self
                .query(&sql.max_key(), &[], "finding the last key")
                .await?
                .first()
                .map(|r| (0..sql.key.len()).map(|i| r.get::<_, String>(i)).collect());
            let total = catalog::estimate_rows(self, &sql.table.quoted()).await?;
            self.execute(
                &format!(
                    "UPDATE {state} SET range_end = $2::text[], range_fixed = true, last_key = NULL, \
                     rows_done = 0, rows_updated = 0, rows_total = $3::bigint, updated_at = now() \
                     WHERE job = $1::text AND NOT range_fixed"
                ),
                &[&job, &end, &total.map(|t| t as i64)],
                "recording the backfill range",
            )
            .await?;
        }
        let j = self
            .job_row()
            .await?
            .ok_or_else(|| TargetError::Failed("state row missing".into()))?;
        Ok(BackfillStart {
            after: j.last_key,
            end: j.range_end,
            rows_done: j.rows_done,
            rows_updated: j.rows_updated,
            rows_total: j.rows_total,
        })
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

    async fn verify_chunk(&mut self, after: Option<&Key>, size: u64) -> TargetResult<VerifyChunk> {
        let sql = self.sql().clone();
        let lo = key_params(after);
        let mut params: Vec<&(dyn ToSql + Sync)> =
            lo.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
        let offset = size.saturating_sub(1) as i64;
        params.push(&offset);
        let nth = sql.nth_key(after.is_some(), false);
        let hi: Option<Vec<String>> = self
            .query(&nth, &params, "finding the next verify chunk")
            .await?
            .first()
            .map(|r| (0..sql.key.len()).map(|i| r.get::<_, String>(i)).collect());
        let hi_key = hi.clone().map(Key);
        let mut params: Vec<&(dyn ToSql + Sync)> =
            lo.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
        let hi_values = hi.clone().unwrap_or_default();
        for v in &hi_values {
            params.push(v);
        }
        let check = sql.verify_range(after.is_some(), hi.is_some());
        let row = self
            .query(&check, &params, "verifying a chunk")
            .await?
            .remove(0);
        let (rows, unfilled, nulls): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
        let range = match (&after, &hi_key) {
            (Some(lo), Some(hi)) => format!("keys after {lo} up to {hi}"),
            (None, Some(hi)) => format!("keys up to {hi}"),
            (Some(lo), None) => format!("keys after {lo}"),
            (None, None) => "the whole table".into(),
        };
        if unfilled > 0 || (nulls > 0 && self.plan.column.not_null) {
            let nulls_only = unfilled == 0;
            let first_sql = sql.first_unfilled(after.is_some(), hi.is_some(), nulls_only);
            let example = self
                .query(&first_sql, &params, "finding an unfilled row")
                .await?
                .first()
                .map(|r| Key((0..sql.key.len()).map(|i| r.get::<_, String>(i)).collect()));
            let example = example
                .map(|k| format!(" (first: key {k})"))
                .unwrap_or_default();
            let col = &self.plan.column.name;
            return Err(TargetError::Failed(if unfilled > 0 {
                format!(
                    "verify found {unfilled} rows in {range} of {} whose {col} was never filled{example}, \
                     although the backfill expression gives them a value. A writer may have set them \
                     back after their batch. Fix or re-fill those rows, then run pacer again: verify \
                     checks every chunk again.",
                    sql.table
                )
            } else {
                format!(
                    "verify found {nulls} rows in {range} of {} where {col} is NULL because the backfill \
                     expression gives NULL for them{example}; NOT NULL cannot be set. Make the \
                     expression give a value for every row (e.g. coalesce(…, 0)) and start a new \
                     migration, or set not_null = false.",
                    sql.table
                )
            }));
        }
        Ok(VerifyChunk {
            hi: hi_key,
            rows: rows as u64,
        })
    }

    async fn finish(&mut self, outcome: Outcome, message: &str) -> TargetResult<()> {
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

    async fn throttle_query(&mut self, sql: &str) -> TargetResult<f64> {
        let Some(observer) = self.observer().await else {
            return Err(TargetError::ConnectionLost(
                "no session for the throttle query".into(),
            ));
        };
        let text = format!("SELECT (({sql}))::float8");
        let run = async {
            observer
                .batch_execute("SET statement_timeout = '1s'")
                .await?;
            observer.query_one(text.as_str(), &[]).await
        };
        match run.await {
            Ok(row) => Ok(row.get::<_, Option<f64>>(0).unwrap_or(0.0)),
            Err(e) => Err(TargetError::Failed(
                e.as_db_error()
                    .map(errors::describe_db_error)
                    .unwrap_or_else(|| e.to_string()),
            )),
        }
    }

    async fn replica_lags(&mut self) -> TargetResult<Vec<ReplicaReading>> {
        let Some(observer) = self.observer().await else {
            return Err(TargetError::ConnectionLost(
                "no session for reading the replicas' positions".into(),
            ));
        };
        let rows = observer
            .repeating(LAG_REPEATS)
            .query(REPLICAS_SQL, &[])
            .await
            .map_err(|e| classify(&e, "reading pg_stat_replication"))?;
        let positions = replica_positions_from_rows(&rows);
        Ok(self.lag.observe(std::time::Instant::now(), &positions))
    }

    async fn reconnect(&mut self) -> TargetResult<()> {
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

impl Postgres {
    /// Resolves the table's schema (which names the migration) without the other checks.
    pub async fn locate(&mut self) -> TargetResult<()> {
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

    async fn batch_transaction(
        &mut self,
        after: Option<&Key>,
        end: &Key,
        size: u64,
    ) -> TargetResult<BatchOutcome> {
        let sql = self.sql().clone();
        let n = sql.key.len();
        let lo = key_params(after);
        let begin = if self.server_version >= FORCE_FLUSH_VERSION {
            BATCH_BEGIN_FLUSH
        } else {
            BATCH_BEGIN
        };
        self.simple(begin, "starting a batch").await?;

        let nth = sql.nth_key(after.is_some(), true);
        let offset = size.saturating_sub(1) as i64;
        let mut params: Vec<&(dyn ToSql + Sync)> =
            lo.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
        for v in &end.0 {
            params.push(v);
        }
        params.push(&offset);
        let found: Option<Vec<String>> = self
            .query(&nth, &params, "finding the end of the next batch")
            .await?
            .first()
            .map(|r| (0..n).map(|i| r.get::<_, String>(i)).collect());
        let (hi, keys) = match found {
            Some(hi) => (Key(hi), size),
            None => {
                let mut params: Vec<&(dyn ToSql + Sync)> =
                    lo.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
                for v in &end.0 {
                    params.push(v);
                }
                let count: i64 = self
                    .query(
                        &sql.count_range(after.is_some()),
                        &params,
                        "counting the last batch",
                    )
                    .await?[0]
                    .get(0);
                (end.clone(), count as u64)
            }
        };
        let last = hi == *end;

        let update = sql.batch_update(after.is_some()).ok_or_else(|| {
            TargetError::Failed("backfill phase without a backfill expression".into())
        })?;
        let mut params: Vec<&(dyn ToSql + Sync)> =
            lo.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
        for v in &hi.0 {
            params.push(v);
        }
        let context = format!(
            "backfilling {} (keys after {} up to {hi})",
            sql.table,
            after.map_or("the start".to_string(), |k| k.to_string())
        );
        let rows_updated = self.execute(&update, &params, &context).await?;

        let job = self.job.clone();
        let previous: Option<Vec<String>> = after.map(|k| k.0.clone());
        let (keys_i, rows_i) = (keys as i64, rows_updated as i64);
        let moved = self
            .execute(
                &sql.advance_checkpoint(),
                &[&job, &previous, &hi.0, &keys_i, &rows_i],
                "advancing the checkpoint",
            )
            .await?;
        if moved != 1 {
            self.rollback().await;
            return Err(TargetError::CheckpointMoved(format!(
                "the checkpoint of {job} is no longer at {} — another runner advanced it. This \
                 batch was rolled back; pacer stops so that no range is applied twice.",
                after.map_or("the start".to_string(), |k| k.to_string())
            )));
        }
        self.simple("COMMIT", "committing a batch").await?;
        Ok(BatchOutcome {
            range: KeyRange {
                lo: after.cloned(),
                hi,
            },
            keys,
            rows_updated,
            last,
        })
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
            Err(TargetError::Failed(m)) if m.contains("23505") => {
                let drop = sql.drop_index().expect("index planned");
                let _ = self
                    .long_statement(&drop, "dropping the failed unique index")
                    .await;
                Err(TargetError::Failed(format!(
                    "{m}. The unique index {index} cannot be built because the column has duplicate \
                     values; its INVALID remains were dropped. Remove the duplicates or set unique = false."
                )))
            }
            Err(e) => Err(e),
        }
    }
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
