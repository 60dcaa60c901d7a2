//! What can go wrong between a target string and a connected session, worded so that each
//! message says what happened, to which target, and what to change. No message holds a password.

use tokio_postgres::error::SqlState;

/// What a password is replaced with wherever it might show up in text.
const MASK: &str = "********";
/// Server errors that mean "not now" rather than "never": starting up / shutting down / in
/// recovery (57P03), administrator or crash shutdown (57P01, 57P02), and no free connection
/// slot (53300). A supervisor can wait and try again.
const RETRYABLE_SQLSTATES: [SqlState; 4] = [
    SqlState::CANNOT_CONNECT_NOW,
    SqlState::ADMIN_SHUTDOWN,
    SqlState::CRASH_SHUTDOWN,
    SqlState::TOO_MANY_CONNECTIONS,
];

/// Why a target could not be resolved or connected to. Messages never contain the password.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// Neither `--target`, `PACER_TARGET` nor `DATABASE_URL` was given.
    #[error(
        "no PostgreSQL target given: pass --target postgres://user@host/db, or set PACER_TARGET or DATABASE_URL"
    )]
    NoTarget,
    /// The target (or a `PG*` variable filling it in) is malformed; `source_name` says which.
    #[error(
        "invalid PostgreSQL target ({source_name}): {reason}. Fix {source_name}; a target looks like postgres://user@host:5432/dbname?sslmode=verify-full"
    )]
    BadTarget {
        /// Where the bad value came from: `--target`, `PACER_TARGET`, `DATABASE_URL` or a `PG*` variable.
        source_name: String,
        /// What is wrong with it (never the password).
        reason: String,
    },
    /// The target is a URL for another database (e.g. `mysql://`).
    #[error(
        "the target from {source_name} is a {scheme}:// URL, but {}",
        scheme_advice(scheme)
    )]
    UnsupportedScheme {
        /// Where the URL came from.
        source_name: String,
        /// The URL scheme, lower-cased.
        scheme: String,
    },
    /// Nothing answered: connection refused, timed out, host name not found, socket missing.
    #[error(
        "could not reach PostgreSQL at {target}: {detail}. Is the server running and accepting TCP connections on that host and port? Check --target (or PACER_TARGET / DATABASE_URL)"
    )]
    Unreachable {
        /// The target, redacted.
        target: String,
        /// What went wrong, as reported by the OS or the driver.
        detail: String,
    },
    /// The server rejected the user or password (SQLSTATE 28P01 or 28000).
    #[error(
        "password authentication failed for user {user} at {target}: {detail}. Check the user and password in --target, PGPASSWORD or ~/.pgpass (PGPASSFILE), and the server's pg_hba.conf"
    )]
    AuthFailed {
        /// The target, redacted.
        target: String,
        /// The user name that was rejected.
        user: String,
        /// The server's message.
        detail: String,
    },
    /// The database named in the target does not exist (SQLSTATE 3D000).
    #[error(
        "database {dbname} does not exist at {target}: {detail}. Check the database name at the end of --target (postgres://user@host/dbname) or PGDATABASE"
    )]
    DatabaseMissing {
        /// The target, redacted.
        target: String,
        /// The database that is missing.
        dbname: String,
        /// The server's message.
        detail: String,
    },
    /// TLS failed: handshake or certificate error, or TLS required but not offered by the server.
    #[error(
        "TLS connection to {target} failed: {detail}. Check sslmode and sslrootcert in --target (or PGSSLMODE / PGSSLROOTCERT)"
    )]
    Tls {
        /// The target, redacted.
        target: String,
        /// What the TLS layer reported.
        detail: String,
    },
    /// Any other failure; `detail` carries `(SQLSTATE xxxxx)` when the server sent an error.
    #[error("could not connect to PostgreSQL at {target}: {detail}")]
    Other {
        /// The target, redacted.
        target: String,
        /// What went wrong.
        detail: String,
        /// The server's SQLSTATE, when the server refused the connection.
        code: Option<SqlState>,
    },
}

fn scheme_advice(scheme: &str) -> &'static str {
    match scheme {
        "mysql" | "mariadb" => {
            "this is a MySQL/MariaDB target: pacer's commands connect to it with the MySQL/MariaDB target, not the PostgreSQL resolver"
        }
        _ => {
            "pacer only understands PostgreSQL targets: use postgres://user@host:5432/dbname (or postgresql://, or a libpq key=value string)"
        }
    }
}

