//! `pacer run`: the migration.
//!
//! - **Headless** (`--headless`, or stdout not a terminal): the engine runs in this process,
//!   progress lines on stderr or JSON events on stdout.
//! - **On a terminal**: the engine runs in a *runner*, a child process in a session of its own
//!   with no terminal (so an SSH drop, a closed window or SIGHUP cannot reach it), and this
//!   process is the screen, attached to the runner's control socket like `pacer attach`.
//!   Quitting the screen offers detach (the migration goes on), abort, or cancel; losing it
//!   without detaching is a *hangup*: the runner goes on (`--on-hangup continue`, the
//!   default) or pauses at the next batch boundary (`--on-hangup pause`).
//!
//! Either way the migration listens on a control socket (see [`crate::control`]) for `pacer
//! ctl` and `pacer attach`, and writes the audit log.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

use super::{
    AuditLog, EXIT_ABORTED, EXIT_DONE, EXIT_FAILURE, EXIT_REFUSED, Failure, connect, load_plan,
    open_audit,
};
use crate::TargetArgs;
use crate::control::client::{self, Ending};
use crate::control::protocol::{CtlCommand, End, Info, Reply};
use crate::control::server::Server;
use crate::control::{self, Hub, OnHangup};
use crate::engine::throttle::Signals;
use crate::engine::{Engine, EngineError, RunOutcome, SignalSource, Status, SystemClock};
use crate::headless::{Printer, ReplicaLagSource, Style, worst_replica_lag};
use crate::plan::Plan;
use crate::sampler::{self, DEFAULT_WINDOW, Metrics, SharedMetrics};
use crate::target::Target;
use crate::target::any::AnyTarget;
use crate::target::family::Family;
use crate::tui;

/// The environment variable that hands the --target of `pacer run` to its runner (not its
/// command line, where `ps` would show a password).
const RUNNER_TARGET: &str = "PACER_RUNNER_TARGET";
/// The line a runner prints on stdout once its socket listens.
const READY: &str = "PACER-RUNNER-READY ";
/// What to do when the runner of a run on a terminal cannot be started.
const HEADLESS_INSTEAD: &str = "`pacer run --headless` runs the migration in this process, \
     without the screen; `pacer attach` from another terminal shows it.";
/// How long a finished runner waits for its viewers to read the end.
const LINGER: Duration = Duration::from_secs(3);
/// How long a runner waits for the terminal that started it before counting it as lost.
const OWNER_GRACE: Duration = Duration::from_secs(15);

/// How `pacer run` shows what it does.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// No full-screen interface.
    pub headless: bool,
    /// JSON events on stdout (headless).
    pub json: bool,
    /// Theme name or path.
    pub theme: Option<String>,
    /// Sampling interval of the charts.
    pub sample_interval: Duration,
    /// Braille chart markers.
    pub braille: bool,
    /// What losing the terminal does.
    pub on_hangup: OnHangup,
    /// This process is the runner of an interactive run (internal).
    pub runner: bool,
    /// `--log-file`, passed on to the runner.
    pub log_file: Option<PathBuf>,
    /// Where the audit log goes.
    pub audit_log: AuditLog,
}

/// Whether `pacer run` opens the full-screen interface: asked for, and on a terminal.
pub fn uses_tui(headless: bool) -> bool {
    !headless && std::io::stdout().is_terminal() && std::io::stdin().is_terminal()
}

/// Runs or resumes the migration; returns the exit code.
pub async fn run(args: &TargetArgs, options: RunOptions) -> Result<u8, Failure> {
    let plan = load_plan(args)?;
    if options.runner {
        // The --target of the `pacer run` that started this runner counts as given here:
        // messages about it then name --target, not an environment variable.
        let mut args = args.clone();
        if args.target.is_none() {
            args.target = std::env::var(RUNNER_TARGET).ok();
        }
        return runner(&args, plan, options).await;
    }
    let interactive = uses_tui(options.headless);
    if interactive {
        return with_screen(args, plan, options).await;
    }
    if !options.headless {
        eprintln!(
            "pacer: standard output is not a terminal; running headless (as with --headless)."
        );
    }
    headless(args, plan, options, None).await
}

