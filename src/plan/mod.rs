//! The plan file: TOML → a validated [`Plan`]. Pure code: nothing here talks to a database.

pub mod dialect;
pub mod ident;
pub mod impact;
pub mod lint;
pub mod phase;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

pub use dialect::Dialect;
pub use ident::TableName;
pub use impact::ImpactBound;
pub use lint::{Finding, Severity};
pub use phase::{Hold, Phase, PhasePlan, Step};

/// The default place of pacer's state table in the target database.
pub const DEFAULT_STATE_TABLE: &str = "pacer.migrations";

/// The plan file as written (unknown keys are errors).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanFile {
    table: Spanned<String>,
    state_table: Option<Spanned<String>>,
    column: ColumnFile,
    #[serde(default)]
    backfill: BackfillFile,
    #[serde(default)]
    safety: SafetyFile,
    #[serde(default)]
    throttle: ThrottleFile,
    #[serde(default)]
    gates: GatesFile,
    #[serde(default)]
    mysql: MysqlFile,
    #[serde(default)]
    postgres: PostgresFile,
}

/// `[postgres]`: settings of PostgreSQL only.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PostgresFile {
    cancel_autovacuum: Option<bool>,
}

/// PostgreSQL's own settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PostgresSpec {
    /// `cancel_autovacuum` as the plan wrote it (None: not written); see
    /// [`PostgresSpec::cancel_autovacuum`].
    pub cancel_autovacuum_set: Option<bool>,
}

impl PostgresSpec {
    /// When an ordinary (not anti-wraparound) autovacuum holds the table as a DDL step is due:
    /// cancel it and run the step (the default), as PostgreSQL itself would once the DDL had
    /// waited `deadlock_timeout`, with every query on the table queued behind the DDL
    /// meanwhile; false: wait until it finishes.
    pub fn cancel_autovacuum(&self) -> bool {
        self.cancel_autovacuum_set.unwrap_or(true)
    }
}

/// `[mysql]`: settings of the MySQL family only.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct MysqlFile {
    #[serde(default)]
    replicas: Vec<String>,
}

/// The MySQL family's own settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MysqlSpec {
    /// Replicas to watch, as `mysql://` URLs (credentials as for the target); empty: the ones
    /// the primary lists (`SHOW SLAVE HOSTS`), reached with the primary's credentials.
    pub replicas: Vec<String>,
}

