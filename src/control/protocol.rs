//! What goes over the control socket: one JSON object per line each way.
//!
//! A client sends one [`Request`] line. `hello`, `status` and `command` get one [`Reply`] line
//! and the server closes the connection. `subscribe` gets a [`Reply::Snapshot`] and then a
//! stream of [`Reply::State`], [`Reply::Event`], [`Reply::Metric`] and finally
//! [`Reply::End`]; on that connection the client may go on sending `command` and `detach`
//! lines (their answers arrive in the stream as [`Reply::Done`]).

use serde::{Deserialize, Serialize};

use crate::engine::{Command, Event, State};
use crate::sampler::MetricInput;

/// Longest line either side accepts (a snapshot can be large: the chart history).
pub const MAX_LINE: usize = 64 * 1024 * 1024;

/// A client's request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "snake_case")]
pub enum Request {
    /// Who are you? (used to find the socket of a plan).
    Hello,
    /// The state, once.
    Status,
    /// An operator command, from an interface (`tui`, `ctl`).
    Command { command: CtlCommand, from: String },
    /// Everything from now on. `owner`: the terminal that started the run (its connection
    /// dropping without `detach` is a hangup).
    Subscribe { owner: bool },
    /// The owner leaves on purpose: the migration goes on, no hangup.
    Detach,
}

/// The commands an operator can send, the same from every interface.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum CtlCommand {
    /// Stop at the next batch boundary.
    Pause,
    /// Go on after a pause.
    Resume,
    /// Keys per batch from the next batch on; holds until `auto_batch_size`.
    BatchSize { size: u64 },
    /// Hand the batch size back to the adaptive sizer.
    AutoBatchSize,
    /// Go past the gate the migration waits at; with `phase`, only if that is the gate's phase
    /// (so a proceed meant for one gate can never pass the next).
    Proceed {
        #[serde(default)]
        phase: Option<crate::plan::Phase>,
    },
    /// Stop at the next boundary, resumable.
    Abort,
    /// The foreground guard's bound from the next batch on (`"1.5x"`, `"20ms"`); none: off.
    Foreground {
        #[serde(default)]
        bound: Option<crate::plan::ImpactBound>,
    },
}

impl CtlCommand {
    /// The engine command.
    pub fn to_engine(&self) -> Command {
        match self {
            CtlCommand::Pause => Command::Pause,
            CtlCommand::Resume => Command::Resume,
            CtlCommand::BatchSize { size } => Command::SetBatchSize(*size),
            CtlCommand::AutoBatchSize => Command::AutoBatchSize,
            CtlCommand::Proceed { .. } => Command::Proceed,
            CtlCommand::Abort => Command::Abort,
            CtlCommand::Foreground { bound } => Command::SetForegroundImpact(*bound),
        }
    }

    /// From an engine command (what the interface's keys produce).
    pub fn from_engine(command: &Command) -> CtlCommand {
        match command {
            Command::Pause => CtlCommand::Pause,
            Command::Resume => CtlCommand::Resume,
            Command::SetBatchSize(size) => CtlCommand::BatchSize { size: *size },
            Command::AutoBatchSize => CtlCommand::AutoBatchSize,
            Command::Proceed => CtlCommand::Proceed { phase: None },
            Command::Abort => CtlCommand::Abort,
            Command::SetForegroundImpact(bound) => CtlCommand::Foreground { bound: *bound },
        }
    }

    /// The action's name in the audit log and in messages.
    pub fn action(&self) -> &'static str {
        match self {
            CtlCommand::Pause => "pause",
            CtlCommand::Resume => "resume",
            CtlCommand::BatchSize { .. } => "batch_size",
            CtlCommand::AutoBatchSize => "auto_batch_size",
            CtlCommand::Proceed { .. } => "proceed",
            CtlCommand::Abort => "abort",
            CtlCommand::Foreground { .. } => "foreground",
        }
    }

    /// The value that goes with the action, if any.
    pub fn value(&self) -> Option<serde_json::Value> {
        match self {
            CtlCommand::BatchSize { size } => Some((*size).into()),
            CtlCommand::Proceed { phase: Some(p) } => Some(p.to_string().into()),
            CtlCommand::Foreground { bound } => Some(
                bound
                    .map_or_else(|| "off".to_string(), |b| b.to_string())
                    .into(),
            ),
            _ => None,
        }
    }
}