/// The screen's theme: `--theme`, with `NO_COLOR` (non-empty) winning.
pub fn load_theme(name: Option<&str>) -> Result<tui::theme::Theme, Failure> {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    tui::theme::from_env(name, no_color).map_err(Failure::refused)
}

/// The job of a plan as far as it can be known without connecting: `schema.table.column`, or
/// `.table.column` (any schema) when the plan names none.
pub fn job_selector(plan: &Plan) -> String {
    match &plan.table.schema {
        Some(schema) => format!("{schema}.{}.{}", plan.table.name, plan.column.name),
        None => format!(".{}.{}", plan.table.name, plan.column.name),
    }
}

/// Refuses when the plan's migration already runs on this machine against the same target
/// (the database's advisory lock refuses a second runner from anywhere; this says it sooner,
/// and says where the running one is).
async fn refuse_if_running(args: &TargetArgs, plan: &Plan) -> Result<(), Failure> {
    super::check_family(args, plan)?;
    let target = super::resolve_target(args)?.redacted();
    let job = job_selector(plan);
    let running = client::running(&control::socket_dir()).await;
    let same = running
        .iter()
        .find(|(_, i)| client::job_matches(&job, &i.job) && i.target == target);
    if let Some((path, info)) = same {
        return Err(Failure::refused(format!(
            "{} is already running on {} (pid {}, started {}, socket {}); a second run would \
             double-run batches. Watch it with `pacer attach {}`; control it with `pacer ctl \
             status|pause|resume {}`.",
            info.job,
            info.target,
            info.pid,
            info.started_at,
            path.display(),
            args.plan.display(),
            args.plan.display()
        )));
    }
    Ok(())
}

/// What a running migration is made of, before the engine starts.
struct Prepared {
    engine: Engine<AnyTarget>,
    hub: Arc<Hub>,
    pump: tokio::task::JoinHandle<()>,
    server: Server,
    sampler: tokio::task::JoinHandle<()>,
    /// Carries the foreground probe's samples into the charts.
    probes: Option<tokio::task::JoinHandle<()>>,
    metrics: SharedMetrics,
}

/// Connects, starts the sampler, opens the audit log, and listens on the control socket.
async fn prepare(args: &TargetArgs, plan: Plan, options: &RunOptions) -> Result<Prepared, Failure> {
    let plan_toml = std::fs::read_to_string(&args.plan).unwrap_or_default();
    let audit = open_audit(&options.audit_log, &plan)?;
    let target = connect(args, &plan, audit.clone()).await?;
    let describe = target.describe();
    // The sampler always runs: the charts of any viewer that attaches, and health throttling.
    let source = target.metric_source(options.sample_interval, audit.clone());
    let probe_log = target.probe_log();
    let (engine, handles) = Engine::new(target, plan.clone(), Arc::new(SystemClock));
    let job = handles.state.borrow().job.clone();
    let family = Family::of_target(args.target.as_deref(), &|name| std::env::var(name).ok());
    let metrics = SharedMetrics::new(
        Metrics::new(DEFAULT_WINDOW, options.sample_interval).with_words(family.figure_words()),
    );
    let sampler = sampler::spawn(source, options.sample_interval, metrics.clone());
    let probes = probe_log.map(|log| forward_probes(log, metrics.clone()));
    let engine = engine.with_signals(signals_from(
        metrics.clone(),
        options.sample_interval,
        family,
    ));

    let dir = control::socket_dir();
    control::ensure_dir(&dir).map_err(Failure::failed)?;
    let pid = std::process::id();
    let path = control::socket_path(&dir, &job, pid);
    let info = Info {
        job: job.clone(),
        pid,
        plan_path: args.plan.display().to_string(),
        plan_toml,
        target: describe.clone(),
        started_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        socket: path.display().to_string(),
        audit_log: audit.path().map(|p| p.display().to_string()),
        on_hangup: options.on_hangup.as_str().to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        family: family.to_string(),
    };
    audit.note(
        "run_started",
        serde_json::json!({
            "plan": info.plan_path,
            "target": describe,
            "socket": info.socket,
            "on_hangup": info.on_hangup,
            "version": info.version,
        }),
    );
    let (hub, pump) = Hub::spawn(
        handles,
        info,
        Some(metrics.clone()),
        audit,
        options.on_hangup,
    );
    let server = Server::bind(&path, hub.clone()).map_err(Failure::failed)?;
    tracing::info!(socket = %path.display(), "control socket listening");
    Ok(Prepared {
        engine,
        hub,
        pump,
        server,
        sampler,
        probes,
        metrics,
    })
}

