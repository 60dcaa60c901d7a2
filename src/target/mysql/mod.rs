//! The MySQL family target: MariaDB 10.6 and later (tested on 10.11) and MySQL 8.0 and later
//! (written from the manual where it differs: `performance_schema` lock views, no `WAIT n`,
//! no `LOCK=` beside INSTANT, batches bounded by `KILL QUERY`).
//!
//! `mod.rs` holds the connections and the [`Target`] impl; the work behind each method lives
//! with its concern: `state` (the state table and the `GET_LOCK` claim), `ddl` (the DDL steps),
//! `backfill` (batches, checkpoints, verify), `blockers` (who holds a metadata lock),
//! `catalog` (preflight), `sql` and `render` (SQL text), `connect` (URLs, option files, TLS),
//! `session` (audited, tagged statements), `errors` (error codes → engine errors), `sampler`
//! (the charts' figures), `lock_waits` (who waits for a lock on the table, and on whom), `counters` (the server's
//! counters behind the sampler's figures).

mod backfill;
mod blockers;
mod catalog;
pub mod connect;
mod counters;
mod ddl;
pub mod errors;
mod grants;
pub mod lag;
mod lock_waits;
pub mod render;
pub mod sampler;
#[cfg(test)]
mod sampler_tests;
pub mod session;
pub mod sql;
mod state;

use std::time::Duration;

use mysql_async::Value;

use crate::audit::Audit;
use crate::engine::throttle::ReplicaReading;
use crate::plan::{Phase, PhasePlan, Plan};
use crate::target::{
    BackfillStart, BatchOutcome, DdlStep, JobState, Key, Outcome, Preflight, StepOutcome, Target,
    TargetError, TargetResult, VerifyChunk, VerifyCursor,
};

pub use connect::{MyConnectError, MyTarget};
use errors::classify;
use session::Session;
use sql::{Flavor, MySqlText};
pub use state::job_id;

/// Oldest MariaDB pacer supports: instant ADD COLUMN at any position (10.4), several triggers
/// per event with FOLLOWS (10.2.3), `SET STATEMENT … FOR`, and a supported release (10.6).
pub const MIN_MARIADB: (u32, u32) = (10, 6);
/// Oldest MySQL pacer supports: INSTANT ADD COLUMN (8.0.12; any position from 8.0.29).
pub const MIN_MYSQL: (u32, u32) = (8, 0);

/// The server pacer talks to.
#[derive(Debug, Clone)]
pub struct Server {
    /// MariaDB or MySQL.
    pub flavor: Flavor,
    /// Major, minor, patch.
    pub version: (u32, u32, u32),
    /// `VERSION()` as the server prints it.
    pub text: String,
}

impl Server {
    /// Reads `VERSION()` (`10.11.19-MariaDB-0+deb12u1`, `8.0.36`).
    pub fn parse(version: &str) -> Server {
        let flavor = if version.to_ascii_lowercase().contains("mariadb") {
            Flavor::MariaDb
        } else {
            Flavor::MySql
        };
        let mut numbers = version
            .split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty())
            .map(|s| s.parse::<u32>().unwrap_or(0));
        let v = (
            numbers.next().unwrap_or(0),
            numbers.next().unwrap_or(0),
            numbers.next().unwrap_or(0),
        );
        Server {
            flavor,
            version: v,
            text: version.to_string(),
        }
    }
}

/// A MySQL or MariaDB database that a migration runs against.
pub struct MySql {
    conn: MyTarget,
    plan: Plan,
    job: String,
    /// The database the table lives in (the plan's, else the target's).
    database: String,
    main: Option<Session>,
    observer: Option<Session>,
    audit: Audit,
    /// The main connection's id, and the one before a reconnect (its orphan may hold the claim).
    connection_id: u32,
    server: Option<Server>,
    sql: Option<MySqlText>,
    runner: String,
    /// How metadata locks can be seen on this server.
    mdl_view: blockers::MdlView,
    /// Whether batches run under READ COMMITTED (not with binlog_format=STATEMENT).
    read_committed: bool,
    /// The heartbeat writer, while the migration runs (aborted on drop); it is the
    /// foreground probe, whose samples go to `probe_log`.
    heartbeat: Option<tokio::task::JoinHandle<()>>,
    probe_log: crate::probe::ProbeLog,
    /// The replicas, read on connections of their own.
    replicas: Option<lag::Replicas>,
}

impl Drop for MySql {
    fn drop(&mut self) {
        if let Some(h) = self.heartbeat.take() {
            h.abort();
        }
    }
}

