//! Turns a failed connection attempt into a [`ConnectError`]: which of unreachable, refused
//! credentials, missing database, TLS trouble or something else it was.

use std::error::Error as StdError;
use std::io;
use std::time::Duration;

use tokio_postgres::error::{DbError, SqlState};

use super::PgTarget;
use super::errors::ConnectError;
use super::progress::{Reached, TlsFailure};

/// Why one attempt failed, before classification.
pub(super) enum Failure {
    /// tokio-postgres gave up.
    Driver {
        /// Its error.
        error: tokio_postgres::Error,
        /// How far the attempt got, as pacer's connector saw it.
        reached: Reached,
        /// The attempt insisted on TLS (tokio-postgres' `require`).
        tls_required: bool,
    },
    /// The whole attempt outlived its deadline.
    TimedOut(Duration),
    /// The TLS configuration could not be built.
    TlsSetup(String),
}

/// Errors of the network itself, which a retry may well get past. `PermissionDenied` is a
/// Unix socket pacer may not open, or no endpoint with the `target_session_attrs` asked for.
const UNREACHABLE_IO: [io::ErrorKind; 12] = [
    io::ErrorKind::ConnectionRefused,
    io::ErrorKind::ConnectionReset,
    io::ErrorKind::ConnectionAborted,
    io::ErrorKind::NotConnected,
    io::ErrorKind::TimedOut,
    io::ErrorKind::HostUnreachable,
    io::ErrorKind::NetworkUnreachable,
    io::ErrorKind::AddrNotAvailable,
    io::ErrorKind::NotFound,
    io::ErrorKind::BrokenPipe,
    io::ErrorKind::UnexpectedEof,
    io::ErrorKind::PermissionDenied,
];

impl Failure {
    /// The server answered with an error of its own (an ErrorResponse, with a SQLSTATE).
    pub(super) fn is_server_error(&self) -> bool {
        matches!(self, Failure::Driver { error, .. } if error.as_db_error().is_some())
    }

    /// The TLS layer failed (handshake or certificate).
    pub(super) fn is_tls_failure(&self) -> bool {
        matches!(self, Failure::Driver { error, .. } if is_tls_failure(error))
    }

    /// TLS was required, a socket opened, and TLS never began on it: the server turned it
    /// down (or tokio-postgres had no host name to start it toward). Nothing else ends an
    /// attempt at that point without an I/O error.
    pub(super) fn is_tls_refused(&self) -> bool {
        match self {
            Failure::Driver {
                error,
                reached,
                tls_required,
            } => {
                *tls_required
                    && reached.sockets > 0
                    && !reached.tls_started
                    && error.as_db_error().is_none()
                    && !error.is_closed()
                    && !is_tls_failure(error)
                    && io_error(error).is_none()
            }
            _ => false,
        }
    }
}

impl PgTarget {
    pub(super) fn classify(&self, failure: Failure) -> ConnectError {
        let target = self.redacted();
        let refused = failure.is_tls_refused();
        let (err, reached) = match failure {
            Failure::TimedOut(limit) => {
                return ConnectError::Unreachable {
                    target,
                    detail: format!(
                        "no answer within {} s (connect_timeout; raise it with ?connect_timeout=SECONDS)",
                        limit.as_secs()
                    ),
                };
            }
            Failure::TlsSetup(detail) => return ConnectError::Tls { target, detail },
            Failure::Driver { error, reached, .. } => (error, reached),
        };

        if let Some(db) = err.as_db_error() {
            let detail = db_error_text(db);
            let code = db.code();
            return if *code == SqlState::INVALID_PASSWORD
                || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
            {
                ConnectError::AuthFailed {
                    target,
                    user: self.user().to_owned(),
                    detail: format!("{detail} (password: {})", self.password_origin),
                }
            } else if *code == SqlState::INVALID_CATALOG_NAME {
                ConnectError::DatabaseMissing {
                    target,
                    dbname: self.dbname().to_owned(),
                    detail,
                }
            } else {
                ConnectError::Other {
                    target,
                    detail,
                    code: Some(code.clone()),
                }
            };
        }

        let detail = error_text(&err);
        if refused && reached.named {
            return ConnectError::Tls {
                target,
                detail: format!(
                    "the server does not accept TLS connections, but sslmode={} requires TLS; enable ssl on the server, or use sslmode=prefer if an unencrypted connection is acceptable",
                    self.ssl_mode
                ),
            };
        }
        if refused || is_tls_failure(&err) {
            return ConnectError::Tls { target, detail };
        }
        // A server hanging up during startup is usually one that is restarting.
        if err.is_closed() {
            return ConnectError::Unreachable { target, detail };
        }
        if let Some(kind) = io_error(&err).map(io::Error::kind) {
            // Before any socket opened, every failure is the network's (a host name that does
            // not resolve has no io kind of its own).
            return if UNREACHABLE_IO.contains(&kind) || reached.sockets == 0 {
                ConnectError::Unreachable { target, detail }
            } else {
                ConnectError::Other {
                    target,
                    detail,
                    code: None,
                }
            };
        }
        // Past the network and TLS, without a server error: tokio-postgres stopped the
        // authentication exchange, and says why in the error's source.
        if err.source().is_some() {
            return ConnectError::AuthFailed {
                target,
                user: self.user().to_owned(),
                detail: if self.config.get_password().is_none() {
                    "the server asked for a password, but none was given in the target, PGPASSWORD or the password file".to_owned()
                } else {
                    detail
                },
            };
        }
        ConnectError::Other {
            target,
            detail,
            code: None,
        }
    }
}

