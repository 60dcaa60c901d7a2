//! The client side of the socket: finding a running migration, one-shot requests (`pacer
//! ctl`), and attaching a viewer (`pacer attach`, and the screen of `pacer run`).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::sync::{mpsc, oneshot, watch};

use super::protocol::{End, Info, Reply, Request, Snapshot};
use crate::engine::{Command, Handles};
use crate::sampler::{Metrics, SharedMetrics};

/// How long a running migration has to answer.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(1);
/// How long the first answer to `subscribe` may take (it carries the chart history).
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a request did not get an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CtlError {
    /// No migration is running there (as opposed to one that would not answer).
    pub not_running: bool,
    /// Words for the operator.
    pub message: String,
}

impl CtlError {
    fn not_running(message: impl Into<String>) -> CtlError {
        CtlError {
            not_running: true,
            message: message.into(),
        }
    }
    fn other(message: impl Into<String>) -> CtlError {
        CtlError {
            not_running: false,
            message: message.into(),
        }
    }
}

/// Connects to a socket, with clear words for each way it can fail.
pub async fn connect(path: &Path) -> Result<UnixStream, CtlError> {
    let attempt = tokio::time::timeout(ANSWER_TIMEOUT, UnixStream::connect(path)).await;
    match attempt {
        Err(_) => Err(CtlError::other(format!(
            "the migration at {} did not answer within {} s",
            path.display(),
            ANSWER_TIMEOUT.as_secs()
        ))),
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(e)) => Err(match e.kind() {
            std::io::ErrorKind::NotFound => CtlError::not_running(format!(
                "no migration is running at {} (no such socket: it has ended, or never started)",
                path.display()
            )),
            std::io::ErrorKind::ConnectionRefused => CtlError::not_running(format!(
                "no migration is running at {} (the socket is left over from a process that \
                 ended)",
                path.display()
            )),
            std::io::ErrorKind::PermissionDenied => CtlError::other(format!(
                "permission denied on {}: the socket belongs to another user (mode 0600); run \
                 pacer as the user that started the migration",
                path.display()
            )),
            _ => CtlError::other(format!("cannot connect to {}: {e}", path.display())),
        }),
    }
}

async fn write_request<W: AsyncWriteExt + Unpin>(
    w: &mut W,
    request: &Request,
) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(request).map_err(std::io::Error::other)?;
    line.push(b'\n');
    w.write_all(&line).await?;
    w.flush().await
}

async fn read_reply<R: AsyncBufReadExt + Unpin>(r: &mut R) -> Result<Option<Reply>, String> {
    let mut line = String::new();
    match r.read_line(&mut line).await {
        Ok(0) => Ok(None),
        Ok(_) => serde_json::from_str(line.trim_end())
            .map(Some)
            .map_err(|e| format!("an answer pacer cannot read: {e}")),
        Err(e) => Err(e.to_string()),
    }
}

/// Sends one request and waits (one second at most) for its one answer.
pub async fn request(path: &Path, request: &Request) -> Result<Reply, CtlError> {
    let stream = connect(path).await?;
    let (r, mut w) = stream.into_split();
    let exchange = async {
        write_request(&mut w, request)
            .await
            .map_err(|e| CtlError::other(format!("cannot send to {}: {e}", path.display())))?;
        match read_reply(&mut BufReader::new(r)).await {
            Ok(Some(Reply::Error { message })) => Err(CtlError::other(message)),
            Ok(Some(reply)) => Ok(reply),
            Ok(None) => Err(CtlError::not_running(format!(
                "the migration at {} closed the connection without answering (it is ending)",
                path.display()
            ))),
            Err(e) => Err(CtlError::other(format!(
                "no answer from {}: {e}",
                path.display()
            ))),
        }
    };
    tokio::time::timeout(ANSWER_TIMEOUT, exchange)
        .await
        .unwrap_or_else(|_| {
            Err(CtlError::other(format!(
                "the migration at {} did not answer within {} s",
                path.display(),
                ANSWER_TIMEOUT.as_secs()
            )))
        })
}

/// Who listens at `path`.
pub async fn hello(path: &Path) -> Result<Info, CtlError> {
    match request(path, &Request::Hello).await? {
        Reply::Hello { info } => Ok(info),
        other => Err(CtlError::other(format!("unexpected answer: {other:?}"))),
    }
}

/// Every migration running in `dir`, by socket. Sockets left by processes that no longer exist
/// are removed on the way.
pub async fn running(dir: &Path) -> Vec<(PathBuf, Info)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "sock"))
        .collect();
    paths.sort();
    let mut out = Vec::new();
    for path in paths {
        match hello(&path).await {
            Ok(info) => out.push((path, info)),
            Err(e) if e.not_running => {
                if super::pid_of(&path).is_some_and(|pid| !crate::os::process_alive(pid)) {
                    let _ = std::fs::remove_file(&path);
                }
            }
            Err(e) => tracing::warn!("{}", e.message),
        }
    }
    out
}