/// How an engine outcome ends the run.
fn end_of(args: &TargetArgs, outcome: Result<RunOutcome, EngineError>) -> End {
    match outcome {
        Ok(o @ (RunOutcome::Done | RunOutcome::AlreadyDone)) => End {
            code: EXIT_DONE,
            message: summary(o).to_string(),
        },
        Ok(RunOutcome::Aborted) | Err(EngineError::Aborted) => End {
            code: EXIT_ABORTED,
            message: summary(RunOutcome::Aborted).to_string(),
        },
        Err(EngineError::Refused(m)) => End {
            code: EXIT_REFUSED,
            message: format!("preflight refuses {}: {m}", args.plan.display()),
        },
        Err(EngineError::Failed(m)) => End {
            code: EXIT_FAILURE,
            message: m,
        },
    }
}

/// Runs the engine to its end and tells the hub; returns how it ended.
async fn drive(args: &TargetArgs, prepared: Prepared) -> (End, Arc<Hub>, Server) {
    let Prepared {
        engine,
        hub,
        pump,
        server,
        sampler,
        probes,
        ..
    } = prepared;
    let outcome = engine.run().await;
    sampler.abort();
    if let Some(p) = probes {
        p.abort();
    }
    let end = end_of(args, outcome);
    // The engine is dropped: the pump forwards what is left and ends.
    let _ = pump.await;
    hub.audit().note(
        "run_ended",
        serde_json::json!({ "code": end.code, "message": end.message }),
    );
    hub.finish(end.clone());
    (end, hub, server)
}

