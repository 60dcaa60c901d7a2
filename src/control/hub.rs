//! The hub sits between the engine and every interface: it is the only reader of the
//! engine's events, keeps what a new viewer needs (events so far, the metrics history, the
//! state), fans updates out to subscribers, and is the one door commands come in by, so each
//! one is checked and written to the audit log with the interface it came from.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinHandle;

use super::protocol::{CtlCommand, End, Info, MetricsHistory, Reply, Snapshot};
use crate::audit::Audit;
use crate::engine::{Command, Event, EventKind, Handles, State, Status};
use crate::plan::{MAX_BATCH_SIZE, MIN_BATCH_SIZE};
use crate::sampler::{MetricInput, SharedMetrics};

/// Updates a subscriber may fall behind by before it is dropped (its connection closes; a
/// viewer that stalls this long reconnects with a fresh snapshot).
pub const SUBSCRIBER_QUEUE: usize = 20_000;
/// Recent events kept for new viewers (batches mostly).
const RECENT_EVENTS: usize = 2_000;
/// Early events kept for new viewers (start, plan, findings): what the plan panel needs.
const HEAD_EVENTS: usize = 200;
/// Metrics inputs kept at most (the chart window bounds them first).
const MAX_JOURNAL: usize = 200_000;

/// What losing the terminal that started the run does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnHangup {
    /// Keep running; `pacer attach` brings the screen back.
    Continue,
    /// Pause at the next batch boundary; `pacer ctl resume` (or attach and `p`) goes on.
    Pause,
}

impl OnHangup {
    /// The word used in messages and `--on-hangup`.
    pub fn as_str(self) -> &'static str {
        match self {
            OnHangup::Continue => "continue",
            OnHangup::Pause => "pause",
        }
    }
}

/// The hub. Shared by the socket server's connections and the in-process printer.
pub struct Hub {
    info: Info,
    commands: mpsc::UnboundedSender<Command>,
    state: watch::Receiver<State>,
    metrics: Option<SharedMetrics>,
    /// How far back the metrics journal reaches, seconds (the chart window and a margin).
    horizon: f64,
    audit: Audit,
    on_hangup: OnHangup,
    inner: Mutex<Inner>,
    viewers: std::sync::atomic::AtomicUsize,
}

/// Counts a viewer's connection while it lasts (see [`Hub::viewers`]).
pub struct ViewerGuard(Arc<Hub>);