/// Whether a running migration's `job` is the one `selector` names: `schema.table.column`
/// exactly, or `.table.column` in any schema.
pub fn job_matches(selector: &str, job: &str) -> bool {
    if selector.starts_with('.') {
        job.ends_with(selector)
    } else {
        job == selector
    }
}

/// Which migration a command is for.
#[derive(Debug, Clone, Default)]
pub struct Selector {
    /// An explicit socket.
    pub socket: Option<PathBuf>,
    /// The migration's job (`schema.table.column`), or `.table.column` to match any schema.
    pub job: Option<String>,
    /// The target (as shown, without password), to choose between runs of the same job on
    /// different databases.
    pub target: Option<String>,
}

/// Finds the socket: the one given, else the running migration of the job, else the only
/// running migration.
pub async fn locate(selector: &Selector) -> Result<(PathBuf, Info), CtlError> {
    if let Some(socket) = &selector.socket {
        let info = hello(socket).await?;
        return Ok((socket.clone(), info));
    }
    let dir = super::socket_dir();
    let all = running(&dir).await;
    let matching: Vec<&(PathBuf, Info)> = all
        .iter()
        .filter(|(_, info)| {
            selector
                .job
                .as_deref()
                .is_none_or(|job| job_matches(job, &info.job))
        })
        .collect();
    // Several runs of the job (on different databases): the target decides, when known.
    let matching: Vec<&(PathBuf, Info)> = match &selector.target {
        Some(target) if matching.len() > 1 => matching
            .into_iter()
            .filter(|(_, i)| &i.target == target)
            .collect(),
        _ => matching,
    };
    match matching.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(CtlError::not_running(match &selector.job {
            Some(job) => format!(
                "no migration of {} is running (looked for sockets in {}); `pacer status PLAN` \
                 shows what the database recorded",
                job.trim_start_matches('.'),
                dir.display()
            ),
            None => format!(
                "no migration is running (no live socket in {}); `pacer status PLAN` shows what \
                 the database recorded",
                dir.display()
            ),
        })),
        many => Err(CtlError::other(format!(
            "{} migrations match; name one with --target URL or --socket PATH:\n{}",
            many.len(),
            many.iter()
                .map(|(p, i)| format!(
                    "  {}  on {}  pid {}  {}",
                    i.job,
                    i.target,
                    i.pid,
                    p.display()
                ))
                .collect::<Vec<_>>()
                .join("\n")
        ))),
    }
}

/// How a viewer's connection ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Ending {
    /// The run ended.
    End(End),
    /// The connection was lost before the run ended.
    Lost(String),
}

/// A viewer attached to a running migration: the same handles the engine gives an
/// in-process interface, fed from the socket.
pub struct Attached {
    /// Who.
    pub info: Info,
    /// Commands out, events and state in.
    pub handles: Handles,
    /// The runner's metrics, rebuilt here; None when the run does not sample.
    pub metrics: Option<SharedMetrics>,
    /// Fires when the connection ends (the run ended, or the link was lost).
    pub done: oneshot::Receiver<()>,
    /// How it ended, once it has.
    pub ending: Arc<Mutex<Option<Ending>>>,
    requests: mpsc::UnboundedSender<Request>,
    writer: tokio::task::JoinHandle<()>,
}

/// An [`Attached`] taken apart for an interface.
pub struct Parts {
    /// Who.
    pub info: Info,
    /// Commands out, events and state in.
    pub handles: Handles,
    /// The runner's metrics, rebuilt here.
    pub metrics: Option<SharedMetrics>,
    /// Fires when the connection ends.
    pub done: oneshot::Receiver<()>,
    /// How it ended, once it has.
    pub ending: Arc<Mutex<Option<Ending>>>,
    /// Leaves on purpose.
    pub detacher: Detacher,
}

/// Leaves a subscription on purpose.
pub struct Detacher {
    requests: mpsc::UnboundedSender<Request>,
    writer: tokio::task::JoinHandle<()>,
}

impl Detacher {
    /// Leaves without disturbing the migration (the owner's connection then does not count
    /// as a hangup). Waits briefly for the request to go out.
    pub async fn detach(self) {
        let _ = self.requests.send(Request::Detach);
        drop(self.requests);
        let _ = tokio::time::timeout(ANSWER_TIMEOUT, self.writer).await;
    }
}

impl Attached {
    /// Takes it apart.
    pub fn into_parts(self) -> Parts {
        Parts {
            info: self.info,
            handles: self.handles,
            metrics: self.metrics,
            done: self.done,
            ending: self.ending,
            detacher: Detacher {
                requests: self.requests,
                writer: self.writer,
            },
        }
    }
}

