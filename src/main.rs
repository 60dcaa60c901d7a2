//! pacer's command line: the arguments (clap) and which library function each subcommand runs.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use pacer::TargetArgs;
use pacer::cli::{self, CtlCommand, OnHangup};

/// Add a column to a large, live PostgreSQL table without downtime.
#[derive(Debug, Parser)]
#[command(name = "pacer", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
    /// Append logs to this file (level from RUST_LOG, default info). Without it, warnings go to stderr.
    #[arg(long, global = true, value_name = "PATH")]
    log_file: Option<PathBuf>,
    /// Append the audit log (JSON lines: every SQL statement pacer sends and every operator
    /// action; never a password) to this file, or `off`. Default:
    /// $XDG_STATE_HOME/pacer/audit.jsonl, else ~/.local/state/pacer/audit.jsonl.
    #[arg(
        long,
        global = true,
        value_name = "PATH|off",
        env = "PACER_AUDIT_LOG",
        value_parser = cli::AuditLog::parse
    )]
    audit_log: Option<cli::AuditLog>,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Show the phases, the exact SQL, the locks and the lint findings; change nothing.
    Plan(PlanArgs),
    /// Run (or resume) the migration.
    Run(RunArgs),
    /// Show the migration's recorded state from the database.
    Status(StatusArgs),
    /// Control a running migration from any shell (over its control socket).
    Ctl(CtlArgs),
    /// Open the full screen on a migration running elsewhere (another terminal, or headless).
    Attach(AttachArgs),
    /// Show pacer at work on a throwaway PostgreSQL (or MariaDB) with a live workload; removes it all on quit.
    Demo(DemoArgs),
    /// `pacer demo`'s watchdog: cleans up after a demo whose pacer died (internal).
    #[command(name = "demo-reaper", hide = true)]
    DemoReaper {
        root: PathBuf,
        bin: PathBuf,
        #[arg(long)]
        keep: bool,
    },
}

/// Which running migration: a plan file, or a socket; neither picks the only one running.
#[derive(Debug, Args, Clone)]
struct WhichArgs {
    /// The plan file of the running migration.
    #[arg(value_name = "PLAN.toml")]
    plan: Option<PathBuf>,
    /// The migration's control socket (see `pacer ctl list`).
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// The database, when the plan runs against several from this machine.
    #[arg(long, value_name = "URL")]
    target: Option<String>,
}

impl WhichArgs {
    fn which(&self) -> cli::ctl::Which {
        cli::ctl::Which {
            plan: self.plan.clone(),
            socket: self.socket.clone(),
            target: self.target.clone(),
        }
    }
}

#[derive(Debug, Args)]
struct CtlArgs {
    #[command(subcommand)]
    action: CtlAction,
}

#[derive(Debug, Subcommand)]
enum CtlAction {
    /// Pause at the next batch boundary.
    Pause(WhichArgs),
    /// Go on after a pause.
    Resume(WhichArgs),
    /// Keys per batch from the next batch on (holds until `auto`), or `auto` to hand the size
    /// back to the adaptive sizer.
    BatchSize {
        #[arg(value_name = "N|auto", help = batch_size_help())]
        size: String,
        #[command(flatten)]
        which: WhichArgs,
    },
    /// Go past the gate the migration waits at.
    Proceed {
        #[command(flatten)]
        which: WhichArgs,
        /// Only if the gate waiting is before this phase (e.g. not_null): a proceed meant for one
        /// gate then never passes the next.
        #[arg(long, value_name = "PHASE")]
        phase: Option<String>,
    },
    /// Stop at the next boundary; everything stays resumable.
    Abort(WhichArgs),
    /// The foreground guard's bound on the probe's p99 while the backfill runs: a multiple of
    /// its baseline (`1.5x`), a duration (`20ms`), or `off`. Pacing starts again from full speed.
    Foreground {
        #[arg(value_name = "BOUND|off")]
        bound: String,
        #[command(flatten)]
        which: WhichArgs,
    },
    /// Where the running migration is: one screen, or `--json`.
    Status {
        #[command(flatten)]
        which: WhichArgs,
        /// One JSON object: {"runner": {...}, "state": {...}}.
        #[arg(long)]
        json: bool,
    },
    /// The migrations running on this machine under your account.
    List,
}