/// How the MySQL family does each DDL phase: NOT NULL as an online rebuild (`MODIFY … NOT NULL,
/// ALGORITHM=INPLACE, LOCK=NONE`, with the index in the same statement when both are asked),
/// the index online (NOCOPY on MariaDB), cleanup drops the sync triggers.
pub fn ddl_steps(plan: &Plan, phase: Phase) -> Vec<DdlStep> {
    match phase {
        Phase::AddColumn => vec![DdlStep::AddColumn],
        Phase::Sync => vec![DdlStep::InstallSync],
        Phase::NotNull => vec![DdlStep::SetNotNull],
        Phase::Index => vec![DdlStep::BuildIndex],
        Phase::Cleanup if plan.column.backfill.is_some() => vec![DdlStep::DropSync],
        Phase::Preflight | Phase::Backfill | Phase::Verify | Phase::Cleanup => Vec::new(),
    }
}

/// The name pacer's connections give themselves (connection attribute `program_name`).
fn program_name(prefix: &str, job: &str) -> String {
    let mut name = format!("{prefix}:{job}");
    while name.len() > 64 {
        name.pop();
    }
    name
}

impl MySql {
    /// Connects for a plan: one connection for changes, claimed later by `open_job`. Every
    /// statement sent on pacer's connections is written to `audit` first.
    pub async fn connect(
        conn: MyTarget,
        plan: &Plan,
        audit: Audit,
    ) -> Result<MySql, MyConnectError> {
        let database = plan
            .table
            .schema
            .clone()
            .unwrap_or_else(|| conn.database().to_string());
        let job = job_id(plan, &database);
        audit.set_job(&job);
        let c = conn.connect(&program_name("pacer", &job)).await?;
        let main = Session::new(c, "main", &job, audit.clone());
        Ok(MySql {
            connection_id: main.id(),
            conn,
            plan: plan.clone(),
            job,
            database,
            main: Some(main),
            observer: None,
            audit,
            server: None,
            sql: None,
            runner: crate::target::runner::runner_id(),
            mdl_view: blockers::MdlView::None,
            read_committed: true,
            heartbeat: None,
            probe_log: crate::probe::ProbeLog::new(),
            replicas: None,
        })
    }

    fn main(&mut self) -> TargetResult<&mut Session> {
        self.main
            .as_mut()
            .ok_or_else(|| TargetError::ConnectionLost("not connected".into()))
    }

    fn sql(&self) -> &MySqlText {
        self.sql.as_ref().expect("preflight ran before any phase")
    }

    fn flavor(&self) -> Flavor {
        self.server.as_ref().map_or(Flavor::MariaDb, |s| s.flavor)
    }

    /// Runs a statement on the main connection; its rows.
    async fn rows(
        &mut self,
        sql: &str,
        params: Vec<Value>,
        context: &str,
    ) -> TargetResult<Vec<mysql_async::Row>> {
        self.main()?
            .rows(sql, params)
            .await
            .map_err(|e| classify(&e, context))
    }

    /// Runs a statement on the main connection; the rows it changed.
    async fn execute(&mut self, sql: &str, params: Vec<Value>, context: &str) -> TargetResult<u64> {
        self.main()?
            .execute(sql, params)
            .await
            .map_err(|e| classify(&e, context))
    }

    /// Runs one statement through the text protocol on the main connection.
    async fn simple(&mut self, sql: &str, context: &str) -> TargetResult<()> {
        self.main()?
            .simple(sql)
            .await
            .map_err(|e| classify(&e, context))
    }

    async fn rollback(&mut self) {
        if let Some(m) = self.main.as_mut() {
            let _ = m.simple("ROLLBACK").await;
        }
    }

