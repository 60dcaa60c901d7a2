//! Why a connection to a MySQL/MariaDB server failed, typed by what the operator must do:
//! classified by the server's error code or the driver's error kind, never by message text.
//! No variant holds a password: the target is always the redacted one.

use mysql_async::{DriverError, Error};

/// A failed connection.
#[derive(Debug, thiserror::Error)]
pub enum MyConnectError {
    /// The target (URL, option file, variables) cannot be used as written.
    #[error("{message}")]
    BadTarget {
        /// What is wrong and how to write it.
        message: String,
    },
    /// The server did not answer (refused, timed out, gone, too many connections).
    #[error(
        "cannot reach {target}: {message}. Check that the server runs and listens there; pacer retries a lost connection, not a first one."
    )]
    Unreachable {
        /// The server, redacted.
        target: String,
        /// The driver's or server's reason.
        message: String,
    },
    /// Wrong user or password, or the user may not connect from here.
    #[error(
        "{target} refused the login: {message}. Check the user and password (URL, MYSQL_PWD, or the option file's [client] section) and the user's host in mysql.user."
    )]
    Auth {
        /// The server, redacted.
        target: String,
        /// The server's reason (it never repeats the password).
        message: String,
    },
    /// The database does not exist.
    #[error(
        "{target}: {message}. Check the database in the target URL (mysql://user@host/DATABASE)."
    )]
    UnknownDatabase {
        /// The server, redacted.
        target: String,
        /// The server's reason.
        message: String,
    },
    /// TLS could not be set up as ssl-mode asks.
    #[error("TLS with {target}: {message}")]
    Tls {
        /// The server, redacted.
        target: String,
        /// What failed and what to do.
        message: String,
    },
    /// The server offers no TLS (PREFERRED falls back to plain TCP on this one).
    #[error(
        "{target} offers no TLS, and ssl-mode asks for it. Enable TLS on the server (ssl-cert, ssl-key), or use ssl-mode=PREFERRED or DISABLED."
    )]
    NoTls {
        /// The server, redacted.
        target: String,
    },
    /// Anything else.
    #[error("connecting to {target}: {message}")]
    Other {
        /// The server, redacted.
        target: String,
        /// The reason.
        message: String,
    },
}

impl MyConnectError {
    /// Whether trying again later may help (the server may come back).
    pub fn is_retryable(&self) -> bool {
        matches!(self, MyConnectError::Unreachable { .. })
    }
}

/// Classifies a failed connect to `target` (redacted); `tls`: whether TLS was asked for.
pub(super) fn classify(e: &Error, target: &str, tls: bool) -> MyConnectError {
    let target = target.to_string();
    match e {
        Error::Server(s) => {
            let message = format!("{} (error {})", s.message, s.code);
            match s.code {
                // Access denied (user/password, database for this user, no password given).
                1045 | 1044 | 1698 | 1130 | 1251 => MyConnectError::Auth { target, message },
                1049 => MyConnectError::UnknownDatabase { target, message },
                // Too many connections, host blocked, server shutting down.
                1040 | 1129 | 1053 | 2006 | 2013 => MyConnectError::Unreachable { target, message },
                _ => MyConnectError::Other { target, message },
            }
        }
        Error::Driver(DriverError::NoClientSslFlagFromServer) => MyConnectError::NoTls { target },
        Error::Io(io) => {
            let message = io.to_string();
            // The handshake's failures come as the TLS variant or as an I/O error carrying
            // rustls' own error (an unknown CA, a bad signature, a name mismatch).
            let handshake = match io {
                mysql_async::IoError::Tls(_) => true,
                mysql_async::IoError::Io(e) => e
                    .get_ref()
                    .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some()),
            };
            if tls && handshake {
                MyConnectError::Tls {
                    target,
                    message: format!(
                        "{message}. Check ssl-ca (the CA that signed the server's certificate) and \
                         that the host name matches the certificate, or use ssl-mode=REQUIRED to \
                         encrypt without verifying"
                    ),
                }
            } else {
                MyConnectError::Unreachable { target, message }
            }
        }
        other => MyConnectError::Other {
            target,
            message: other.to_string(),
        },
    }
}
