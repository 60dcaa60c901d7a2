//! The socket: bound with mode 0600 in a 0700 directory, and each connection's peer checked
//! to be the same user. One task per connection; see [`super::protocol`] for what is said.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::task::JoinHandle;

use super::hub::Hub;
use super::protocol::{MAX_LINE, Reply, Request};

/// A listening socket; removed when dropped.
pub struct Server {
    path: PathBuf,
    task: JoinHandle<()>,
}

impl Server {
    /// Binds `path` (a socket left by a process that no longer exists is replaced) and serves
    /// `hub` on it until dropped.
    pub fn bind(path: &Path, hub: Arc<Hub>) -> Result<Server, String> {
        if path.exists() {
            // Our own pid is in the name, so an existing file is a leftover of a dead process
            // that had the same pid.
            std::fs::remove_file(path)
                .map_err(|e| format!("cannot remove the old socket {}: {e}", path.display()))?;
        }
        let listener = UnixListener::bind(path)
            .map_err(|e| format!("cannot listen on {}: {e}", path.display()))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| format!("cannot set the mode of {}: {e}", path.display()))?;
        let task = tokio::spawn(accept(listener, hub));
        Ok(Server {
            path: path.to_path_buf(),
            task,
        })
    }

    /// Where it listens.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}

async fn accept(listener: UnixListener, hub: Arc<Hub>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(serve(stream, hub.clone()));
            }
            Err(e) => {
                tracing::warn!("control socket: accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

/// Writes one reply line.
async fn send<W: AsyncWriteExt + Unpin>(w: &mut W, reply: &Reply) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(reply).map_err(std::io::Error::other)?;
    line.push(b'\n');
    w.write_all(&line).await?;
    w.flush().await
}

/// Reads one request line; `None` at the end of the stream.
async fn read_request<R: AsyncBufReadExt + Unpin>(
    r: &mut R,
) -> std::io::Result<Option<Result<Request, String>>> {
    let mut line = String::new();
    let n = r.read_line(&mut line).await?;
    if n == 0 {
        return Ok(None);
    }
    if line.len() > MAX_LINE {
        return Ok(Some(Err("request line too long".into())));
    }
    Ok(Some(
        serde_json::from_str(line.trim_end()).map_err(|e| format!("bad request: {e}")),
    ))
}

async fn serve(stream: UnixStream, hub: Arc<Hub>) {
    // The socket's mode already keeps other users out; the peer's uid is checked as well, so
    // a socket file copied or re-moded by mistake still answers only its owner.
    let me = crate::os::euid();
    match stream.peer_cred() {
        Ok(cred) if cred.uid() == me => {}
        Ok(cred) => {
            tracing::warn!(
                uid = cred.uid(),
                "control socket: refused a connection from another user"
            );
            let (_, mut w) = stream.into_split();
            let _ = send(
                &mut w,
                &Reply::Error {
                    message: format!(
                        "refused: this migration belongs to uid {me}; run pacer as that user"
                    ),
                },
            )
            .await;
            return;
        }
        Err(e) => {
            tracing::warn!("control socket: cannot read the peer's credentials: {e}");
            return;
        }
    }
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    let request = match read_request(&mut r).await {
        Ok(Some(Ok(request))) => request,
        Ok(Some(Err(message))) => {
            let _ = send(&mut w, &Reply::Error { message }).await;
            return;
        }
        Ok(None) | Err(_) => return,
    };
    let reply = match request {
        Request::Hello => Reply::Hello {
            info: hub.info().clone(),
        },
        Request::Status => Reply::Status {
            info: hub.info().clone(),
            state: hub.state(),
        },
        Request::Command { command, from } => match hub.command(command, &from) {
            Ok(message) => Reply::Done { ok: true, message },
            Err(message) => Reply::Done { ok: false, message },
        },
        Request::Detach => Reply::Done {
            ok: true,
            message: "nothing to detach from on this connection".into(),
        },
        Request::Subscribe { owner } => {
            subscription(hub, r, w, owner).await;
            return;
        }
    };
    let _ = send(&mut w, &reply).await;
}

/// A viewer: the snapshot, then every update, while reading its commands.
async fn subscription(
    hub: Arc<Hub>,
    r: BufReader<tokio::net::unix::OwnedReadHalf>,
    mut w: tokio::net::unix::OwnedWriteHalf,
    owner: bool,
) {
    let _viewer = hub.viewer();
    let (snapshot, mut updates) = hub.subscribe(owner);
    let ended = snapshot.end.is_some();
    if send(&mut w, &Reply::Snapshot(Box::new(snapshot)))
        .await
        .is_err()
        || ended
    {
        return;
    }
    // Lines are read on their own task: reading a line is not safe to cancel in a select.
    let (req_tx, mut requests) = tokio::sync::mpsc::channel(16);
    let reader = tokio::spawn(async move {
        let mut r = r;
        while let Ok(Some(request)) = read_request(&mut r).await {
            if req_tx.send(request).await.is_err() {
                break;
            }
        }
    });
    let mut detached = false;
    loop {
        tokio::select! {
            update = updates.recv() => match update {
                Some(reply) => {
                    let last = matches!(reply, Reply::End { .. });
                    if send(&mut w, &reply).await.is_err() {
                        break;
                    }
                    if last {
                        return;
                    }
                }
                // Dropped for falling behind (or the run ended without an End: cannot happen).
                None => return,
            },
            request = requests.recv() => match request {
                Some(Ok(Request::Command { command, from })) => {
                    let reply = match hub.command(command, &from) {
                        Ok(message) => Reply::Done { ok: true, message },
                        Err(message) => Reply::Done { ok: false, message },
                    };
                    if send(&mut w, &reply).await.is_err() {
                        break;
                    }
                }
                Some(Ok(Request::Detach)) => {
                    detached = true;
                    if owner {
                        hub.audit().operator("detach", "tui", None);
                    }
                    let _ = send(&mut w, &Reply::Done {
                        ok: true,
                        message: "detached; the migration goes on".into(),
                    })
                    .await;
                }
                Some(Ok(_)) => {
                    let _ = send(&mut w, &Reply::Done {
                        ok: false,
                        message: "only commands and detach are taken on a subscription".into(),
                    })
                    .await;
                }
                Some(Err(message)) => {
                    let _ = send(&mut w, &Reply::Error { message }).await;
                }
                None => break,
            },
        }
    }
    reader.abort();
    if owner && !detached {
        hub.owner_lost();
    }
}