    /// Reads the server and applies the session settings every statement relies on: UTC,
    /// utf8mb4, strict mode, bounded lock waits, READ COMMITTED (fewer gap locks under the
    /// application's inserts), and an idle timeout that frees the claim of a vanished pacer.
    async fn apply_session_settings(&mut self) -> TargetResult<()> {
        let row = self
            .rows(
                "SELECT VERSION(), CONNECTION_ID(), @@GLOBAL.binlog_format, @@GLOBAL.log_bin",
                vec![],
                "reading the server version",
            )
            .await?
            .remove(0);
        let server = Server::parse(&session::text_at(&row, 0).unwrap_or_default());
        self.connection_id = session::int_at(&row, 1) as u32;
        let binlog_format = session::text_at(&row, 2).unwrap_or_default();
        let log_bin = session::int_at(&row, 3) == 1;
        // InnoDB refuses to log a READ COMMITTED write in statement format.
        self.read_committed = !(log_bin && binlog_format.eq_ignore_ascii_case("STATEMENT"));
        let s = &self.plan.safety;
        let lock_wait = s.lock_timeout.as_secs_f64().ceil().max(1.0) as u64;
        let row_lock_wait = s.batch_timeout.as_secs_f64().ceil().max(1.0) as u64;
        let mut settings = vec![
            "SET NAMES utf8mb4".to_string(),
            format!(
                "SET SESSION time_zone = '+00:00', \
                 sql_mode = CONCAT(@@SESSION.sql_mode, ',STRICT_TRANS_TABLES'), \
                 lock_wait_timeout = {lock_wait}, innodb_lock_wait_timeout = {row_lock_wait}, \
                 wait_timeout = 600"
            ),
        ];
        if self.read_committed {
            settings.push("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED".into());
        }
        if server.flavor == Flavor::MariaDb {
            settings.push("SET SESSION max_statement_time = 0".into());
        }
        for s in settings {
            self.simple(&s, "applying session settings").await?;
        }
        self.server = Some(server);
        Ok(())
    }

    /// The observer connection (reads while the main one waits or works), connected on first
    /// use; None when it cannot connect (callers treat that as "nothing seen").
    async fn observer(&mut self) -> Option<&mut Session> {
        if self.observer.is_none() {
            match self
                .conn
                .connect(&program_name("pacer-observer", &self.job))
                .await
            {
                Ok(c) => {
                    let mut obs = Session::new(c, "observer", &self.job, self.audit.clone());
                    let _ = obs.simple("SET SESSION wait_timeout = 600").await;
                    self.observer = Some(obs);
                }
                Err(e) => {
                    tracing::warn!("observer connection failed: {e}");
                    return None;
                }
            }
        }
        self.observer.as_mut()
    }

    /// Runs the plan's throttle_query on the observer connection and returns its number.
    async fn run_throttle_query(&mut self, sql: &str) -> TargetResult<f64> {
        let flavor = self.flavor();
        let Some(observer) = self.observer().await else {
            return Err(TargetError::ConnectionLost(
                "no connection for the throttle query".into(),
            ));
        };
        let text = match flavor {
            Flavor::MariaDb => format!("SET STATEMENT max_statement_time=1 FOR SELECT ({sql})"),
            Flavor::MySql => format!("SELECT /*+ MAX_EXECUTION_TIME(1000) */ ({sql})"),
        };
        match observer.rows(&text, vec![]).await {
            Ok(rows) => Ok(rows
                .first()
                .and_then(|r| session::float_at(r, 0))
                .unwrap_or(0.0)),
            Err(e) => {
                if matches!(e, mysql_async::Error::Io(_)) {
                    self.observer = None;
                }
                Err(TargetError::Failed(errors::describe(&e)))
            }
        }
    }

    /// Each replica's lag by the heartbeat, read on the observer connection (the primary) and a
    /// connection per replica.
    async fn read_replica_lags(&mut self) -> TargetResult<Vec<ReplicaReading>> {
        if self.replicas.is_none() {
            let (state_db, _) = self.state_names();
            self.replicas = Some(lag::Replicas::new(
                self.conn.clone(),
                self.plan.mysql.replicas.clone(),
                &self.job,
                &state_db,
                self.audit.clone(),
                "replica",
            ));
        }
        self.observer().await;
        let (Some(observer), Some(replicas)) = (self.observer.as_mut(), self.replicas.as_mut())
        else {
            return Err(TargetError::ConnectionLost(
                "no connection for reading the replicas' lag".into(),
            ));
        };
        let readings = replicas.read(observer).await.map_err(TargetError::Failed)?;
        Ok(readings
            .into_iter()
            .map(|r| ReplicaReading {
                name: r.name,
                lag_s: r.lag_s,
                detail: format!(
                    "heartbeat; Seconds_Behind_Master {}; {}",
                    r.reported_s.map_or("NULL".to_string(), |s| format!("{s}")),
                    r.state
                ),
                forecast: r.forecast,
                step_s: None,
                warming: r.warming,
            })
            .collect())
    }

