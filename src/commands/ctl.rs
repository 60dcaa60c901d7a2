//! `pacer ctl`: commands to a running migration over its control socket, from any shell.
//! `pacer attach`: its full screen, from any terminal.

use std::path::PathBuf;

use super::{EXIT_DONE, EXIT_REFUSED, Failure, load_plan};
use crate::TargetArgs;
use crate::control::client::{self, CtlError, Selector};
use crate::control::hub::status_word;
use crate::control::protocol::{CtlCommand, Info, Reply, Request};
use crate::engine::{Pace, State};
use crate::format::{clock, human, of_total, thousands};

/// The foreground guard in one line: `p99 1.61 ms, 1.8× the 0.92 ms baseline (bound 1.5x);
/// duty 25%: probe p99 …`, or `guard off (…)`.
fn foreground_words(f: &crate::engine::guard::ForegroundView) -> String {
    if !f.on {
        return if f.reason.is_empty() || f.reason == "off" {
            "guard off".to_string()
        } else {
            format!("guard off ({})", f.reason)
        };
    }
    let ms = |v: Option<f64>| v.map_or("?".to_string(), crate::format::millis);
    let impact = f.impact().map_or(String::new(), |x| {
        format!(", {x:.1}× the {} baseline", ms(f.baseline_p99_ms))
    });
    let pacing = crate::headless::pacing_words(f.duty, f.batch_cap);
    format!(
        "p99 {}{impact} (bound {}); {pacing}: {}",
        ms(f.p99_ms),
        f.bound,
        f.reason
    )
}

/// No running migration answered (nothing was sent).
pub const EXIT_NOT_RUNNING: u8 = 4;

/// Which migration: a plan file, or a socket; neither means the only one running.
#[derive(Debug, Clone, Default)]
pub struct Which {
    /// The plan file.
    pub plan: Option<PathBuf>,
    /// The socket.
    pub socket: Option<PathBuf>,
    /// The target, when several runs of the plan's migration are on this machine.
    pub target: Option<String>,
}

impl Which {
    fn selector(&self) -> Result<Selector, Failure> {
        let job = match &self.plan {
            Some(path) => {
                let plan = load_plan(&TargetArgs {
                    plan: path.clone(),
                    target: None,
                })?;
                Some(super::run::job_selector(&plan))
            }
            None => None,
        };
        // --target, else PACER_TARGET / DATABASE_URL / libpq's variables when they are set.
        let target = super::resolve_target(&TargetArgs {
            plan: self.plan.clone().unwrap_or_default(),
            target: self.target.clone(),
        })
        .ok()
        .map(|t| t.redacted());
        Ok(Selector {
            socket: self.socket.clone(),
            job,
            target,
        })
    }
}

fn failure(e: CtlError) -> Failure {
    Failure::new(if e.not_running { EXIT_NOT_RUNNING } else { 1 }, e.message)
}

/// Sends one command; prints the answer. Exit 0 when taken, 2 when refused (e.g. proceed
/// while not at a gate), 4 when no migration is running.
pub async fn command(which: &Which, command: CtlCommand) -> Result<u8, Failure> {
    let (path, info) = client::locate(&which.selector()?).await.map_err(failure)?;
    let reply = client::request(
        &path,
        &Request::Command {
            command,
            from: "ctl".into(),
        },
    )
    .await
    .map_err(failure)?;
    match reply {
        Reply::Done { ok: true, message } => {
            println!("{} (pid {}): {message}", info.job, info.pid);
            Ok(EXIT_DONE)
        }
        Reply::Done { ok: false, message } => Err(Failure::new(
            EXIT_REFUSED,
            format!("{} (pid {}) refused: {message}", info.job, info.pid),
        )),
        other => Err(Failure::failed(format!("unexpected answer: {other:?}"))),
    }
}

/// Prints the running migration's state: one screen, or one JSON object.
pub async fn status(which: &Which, json: bool) -> Result<u8, Failure> {
    let (path, _) = client::locate(&which.selector()?).await.map_err(failure)?;
    let (info, state) = match client::request(&path, &Request::Status)
        .await
        .map_err(failure)?
    {
        Reply::Status { info, state } => (info, state),
        other => return Err(Failure::failed(format!("unexpected answer: {other:?}"))),
    };
    if json {
        println!("{}", status_json(&info, &state));
    } else {
        print!("{}", status_text(&info, &state));
    }
    Ok(EXIT_DONE)
}

/// The JSON form of `pacer ctl status --json`: `{"runner": {...}, "state": {...}}` (the plan's
/// text is left out).
pub fn status_json(info: &Info, state: &State) -> serde_json::Value {
    let mut runner = serde_json::to_value(info).unwrap_or_default();
    if let Some(o) = runner.as_object_mut() {
        o.remove("plan_toml");
    }
    serde_json::json!({ "runner": runner, "state": state })
}