/// Headless: engine, socket and progress printer in this process (and the companion of an
/// embedded run, which answers the gates).
async fn headless(
    args: &TargetArgs,
    plan: Plan,
    options: RunOptions,
    companion: Option<Box<dyn tui::Companion>>,
) -> Result<u8, Failure> {
    refuse_if_running(args, &plan).await?;
    let prepared = prepare(args, plan, &options).await?;
    let hub = prepared.hub.clone();
    eprintln!(
        "pacer: control socket {} (pacer ctl / pacer attach); audit log {}",
        prepared.server.path().display(),
        hub.info().audit_log.as_deref().unwrap_or("off")
    );
    let style = if options.json {
        Style::Json
    } else {
        Style::Human
    };
    let (_, updates) = hub.subscribe(false);
    let (events_tx, events_rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(forward_events(updates, events_tx));
    let printer = Printer::new(style).with_replica_lag(replica_lag_from(
        prepared.metrics.clone(),
        options.sample_interval,
    ));
    let printer = tokio::spawn(printer.run(events_rx));
    spawn_signal_handler(hub.clone(), false, options.on_hangup);
    let unattended = companion.map(|c| tokio::spawn(unattended(hub.clone(), c)));
    let (end, _hub, server) = drive(args, prepared).await;
    if let Some(task) = unattended {
        let _ = task.await;
    }
    let _ = printer.await;
    drop(server);
    exit_with(end)
}

/// How long an unattended gate waits for what was done there to take effect.
const GATE_READY_WITHIN: Duration = Duration::from_secs(10);

/// The companion of an embedded headless run: its log lines go to stderr, and at a gate, which
/// nobody is there to answer, it does what the operator would and the run proceeds. Ends with
/// the run.
async fn unattended(hub: Arc<Hub>, mut companion: Box<dyn tui::Companion>) {
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    let mut passed = None;
    while hub.end().is_none() {
        tick.tick().await;
        let state = hub.state();
        for (_, line) in companion.poll(&state) {
            eprintln!("pacer: {line}");
        }
        let Some(phase) = state.gate.filter(|_| state.status == Status::Gate) else {
            continue;
        };
        if passed == Some(phase) {
            continue;
        }
        passed = Some(phase);
        for line in companion.unattended_gate(phase) {
            eprintln!("pacer: {line}");
        }
        // What was done at the gate takes effect before the run goes on (a deploy rolls out).
        let deadline = tokio::time::Instant::now() + GATE_READY_WITHIN;
        while !companion.gate_ready(phase) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if !companion.gate_ready(phase) {
            eprintln!(
                "pacer: what was done at the gate before {phase} has not taken effect within {}s; \
                 proceeding anyway",
                GATE_READY_WITHIN.as_secs()
            );
        }
        match hub.command(CtlCommand::Proceed { phase: Some(phase) }, "unattended") {
            Ok(said) => eprintln!("pacer: nobody is at the screen to answer the gate; {said}"),
            Err(e) => eprintln!("pacer: could not pass the gate before {phase}: {e}"),
        }
    }
}

/// The events of a hub subscription, for the printer.
async fn forward_events(
    mut updates: tokio::sync::mpsc::Receiver<Reply>,
    events: tokio::sync::mpsc::UnboundedSender<crate::engine::Event>,
) {
    while let Some(update) = updates.recv().await {
        let sent = match update {
            Reply::Event { event } => events.send(event).is_ok(),
            Reply::End { .. } => false,
            _ => true,
        };
        if !sent {
            break;
        }
    }
}

fn exit_with(end: End) -> Result<u8, Failure> {
    match end.code {
        EXIT_DONE | EXIT_ABORTED => Ok(end.code),
        code => Err(Failure::new(code, end.message)),
    }
}

/// The runner of an interactive run: connects, listens, says READY on stdout, lets go of the
/// terminal's pipes and runs the migration to its end.
async fn runner(args: &TargetArgs, plan: Plan, options: RunOptions) -> Result<u8, Failure> {
    let prepared = prepare(args, plan, &options).await?;
    let hub = prepared.hub.clone();
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{READY}{}", prepared.server.path().display());
        let _ = out.flush();
    }
    // The terminal's pipes close when the screen goes: a write to one must not end the runner.
    crate::os::stdio_to_dev_null();
    spawn_signal_handler(hub.clone(), false, OnHangup::Continue);
    // The terminal that started the run attaches at once; if it never does (it was closed
    // while pacer was connecting), that is a hangup too.
    let watch = hub.clone();
    tokio::spawn(async move {
        tokio::time::sleep(OWNER_GRACE).await;
        if !watch.owner_seen() {
            watch.owner_lost();
        }
    });
    let (end, hub, server) = drive(args, prepared).await;
    // Give the viewers a moment to read the end before the socket goes.
    let deadline = tokio::time::Instant::now() + LINGER;
    while hub.viewers() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(server);
    exit_with(end)
}

/// On a terminal: start the runner, then be its screen.
async fn with_screen(args: &TargetArgs, plan: Plan, options: RunOptions) -> Result<u8, Failure> {
    let theme = load_theme(options.theme.as_deref())?;
    refuse_if_running(args, &plan).await?;
    let (socket, runner_pid) = start_runner(args, &options).await?;
    let attached = client::attach(&socket, true)
        .await
        .map_err(|e| Failure::failed(format!("cannot attach to the runner: {}", e.message)))?;
    let info = attached.info.clone();
    eprintln!(
        "pacer: {} runs in pid {} (control socket {}; audit log {})",
        info.job,
        info.pid,
        info.socket,
        info.audit_log.as_deref().unwrap_or("off")
    );
    let result = screen(attached, theme, &options, plan, true, None).await;
    match result {
        Ok(Left::Detached) => {
            eprintln!(
                "pacer: detached. {} goes on in the background (runner pid {runner_pid}).\n\
                 pacer attach {}      brings the screen back\n\
                 pacer ctl status {}  shows where it is",
                info.job,
                args.plan.display(),
                args.plan.display()
            );
            Ok(EXIT_DONE)
        }
        Ok(Left::Ended(end)) => {
            eprintln!("pacer: {}", end.message);
            exit_with(end)
        }
        Ok(Left::Lost(why)) => Err(Failure::failed(format!(
            "lost the runner (pid {runner_pid}): {why}. `pacer status {}` shows what the \
             database recorded; run again to resume from the last checkpoint.",
            args.plan.display()
        ))),
        Err(e) => {
            // The terminal is gone or broken: the runner goes on (or pauses, with
            // --on-hangup pause) and `pacer attach` finds it.
            eprintln!(
                "pacer: the terminal interface ended ({e}); the migration goes on in the \
                 runner (pid {runner_pid}), --on-hangup {}: `pacer attach {}` brings it back.",
                options.on_hangup.as_str(),
                args.plan.display()
            );
            Ok(EXIT_FAILURE)
        }
    }
}