#[derive(Debug, Args)]
struct AttachArgs {
    #[command(flatten)]
    which: WhichArgs,
    /// Colour theme: dark, light, high-contrast, mono, or a path to a theme .toml (NO_COLOR wins).
    #[arg(long, value_name = "NAME|PATH")]
    theme: Option<String>,
    /// Draw chart lines with plain dots instead of Braille.
    #[arg(long)]
    ascii: bool,
}

#[derive(Debug, Args)]
struct PlanArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// Print the plan as one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct RunArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// No full-screen interface: progress lines on stderr (the default when stdout is not a terminal).
    #[arg(long)]
    headless: bool,
    /// With --headless: one JSON object per event on stdout instead of progress lines.
    #[arg(long)]
    json: bool,
    /// Colour theme: dark, light, high-contrast, mono, or a path to a theme .toml (NO_COLOR wins).
    #[arg(long, value_name = "NAME|PATH")]
    theme: Option<String>,
    /// How often the database and the host are sampled for the charts.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_interval)]
    sample_interval: std::time::Duration,
    /// Draw chart lines with plain dots instead of Braille (for fonts without Braille glyphs).
    #[arg(long)]
    ascii: bool,
    /// When the terminal is lost (SSH drop, window closed, SIGHUP) without detaching: keep
    /// running (`pacer attach` brings the screen back), or pause at the next batch boundary.
    #[arg(long, value_enum, default_value = "continue", value_name = "WHAT")]
    on_hangup: OnHangup,
    /// Internal: the background half of a run started on a terminal.
    #[arg(long, hide = true)]
    runner: bool,
}

#[derive(Debug, Args)]
struct DemoArgs {
    /// The database server to run the demo on (a throwaway one, started and removed by the demo).
    #[arg(long, value_enum, default_value = "postgres", value_name = "ENGINE")]
    engine: cli::demo::Engine,
    /// Rows to seed the demo table with.
    #[arg(long, value_name = "N", default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    rows: u64,
    /// Also start a replica (on PostgreSQL, pacer watches its lag and throttles on it).
    #[arg(long)]
    replica: bool,
    /// Total transactions per second of the synthetic application (default from demo/workload.toml: 200).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(0..=100_000))]
    tps: Option<u32>,
    /// Colour theme: dark, light, high-contrast, mono, or a path to a theme .toml (NO_COLOR wins).
    #[arg(long, value_name = "NAME|PATH")]
    theme: Option<String>,
    /// Draw chart lines with plain dots instead of Braille.
    #[arg(long)]
    ascii: bool,
    /// Keep the demo's directory (data, logs, plan) at the end and say where it is.
    #[arg(long)]
    keep: bool,
}

/// The help of `pacer ctl batch-size N`: the bounds the engine holds a size to.
fn batch_size_help() -> String {
    format!(
        "A number of keys ({} to {}), or `auto`.",
        cli::thousands(cli::MIN_BATCH_SIZE),
        cli::thousands(cli::MAX_BATCH_SIZE)
    )
}

fn parse_interval(text: &str) -> Result<std::time::Duration, String> {
    let d = cli::parse_duration(text)?;
    if d < std::time::Duration::from_millis(100) || d > std::time::Duration::from_secs(60) {
        return Err("use 100ms to 60s".into());
    }
    Ok(d)
}

#[derive(Debug, Args)]
struct StatusArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// Print the state as one JSON object.
    #[arg(long)]
    json: bool,
}

async fn ctl(action: CtlAction) -> Result<u8, cli::Failure> {
    use cli::ctl;
    match action {
        CtlAction::Pause(w) => ctl::command(&w.which(), CtlCommand::Pause).await,
        CtlAction::Resume(w) => ctl::command(&w.which(), CtlCommand::Resume).await,
        CtlAction::Proceed { which, phase } => {
            let phase = phase
                .map(|p| p.parse::<cli::Phase>())
                .transpose()
                .map_err(cli::Failure::refused)?;
            ctl::command(&which.which(), CtlCommand::Proceed { phase }).await
        }
        CtlAction::Abort(w) => ctl::command(&w.which(), CtlCommand::Abort).await,
        CtlAction::Foreground { bound, which } => {
            let bound = if bound.trim().eq_ignore_ascii_case("off") {
                None
            } else {
                Some(cli::ImpactBound::parse(&bound).ok_or_else(|| {
                    cli::Failure::refused(format!(
                        "foreground bound {bound:?}: write a multiple of the baseline from 1x \
                         to 1000x (1.5x), a duration from 100us to 60s (20ms), or off"
                    ))
                })?)
            };
            ctl::command(&which.which(), CtlCommand::Foreground { bound }).await
        }
        CtlAction::BatchSize { size, which } => {
            let command = if size.eq_ignore_ascii_case("auto") {
                CtlCommand::AutoBatchSize
            } else {
                let n = cli::parse_batch_size(&size).map_err(|e| {
                    cli::Failure::refused(format!("batch size {size:?}: {e}, or auto"))
                })?;
                CtlCommand::BatchSize { size: n }
            };
            ctl::command(&which.which(), command).await
        }
        CtlAction::Status { which, json } => ctl::status(&which.which(), json).await,
        CtlAction::List => ctl::list().await,
    }
}

