//! pacer: add a column to a large, live table without downtime.

mod commands;
mod demo;
mod engine;
mod headless;
mod plan;
mod sampler;
mod target;
mod tui;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// Add a column to a large, live PostgreSQL table without downtime.
#[derive(Debug, Parser)]
#[command(name = "pacer", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
    /// Append logs to this file (level from RUST_LOG, default info). Without it, warnings go to stderr.
    #[arg(long, global = true, value_name = "PATH")]
    log_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Show the phases, the exact SQL, the locks and the lint findings; change nothing.
    Plan(PlanArgs),
    /// Run (or resume) the migration.
    Run(RunArgs),
    /// Show the migration's recorded state from the database.
    Status(StatusArgs),
    /// Show pacer at work on a throwaway PostgreSQL with a live workload; removes it all on quit.
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

/// Where the plan and the database are.
#[derive(Debug, Args)]
pub struct TargetArgs {
    /// The plan file (TOML).
    #[arg(value_name = "PLAN.toml")]
    pub plan: PathBuf,
    /// Database URL (postgres://user@host:port/db?sslmode=…). Else PACER_TARGET, else DATABASE_URL.
    #[arg(long, value_name = "URL")]
    pub target: Option<String>,
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
}

#[derive(Debug, Args)]
struct DemoArgs {
    /// Rows to seed the demo table with.
    #[arg(long, value_name = "N", default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    rows: u64,
    /// Also start a streaming replica (pacer watches its lag and throttles on it).
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

fn parse_interval(text: &str) -> Result<std::time::Duration, String> {
    let d = plan::parse_duration(text)?;
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

fn main() -> ExitCode {
    let _ = color_eyre::install();
    let cli = Cli::parse();
    if let Cmd::DemoReaper { root, bin, keep } = &cli.command {
        return match demo::cluster::reap(root, bin, *keep) {
            Ok(()) => ExitCode::SUCCESS,
            Err(_) => ExitCode::from(commands::EXIT_FAILURE),
        };
    }
    // While the full-screen interface owns the terminal, logs must go to a file.
    let tui = match &cli.command {
        Cmd::Run(a) => commands::run::uses_tui(a.headless),
        Cmd::Demo(_) => commands::run::uses_tui(false),
        _ => false,
    };
    let _log_guard = commands::init_logging(cli.log_file.as_deref(), tui);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("pacer: cannot start the async runtime: {e}");
            return ExitCode::from(commands::EXIT_FAILURE);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Cmd::Plan(a) => commands::plan::run(&a.target, a.json).await,
            Cmd::Run(a) => {
                let options = commands::run::RunOptions {
                    headless: a.headless,
                    json: a.json,
                    theme: a.theme,
                    sample_interval: a.sample_interval,
                    braille: !a.ascii,
                };
                commands::run::run(&a.target, options).await
            }
            Cmd::Status(a) => commands::status::run(&a.target, a.json).await,
            // Handled before the runtime starts.
            Cmd::DemoReaper { .. } => Ok(commands::EXIT_DONE),
            Cmd::Demo(a) => {
                let options = commands::demo::DemoOptions {
                    rows: a.rows,
                    replica: a.replica,
                    tps: a.tps,
                    theme: a.theme,
                    braille: !a.ascii,
                    keep: a.keep,
                };
                commands::demo::run(options).await
            }
        }
    });
    match result {
        Ok(code) => ExitCode::from(code),
        Err(failure) => {
            eprintln!("pacer: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}
