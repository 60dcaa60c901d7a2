//! What both families' state tables share: who runs a migration (`host:pid`, and whether that
//! process still runs on this host), and the stored words (outcome, finished phases) read
//! back strictly.

use crate::plan::Phase;
use crate::target::{Outcome, TargetError, TargetResult};

/// `host:pid` of this process.
pub(crate) fn runner_id() -> String {
    format!("{}:{}", crate::os::hostname(), std::process::id())
}

/// What a recorded runner (`host:pid`) is, seen from here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LocalRunner {
    /// Another host, or this very process: nothing can be told.
    Unknown,
    /// A pacer process on this host, still running.
    Alive,
    /// Ran on this host; its process is gone.
    Gone,
}

pub(crate) fn local_runner(runner: &str) -> LocalRunner {
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

/// The state row's outcome and finished phases. A word this pacer does not know is an error:
/// taken for "running" it would resume a finished migration; a finished phase dropped would
/// run again.
pub(crate) fn stored_words(
    job: &str,
    state_table: &str,
    outcome: &str,
    phases: &[String],
) -> TargetResult<(Outcome, Vec<Phase>)> {
    let unknown = |what: String, known: String| {
        TargetError::Failed(format!(
            "the state row of migration {job} in {state_table} records {what}, which this pacer \
             does not know (it knows {known}); it may have been written by a newer pacer. Nothing \
             was changed: run the pacer that wrote it, or correct the row."
        ))
    };
    let outcome = Outcome::parse(outcome).ok_or_else(|| {
        unknown(
            format!("outcome {outcome:?}"),
            "running, done, failed and aborted".into(),
        )
    })?;
    let phases_done = phases
        .iter()
        .map(|p| {
            p.parse::<Phase>().map_err(|_| {
                let known: Vec<&str> = Phase::ALL.iter().map(|p| p.as_str()).collect();
                unknown(format!("phase {p:?} as done"), known.join(", "))
            })
        })
        .collect::<TargetResult<Vec<Phase>>>()?;
    Ok((outcome, phases_done))
}
