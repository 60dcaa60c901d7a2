//! pacer: add a column to a large, live table without downtime.

mod commands;
mod engine;
mod headless;
mod plan;
mod target;

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
    /// No full-screen interface: progress lines on stderr.
    #[arg(long)]
    headless: bool,
    /// With --headless: one JSON object per event on stdout instead of progress lines.
    #[arg(long)]
    json: bool,
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
    let _log_guard = commands::init_logging(cli.log_file.as_deref());
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
            Cmd::Run(a) => commands::run::run(&a.target, a.headless, a.json).await,
            Cmd::Status(a) => commands::status::run(&a.target, a.json).await,
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