/// The engine, its socket and the screen in this one process, for a migration that cannot
/// outlive it (`pacer demo`: the database is a throwaway one). `pacer ctl` and `pacer attach`
/// work on it as on any run; quitting the screen stops the migration (at a batch boundary),
/// and so does losing the terminal. Without a terminal it runs headless, and the companion
/// answers the gates.
pub async fn embedded(
    args: &TargetArgs,
    options: RunOptions,
    companion: Option<Box<dyn tui::Companion>>,
) -> Result<u8, Failure> {
    let plan = load_plan(args)?;
    if !uses_tui(options.headless) {
        return headless(args, plan, options, companion).await;
    }
    let theme = load_theme(options.theme.as_deref())?;
    let prepared = prepare(args, plan.clone(), &options).await?;
    let hub = prepared.hub.clone();
    let socket = prepared.server.path().to_path_buf();
    spawn_signal_handler(hub.clone(), true, OnHangup::Continue);
    let owned = args.clone();
    let driver = tokio::spawn(async move { drive(&owned, prepared).await });
    let left = match client::attach(&socket, false).await {
        Ok(attached) => screen(attached, theme, &options, plan, false, companion).await,
        Err(e) => Err(std::io::Error::other(e.message)),
    };
    match &left {
        Ok(Left::Ended(_)) => {}
        Ok(_) => {
            let _ = hub.command(CtlCommand::Abort, "tui");
        }
        Err(e) => {
            tracing::warn!("the screen ended ({e}); stopping the migration");
            let _ = hub.command(CtlCommand::Abort, "hangup");
        }
    }
    let (end, _hub, server) = driver
        .await
        .map_err(|e| Failure::failed(format!("the migration task failed: {e}")))?;
    drop(server);
    // Quitting stops an embedded run on purpose: no "run it again" advice then.
    if left.is_ok() && end.code != EXIT_ABORTED {
        eprintln!("pacer: {}", end.message);
    }
    exit_with(end)
}

/// How a screen was left.
pub enum Left {
    /// The operator detached; the migration goes on.
    Detached,
    /// The run ended.
    Ended(End),
    /// The connection to the runner was lost.
    Lost(String),
}

/// Runs the screen on an attached migration until the operator leaves.
pub async fn screen(
    attached: client::Attached,
    theme: tui::theme::Theme,
    options: &RunOptions,
    plan: Plan,
    detachable: bool,
    companion: Option<Box<dyn tui::Companion>>,
) -> std::io::Result<Left> {
    let client::Parts {
        info,
        handles,
        metrics,
        done,
        ending,
        detacher,
    } = attached.into_parts();
    // The screen's `done`: when the connection ends, with a log line if it was lost.
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let watch_ending = ending.clone();
    tokio::spawn(async move {
        let _ = done.await;
        let note = match &*watch_ending.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(Ending::Lost(why)) => Some(format!("the runner is gone: {why}")),
            _ => None,
        };
        let _ = done_tx.send(note);
    });
    let mut notes = vec![
        format!(
            "{} runs in pid {}; control socket {} (pacer ctl, pacer attach)",
            info.job, info.pid, info.socket
        ),
        format!("audit log: {}", info.audit_log.as_deref().unwrap_or("off")),
    ];
    notes.extend(companion.iter().flat_map(|c| c.notes()));
    let setup = tui::Setup {
        theme,
        braille: options.braille,
        metrics,
        target: info.target.clone(),
        words: Family::from_name(&info.family)
            .unwrap_or(Family::Postgres)
            .figure_words(),
        plan,
        detachable,
        companion,
        notes,
    };
    let exit = tui::run(handles, setup, done_rx).await?;
    if exit == tui::Exit::Detached {
        detacher.detach().await;
        return Ok(Left::Detached);
    }
    // Quit: the screen waited for the connection's end.
    let ending = ending.lock().unwrap_or_else(|p| p.into_inner()).clone();
    Ok(match ending {
        Some(Ending::End(end)) => Left::Ended(end),
        Some(Ending::Lost(why)) => Left::Lost(why),
        None => Left::Lost("the connection ended".into()),
    })
}