/// The error and its causes. `io::Error::source()` skips the error it wraps, so the wrapped
/// one (where rustls puts its certificate errors) is followed explicitly.
fn error_chain<'a>(err: &'a (dyn StdError + 'static)) -> Vec<&'a (dyn StdError + 'static)> {
    let mut chain = Vec::new();
    let mut current = Some(err);
    while let Some(e) = current {
        chain.push(e);
        if chain.len() > 16 {
            break;
        }
        current = match e.downcast_ref::<io::Error>().and_then(io::Error::get_ref) {
            Some(inner) => Some(inner as &(dyn StdError + 'static)),
            None => e.source(),
        };
    }
    chain
}

/// The chain as one line, without repeating a cause its parent already printed.
pub(super) fn error_text(err: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    for e in error_chain(err) {
        let text = e.to_string();
        if parts.last().is_some_and(|prev| prev.contains(&text)) {
            continue;
        }
        parts.push(text);
    }
    parts.join(": ")
}

/// The TLS layer's own failure somewhere in the chain.
fn is_tls_failure(err: &tokio_postgres::Error) -> bool {
    error_chain(err)
        .iter()
        .any(|e| e.is::<TlsFailure>() || e.is::<rustls::Error>())
}

/// The first I/O error in the chain.
fn io_error(err: &tokio_postgres::Error) -> Option<&io::Error> {
    error_chain(err)
        .into_iter()
        .find_map(|e| e.downcast_ref::<io::Error>())
}

/// A server error on one line, with its SQLSTATE.
fn db_error_text(db: &DbError) -> String {
    let mut text = format!(
        "{}: {} (SQLSTATE {})",
        db.severity(),
        db.message(),
        db.code().code()
    );
    if let Some(detail) = db.detail() {
        text.push_str("; ");
        text.push_str(detail);
    }
    if let Some(hint) = db.hint() {
        text.push_str("; hint: ");
        text.push_str(hint);
    }
    text.replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;
    use std::io::{Read, Write};

    /// What a fake server answers.
    #[derive(Clone, Copy)]
    enum Fake {
        /// Refuse TLS ('N'), then fail startup with this SQLSTATE and message.
        Error(&'static str, &'static str),
        /// Accept TLS ('S') and then send garbage instead of a handshake.
        BrokenTls,
        /// Accept the TCP connection and never say anything.
        Silent,
        /// Refuse TLS ('N'), then ask for a clear-text password.
        AskPassword,
    }

    /// A one-connection fake PostgreSQL server on a loopback port, so the classification of
    /// server answers is tested without any real server.
    fn fake_server(behaviour: Fake) -> u16 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let Ok((mut sock, _)) = listener.accept() else {
                return;
            };
            sock.set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let read_message = |sock: &mut std::net::TcpStream| -> Option<Vec<u8>> {
                let mut len = [0u8; 4];
                sock.read_exact(&mut len).ok()?;
                let len = u32::from_be_bytes(len) as usize;
                let mut body = vec![0u8; len.saturating_sub(4)];
                sock.read_exact(&mut body).ok()?;
                Some(body)
            };
            if let Fake::Silent = behaviour {
                std::thread::sleep(Duration::from_secs(5));
                return;
            }
            let Some(mut body) = read_message(&mut sock) else {
                return;
            };
            if body == [4, 210, 22, 47] {
                // SSLRequest
                if let Fake::BrokenTls = behaviour {
                    sock.write_all(b"S").unwrap();
                    let _ = sock.write_all(&[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28, 0, 0, 0]);
                    std::thread::sleep(Duration::from_millis(200));
                    return;
                }
                sock.write_all(b"N").unwrap();
                let Some(next) = read_message(&mut sock) else {
                    return;
                };
                body = next;
            }
            let _ = body;
            if let Fake::AskPassword = behaviour {
                let _ = sock.write_all(&[b'R', 0, 0, 0, 8, 0, 0, 0, 3]);
                std::thread::sleep(Duration::from_millis(200));
            }
            if let Fake::Error(code, message) = behaviour {
                let mut fields = Vec::new();
                for (tag, value) in [
                    (b'S', "FATAL"),
                    (b'V', "FATAL"),
                    (b'C', code),
                    (b'M', message),
                ] {
                    fields.push(tag);
                    fields.extend_from_slice(value.as_bytes());
                    fields.push(0);
                }
                fields.push(0);
                let mut msg = vec![b'E'];
                msg.extend_from_slice(&(fields.len() as u32 + 4).to_be_bytes());
                msg.extend_from_slice(&fields);
                let _ = sock.write_all(&msg);
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        port
    }

    fn fake_target(port: u16, extra: &str) -> PgTarget {
        resolve(
            &format!("postgres://alice:{SECRET}@127.0.0.1:{port}/app?{extra}"),
            &[],
        )
        .unwrap()
    }

    fn check_error(err: &ConnectError) {
        assert_no_secret("connect error Display", &err.to_string());
        assert_no_secret("connect error Debug", &format!("{err:?}"));
        assert!(err.to_string().contains("alice@127.0.0.1:"), "{err}");
    }

    #[tokio::test]
    async fn server_errors_are_classified() {
        let port = fake_server(Fake::Error(
            "28P01",
            "password authentication failed for user \"alice\"",
        ));
        let err = fake_target(port, "").connect("pacer").await.unwrap_err();
        check_error(&err);
        assert!(
            matches!(err, ConnectError::AuthFailed { ref user, .. } if user == "alice"),
            "{err}"
        );
        assert!(
            err.to_string()
                .contains("password authentication failed for user alice"),
            "{err}"
        );
        assert!(err.to_string().contains("from --target"), "{err}");
        assert!(!err.is_retryable());

        let port = fake_server(Fake::Error("28000", "role \"alice\" does not exist"));
        let err = fake_target(port, "sslmode=disable")
            .connect("pacer")
            .await
            .unwrap_err();
        check_error(&err);
        assert!(matches!(err, ConnectError::AuthFailed { .. }), "{err}");

        let port = fake_server(Fake::Error("3D000", "database \"app\" does not exist"));
        let err = fake_target(port, "").connect("pacer").await.unwrap_err();
        check_error(&err);
        assert!(
            matches!(err, ConnectError::DatabaseMissing { ref dbname, .. } if dbname == "app"),
            "{err}"
        );
        assert!(!err.is_retryable());

        let port = fake_server(Fake::Error("57P03", "the database system is starting up"));
        let err = fake_target(port, "").connect("pacer").await.unwrap_err();
        check_error(&err);
        assert!(matches!(err, ConnectError::Other { .. }), "{err}");
        assert!(err.is_retryable(), "{err}");

        // The server echoing the password must not get it through either.
        let port = fake_server(Fake::Error("XX000", "weird: s3cr3t-Pa55"));
        let err = fake_target(port, "").connect("pacer").await.unwrap_err();
        check_error(&err);
        assert!(err.to_string().contains("weird: ********"), "{err}");
    }

    #[tokio::test]
    async fn tls_failures_are_classified() {
        let port = fake_server(Fake::Error("XX000", "unused"));
        let err = fake_target(port, "sslmode=require")
            .connect("pacer")
            .await
            .unwrap_err();
        check_error(&err);
        assert!(matches!(err, ConnectError::Tls { .. }), "{err}");
        assert!(err.to_string().contains("does not accept TLS"), "{err}");
        assert!(!err.is_retryable());

        let port = fake_server(Fake::BrokenTls);
        let err = fake_target(port, "sslmode=verify-full")
            .connect("pacer")
            .await
            .unwrap_err();
        check_error(&err);
        assert!(matches!(err, ConnectError::Tls { .. }), "{err}");
        assert!(!err.is_retryable());
    }

    #[tokio::test]
    async fn a_password_asked_for_but_given_nowhere_is_an_authentication_failure() {
        let port = fake_server(Fake::AskPassword);
        let err = resolve(&format!("postgres://alice@127.0.0.1:{port}/app"), &[])
            .unwrap()
            .connect("pacer")
            .await
            .unwrap_err();
        assert!(matches!(err, ConnectError::AuthFailed { .. }), "{err}");
        assert!(
            err.to_string()
                .contains("the server asked for a password, but none was given"),
            "{err}"
        );
        assert!(!err.is_retryable());
    }

    /// tokio-postgres starts TLS only toward a host name: with `hostaddr` alone, `prefer`
    /// connects plainly (as it would after the failed TLS attempt), and `require` says TLS
    /// failed without claiming to know why the server would not have it.
    #[tokio::test]
    async fn a_bare_hostaddr_prefers_plain_and_fails_require_as_tls() {
        let port = fake_server(Fake::Error(
            "28P01",
            "password authentication failed for user \"alice\"",
        ));
        let url = format!("postgres://alice:{SECRET}@/app?hostaddr=127.0.0.1&port={port}");
        let err = resolve(&url, &[])
            .unwrap()
            .connect("pacer")
            .await
            .unwrap_err();
        check_error(&err);
        assert!(matches!(err, ConnectError::AuthFailed { .. }), "{err}");

        let port = fake_server(Fake::Error("XX000", "unused"));
        let url = format!(
            "postgres://alice:{SECRET}@/app?hostaddr=127.0.0.1&port={port}&sslmode=require"
        );
        let err = resolve(&url, &[])
            .unwrap()
            .connect("pacer")
            .await
            .unwrap_err();
        check_error(&err);
        assert!(matches!(err, ConnectError::Tls { .. }), "{err}");
        assert!(!err.is_retryable());
    }

    #[tokio::test]
    async fn unreachable_and_timeouts_are_retryable() {
        // Bind then drop: the port is very likely closed for the next few milliseconds.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let started = std::time::Instant::now();
        let err = fake_target(port, "").connect("pacer").await.unwrap_err();
        check_error(&err);
        assert!(matches!(err, ConnectError::Unreachable { .. }), "{err}");
        assert!(err.is_retryable());
        assert!(
            err.to_string().contains("accepting TCP connections"),
            "{err}"
        );
        assert!(started.elapsed() < Duration::from_secs(5));

        let port = fake_server(Fake::Silent);
        let started = std::time::Instant::now();
        let err = fake_target(port, "connect_timeout=2")
            .connect("pacer")
            .await
            .unwrap_err();
        check_error(&err);
        assert!(matches!(err, ConnectError::Unreachable { .. }), "{err}");
        assert!(err.to_string().contains("no answer within 2 s"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(4));
    }

    /// A name lookup failure has no io kind of its own; it happens before any socket opens.
    #[tokio::test]
    async fn a_host_name_that_does_not_resolve_is_unreachable() {
        // `.invalid` never resolves (RFC 6761); a slow resolver ends in the 2 s deadline.
        let err = resolve(
            &format!("postgres://alice:{SECRET}@pacer-test.invalid/app?connect_timeout=2"),
            &[],
        )
        .unwrap()
        .connect("pacer")
        .await
        .unwrap_err();
        assert_no_secret("name lookup error", &err.to_string());
        assert!(matches!(err, ConnectError::Unreachable { .. }), "{err}");
        assert!(err.is_retryable());
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn missing_unix_socket_is_unreachable() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!(
            "postgres://alice:{SECRET}@{}/app?sslmode=verify-full",
            dir.path().display().to_string().replace('/', "%2F")
        );
        let err = resolve(&url, &[])
            .unwrap()
            .connect("pacer")
            .await
            .unwrap_err();
        assert_no_secret("unix socket error", &err.to_string());
        assert!(matches!(err, ConnectError::Unreachable { .. }), "{err}");
    }
}