impl Drop for ViewerGuard {
    fn drop(&mut self) {
        self.0
            .viewers
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

#[derive(Default)]
struct Inner {
    head: Vec<Event>,
    recent: VecDeque<Event>,
    journal: VecDeque<MetricInput>,
    subscribers: Vec<mpsc::Sender<Reply>>,
    end: Option<End>,
    owner_seen: bool,
}

impl Inner {
    /// Sends to every subscriber; drops those that are gone or too far behind.
    fn fan_out(&mut self, reply: &Reply) {
        self.subscribers
            .retain(|s| match s.try_send(reply.clone()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    tracing::warn!("a viewer fell {SUBSCRIBER_QUEUE} updates behind; disconnected");
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            });
    }
}

impl Hub {
    /// Takes the engine's handles and starts the task that reads its events. The task ends
    /// when the engine is dropped (its event channel closes); then call [`Hub::finish`].
    pub fn spawn(
        handles: Handles,
        info: Info,
        metrics: Option<SharedMetrics>,
        audit: Audit,
        on_hangup: OnHangup,
    ) -> (Arc<Hub>, JoinHandle<()>) {
        let Handles {
            commands,
            events,
            state,
        } = handles;
        let horizon = metrics
            .as_ref()
            .map(|m| m.read(|m| (m.window() + 3 * m.interval()).as_secs_f64()))
            .unwrap_or(f64::INFINITY);
        let hub = Arc::new(Hub {
            info,
            commands,
            state: state.clone(),
            metrics: metrics.clone(),
            horizon,
            audit,
            on_hangup,
            inner: Mutex::new(Inner::default()),
            viewers: std::sync::atomic::AtomicUsize::new(0),
        });
        let tap = metrics.as_ref().map(SharedMetrics::tap);
        let task = tokio::spawn(pump(hub.clone(), events, state, tap));
        (hub, task)
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Who is running.
    pub fn info(&self) -> &Info {
        &self.info
    }

    /// The latest state.
    pub fn state(&self) -> State {
        self.state.borrow().clone()
    }

    /// How the run ended, once it has.
    pub fn end(&self) -> Option<End> {
        self.inner().end.clone()
    }

    /// The audit log.
    pub fn audit(&self) -> &Audit {
        &self.audit
    }

    /// A new subscriber: everything so far, and every update from now on (no gap, no
    /// repeat: both are taken under the lock the pump sends under).
    /// `owner`: the terminal that started the run.
    pub fn subscribe(&self, owner: bool) -> (Snapshot, mpsc::Receiver<Reply>) {
        let (tx, rx) = mpsc::channel(SUBSCRIBER_QUEUE);
        let mut inner = self.inner();
        inner.owner_seen |= owner;
        let snapshot = Snapshot {
            info: self.info.clone(),
            state: self.state(),
            events: inner
                .head
                .iter()
                .chain(inner.recent.iter())
                .cloned()
                .collect(),
            metrics: self.metrics.as_ref().map(|m| {
                let (window, interval) = m.read(|m| (m.window(), m.interval()));
                MetricsHistory {
                    now: m.now(),
                    window_ms: window.as_millis() as u64,
                    interval_ms: interval.as_millis() as u64,
                    inputs: inner.journal.iter().cloned().collect(),
                }
            }),
            end: inner.end.clone(),
        };
        if inner.end.is_none() {
            inner.subscribers.push(tx);
        }
        (snapshot, rx)
    }

    /// An operator's command from interface `from` (`tui`, `ctl`, `signal`, `hangup`):
    /// checked, written to the audit log, sent to the engine. The answer is words for the
    /// operator; an `Err` was not sent.
    pub fn command(&self, command: CtlCommand, from: &str) -> Result<String, String> {
        if let Some(end) = self.end() {
            return Err(format!("the migration has ended: {}", end.message));
        }
        let state = self.state();
        let finished = matches!(
            state.status,
            Status::Done | Status::Failed | Status::Aborted
        );
        if finished {
            return Err(format!(
                "the migration is {}; it takes no more commands",
                status_word(state.status)
            ));
        }
        let message = match &command {
            CtlCommand::Pause => match state.status {
                Status::Paused => "already paused".to_string(),
                Status::Pausing => "already pausing at the next batch boundary".to_string(),
                _ => "pause requested: it takes effect at the next batch boundary".to_string(),
            },
            CtlCommand::Resume => match state.status {
                Status::Paused | Status::Pausing => "resumed".to_string(),
                _ => "not paused; nothing to resume".to_string(),
            },
            CtlCommand::BatchSize { size } => {
                if !(MIN_BATCH_SIZE..=MAX_BATCH_SIZE).contains(size) {
                    return Err(format!(
                        "batch size {size} is out of range: use {MIN_BATCH_SIZE} to {MAX_BATCH_SIZE}"
                    ));
                }
                format!(
                    "batch size {size} from the next batch on (was {}); it holds until \
                     `pacer ctl batch-size auto` hands it back to the adaptive sizer",
                    state.batch_size
                )
            }
            CtlCommand::AutoBatchSize => "batch size handed back to the adaptive sizer".to_string(),
            CtlCommand::Proceed { phase: wanted } => {
                if state.status != Status::Gate {
                    return Err(format!(
                        "not waiting at a gate (the migration is {}); nothing to proceed past",
                        status_word(state.status)
                    ));
                }
                if let Some(wanted) = wanted
                    && state.gate != Some(*wanted)
                {
                    return Err(format!(
                        "the gate waiting is before {}, not before {wanted}; nothing was passed",
                        state.gate.map(|p| p.to_string()).unwrap_or_default()
                    ));
                }
                let phase = state.gate.map(|p| p.to_string()).unwrap_or_default();
                format!("proceeding past the gate: {phase} starts now")
            }
            CtlCommand::Abort => {
                "abort requested: it stops at the next boundary; everything stays resumable"
                    .to_string()
            }
            CtlCommand::Foreground { bound: Some(b) } => format!(
                "foreground guard on: the probe's p99 is held within {b} from the next batch on; \
                 pacing starts again from full speed"
            ),
            CtlCommand::Foreground { bound: None } => {
                "foreground guard off: batches run at full speed (`pacer ctl foreground 1.5x` \
                 turns it on again)"
                    .to_string()
            }
        };
        self.audit.operator(command.action(), from, command.value());
        tracing::info!(from, action = command.action(), value = ?command.value(), "operator command");
        self.commands
            .send(command.to_engine())
            .map_err(|_| "the migration is ending; it takes no more commands".to_string())?;
        Ok(message)
    }

    /// Whether the terminal that started the run has attached.
    pub fn owner_seen(&self) -> bool {
        self.inner().owner_seen
    }

    /// The terminal that started the run went away without detaching.
    pub fn owner_lost(&self) {
        if self.end().is_some() {
            return;
        }
        match self.on_hangup {
            OnHangup::Continue => {
                self.audit.operator("hangup", "hangup", None);
                tracing::warn!(
                    "the terminal that started the run is gone; the migration continues \
                     (pacer attach brings the screen back)"
                );
            }
            OnHangup::Pause => {
                tracing::warn!(
                    "the terminal that started the run is gone; pausing (--on-hangup pause)"
                );
                if let Err(e) = self.command(CtlCommand::Pause, "hangup") {
                    tracing::warn!("could not pause after the hangup: {e}");
                }
            }
        }
    }

    /// Records how the run ended and tells every subscriber; new ones get it in the snapshot.
    pub fn finish(&self, end: End) {
        let mut inner = self.inner();
        inner.fan_out(&Reply::End { end: end.clone() });
        inner.subscribers.clear();
        inner.end = Some(end);
    }

    /// Counts a viewer's connection until the guard drops.
    pub fn viewer(self: &Arc<Hub>) -> ViewerGuard {
        self.viewers
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        ViewerGuard(self.clone())
    }

    /// Viewers' connections still open (a finished run waits for them to read the end).
    pub fn viewers(&self) -> usize {
        self.viewers.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// The engine's status in a few words.
pub fn status_word(status: Status) -> &'static str {
    match status {
        Status::Preflight => "in preflight",
        Status::Running => "running",
        Status::Pausing => "pausing",
        Status::Paused => "paused",
        Status::WaitingForLock => "waiting for a lock",
        Status::Throttled => "throttled",
        Status::Gate => "waiting at a gate",
        Status::Reconnecting => "reconnecting",
        Status::Done => "done",
        Status::Failed => "failed",
        Status::Aborted => "aborted",
    }
}

async fn pump(
    hub: Arc<Hub>,
    mut events: mpsc::UnboundedReceiver<Event>,
    mut state: watch::Receiver<State>,
    mut tap: Option<broadcast::Receiver<MetricInput>>,
) {
    let mut state_open = true;
    loop {
        tokio::select! {
            // Events first: a batch's event before the state that follows it.
            biased;
            event = events.recv() => match event {
                Some(event) => on_event(&hub, event),
                None => break,
            },
            changed = state.changed(), if state_open => match changed {
                Ok(()) => {
                    let state = state.borrow_and_update().clone();
                    hub.inner().fan_out(&Reply::State { state });
                }
                Err(_) => state_open = false,
            },
            input = recv_tap(&mut tap), if tap.is_some() => match input {
                Ok(input) => on_metric(&hub, input),
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!("the viewers' metrics history missed {n} inputs");
                }
                Err(broadcast::error::RecvError::Closed) => tap = None,
            },
        }
    }
    // The engine is gone: forward what the sampler recorded meanwhile, and the last state.
    if let Some(tap) = &mut tap {
        while let Ok(input) = tap.try_recv() {
            on_metric(&hub, input);
        }
    }
    let last = state.borrow().clone();
    hub.inner().fan_out(&Reply::State { state: last });
}

async fn recv_tap(
    tap: &mut Option<broadcast::Receiver<MetricInput>>,
) -> Result<MetricInput, broadcast::error::RecvError> {
    match tap {
        Some(tap) => tap.recv().await,
        None => std::future::pending().await,
    }
}

fn on_event(hub: &Hub, event: Event) {
    if let Some(metrics) = &hub.metrics {
        match &event.kind {
            EventKind::BatchDone {
                keys,
                duration_ms,
                rows_updated,
                ..
            } => metrics.record_batch(
                *keys,
                std::time::Duration::from_millis(*duration_ms),
                *rows_updated,
            ),
            EventKind::Throttled { .. } => metrics.mark_throttle(true),
            EventKind::Unthrottled { .. } => metrics.mark_throttle(false),
            _ => {}
        }
    }
    let mut inner = hub.inner();
    inner.fan_out(&Reply::Event {
        event: event.clone(),
    });
    let early = matches!(
        event.kind,
        EventKind::Started { .. } | EventKind::Planned { .. } | EventKind::Finding { .. }
    );
    if early && inner.head.len() < HEAD_EVENTS {
        inner.head.push(event);
    } else {
        if inner.recent.len() == RECENT_EVENTS {
            inner.recent.pop_front();
        }
        inner.recent.push_back(event);
    }
}

fn on_metric(hub: &Hub, input: MetricInput) {
    let horizon = hub.horizon;
    let mut inner = hub.inner();
    inner.fan_out(&Reply::Metric {
        input: input.clone(),
    });
    let t = input.t();
    inner.journal.push_back(input);
    while inner
        .journal
        .front()
        .is_some_and(|f| f.t() < t - horizon || inner.journal.len() > MAX_JOURNAL)
    {
        inner.journal.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Phase;
    use std::time::Duration;

    fn state(status: Status) -> State {
        State {
            phase: Some(Phase::Backfill),
            status,
            ..State::starting("public.orders.amount".into(), 1000)
        }
    }

    fn info() -> Info {
        Info {
            job: "public.orders.amount".into(),
            pid: 1,
            plan_path: "plan.toml".into(),
            plan_toml: String::new(),
            target: "u@h:5432/db".into(),
            started_at: "2026-11-21T00:00:00Z".into(),
            socket: "/tmp/x.1.sock".into(),
            audit_log: None,
            on_hangup: "continue".into(),
            version: "0".into(),
            family: "PostgreSQL".into(),
        }
    }

    fn event(kind: EventKind) -> Event {
        Event {
            ts: "2026-11-21T00:00:00.000Z".into(),
            job: "public.orders.amount".into(),
            kind,
        }
    }

    struct Rig {
        hub: Arc<Hub>,
        pump: JoinHandle<()>,
        events: mpsc::UnboundedSender<Event>,
        state: watch::Sender<State>,
        commands: mpsc::UnboundedReceiver<Command>,
    }

    fn rig(status: Status, on_hangup: OnHangup) -> Rig {
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (ev_tx, ev_rx) = mpsc::unbounded_channel();
        let (state_tx, state_rx) = watch::channel(state(status));
        let (hub, pump) = Hub::spawn(
            Handles {
                commands: cmd_tx,
                events: ev_rx,
                state: state_rx,
            },
            info(),
            None,
            Audit::disabled(),
            on_hangup,
        );
        Rig {
            hub,
            pump,
            events: ev_tx,
            state: state_tx,
            commands: cmd_rx,
        }
    }

    async fn next(rx: &mut mpsc::Receiver<Reply>) -> Reply {
        tokio::time::timeout(Duration::from_secs(2), rx.recv())
            .await
            .expect("an update")
            .expect("open")
    }

    #[tokio::test]
    async fn a_new_viewer_gets_everything_so_far_and_then_every_update_once() {
        let r = rig(Status::Running, OnHangup::Continue);
        r.events
            .send(event(EventKind::Started {
                target: "t".into(),
                table: "orders".into(),
                phases: vec![Phase::Backfill],
                batch_size: 1000,
            }))
            .unwrap();
        r.events.send(event(EventKind::Resumed)).unwrap();
        // Let the pump take both.
        let (_, mut early) = r.hub.subscribe(false);
        assert!(matches!(next(&mut early).await, Reply::Event { .. }));
        assert!(matches!(next(&mut early).await, Reply::Event { .. }));

        let (snapshot, mut late) = r.hub.subscribe(false);
        assert_eq!(snapshot.events.len(), 2, "the history");
        assert!(snapshot.end.is_none());
        r.events.send(event(EventKind::PauseRequested)).unwrap();
        match next(&mut late).await {
            Reply::Event { event } => {
                assert!(matches!(event.kind, EventKind::PauseRequested))
            }
            other => panic!("{other:?}"),
        }
        r.state.send(state(Status::Paused)).unwrap();
        match next(&mut late).await {
            Reply::State { state } => assert_eq!(state.status, Status::Paused),
            other => panic!("{other:?}"),
        }

        drop(r.events);
        r.pump.await.unwrap();
        r.hub.finish(End {
            code: 3,
            message: "aborted".into(),
        });
        loop {
            if let Reply::End { end } = next(&mut late).await {
                assert_eq!(end.code, 3);
                break;
            }
        }
        let (after, _) = r.hub.subscribe(false);
        assert_eq!(
            after.end.map(|e| e.code),
            Some(3),
            "a late viewer learns the end"
        );
        assert!(
            r.hub.command(CtlCommand::Pause, "ctl").is_err(),
            "no commands after the end"
        );
    }

    #[tokio::test]
    async fn commands_are_checked_before_they_reach_the_engine() {
        let mut r = rig(Status::Running, OnHangup::Continue);
        let refused = r
            .hub
            .command(CtlCommand::Proceed { phase: None }, "ctl")
            .unwrap_err();
        assert!(refused.contains("not waiting at a gate"), "{refused}");
        let refused = r
            .hub
            .command(CtlCommand::BatchSize { size: 0 }, "ctl")
            .unwrap_err();
        assert!(refused.contains("out of range"), "{refused}");
        assert!(r.commands.try_recv().is_err(), "nothing was sent");

        let ok = r
            .hub
            .command(CtlCommand::BatchSize { size: 2500 }, "ctl")
            .unwrap();
        assert!(ok.contains("2500"), "{ok}");
        assert_eq!(r.commands.try_recv().unwrap(), Command::SetBatchSize(2500));

        let mut at_gate = state(Status::Gate);
        at_gate.gate = Some(Phase::NotNull);
        r.state.send(at_gate).unwrap();
        let refused = r
            .hub
            .command(
                CtlCommand::Proceed {
                    phase: Some(Phase::Index),
                },
                "ctl",
            )
            .unwrap_err();
        assert!(refused.contains("not before index"), "{refused}");
        assert!(
            r.commands.try_recv().is_err(),
            "a proceed for another gate passes nothing"
        );
        let ok = r
            .hub
            .command(
                CtlCommand::Proceed {
                    phase: Some(Phase::NotNull),
                },
                "ctl",
            )
            .unwrap();
        assert!(ok.contains("not_null"), "{ok}");
        assert_eq!(r.commands.try_recv().unwrap(), Command::Proceed);

        r.state.send(state(Status::Done)).unwrap();
        assert!(r.hub.command(CtlCommand::Resume, "ctl").is_err());
    }

    #[tokio::test]
    async fn a_lost_owner_pauses_only_when_asked_to() {
        let mut r = rig(Status::Running, OnHangup::Pause);
        assert!(!r.hub.owner_seen());
        let _ = r.hub.subscribe(true);
        assert!(r.hub.owner_seen());
        r.hub.owner_lost();
        assert_eq!(r.commands.try_recv().unwrap(), Command::Pause);

        let mut r = rig(Status::Running, OnHangup::Continue);
        r.hub.owner_lost();
        assert!(r.commands.try_recv().is_err(), "continue sends nothing");
    }
}