/// Starts the runner: this binary, `run … --runner`, in a session of its own, with the
/// target in its environment (not on its command line, where `ps` would show a password).
/// Returns its socket once it listens, or its error and exit code when it could not start.
async fn start_runner(args: &TargetArgs, options: &RunOptions) -> Result<(PathBuf, u32), Failure> {
    let exe = std::env::current_exe().map_err(|e| {
        Failure::failed(format!("cannot find pacer's own binary: {e}"))
            .because(&e)
            .suggest(HEADLESS_INSTEAD)
    })?;
    let mut cmd = tokio::process::Command::new(exe);
    cmd.arg("run")
        .arg(&args.plan)
        .arg("--runner")
        .arg("--on-hangup")
        .arg(options.on_hangup.as_str())
        .arg("--sample-interval")
        .arg(format!("{}ms", options.sample_interval.as_millis()));
    if let Some(log) = &options.log_file {
        cmd.arg("--log-file").arg(log);
    }
    match &options.audit_log {
        AuditLog::Default => {}
        AuditLog::Off => {
            cmd.arg("--audit-log").arg("off");
        }
        AuditLog::Path(path) => {
            cmd.arg("--audit-log").arg(path);
        }
    }
    if let Some(target) = &args.target {
        cmd.env(RUNNER_TARGET, target);
    }
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(false);
    crate::os::start_in_new_session(&mut cmd);
    let mut child = cmd.spawn().map_err(|e| {
        Failure::failed(format!("cannot start the runner: {e}"))
            .because(&e)
            .suggest(HEADLESS_INSTEAD)
    })?;
    let pid = child.id().unwrap_or(0);
    let mut stdout = BufReader::new(child.stdout.take().expect("piped")).lines();
    let mut stderr = child.stderr.take().expect("piped");
    let errors = tokio::spawn(async move {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text).await;
        text
    });
    // Ctrl-C while connecting cancels: the runner must not go on by itself.
    let ready = tokio::select! {
        line = async {
            loop {
                match stdout.next_line().await {
                    Ok(Some(line)) => {
                        if let Some(path) = line.strip_prefix(READY) {
                            break Some(PathBuf::from(path));
                        }
                    }
                    _ => break None,
                }
            }
        } => line,
        _ = tokio::signal::ctrl_c() => {
            crate::os::kill(pid);
            let _ = child.wait().await;
            return Err(Failure::new(EXIT_ABORTED, "cancelled before the migration started; nothing was changed."));
        }
    };
    match ready {
        Some(path) => {
            let warnings = errors.await.unwrap_or_default();
            for line in warnings.lines().filter(|l| !l.trim().is_empty()) {
                eprintln!("{line}");
            }
            // Reap it when it ends while this process still runs (no zombie).
            tokio::spawn(async move {
                let _ = child.wait().await;
            });
            Ok((path, pid))
        }
        None => {
            let status = child.wait().await.ok();
            let text = errors.await.unwrap_or_default();
            let code = status
                .and_then(|s| s.code())
                .and_then(|c| u8::try_from(c).ok())
                .unwrap_or(EXIT_FAILURE);
            let message = text
                .lines()
                .map(|l| l.strip_prefix("pacer: ").unwrap_or(l))
                .collect::<Vec<_>>()
                .join("\n");
            Err(Failure::new(
                if code == 0 { EXIT_FAILURE } else { code },
                if message.trim().is_empty() {
                    "the runner ended before it was ready (see the log file)".into()
                } else {
                    message
                },
            ))
        }
    }
}

/// Reads the sampler's latest round with `f`, unless it is older than three sample
/// intervals (then `f` is not called and the reading is `T::default()`, "unread").
fn fresh_latest<T: Default>(
    metrics: &SharedMetrics,
    interval: Duration,
    f: impl FnOnce(&crate::sampler::metrics::Latest) -> T,
) -> T {
    let stale_after = 3.0 * interval.as_secs_f64();
    let now = metrics.now();
    metrics.read(|m| {
        let l = m.latest();
        if l.t.is_none_or(|t| now - t > stale_after) {
            return T::default();
        }
        f(l)
    })
}

