//! The subcommands, and what they share: exit codes, loading the plan, connecting.

pub mod ctl;
pub mod demo;
pub mod plan;
pub mod report;
pub mod run;
pub mod status;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use clap::Args;

use crate::audit::{self, Audit};
use crate::plan::Plan;
use crate::target::any::{AnyConn, AnyTarget};
use crate::target::family::{Family, given_target};
use crate::target::mysql::{MyConnectError, MySql, MyTarget};
use crate::target::postgres::{ConnectError, PgTarget, Postgres};

/// Where the plan and the database are (the arguments `plan`, `run` and `status` share).
#[derive(Debug, Clone, Args)]
pub struct TargetArgs {
    /// The plan file (TOML).
    #[arg(value_name = "PLAN.toml")]
    pub plan: PathBuf,
    /// Database URL (postgres://user@host:port/db?sslmode=…, mysql://user@host:port/db?ssl-mode=…). Else PACER_TARGET, else DATABASE_URL.
    #[arg(long, value_name = "URL")]
    pub target: Option<String>,
}

/// Every phase finished (or had finished before).
pub const EXIT_DONE: u8 = 0;
/// A runtime failure: the migration stopped and is resumable.
pub const EXIT_FAILURE: u8 = 1;
/// A bad plan, bad usage or a preflight refusal: nothing was changed.
pub const EXIT_REFUSED: u8 = 2;
/// The operator aborted: stopped at a batch boundary, resumable.
pub const EXIT_ABORTED: u8 = 3;

/// An error for the user, with the exit code it ends the process with; printed by
/// [`report`] (color-eyre).
#[derive(Debug)]
pub struct Failure {
    /// Exit code.
    pub code: u8,
    /// One clear paragraph: what happened, to what, and (usually) what to do.
    pub message: String,
    /// Why, under the message: the causes its text does not already quote, outermost first.
    pub causes: Vec<String>,
    /// What to do, when the message does not say it.
    pub suggestion: Option<String>,
}

impl Failure {
    /// A failure ending the process with `code`.
    pub fn new(code: u8, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
            causes: Vec::new(),
            suggestion: None,
        }
    }
    /// A refusal (exit 2).
    pub fn refused(message: impl Into<String>) -> Failure {
        Failure::new(EXIT_REFUSED, message)
    }
    /// A runtime failure (exit 1).
    pub fn failed(message: impl Into<String>) -> Failure {
        Failure::new(EXIT_FAILURE, message)
    }
    /// Adds the chain of `error` (it and its sources) as causes, leaving out each one the
    /// message (or a cause before it) already quotes.
    pub fn because(mut self, error: &(dyn std::error::Error + 'static)) -> Failure {
        let mut next = Some(error);
        while let Some(e) = next {
            let text = e.to_string();
            let quoted =
                self.message.contains(&text) || self.causes.iter().any(|c| c.contains(&text));
            if !text.is_empty() && !quoted {
                self.causes.push(text);
            }
            next = e.source();
        }
        self
    }
    /// Adds what to do.
    pub fn suggest(mut self, suggestion: impl Into<String>) -> Failure {
        self.suggestion = Some(suggestion.into());
        self
    }
}

/// Work that must happen even when pacer exits at once (see [`exit_now`]): e.g. `pacer demo`
/// stopping its servers.
type ExitHook = Box<dyn Fn() + Send>;
static EXIT_HOOKS: Mutex<Vec<ExitHook>> = Mutex::new(Vec::new());

/// Runs `hook` if pacer exits through [`exit_now`]; hooks run in registration order.
pub fn on_exit_now(hook: ExitHook) {
    EXIT_HOOKS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(hook);
}

/// Exits the process now (no destructors run), after the hooks of [`on_exit_now`].
pub fn exit_now(code: u8) -> ! {
    let hooks = std::mem::take(&mut *EXIT_HOOKS.lock().unwrap_or_else(|p| p.into_inner()));
    for hook in hooks {
        hook();
    }
    std::process::exit(i32::from(code))
}

