//! `pacer run`: the migration, headless for now (progress on stderr or JSON on stdout).

use std::sync::Arc;

use super::{EXIT_ABORTED, EXIT_DONE, Failure, connect, load_plan};
use crate::TargetArgs;
use crate::engine::{Command, Engine, EngineError, RunOutcome, SystemClock};
use crate::headless::{Printer, Style};

/// Runs or resumes the migration; returns the exit code.
pub async fn run(args: &TargetArgs, headless: bool, json: bool) -> Result<u8, Failure> {
    let plan = load_plan(args)?;
    if !headless {
        eprintln!(
            "pacer: the full-screen interface is not built yet; running headless (--headless)."
        );
    }
    let target = connect(args, &plan).await?;
    let (engine, handles) = Engine::new(target, plan, Arc::new(SystemClock));
    let style = if json { Style::Json } else { Style::Human };
    let printer = tokio::spawn(Printer::new(style).run(handles.events));

    // Ctrl-C / SIGTERM stop at the next batch boundary (resumable); a second one exits now,
    // which is safe too: an unfinished transaction rolls back and DDL is atomic.
    // SIGHUP is ignored: losing the terminal must not stop a migration half-way.
    // SIGUSR1 pauses at the next batch boundary, SIGUSR2 resumes: control from any shell.
    let commands = handles.commands.clone();
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut int), Ok(mut term), Ok(mut hup), Ok(mut usr1), Ok(mut usr2)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
            signal(SignalKind::user_defined1()),
            signal(SignalKind::user_defined2()),
        ) else {
            return;
        };
        let mut asked = false;
        loop {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
                _ = hup.recv() => continue,
                _ = usr1.recv() => {
                    let _ = commands.send(Command::Pause);
                    continue;
                }
                _ = usr2.recv() => {
                    let _ = commands.send(Command::Resume);
                    continue;
                }
            }
            if asked {
                eprintln!("pacer: stopping now; the migration resumes from its last checkpoint.");
                std::process::exit(i32::from(EXIT_ABORTED));
            }
            asked = true;
            eprintln!("pacer: stopping at the next batch boundary (again to stop at once).");
            let _ = commands.send(Command::Abort);
        }
    });

    let outcome = engine.run().await;
    let _ = printer.await;
    drop(handles.commands);
    match outcome {
        Ok(RunOutcome::Done) | Ok(RunOutcome::AlreadyDone) => Ok(EXIT_DONE),
        Ok(RunOutcome::Aborted) => Ok(EXIT_ABORTED),
        Err(EngineError::Refused(m)) => Err(Failure::refused(format!(
            "preflight refuses {}: {m}",
            args.plan.display()
        ))),
        Err(EngineError::Failed(m)) => Err(Failure::failed(m)),
        Err(EngineError::Aborted) => Ok(EXIT_ABORTED),
    }
}