impl ConnectError {
    /// True when trying again later may succeed: the server is unreachable, starting up,
    /// shutting down, in recovery or out of connection slots. Never for bad targets,
    /// authentication or TLS failures, which need the user to change something.
    pub fn is_retryable(&self) -> bool {
        match self {
            ConnectError::Unreachable { .. } => true,
            ConnectError::Other {
                code: Some(code), ..
            } => RETRYABLE_SQLSTATES.contains(code),
            _ => false,
        }
    }

    /// Masks the secrets in the free-text fields, the ones whose wording we do not control.
    pub(super) fn scrubbed(self, secrets: &[String]) -> ConnectError {
        let s = |text: String| scrub(text, secrets);
        match self {
            ConnectError::BadTarget {
                source_name,
                reason,
            } => ConnectError::BadTarget {
                source_name,
                reason: s(reason),
            },
            ConnectError::Unreachable { target, detail } => ConnectError::Unreachable {
                target,
                detail: s(detail),
            },
            ConnectError::AuthFailed {
                target,
                user,
                detail,
            } => ConnectError::AuthFailed {
                target,
                user,
                detail: s(detail),
            },
            ConnectError::DatabaseMissing {
                target,
                dbname,
                detail,
            } => ConnectError::DatabaseMissing {
                target,
                dbname,
                detail: s(detail),
            },
            ConnectError::Tls { target, detail } => ConnectError::Tls {
                target,
                detail: s(detail),
            },
            ConnectError::Other {
                target,
                detail,
                code,
            } => ConnectError::Other {
                target,
                detail: s(detail),
                code,
            },
            other @ (ConnectError::NoTarget | ConnectError::UnsupportedScheme { .. }) => other,
        }
    }
}

pub(super) fn bad(source_name: &str, reason: impl Into<String>) -> ConnectError {
    ConnectError::BadTarget {
        source_name: source_name.to_owned(),
        reason: reason.into(),
    }
}

/// Replaces every occurrence of every non-empty secret; longest first so that a secret
/// containing another is masked whole.
pub(super) fn scrub(mut text: String, secrets: &[String]) -> String {
    let mut sorted: Vec<&String> = secrets.iter().filter(|s| !s.is_empty()).collect();
    sorted.sort_by_key(|s| std::cmp::Reverse(s.len()));
    for secret in sorted {
        if text.contains(secret.as_str()) {
            text = text.replace(secret.as_str(), MASK);
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_masks_every_occurrence_longest_first() {
        let secrets = vec!["ab".to_owned(), "abcd".to_owned(), String::new()];
        assert_eq!(scrub("xabcdyab".to_owned(), &secrets), "x********y********");
    }

    #[test]
    fn retryable_classification() {
        let other = |code: &str, detail: &str| ConnectError::Other {
            target: "t".into(),
            detail: detail.into(),
            code: Some(SqlState::from_code(code)),
        };
        assert!(
            other(
                "57P03",
                "FATAL: the database system is starting up (SQLSTATE 57P03)"
            )
            .is_retryable()
        );
        assert!(
            other(
                "53300",
                "FATAL: sorry, too many clients already (SQLSTATE 53300)"
            )
            .is_retryable()
        );
        assert!(!other("XX000", "FATAL: something else (SQLSTATE XX000)").is_retryable());
        // The code decides, not the wording: text that merely mentions one retries nothing.
        let text_only = ConnectError::Other {
            target: "t".into(),
            detail: "FATAL: the database system is starting up (SQLSTATE 57P03)".into(),
            code: None,
        };
        assert!(!text_only.is_retryable());
        assert!(
            ConnectError::Unreachable {
                target: "t".into(),
                detail: "refused".into()
            }
            .is_retryable()
        );
        for err in [
            ConnectError::NoTarget,
            bad("--target", "x"),
            ConnectError::AuthFailed {
                target: "t".into(),
                user: "u".into(),
                detail: "d".into(),
            },
            ConnectError::Tls {
                target: "t".into(),
                detail: "d".into(),
            },
        ] {
            assert!(!err.is_retryable(), "{err}");
        }
    }
}