/// Who the running migration is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Info {
    /// The migration (`schema.table.column`).
    pub job: String,
    /// The process that runs it.
    pub pid: u32,
    /// The plan file as given.
    pub plan_path: String,
    /// The plan's text (a viewer parses it for the phases and names).
    pub plan_toml: String,
    /// The target, without password.
    pub target: String,
    /// When the run began (RFC 3339 UTC).
    pub started_at: String,
    /// This socket.
    pub socket: String,
    /// The audit log, when there is one.
    pub audit_log: Option<String>,
    /// What losing the starting terminal does: `continue` or `pause`.
    pub on_hangup: String,
    /// pacer's version.
    pub version: String,
    /// The target's database family, in words (`PostgreSQL`): how a viewer names its figures.
    #[serde(default)]
    pub family: String,
}

/// How a run ended, as `pacer run` would exit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct End {
    /// The exit code (0 done, 1 failed, 2 refused, 3 aborted).
    pub code: u8,
    /// One line for the operator.
    pub message: String,
}

/// A server's answer or streamed update.
#[allow(
    clippy::large_enum_variant,
    reason = "a message on its way to or from a socket; one at a time"
)]
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Reply {
    /// Answer to `hello`.
    Hello { info: Info },
    /// Answer to `status`.
    Status { info: Info, state: State },
    /// Answer to a command: accepted (`ok`) or refused, with words for the operator.
    Done { ok: bool, message: String },
    /// First answer to `subscribe`: everything so far.
    Snapshot(Box<Snapshot>),
    /// The state changed.
    State { state: State },
    /// An engine event.
    Event { event: Event },
    /// A metrics input (sampling round, batch, throttle mark).
    Metric { input: MetricInput },
    /// The run ended; the server closes the connection after this.
    End { end: End },
    /// The request could not be read.
    Error { message: String },
}

/// Everything a new viewer needs to draw the same screen as the others.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Snapshot {
    /// Who.
    pub info: Info,
    /// The latest state.
    pub state: State,
    /// Every event kept so far, oldest first.
    pub events: Vec<Event>,
    /// Metrics inputs within the chart window, oldest first; None when the run does not sample.
    pub metrics: Option<MetricsHistory>,
    /// Set when the run has already ended.
    pub end: Option<End>,
}

/// The runner's metrics, as inputs to replay.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MetricsHistory {
    /// Seconds since the runner's metrics began (the time axis of the inputs).
    pub now: f64,
    /// The chart window, ms.
    pub window_ms: u64,
    /// The sampling interval, ms.
    pub interval_ms: u64,
    /// The inputs, oldest first.
    pub inputs: Vec<MetricInput>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_one_json_object_each() {
        let r = Request::Command {
            command: CtlCommand::BatchSize { size: 2000 },
            from: "ctl".into(),
        };
        let line = serde_json::to_string(&r).unwrap();
        assert_eq!(
            line,
            r#"{"request":"command","command":{"cmd":"batch_size","size":2000},"from":"ctl"}"#
        );
        assert_eq!(serde_json::from_str::<Request>(&line).unwrap(), r);
        assert_eq!(
            serde_json::from_str::<CtlCommand>(r#"{"cmd":"proceed"}"#).unwrap(),
            CtlCommand::Proceed { phase: None }
        );
        assert_eq!(
            serde_json::from_str::<CtlCommand>(r#"{"cmd":"proceed","phase":"not_null"}"#).unwrap(),
            CtlCommand::Proceed {
                phase: Some(crate::plan::Phase::NotNull)
            }
        );
        assert_eq!(
            serde_json::from_str::<Request>(r#"{"request":"subscribe","owner":false}"#).unwrap(),
            Request::Subscribe { owner: false }
        );
    }

    #[test]
    fn commands_map_both_ways() {
        for c in [
            CtlCommand::Pause,
            CtlCommand::Resume,
            CtlCommand::BatchSize { size: 7 },
            CtlCommand::AutoBatchSize,
            CtlCommand::Proceed { phase: None },
            CtlCommand::Abort,
        ] {
            assert_eq!(CtlCommand::from_engine(&c.to_engine()), c);
        }
        assert_eq!(
            CtlCommand::BatchSize { size: 7 }.value(),
            Some(serde_json::json!(7))
        );
    }
}