/// `[gates]`: phases that wait for the operator before they start.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct GatesFile {
    #[serde(default)]
    before: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ThrottleFile {
    max_replication_lag: Option<Spanned<String>>,
    max_lock_waiters: Option<u32>,
    #[serde(default)]
    pause_on_autovacuum: bool,
    max_wal_rate: Option<Spanned<u64>>,
    max_binlog_rate: Option<Spanned<u64>>,
    max_threads_running: Option<Spanned<u32>>,
    max_history_length: Option<Spanned<u64>>,
    throttle_query: Option<Spanned<String>>,
    throttle_file: Option<String>,
    lag_grace: Option<Spanned<String>>,
    resume_after: Option<Spanned<String>>,
    max_foreground_impact: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ColumnFile {
    name: Spanned<String>,
    #[serde(rename = "type")]
    sql_type: Spanned<String>,
    default: Option<Spanned<String>>,
    backfill: Option<Spanned<String>>,
    #[serde(default)]
    not_null: bool,
    index: Option<Spanned<IndexFile>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum IndexFile {
    Flag(bool),
    Spec(IndexSpecFile),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IndexSpecFile {
    name: Option<String>,
    #[serde(default)]
    unique: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BackfillFile {
    #[serde(default = "default_batch_size")]
    batch_size: Spanned<u64>,
    #[serde(default = "default_target_batch_ms")]
    target_batch_ms: Spanned<u64>,
    #[serde(default)]
    pause_ms: u64,
    min_batch_size: Option<Spanned<u64>>,
    max_batch_size: Option<Spanned<u64>>,
    #[serde(default = "default_adaptive")]
    adaptive: bool,
}

impl Default for BackfillFile {
    fn default() -> Self {
        BackfillFile {
            batch_size: default_batch_size(),
            target_batch_ms: default_target_batch_ms(),
            pause_ms: 0,
            min_batch_size: None,
            max_batch_size: None,
            adaptive: true,
        }
    }
}

fn default_adaptive() -> bool {
    true
}

fn default_batch_size() -> Spanned<u64> {
    Spanned::new(0..0, 5000)
}
/// Default batch duration the sizer steers toward. An application write to a row of the
/// running batch waits for the rest of that batch, so this bounds what pacer adds to the
/// foreground's worst latency. On the benchmark table (BENCHMARKS.md) 50 ms batches were as
/// fast as 200 ms ones and cut pgbench's p99 about 2×; 20 ms batches were faster again than
/// 50 ms ones (fewer of the application's updates collide with a batch) and cut its worst
/// latency from 43–47 ms to 5–33 ms, with the same p99 (set by CPU, not by locks).
pub const DEFAULT_TARGET_BATCH_MS: u64 = 20;

fn default_target_batch_ms() -> Spanned<u64> {
    Spanned::new(0..0, DEFAULT_TARGET_BATCH_MS)
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SafetyFile {
    lock_timeout: Option<Spanned<String>>,
    ddl_retries: Option<Spanned<u32>>,
    retry_max_delay: Option<Spanned<String>>,
    batch_timeout: Option<Spanned<String>>,
    reconnect_attempts: Option<Spanned<u32>>,
}

/// A validated plan.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Where the plan came from (for messages).
    pub path: PathBuf,
    /// The table to change.
    pub table: TableName,
    /// Where pacer keeps its state in the target database.
    pub state_table: TableName,
    /// The new column.
    pub column: ColumnSpec,
    /// Backfill batch settings.
    pub backfill: BackfillSpec,
    /// Lock and retry limits.
    pub safety: SafetySpec,
    /// Health throttling.
    pub throttle: ThrottleSpec,
    /// Phases that wait for the operator before they start, in run order. Part of the
    /// operator's workflow, not of the migration's definition: not in [`Plan::digest`].
    pub gates: Vec<Phase>,
    /// `[mysql]` settings.
    pub mysql: MysqlSpec,
    /// `[postgres]` settings.
    pub postgres: PostgresSpec,
}

/// The plan's `[throttle]` settings, all optional.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ThrottleSpec {
    /// Worst replica's replay lag allowed.
    pub max_replication_lag: Option<Duration>,
    /// Sessions allowed to wait on locks held by pacer.
    pub max_lock_waiters: Option<u32>,
    /// Wait while autovacuum works on the table.
    pub pause_on_autovacuum: bool,
    /// WAL bytes per second allowed (PostgreSQL).
    pub max_wal_rate: Option<u64>,
    /// Binary-log bytes per second allowed (MySQL/MariaDB). The same signal as `max_wal_rate`:
    /// the volume of changes the server writes, which its replicas must receive and apply.
    pub max_binlog_rate: Option<u64>,
    /// Sessions running a statement allowed, pacer's own not counted (PostgreSQL: active
    /// backends; MySQL/MariaDB: `Threads_running`).
    pub max_threads_running: Option<u32>,
    /// InnoDB history list length allowed (MySQL/MariaDB): undo logs not purged yet.
    pub max_history_length: Option<u64>,
    /// A query returning a number; > 0 throttles.
    pub throttle_query: Option<String>,
    /// While this file exists, wait.
    pub throttle_file: Option<PathBuf>,
    /// How long a replica's lag may be unreadable before it counts as over the limit.
    pub lag_grace: Duration,
    /// How long every signal must be clear before the throttle lifts.
    pub resume_after: Duration,
    /// The foreground guard's bound on the probe's p99 while the backfill runs (None: off).
    pub max_foreground_impact: Option<ImpactBound>,
}

impl ThrottleSpec {
    /// The write-volume limit in bytes per second, with the signal's name in the words of the
    /// key that set it (`WAL rate` for max_wal_rate, `binlog rate` for max_binlog_rate).
    pub fn write_volume_limit(&self) -> Option<(u64, &'static str)> {
        self.max_wal_rate
            .map(|l| (l, "WAL rate"))
            .or(self.max_binlog_rate.map(|l| (l, "binlog rate")))
    }

    /// Whether any signal is configured.
    pub fn any(&self) -> bool {
        self.max_replication_lag.is_some()
            || self.max_lock_waiters.is_some()
            || self.pause_on_autovacuum
            || self.max_wal_rate.is_some()
            || self.max_binlog_rate.is_some()
            || self.max_threads_running.is_some()
            || self.max_history_length.is_some()
            || self.throttle_query.is_some()
            || self.throttle_file.is_some()
    }
}

/// The column to add.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnSpec {
    /// Exact column name (pacer quotes it).
    pub name: String,
    /// SQL type, e.g. `numeric(14,2)`.
    pub sql_type: String,
    /// Constant default expression, if any.
    pub default: Option<String>,
    /// SQL expression over the same row that fills existing rows, if any.
    pub backfill: Option<String>,
    /// Tighten to NOT NULL at the end.
    pub not_null: bool,
    /// Build an index on the column.
    pub index: Option<IndexSpec>,
}

/// The index to build on the new column.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexSpec {
    /// Index name; derived from table and column when the plan gives none.
    pub name: String,
    /// UNIQUE index.
    pub unique: bool,
}

/// Batch settings.
#[derive(Debug, Clone, PartialEq)]
pub struct BackfillSpec {
    /// Rows per batch at start.
    pub batch_size: u64,
    /// Batch duration the adaptive sizer will steer toward.
    pub target_batch_ms: u64,
    /// Sleep between batches.
    pub pause: Duration,
    /// Smallest size the adaptive sizer may choose.
    pub min_batch_size: u64,
    /// Largest size the adaptive sizer may choose.
    pub max_batch_size: u64,
    /// Whether the size is steered toward `target_batch_ms` between batches.
    pub adaptive: bool,
}

/// Lock, timeout and retry limits.
#[derive(Debug, Clone, PartialEq)]
pub struct SafetySpec {
    /// How long one DDL statement may wait for its lock before it gives up (and retries).
    pub lock_timeout: Duration,
    /// How many attempts a DDL statement gets when its lock wait times out.
    pub ddl_retries: u32,
    /// Upper bound of the backoff between attempts.
    pub retry_max_delay: Duration,
    /// statement_timeout of one batch; a batch that times out is retried at half the size.
    pub batch_timeout: Duration,
    /// How many times pacer reconnects after losing its connection before it gives up.
    pub reconnect_attempts: u32,
}

/// Default smallest size of the adaptive sizer (or batch_size, when that is smaller).
pub const DEFAULT_MIN_BATCH_SIZE: u64 = 100;
/// Default largest size of the adaptive sizer (or batch_size, when that is larger): above this,
/// throughput stops improving while row-lock hold time keeps growing.
pub const DEFAULT_MAX_BATCH_SIZE: u64 = 50_000;

/// Smallest and largest batch size an operator or the plan may set.
pub const MIN_BATCH_SIZE: u64 = 1;
/// Largest batch size: beyond ~100k rows one batch holds row locks for seconds.
pub const MAX_BATCH_SIZE: u64 = 1_000_000;

/// A plan that could not be read, with file and line.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PlanError(pub String);

impl Plan {
    /// Reads, parses and validates a plan file for a target of `dialect`'s family.
    pub fn load_with(path: &Path, dialect: &Dialect) -> Result<Plan, PlanError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            PlanError(format!(
                "cannot read plan file {}: {e}. Check the path.",
                path.display()
            ))
        })?;
        Plan::parse_with(path, &text, dialect)
    }

    /// Parses and validates plan text for PostgreSQL; `path` only names the file in messages.
    pub fn parse(path: &Path, text: &str) -> Result<Plan, PlanError> {
        Plan::parse_with(path, text, &dialect::POSTGRES)
    }

    /// Parses and validates plan text; names and SQL fragments are checked by `dialect`'s
    /// rules (quoting, name length, comments).
    pub fn parse_with(path: &Path, text: &str, dialect: &Dialect) -> Result<Plan, PlanError> {
        let at = |span: std::ops::Range<usize>| location(path, text, span.start);
        let file: PlanFile = toml::from_str(text).map_err(|e| {
            let place = e
                .span()
                .map(&at)
                .unwrap_or_else(|| path.display().to_string());
            let mut message = e.message().trim_end_matches('\n').to_string();
            if message.contains("untagged enum IndexFile") {
                message =
                    "`index` takes true, false or { name = \"…\", unique = true|false }".into();
            }
            PlanError(format!(
                "{place}: {message}. See the plan format in the README (every key is listed there)."
            ))
        })?;
        let fail =
            |span: std::ops::Range<usize>, msg: String| PlanError(format!("{}: {msg}", at(span)));

        let table = TableName::parse(file.table.get_ref())
            .map_err(|m| fail(file.table.span(), format!("table: {m}")))?;
        let state_table = match &file.state_table {
            Some(s) => {
                let t = TableName::parse(s.get_ref())
                    .map_err(|m| fail(s.span(), format!("state_table: {m}")))?;
                if t.schema.is_none() {
                    return Err(fail(
                        s.span(),
                        "state_table must be schema-qualified, e.g. `pacer.migrations`".into(),
                    ));
                }
                t
            }
            None => TableName::parse(DEFAULT_STATE_TABLE).expect("default state table parses"),
        };

        let c = &file.column;
        dialect
            .check_name("column name", c.name.get_ref())
            .map_err(|m| fail(c.name.span(), m))?;
        dialect
            .check_fragment("column type", c.sql_type.get_ref())
            .map_err(|m| fail(c.sql_type.span(), m))?;
        for word in [
            "generated",
            "identity",
            "references",
            "primary",
            "constraint",
            "collate",
        ] {
            if c.sql_type
                .get_ref()
                .to_ascii_lowercase()
                .split_whitespace()
                .any(|w| w == word)
            {
                return Err(fail(
                    c.sql_type.span(),
                    format!(
                        "column type `{}` contains `{word}`: `type` takes a type name only \
                         (e.g. `numeric(14,2)`); identity and generated columns rewrite the table \
                         under an exclusive lock, and constraints are added by their own phases",
                        c.sql_type.get_ref()
                    ),
                ));
            }
        }
        if let Some(d) = &c.default {
            dialect
                .check_fragment("default", d.get_ref())
                .map_err(|m| fail(d.span(), m))?;
        }
        if let Some(b) = &c.backfill {
            dialect
                .check_fragment("backfill expression", b.get_ref())
                .map_err(|m| fail(b.span(), m))?;
        }
        if c.not_null && c.default.is_none() && c.backfill.is_none() {
            return Err(fail(
                c.name.span(),
                format!(
                    "column `{}` has not_null = true but neither a default nor a backfill \
                     expression, so existing rows would stay NULL; add `default = …` or \
                     `backfill = …`, or drop not_null",
                    c.name.get_ref()
                ),
            ));
        }
        let index = match c.index.as_ref() {
            None => None,
            Some(spec) => {
                let (name, unique) = match spec.get_ref() {
                    IndexFile::Flag(false) => (None, None),
                    IndexFile::Flag(true) => (None, Some(false)),
                    IndexFile::Spec(s) => (s.name.clone(), Some(s.unique)),
                };
                match unique {
                    None => None,
                    Some(unique) => {
                        let name = name
                            .unwrap_or_else(|| default_index_name(&table.name, c.name.get_ref()));
                        dialect
                            .check_name("index name", &name)
                            .map_err(|m| fail(spec.span(), m))?;
                        Some(IndexSpec { name, unique })
                    }
                }
            }
        };

        let b = &file.backfill;
        let batch_size = *b.batch_size.get_ref();
        if !(MIN_BATCH_SIZE..=MAX_BATCH_SIZE).contains(&batch_size) {
            return Err(fail(
                b.batch_size.span(),
                format!(
                    "batch_size = {batch_size} is out of range; use {MIN_BATCH_SIZE} to {MAX_BATCH_SIZE} \
                     (1,000–20,000 suits most tables)"
                ),
            ));
        }
        let target_batch_ms = *b.target_batch_ms.get_ref();
        if !(10..=60_000).contains(&target_batch_ms) {
            return Err(fail(
                b.target_batch_ms.span(),
                format!("target_batch_ms = {target_batch_ms} is out of range; use 10 to 60000"),
            ));
        }

        let min_batch_size = match &b.min_batch_size {
            Some(v) => *v.get_ref(),
            None => DEFAULT_MIN_BATCH_SIZE.min(batch_size),
        };
        let max_batch_size = match &b.max_batch_size {
            Some(v) => *v.get_ref(),
            None => DEFAULT_MAX_BATCH_SIZE.max(batch_size),
        };
        for (v, key) in [
            (&b.min_batch_size, "min_batch_size"),
            (&b.max_batch_size, "max_batch_size"),
        ] {
            if let Some(v) = v
                && !(MIN_BATCH_SIZE..=MAX_BATCH_SIZE).contains(v.get_ref())
            {
                return Err(fail(
                    v.span(),
                    format!(
                        "{key} = {} is out of range; use {MIN_BATCH_SIZE} to {MAX_BATCH_SIZE}",
                        v.get_ref()
                    ),
                ));
            }
        }
        if !(min_batch_size..=max_batch_size).contains(&batch_size) {
            let span = b
                .min_batch_size
                .as_ref()
                .or(b.max_batch_size.as_ref())
                .map_or(b.batch_size.span(), |v| v.span());
            return Err(fail(
                span,
                format!(
                    "batch_size = {batch_size} must lie between min_batch_size = {min_batch_size} and \
                     max_batch_size = {max_batch_size}"
                ),
            ));
        }

        let s = &file.safety;
        let duration = |v: &Option<Spanned<String>>,
                        key: &str,
                        default: Duration,
                        min: Duration,
                        max: Duration| {
            match v {
                None => Ok(default),
                Some(v) => {
                    let d = parse_duration(v.get_ref())
                        .map_err(|m| fail(v.span(), format!("{key}: {m}")))?;
                    if d < min || d > max {
                        return Err(fail(
                            v.span(),
                            format!(
                                "{key} = \"{}\" is out of range; use {} to {}",
                                v.get_ref(),
                                humantime::format_duration(min),
                                humantime::format_duration(max)
                            ),
                        ));
                    }
                    Ok(d)
                }
            }
        };
        let lock_timeout = duration(
            &s.lock_timeout,
            "lock_timeout",
            Duration::from_secs(2),
            Duration::from_millis(10),
            Duration::from_secs(60),
        )?;
        let retry_max_delay = duration(
            &s.retry_max_delay,
            "retry_max_delay",
            Duration::from_secs(30),
            Duration::from_millis(10),
            Duration::from_secs(600),
        )?;
        let batch_timeout = duration(
            &s.batch_timeout,
            "batch_timeout",
            Duration::from_secs(30),
            Duration::from_millis(100),
            Duration::from_secs(3600),
        )?;
        let count = |v: &Option<Spanned<u32>>, key: &str, default: u32| match v {
            None => Ok(default),
            Some(v) if (1..=10_000).contains(v.get_ref()) => Ok(*v.get_ref()),
            Some(v) => Err(fail(
                v.span(),
                format!("{key} = {} is out of range; use 1 to 10000", v.get_ref()),
            )),
        };
        let ddl_retries = count(&s.ddl_retries, "ddl_retries", 30)?;
        let reconnect_attempts = count(&s.reconnect_attempts, "reconnect_attempts", 10)?;

        let t = &file.throttle;
        let max_replication_lag = match &t.max_replication_lag {
            None => None,
            some => Some(duration(
                some,
                "max_replication_lag",
                Duration::ZERO,
                Duration::from_millis(10),
                Duration::from_secs(3600),
            )?),
        };
        if let (Some(_), Some(binlog)) = (&t.max_wal_rate, &t.max_binlog_rate) {
            return Err(fail(
                binlog.span(),
                "max_binlog_rate and max_wal_rate bound the same thing (the server's write volume) \
                 in two families' words; keep the one of the target's family: max_wal_rate on \
                 PostgreSQL, max_binlog_rate on MySQL/MariaDB"
                    .into(),
            ));
        }
        if let Some(n) = &t.max_threads_running
            && !(1..=100_000).contains(n.get_ref())
        {
            return Err(fail(
                n.span(),
                format!(
                    "max_threads_running = {} is out of range; use 1 to 100000",
                    n.get_ref()
                ),
            ));
        }
        if let Some(n) = &t.max_history_length
            && *n.get_ref() == 0
        {
            return Err(fail(
                n.span(),
                "max_history_length = 0 would never let a batch run (the history list is rarely \
                 empty on a live server); use a length such as 1000000"
                    .into(),
            ));
        }
        if let Some(q) = &t.throttle_query {
            dialect
                .check_fragment("throttle_query", q.get_ref())
                .map_err(|m| fail(q.span(), m))?;
        }
        let max_foreground_impact = match &t.max_foreground_impact {
            None => Some(ImpactBound::DEFAULT),
            Some(v) if v.get_ref().trim() == "off" => None,
            Some(v) => Some(ImpactBound::parse(v.get_ref()).ok_or_else(|| {
                fail(
                    v.span(),
                    format!(
                        "max_foreground_impact = \"{}\" is not a bound; write a multiple of the \
                         foreground's baseline p99 from 1x to 1000x (\"1.5x\", the default), a \
                         duration from 100us to 60s (\"20ms\"), or \"off\"",
                        v.get_ref()
                    ),
                )
            })?),
        };
        let throttle = ThrottleSpec {
            max_foreground_impact,
            max_replication_lag,
            max_lock_waiters: t.max_lock_waiters,
            pause_on_autovacuum: t.pause_on_autovacuum,
            max_wal_rate: t.max_wal_rate.as_ref().map(|v| *v.get_ref()),
            max_binlog_rate: t.max_binlog_rate.as_ref().map(|v| *v.get_ref()),
            max_threads_running: t.max_threads_running.as_ref().map(|v| *v.get_ref()),
            max_history_length: t.max_history_length.as_ref().map(|v| *v.get_ref()),
            throttle_query: t
                .throttle_query
                .as_ref()
                .map(|q| q.get_ref().trim().to_string()),
            throttle_file: t.throttle_file.as_ref().map(PathBuf::from),
            lag_grace: duration(
                &t.lag_grace,
                "lag_grace",
                Duration::from_secs(5),
                Duration::ZERO,
                Duration::from_secs(3600),
            )?,
            resume_after: duration(
                &t.resume_after,
                "resume_after",
                Duration::from_secs(2),
                Duration::ZERO,
                Duration::from_secs(3600),
            )?,
        };

        let mut plan = Plan {
            mysql: MysqlSpec {
                replicas: file.mysql.replicas.clone(),
            },
            postgres: PostgresSpec {
                cancel_autovacuum_set: file.postgres.cancel_autovacuum,
            },
            path: path.to_path_buf(),
            table,
            state_table,
            column: ColumnSpec {
                name: c.name.get_ref().clone(),
                sql_type: c.sql_type.get_ref().trim().to_string(),
                default: c.default.as_ref().map(|d| d.get_ref().trim().to_string()),
                backfill: c.backfill.as_ref().map(|d| d.get_ref().trim().to_string()),
                not_null: c.not_null,
                index,
            },
            backfill: BackfillSpec {
                batch_size,
                target_batch_ms,
                pause: Duration::from_millis(b.pause_ms),
                min_batch_size,
                max_batch_size,
                adaptive: b.adaptive,
            },
            safety: SafetySpec {
                lock_timeout,
                ddl_retries,
                retry_max_delay,
                batch_timeout,
                reconnect_attempts,
            },
            throttle,
            gates: Vec::new(),
        };
        plan.gates = plan
            .check_gates(&file.gates.before)
            .map_err(|(span, m)| fail(span, m))?;
        Ok(plan)
    }

    /// Validates `[gates] before`: known phases the plan runs, never preflight, each once.
    /// Returns them in run order.
    fn check_gates(
        &self,
        before: &[Spanned<String>],
    ) -> Result<Vec<Phase>, (std::ops::Range<usize>, String)> {
        let phases = self.phases();
        let mut gates = Vec::new();
        for name in before {
            let text = name.get_ref().trim();
            let Ok(phase) = text.parse::<Phase>() else {
                let valid: Vec<&str> = Phase::ALL
                    .iter()
                    .filter(|p| **p != Phase::Preflight)
                    .map(|p| p.as_str())
                    .collect();
                return Err((
                    name.span(),
                    format!(
                        "gates.before: unknown phase `{text}`; a gate can stand before {}",
                        valid.join(", ")
                    ),
                ));
            };
            if phase == Phase::Preflight {
                return Err((
                    name.span(),
                    "gates.before: preflight cannot be gated: it only reads and changes nothing, \
                     and every run starts with it; gate add_column to stop before the first change"
                        .into(),
                ));
            }
            if !phases.contains(&phase) {
                return Err((
                    name.span(),
                    format!(
                        "gates.before: this plan has no {phase} phase ({}); remove `{phase}` from \
                         the gates",
                        self.why_no_phase(phase)
                    ),
                ));
            }
            if gates.contains(&phase) {
                return Err((
                    name.span(),
                    format!(
                        "gates.before: `{phase}` is listed twice; list each gated phase once \
                         (a repeat is often a typo for another phase)"
                    ),
                ));
            }
            gates.push(phase);
        }
        gates.sort();
        Ok(gates)
    }

    /// Why `phase` is not among this plan's phases, in words.
    fn why_no_phase(&self, phase: Phase) -> &'static str {
        match phase {
            Phase::Sync | Phase::Backfill | Phase::Verify => {
                "the column has no `backfill` expression, so nothing is synced, backfilled or verified"
            }
            Phase::NotNull if self.not_null_at_add() => {
                "NOT NULL is added by add_column itself (a constant default and nothing to backfill); \
                 gate add_column instead"
            }
            Phase::NotNull => "`not_null` is not set on the column",
            Phase::Index => "`index` is not set on the column",
            Phase::Preflight | Phase::AddColumn | Phase::Cleanup => "every plan has it",
        }
    }

    /// Whether the operator must proceed before `phase` starts.
    pub fn gated(&self, phase: Phase) -> bool {
        self.gates.contains(&phase)
    }

    /// The phases this plan runs, in order.
    pub fn phases(&self) -> Vec<Phase> {
        let c = &self.column;
        let mut phases = vec![Phase::Preflight, Phase::AddColumn];
        if c.backfill.is_some() {
            phases.extend([Phase::Sync, Phase::Backfill, Phase::Verify]);
        }
        if self.not_null_phase() {
            phases.push(Phase::NotNull);
        }
        if c.index.is_some() {
            phases.push(Phase::Index);
        }
        phases.push(Phase::Cleanup);
        phases
    }

    /// Whether NOT NULL needs its own phase. With a default and no backfill, the column is
    /// added as `NOT NULL DEFAULT …` directly: that is instant and needs no scan.
    pub fn not_null_phase(&self) -> bool {
        self.column.not_null && !self.not_null_at_add()
    }

    /// Whether ADD COLUMN itself carries NOT NULL (constant default, nothing to backfill).
    pub fn not_null_at_add(&self) -> bool {
        self.column.not_null && self.column.default.is_some() && self.column.backfill.is_none()
    }

    /// A stable digest of what defines the migration (not batch sizes, timeouts, throttles or
    /// gates), so a resume with a changed definition is refused while a resume with a gate
    /// added or removed is not.
    pub fn digest(&self) -> String {
        let c = &self.column;
        let canonical = format!(
            "{}\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{:?}\u{1f}{:?}\u{1f}{}\u{1f}{:?}",
            self.table,
            c.name,
            c.sql_type,
            c.not_null,
            c.default,
            c.backfill,
            self.state_table,
            c.index.as_ref().map(|i| (&i.name, i.unique)),
        );
        // FNV-1a 64: stable across builds and platforms, which std's hasher is not.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in canonical.bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        format!("{hash:016x}")
    }
}

/// `orders` + `amount` → `orders_amount_idx`, cut to 63 bytes on a character boundary.
pub fn default_index_name(table: &str, column: &str) -> String {
    let mut name = format!("{table}_{column}_idx");
    while name.len() > 63 {
        name.pop();
    }
    name
}

/// Parses "2s", "500ms", "1m 30s".
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|e| {
        format!("`{text}` is not a duration ({e}); write it like \"2s\", \"500ms\" or \"1m\"")
    })
}

/// `path:line:column` of a byte offset.
fn location(path: &Path, text: &str, offset: usize) -> String {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    format!("{}:{line}:{column}", path.display())
}

#[cfg(test)]
mod tests;