/// Health signals from the sampler's latest round. A sample older than three intervals
/// counts as unread (so replication lag fails closed after its grace period).
/// Hands the foreground probe's samples to the charts, four times a second.
fn forward_probes(
    log: crate::probe::ProbeLog,
    metrics: SharedMetrics,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut cursor = 0;
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tick.tick().await;
            let samples = log.since(&mut cursor);
            if !samples.is_empty() {
                metrics.apply(crate::sampler::MetricInput::Probes {
                    t: metrics.now(),
                    ms: samples
                        .iter()
                        .map(|s| s.latency.as_secs_f64() * 1000.0)
                        .collect(),
                });
            }
        }
    })
}

fn signals_from(metrics: SharedMetrics, interval: Duration, family: Family) -> SignalSource {
    Box::new(move || {
        fresh_latest(&metrics, interval, |l| Signals {
            // Replication lag is read by the engine itself, more often (engine::LAG_POLL).
            replicas: None,
            // Sessions waiting on a lock that one of pacer's sessions holds.
            lock_waiters: l.lock_waits.as_ref().map(|w| {
                w.waits
                    .iter()
                    .filter(|w| !w.pacer && w.blockers.iter().any(|b| b.pacer))
                    .count() as u32
            }),
            maintenance: l.table.as_ref().map(|t| t.maintenance.is_some()),
            write_volume: l.redo_bytes_per_s,
            active_sessions: l.active_sessions,
            // MySQL/MariaDB sample InnoDB's history list length as the table's dead rows.
            history_length: l
                .table
                .as_ref()
                .filter(|_| family == Family::MySql)
                .map(|t| t.dead_rows),
            query: None,
            file_exists: false,
        })
    })
}

/// The worst replica's lag in the sampler's latest round, unless that round is stale.
fn replica_lag_from(metrics: SharedMetrics, interval: Duration) -> ReplicaLagSource {
    Box::new(move || {
        fresh_latest(&metrics, interval, |l| {
            worst_replica_lag(l.replicas.as_deref()?)
        })
    })
}

fn summary(outcome: RunOutcome) -> &'static str {
    match outcome {
        RunOutcome::Done => "done: every phase finished.",
        RunOutcome::AlreadyDone => "this migration had already finished; nothing to do.",
        RunOutcome::Aborted => {
            "aborted at a batch boundary; everything is resumable: run the same command again."
        }
    }
}

/// Ctrl-C / SIGTERM stop at the next batch boundary (resumable); a second one exits now, which
/// is safe too: an unfinished transaction rolls back and DDL is atomic. SIGHUP (the terminal
/// went away) never stops a migration: with `--on-hangup pause` it pauses at the next batch
/// boundary, else it is ignored. SIGUSR1 pauses, SIGUSR2 resumes. Every one goes through the
/// hub, so it is in the audit log as coming from a signal.
fn spawn_signal_handler(hub: Arc<Hub>, interactive: bool, on_hangup: OnHangup) {
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
                _ = hup.recv() => {
                    if on_hangup == OnHangup::Pause {
                        let _ = hub.command(CtlCommand::Pause, "hangup");
                    } else {
                        tracing::warn!("SIGHUP: the terminal is gone; the migration continues");
                    }
                    continue;
                }
                _ = usr1.recv() => {
                    let _ = hub.command(CtlCommand::Pause, "signal");
                    continue;
                }
                _ = usr2.recv() => {
                    let _ = hub.command(CtlCommand::Resume, "signal");
                    continue;
                }
            }
            if asked {
                if interactive {
                    tui::terminal::restore();
                }
                hub.audit().operator("exit_now", "signal", None);
                eprintln!("pacer: stopping now; the migration resumes from its last checkpoint.");
                super::exit_now(EXIT_ABORTED);
            }
            asked = true;
            if !interactive {
                eprintln!("pacer: stopping at the next batch boundary (again to stop at once).");
            }
            let _ = hub.command(CtlCommand::Abort, "signal");
        }
    });
}