    /// Starts the heartbeat writer (once the state database exists).
    async fn start_heartbeat(&mut self) -> TargetResult<()> {
        if self.heartbeat.as_ref().is_some_and(|h| !h.is_finished()) {
            return Ok(());
        }
        let (state_db, _) = self.state_names();
        let [create, insert] = lag::create_heartbeat(&state_db);
        self.simple(&create, "creating pacer's heartbeat table")
            .await?;
        let job = self.job.clone();
        self.execute(
            &insert,
            vec![Value::from(job.clone())],
            "recording the heartbeat row",
        )
        .await?;
        self.heartbeat = Some(lag::spawn_heartbeat(
            self.conn.clone(),
            job,
            state_db,
            self.audit.clone(),
            self.probe_log.clone(),
        ));
        Ok(())
    }

    /// Drops the connections and connects again, re-applying session settings and the claim.
    async fn reconnect_sessions(&mut self) -> TargetResult<()> {
        let previous = self.connection_id;
        self.main = None;
        self.observer = None;
        let c = self
            .conn
            .connect(&program_name("pacer", &self.job))
            .await
            .map_err(|e| {
                if e.is_retryable() {
                    TargetError::ConnectionLost(e.to_string())
                } else {
                    TargetError::Failed(e.to_string())
                }
            })?;
        self.main = Some(Session::new(c, "main", &self.job, self.audit.clone()));
        self.apply_session_settings().await?;
        if self.sql.is_some() && self.job_row().await?.is_some() {
            self.claim(Some(previous)).await?;
        }
        Ok(())
    }
}

/// Each method's work lives in the file of its concern.
impl Target for MySql {
    type Source = sampler::MySource;

    fn metric_source(&self, sample_interval: Duration, audit: Audit) -> sampler::MySource {
        let (state_db, state_table) = self.state_names();
        let replicas = lag::Replicas::new(
            self.conn.clone(),
            self.plan.mysql.replicas.clone(),
            &self.job,
            &state_db,
            audit.clone(),
            "sampler-replica",
        );
        sampler::MySource::new(
            self.conn.clone(),
            &self.job,
            (self.database.clone(), self.plan.table.name.clone()),
            sample_interval,
            audit,
        )
        .with_replicas(replicas)
        .with_state((state_db, state_table))
    }

    fn describe(&self) -> String {
        self.conn.redacted()
    }

    fn describe_connection(&self) -> String {
        format!(
            "{} (from {}, ssl-mode {})",
            self.describe(),
            self.conn.source(),
            self.conn.ssl_mode()
        )
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
        self.apply_session_settings().await
    }

    async fn load_job(&mut self) -> TargetResult<Option<JobState>> {
        self.job_row().await
    }

    async fn open_job(&mut self) -> TargetResult<JobState> {
        self.open_job_row().await
    }

    fn ddl_steps(&self, phase: Phase) -> Vec<DdlStep> {
        ddl_steps(&self.plan, phase)
    }

    async fn ddl(&mut self, step: DdlStep) -> TargetResult<StepOutcome> {
        self.run_ddl_step(step).await
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
        let after = match after {
            None => None,
            Some(VerifyCursor::Key(k)) => Some(k),
            Some(VerifyCursor::Page(_)) => {
                return Err(TargetError::Failed(
                    "verify: a page cursor on MySQL/MariaDB, which verifies by key".into(),
                ));
            }
        };
        self.verify_range_chunk(after, size).await
    }

    async fn finish(&mut self, outcome: Outcome, message: &str) -> TargetResult<()> {
        self.record_outcome(outcome, message).await
    }

    async fn throttle_query(&mut self, sql: &str) -> TargetResult<f64> {
        self.run_throttle_query(sql).await
    }

    async fn replica_lags(&mut self) -> TargetResult<Vec<ReplicaReading>> {
        self.read_replica_lags().await
    }

    async fn reconnect(&mut self) -> TargetResult<()> {
        self.reconnect_sessions().await
    }

    fn probe_log(&self) -> Option<crate::probe::ProbeLog> {
        Some(self.probe_log.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_versions_read_as_flavour_and_numbers() {
        let s = Server::parse("10.11.19-MariaDB-0+deb12u1");
        assert_eq!(s.flavor, Flavor::MariaDb);
        assert_eq!(s.version, (10, 11, 19));
        let s = Server::parse("8.0.36");
        assert_eq!(s.flavor, Flavor::MySql);
        assert_eq!(s.version, (8, 0, 36));
        // MariaDB 10.x once answered with a 5.5.5- prefix on the wire; VERSION() does not.
        assert_eq!(program_name("pacer", &"x".repeat(80)).len(), 64);
    }
}