/// The one-screen form of `pacer ctl status`.
pub fn status_text(info: &Info, s: &State) -> String {
    let mut out = String::new();
    let mut line = |k: &str, v: String| out.push_str(&format!("{k:<12}{v}\n"));
    let status = status_word(s.status).to_uppercase();
    line("migration", info.job.clone());
    line(
        "status",
        match (s.phase, s.status) {
            (Some(p), _) => format!("{status} (phase {p})"),
            (None, _) => status,
        },
    );
    if !s.phases_done.is_empty() {
        line(
            "done",
            s.phases_done
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(", "),
        );
    }
    let progress = format!(
        "{} keys{}",
        thousands(s.rows_done),
        of_total(s.rows_done, s.rows_total)
    );
    line("backfill", format!("{progress}, {}", pace(s)));
    line("elapsed", clock(s.elapsed(unix_ms())));
    line(
        "batch size",
        if s.batch_size_reason.is_empty() {
            thousands(s.batch_size)
        } else {
            format!("{} ({})", thousands(s.batch_size), s.batch_size_reason)
        },
    );
    if let Some(c) = &s.checkpoint {
        line("checkpoint", c.0.join(", "));
    }
    if let Some(t) = &s.throttle {
        line("throttled", t.clone());
    }
    if let Some(f) = &s.foreground {
        line("foreground", foreground_words(f));
    }
    if let Some(g) = s.gate {
        line(
            "gate",
            format!("waiting before {g}: `pacer ctl proceed` to go on"),
        );
    }
    for b in &s.blockers {
        line(
            "blocked by",
            format!(
                "{} {} ({})",
                b.family.figure_words().session,
                b.pid,
                b.application
            ),
        );
    }
    if let Some(e) = &s.error {
        line("error", e.clone());
    }
    line(
        "runner",
        format!(
            "pid {}, started {}, pacer {}",
            info.pid, info.started_at, info.version
        ),
    );
    line("target", info.target.clone());
    line("plan", info.plan_path.clone());
    line("socket", info.socket.clone());
    line(
        "audit log",
        info.audit_log.clone().unwrap_or_else(|| "off".into()),
    );
    line("on hangup", info.on_hangup.clone());
    out
}

/// Lists the migrations running on this machine (for the operator's account).
pub async fn list() -> Result<u8, Failure> {
    let dir = crate::control::socket_dir();
    let all = client::running(&dir).await;
    if all.is_empty() {
        println!(
            "no migration is running (no live socket in {})",
            dir.display()
        );
        return Ok(EXIT_NOT_RUNNING);
    }
    for (path, info) in all {
        println!(
            "{}  pid {}  started {}  {}",
            info.job,
            info.pid,
            info.started_at,
            path.display()
        );
    }
    Ok(EXIT_DONE)
}

/// `pacer attach`: the full screen on a migration running elsewhere.
pub async fn attach(which: &Which, options: super::run::RunOptions) -> Result<u8, Failure> {
    use std::io::IsTerminal;
    if !(std::io::stdout().is_terminal() && std::io::stdin().is_terminal()) {
        return Err(Failure::refused(
            "pacer attach needs a terminal; from a script use `pacer ctl status --json`",
        ));
    }
    let theme = super::run::load_theme(options.theme.as_deref())?;
    let (path, _) = client::locate(&which.selector()?).await.map_err(failure)?;
    let attached = client::attach(&path, false).await.map_err(failure)?;
    let plan = crate::plan::Plan::parse(
        std::path::Path::new(&attached.info.plan_path),
        &attached.info.plan_toml,
    )
    .map_err(|e| Failure::failed(format!("cannot read the running plan: {}", e.0)))?;
    let job = attached.info.job.clone();
    match super::run::screen(attached, theme, &options, plan, true, None).await {
        Ok(super::run::Left::Detached) => {
            eprintln!("pacer: detached from {job}; it goes on.");
            Ok(EXIT_DONE)
        }
        Ok(super::run::Left::Ended(end)) => {
            eprintln!("pacer: {job}: {}", end.message);
            Ok(EXIT_DONE)
        }
        Ok(super::run::Left::Lost(why)) => Err(Failure::failed(format!(
            "lost the connection to {job}: {why}"
        ))),
        Err(e) => Err(
            Failure::failed(format!("the terminal interface failed: {e}"))
                .because(&e)
                .suggest(
                    "The migration goes on in its runner: `pacer ctl status` shows it, and `pacer \
             attach` opens the screen again.",
                ),
        ),
    }
}

/// Now, in milliseconds since the Unix epoch.
fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The backfill's pace in words: its rate and ETA while batches run, why it is stopped when
/// they do not, its average once it is over (the same rules as the screen).
fn pace(s: &State) -> String {
    let avg = if s.avg_rows_per_s > 0.0 {
        format!("avg {} rows/s", thousands(s.avg_rows_per_s.round() as u64))
    } else {
        "avg unknown".into()
    };
    match s.pace() {
        Pace::Moving => format!(
            "{} rows/s ({avg}), ETA {}",
            thousands(s.rows_per_s.round() as u64),
            s.eta_s.map_or("unknown".into(), |e| {
                human(std::time::Duration::from_secs(e))
            })
        ),
        Pace::Stopped(why) => format!("{why}: 0 rows/s ({avg}), ETA stopped"),
        Pace::Over => avg,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Status;
    use crate::plan::Phase;

    fn state(status: Status, phases_done: Vec<Phase>) -> State {
        State {
            phase: Some(Phase::Backfill),
            status,
            phases_done,
            rows_per_s: 14_000.0,
            avg_rows_per_s: 13_500.0,
            eta_s: Some(50),
            ..State::starting("public.orders.amount".into(), 5000)
        }
    }

    #[test]
    fn status_says_the_rate_and_eta_while_running_why_it_stopped_and_the_average_after() {
        assert_eq!(
            pace(&state(Status::Running, vec![])),
            "14,000 rows/s (avg 13,500 rows/s), ETA 50s"
        );
        let mut paused = state(Status::Paused, vec![]);
        paused.rows_per_s = 0.0;
        paused.eta_s = None;
        assert_eq!(
            pace(&paused),
            "paused: 0 rows/s (avg 13,500 rows/s), ETA stopped"
        );
        assert_eq!(
            pace(&state(Status::Running, vec![Phase::Backfill])),
            "avg 13,500 rows/s"
        );
    }
}