/// Subscribes to the migration at `path`. `owner`: this is the terminal that started it.
pub async fn attach(path: &Path, owner: bool) -> Result<Attached, CtlError> {
    let stream = connect(path).await?;
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    write_request(&mut w, &Request::Subscribe { owner })
        .await
        .map_err(|e| CtlError::other(format!("cannot send to {}: {e}", path.display())))?;
    let first = tokio::time::timeout(SNAPSHOT_TIMEOUT, read_reply(&mut r))
        .await
        .map_err(|_| {
            CtlError::other(format!(
                "the migration at {} did not answer within {} s",
                path.display(),
                SNAPSHOT_TIMEOUT.as_secs()
            ))
        })?;
    let snapshot: Snapshot = match first {
        Ok(Some(Reply::Snapshot(s))) => *s,
        Ok(Some(Reply::Error { message })) => return Err(CtlError::other(message)),
        Ok(Some(other)) => {
            return Err(CtlError::other(format!("unexpected answer: {other:?}")));
        }
        Ok(None) => {
            return Err(CtlError::not_running(format!(
                "the migration at {} closed the connection (it is ending)",
                path.display()
            )));
        }
        Err(e) => return Err(CtlError::other(format!("no answer: {e}"))),
    };

    let (state_tx, state_rx) = watch::channel(snapshot.state);
    let (events_tx, events_rx) = mpsc::unbounded_channel();
    for event in snapshot.events {
        let _ = events_tx.send(event);
    }
    let words = crate::target::family::Family::from_name(&snapshot.info.family)
        .unwrap_or(crate::target::family::Family::Postgres)
        .figure_words();
    let metrics = snapshot.metrics.map(|h| {
        let mut m = Metrics::new(
            Duration::from_millis(h.window_ms),
            Duration::from_millis(h.interval_ms.max(1)),
        )
        .with_words(words);
        for input in &h.inputs {
            m.apply(input);
        }
        SharedMetrics::with_elapsed(m, Duration::from_secs_f64(h.now.max(0.0)))
    });
    let ending = Arc::new(Mutex::new(None));
    let (done_tx, done_rx) = oneshot::channel();
    if let Some(end) = snapshot.end {
        *ending.lock().unwrap_or_else(|p| p.into_inner()) = Some(Ending::End(end));
    }

    // Commands from the screen's keys go out as requests, tagged as coming from the TUI.
    let (commands_tx, mut commands_rx) = mpsc::unbounded_channel::<Command>();
    let (requests_tx, mut requests_rx) = mpsc::unbounded_channel::<Request>();
    let forward = requests_tx.clone();
    tokio::spawn(async move {
        while let Some(command) = commands_rx.recv().await {
            let command = super::protocol::CtlCommand::from_engine(&command);
            if forward
                .send(Request::Command {
                    command,
                    from: "tui".into(),
                })
                .is_err()
            {
                break;
            }
        }
    });
    let writer = tokio::spawn(async move {
        while let Some(request) = requests_rx.recv().await {
            if write_request(&mut w, &request).await.is_err() {
                break;
            }
        }
        // The write half drops here: the server reads the end of the stream.
    });

    let reader_metrics = metrics.clone();
    let reader_ending = ending.clone();
    tokio::spawn(async move {
        let lost = loop {
            match read_reply(&mut r).await {
                Ok(Some(Reply::State { state })) => {
                    let _ = state_tx.send(state);
                }
                Ok(Some(Reply::Event { event })) => {
                    let _ = events_tx.send(event);
                }
                Ok(Some(Reply::Metric { input })) => {
                    if let Some(m) = &reader_metrics {
                        m.apply(input);
                    }
                }
                Ok(Some(Reply::Done { ok, message })) => {
                    if ok {
                        tracing::info!("runner: {message}");
                    } else {
                        tracing::warn!("runner refused: {message}");
                    }
                }
                Ok(Some(Reply::End { end })) => {
                    *reader_ending.lock().unwrap_or_else(|p| p.into_inner()) =
                        Some(Ending::End(end));
                    break None;
                }
                Ok(Some(Reply::Error { message })) => break Some(message),
                Ok(Some(other)) => tracing::warn!("unexpected update: {other:?}"),
                Ok(None) => {
                    break Some(
                        "its connection closed: the process ended or the socket went away"
                            .to_string(),
                    );
                }
                Err(e) => break Some(e),
            }
        };
        if let Some(why) = lost {
            let mut e = reader_ending.lock().unwrap_or_else(|p| p.into_inner());
            if e.is_none() {
                *e = Some(Ending::Lost(why));
            }
        }
        let _ = done_tx.send(());
    });

    Ok(Attached {
        info: snapshot.info,
        handles: Handles {
            commands: commands_tx,
            events: events_rx,
            state: state_rx,
        },
        metrics,
        done: done_rx,
        ending,
        requests: requests_tx,
        writer,
    })
}
