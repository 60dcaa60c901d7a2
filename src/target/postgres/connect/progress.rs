//! How far one connection attempt got, as pacer's own TLS connector saw it.
//!
//! tokio-postgres keeps the kind of its errors private (its maintainers prefer to add methods
//! such as `is_closed()` over exposing it), and its wording is no contract. But every attempt
//! passes through the connector pacer hands it: once for each socket that opened, and again
//! when the server agreed to TLS and the handshake began; and a handshake error passes back
//! through it. So "the server turned TLS down" is told from "no password was given" by what
//! pacer saw happen, never by what a message says.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio_postgres::Socket;
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};

/// What one attempt reached, read once it is over.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Reached {
    /// Sockets that opened (one per endpoint that answered at all).
    pub sockets: usize,
    /// The latest socket's endpoint has a host name; tokio-postgres starts TLS only toward one.
    pub named: bool,
    /// The server agreed to TLS on the latest socket, and the handshake began.
    pub tls_started: bool,
}

/// Written by the connector while the attempt runs.
#[derive(Debug, Default)]
pub(super) struct Progress {
    sockets: AtomicUsize,
    named: AtomicBool,
    tls_started: AtomicBool,
}

impl Progress {
    /// What the attempt reached so far.
    pub fn reached(&self) -> Reached {
        Reached {
            sockets: self.sockets.load(Ordering::Relaxed),
            named: self.named.load(Ordering::Relaxed),
            tls_started: self.tls_started.load(Ordering::Relaxed),
        }
    }
}

/// The TLS layer failed: setting up a connection to a host name, the handshake, or the
/// server's certificate. Reads as the TLS stack's own error, which stays its source.
#[derive(Debug)]
pub(super) struct TlsFailure(Box<dyn StdError + Send + Sync>);

impl fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl StdError for TlsFailure {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&*self.0)
    }
}

/// A TLS connector (or `NoTls`) that records in [`Progress`] how far the attempt got.
pub(super) struct Watched<T> {
    inner: T,
    progress: Arc<Progress>,
}

impl<T> Watched<T> {
    /// Wraps `inner`; the progress is read after the attempt.
    pub fn new(inner: T) -> (Watched<T>, Arc<Progress>) {
        let progress = Arc::new(Progress::default());
        let watched = Watched {
            inner,
            progress: progress.clone(),
        };
        (watched, progress)
    }
}

impl<T> MakeTlsConnect<Socket> for Watched<T>
where
    T: MakeTlsConnect<Socket>,
    <T::TlsConnect as TlsConnect<Socket>>::Future: Send + 'static,
{
    type Stream = T::Stream;
    type TlsConnect = Watched<T::TlsConnect>;
    type Error = TlsFailure;

    /// tokio-postgres calls this right after a socket to an endpoint opened, before it
    /// sends anything on it.
    fn make_tls_connect(&mut self, domain: &str) -> Result<Self::TlsConnect, TlsFailure> {
        self.progress.sockets.fetch_add(1, Ordering::Relaxed);
        self.progress
            .named
            .store(!domain.is_empty(), Ordering::Relaxed);
        self.progress.tls_started.store(false, Ordering::Relaxed);
        let inner = self
            .inner
            .make_tls_connect(domain)
            .map_err(|e| TlsFailure(e.into()))?;
        Ok(Watched {
            inner,
            progress: self.progress.clone(),
        })
    }
}

impl<T> TlsConnect<Socket> for Watched<T>
where
    T: TlsConnect<Socket>,
    T::Future: Send + 'static,
{
    type Stream = T::Stream;
    type Error = TlsFailure;
    type Future = Pin<Box<dyn Future<Output = Result<T::Stream, TlsFailure>> + Send>>;

    /// Called only once the server has agreed to TLS.
    fn connect(self, stream: Socket) -> Self::Future {
        self.progress.tls_started.store(true, Ordering::Relaxed);
        let handshake = self.inner.connect(stream);
        Box::pin(async move { handshake.await.map_err(|e| TlsFailure(e.into())) })
    }
}