/// Where logs go while the full-screen interface owns the terminal and no --log-file is given:
/// `$XDG_STATE_HOME/pacer/pacer.log`, else `~/.local/state/pacer/pacer.log`.
pub fn default_log_file() -> Option<std::path::PathBuf> {
    let dir = std::env::var_os("XDG_STATE_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".local/state")))?
        .join("pacer");
    std::fs::create_dir_all(&dir).ok()?;
    Some(dir.join("pacer.log"))
}

/// Sets up tracing: to a file when asked (or when the TUI owns the terminal), else warnings to
/// stderr.
pub fn init_logging(
    file: Option<&Path>,
    tui: bool,
) -> Option<tracing_appender::non_blocking::WorkerGuard> {
    use tracing_subscriber::EnvFilter;
    let default = if tui && file.is_none() {
        default_log_file()
    } else {
        None
    };
    let file = file.or(default.as_deref());
    if tui && file.is_none() {
        // Nowhere to write: stay silent rather than scribble over the screen.
        return None;
    }
    match file {
        Some(path) => {
            let f = match std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
            {
                Ok(f) => f,
                Err(e) => {
                    eprintln!("pacer: cannot open log file {}: {e}", path.display());
                    return if tui { None } else { init_logging(None, false) };
                }
            };
            let (writer, guard) = tracing_appender::non_blocking(f);
            let _ = tracing_subscriber::fmt()
                .with_env_filter(
                    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
                )
                .with_writer(writer)
                .with_ansi(false)
                .try_init();
            Some(guard)
        }
        None => {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(
                    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
                )
                .with_writer(std::io::stderr)
                .try_init();
            None
        }
    }
}

/// Loads the plan (exit 2 when it is bad).
/// Its names and SQL fragments are checked by the rules of the target's family (PostgreSQL
/// when the target does not say).
pub fn load_plan(args: &TargetArgs) -> Result<Plan, Failure> {
    let env = |name: &str| std::env::var(name).ok();
    let family = Family::of_target(args.target.as_deref(), &env);
    Plan::load_with(&args.plan, family.dialect()).map_err(|e| Failure::refused(e.0))
}

/// Resolves the target from the flag, PACER_TARGET and DATABASE_URL, with the family's own
/// defaults: the libpq environment and ~/.pgpass for PostgreSQL; the client option files and
/// MYSQL_* variables for MySQL/MariaDB.
pub fn resolve_target(args: &TargetArgs) -> Result<AnyConn, Failure> {
    let env = |name: &str| std::env::var(name).ok();
    let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
    let family = given_target(args.target.as_deref(), &env)
        .as_deref()
        .and_then(Family::of);
    if family == Some(Family::MySql) {
        return MyTarget::resolve(args.target.as_deref(), &env, home.as_deref())
            .map(|t| AnyConn::MySql(Box::new(t)))
            .map_err(my_connect_failure);
    }
    PgTarget::resolve(args.target.as_deref(), &env, home.as_deref())
        .map(|t| AnyConn::Postgres(Box::new(t)))
        .map_err(connect_failure)
}

/// Refuses (exit 2) a plan that uses keys the target's family cannot honour, naming each and
/// the family, before anything is sent.
pub fn check_family(args: &TargetArgs, plan: &Plan) -> Result<(), Failure> {
    let env = |name: &str| std::env::var(name).ok();
    let Some(family) = given_target(args.target.as_deref(), &env)
        .as_deref()
        .and_then(Family::of)
    else {
        return Ok(());
    };
    let refused = family.unsupported(plan);
    if refused.is_empty() {
        return Ok(());
    }
    Err(Failure::refused(format!(
        "{}: the plan uses what a {family} target cannot do:\n  {}",
        args.plan.display(),
        refused.join("\n  ")
    )))
}

/// Where the audit log goes (`--audit-log`, PACER_AUDIT_LOG).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum AuditLog {
    /// [`audit::default_path`].
    #[default]
    Default,
    /// `off`: no audit log.
    Off,
    /// This file.
    Path(PathBuf),
}

impl AuditLog {
    /// `off` or a path (a file named "off" is `./off`).
    pub fn parse(text: &str) -> Result<AuditLog, String> {
        match text {
            "" => Err("give a file path, or `off`".into()),
            "off" => Ok(AuditLog::Off),
            path => Ok(AuditLog::Path(PathBuf::from(path))),
        }
    }
}

/// Opens the audit log of the plan's migration, its lines naming the job as far as it is known
/// before connecting ([`run::job_selector`]); the target names it fully once it has resolved
/// the table's schema ([`Audit::set_job`]), as the state table does. A file asked for by name
/// that cannot be opened is a refusal (exit 2); the default file falls back to no audit log,
/// with a warning on stderr.
pub fn open_audit(choice: &AuditLog, plan: &Plan) -> Result<Audit, Failure> {
    let job = &run::job_selector(plan);
    match choice {
        AuditLog::Off => Ok(Audit::disabled()),
        AuditLog::Path(path) => Audit::open(path, job).map_err(|e| {
            Failure::refused(format!(
                "cannot open the audit log {}: {e}. Give a file pacer may create and append to \
                 (--audit-log PATH), or --audit-log off to run without one.",
                path.display()
            ))
        }),
        AuditLog::Default => {
            let Some(path) = audit::default_path() else {
                eprintln!(
                    "pacer: warning: no audit log (neither XDG_STATE_HOME nor HOME is set); \
                     use --audit-log PATH to keep one."
                );
                return Ok(Audit::disabled());
            };
            Audit::open(&path, job).or_else(|e| {
                tracing::warn!("cannot open the audit log {}: {e}", path.display());
                eprintln!(
                    "pacer: warning: cannot open the audit log {}: {e}; running without one \
                     (use --audit-log PATH to choose another file).",
                    path.display()
                );
                Ok(Audit::disabled())
            })
        }
    }
}

/// Connects for a plan; every statement pacer sends is written to `audit`.
/// The family comes from the target's URL.
pub async fn connect(args: &TargetArgs, plan: &Plan, audit: Audit) -> Result<AnyTarget, Failure> {
    check_family(args, plan)?;
    match resolve_target(args)? {
        AnyConn::Postgres(conn) => {
            let target = Postgres::connect(*conn, plan, audit)
                .await
                .map_err(connect_failure)?;
            Ok(AnyTarget::Postgres(Box::new(target)))
        }
        AnyConn::MySql(conn) => {
            let target = MySql::connect(*conn, plan, audit)
                .await
                .map_err(my_connect_failure)?;
            Ok(AnyTarget::MySql(Box::new(target)))
        }
    }
}

/// Exit code of a MySQL connection error: 2 when the input must change, 1 when a retry may
/// help.
pub fn my_connect_failure(e: MyConnectError) -> Failure {
    let message = e.to_string();
    let failure = if e.is_retryable() || matches!(e, MyConnectError::Tls { .. }) {
        Failure::failed(message)
    } else {
        Failure::refused(message)
    };
    failure.because(&e)
}

/// Exit code of a connection error: 2 when the input must change, 1 when a retry may help.
pub fn connect_failure(e: ConnectError) -> Failure {
    let message = e.to_string();
    let failure = match e {
        ConnectError::Unreachable { .. }
        | ConnectError::Other { .. }
        | ConnectError::Tls { .. } => Failure::failed(message),
        _ => Failure::refused(message),
    };
    failure.because(&e)
}