fn main() -> ExitCode {
    cli::report::install();
    let args = Cli::parse();
    if let Cmd::DemoReaper { root, bin, keep } = &args.command {
        return match cli::demo::reap(root, bin, *keep) {
            Ok(()) => ExitCode::SUCCESS,
            Err(_) => ExitCode::from(cli::EXIT_FAILURE),
        };
    }
    // While the full-screen interface owns the terminal, logs must go to a file.
    let tui = match &args.command {
        Cmd::Run(a) => a.runner || cli::run::uses_tui(a.headless),
        Cmd::Attach(_) => true,
        Cmd::Demo(_) => cli::run::uses_tui(false),
        _ => false,
    };
    let _log_guard = cli::init_logging(args.log_file.as_deref(), tui);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            let failure =
                cli::Failure::failed(format!("cannot start the async runtime: {e}")).because(&e);
            eprint!("{}", cli::report::render(&failure.report()));
            return ExitCode::from(failure.code);
        }
    };
    let audit_log = args.audit_log.unwrap_or_default();
    let result = runtime.block_on(async {
        match args.command {
            Cmd::Plan(a) => cli::plan::run(&a.target, a.json, &audit_log).await,
            Cmd::Run(a) => {
                let options = cli::run::RunOptions {
                    headless: a.headless,
                    json: a.json,
                    theme: a.theme,
                    sample_interval: a.sample_interval,
                    braille: !a.ascii,
                    on_hangup: a.on_hangup,
                    runner: a.runner,
                    log_file: args.log_file.clone(),
                    audit_log: audit_log.clone(),
                };
                cli::run::run(&a.target, options).await
            }
            Cmd::Status(a) => cli::status::run(&a.target, a.json, &audit_log).await,
            Cmd::Ctl(c) => ctl(c.action).await,
            Cmd::Attach(a) => {
                let options = cli::run::RunOptions {
                    headless: false,
                    json: false,
                    theme: a.theme,
                    sample_interval: std::time::Duration::from_secs(1),
                    braille: !a.ascii,
                    on_hangup: OnHangup::Continue,
                    runner: false,
                    log_file: args.log_file.clone(),
                    audit_log: cli::AuditLog::Off,
                };
                cli::ctl::attach(&a.which.which(), options).await
            }
            // Handled before the runtime starts.
            Cmd::DemoReaper { .. } => Ok(cli::EXIT_DONE),
            Cmd::Demo(a) => {
                let options = cli::demo::DemoOptions {
                    engine: a.engine,
                    rows: a.rows,
                    replica: a.replica,
                    tps: a.tps,
                    theme: a.theme,
                    braille: !a.ascii,
                    keep: a.keep,
                };
                cli::demo::run(options).await
            }
        }
    });
    match result {
        Ok(code) => ExitCode::from(code),
        Err(failure) => {
            eprint!("{}", cli::report::render(&failure.report()));
            ExitCode::from(failure.code)
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_batch_size_help_states_the_bounds_the_engine_holds_to() {
        let cli = Cli::command();
        let size = cli
            .find_subcommand("ctl")
            .and_then(|c| c.find_subcommand("batch-size"))
            .and_then(|c| c.get_arguments().find(|a| a.get_id() == "size"))
            .expect("pacer ctl batch-size N");
        let help = size.get_help().expect("a help line").to_string();
        assert_eq!(help, "A number of keys (1 to 1,000,000), or `auto`.");
        assert!(help.contains(&format!(
            "({} to {})",
            cli::thousands(cli::MIN_BATCH_SIZE),
            cli::thousands(cli::MAX_BATCH_SIZE)
        )));
        let refused = cli::parse_batch_size("0").unwrap_err();
        assert!(refused.contains("1 to 1,000,000"), "{refused}");
    }
}
