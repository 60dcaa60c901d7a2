//! Turning MySQL/MariaDB errors into what the engine reacts to, by the server's error code
//! (never by message text).
//!
//! Error 1205 means a lock wait reached its bound, for a metadata lock (DDL, bounded by
//! `lock_wait_timeout` or `WAIT n`) and a row lock (`innodb_lock_wait_timeout`) alike: the
//! statement that failed tells them apart, so the caller's `context` names which lock it was.

use mysql_async::{DriverError, Error};

use crate::target::TargetError;

/// ER_LOCK_WAIT_TIMEOUT: a metadata or row lock wait reached its bound.
pub const LOCK_WAIT_TIMEOUT: u16 = 1205;
/// ER_LOCK_DEADLOCK.
pub const DEADLOCK: u16 = 1213;
/// MariaDB ER_STATEMENT_TIMEOUT (`max_statement_time`).
pub const STATEMENT_TIMEOUT: u16 = 1969;
/// MySQL ER_QUERY_TIMEOUT (`MAX_EXECUTION_TIME`).
pub const QUERY_TIMEOUT: u16 = 3024;
/// ER_QUERY_INTERRUPTED: `KILL QUERY` (pacer's own, when a batch outlives batch_timeout).
pub const QUERY_INTERRUPTED: u16 = 1317;
/// ER_ALTER_OPERATION_NOT_SUPPORTED / _REASON: the named ALGORITHM cannot do this change.
pub const ALTER_NOT_SUPPORTED: [u16; 2] = [1845, 1846];
/// ER_DUP_ENTRY (a unique index over duplicates).
pub const DUP_ENTRY: u16 = 1062;
/// ER_TRUNCATED_WRONG_VALUE / WARN_DATA_TRUNCATED / ER_BAD_NULL_ERROR / ER_INVALID_USE_OF_NULL:
/// a value that does not fit, or a NULL where NOT NULL is asked.
pub const DATA_ERRORS: [u16; 5] = [1265, 1292, 1048, 1138, 1366];

/// The server's error code, when the server refused the statement.
pub fn code(e: &Error) -> Option<u16> {
    match e {
        Error::Server(s) => Some(s.code),
        _ => None,
    }
}

/// The server's message with its code (`Lock wait timeout exceeded … (1205)`), or the driver's.
pub fn describe(e: &Error) -> String {
    match e {
        Error::Server(s) => format!("{} (error {})", s.message, s.code),
        other => other.to_string(),
    }
}

/// Classifies a driver error; `context` says what pacer was doing (names the object and, for
/// a lock wait, which lock).
pub fn classify(e: &Error, context: &str) -> TargetError {
    let text = format!("{context}: {}", describe(e));
    match e {
        Error::Io(_) => TargetError::ConnectionLost(text),
        Error::Driver(DriverError::ConnectionClosed | DriverError::PoolDisconnected) => {
            TargetError::ConnectionLost(text)
        }
        Error::Server(s) => match s.code {
            LOCK_WAIT_TIMEOUT | DEADLOCK => TargetError::LockTimeout {
                blockers: Vec::new(),
                detail: text,
                skipped: false,
            },
            STATEMENT_TIMEOUT | QUERY_TIMEOUT | QUERY_INTERRUPTED => {
                TargetError::StatementTimeout(text)
            }
            code if connection_gone(code) => TargetError::ConnectionLost(text),
            _ => TargetError::Failed(text),
        },
        _ => TargetError::Failed(text),
    }
}

/// Codes that mean the connection or the server went away: server gone (2006), lost during a
/// query (2013), connection killed (1927, MariaDB), server shutting down (1053), idle timeout
/// (4031, MySQL), too many connections (1040) and a server still starting (1290 with
/// --skip-networking is not one; 2002/2003 are client-side connect errors).
fn connection_gone(code: u16) -> bool {
    matches!(code, 2006 | 2013 | 1927 | 1053 | 4031 | 1040 | 2002 | 2003)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mysql_async::ServerError;

    fn server(code: u16) -> Error {
        Error::Server(ServerError {
            code,
            message: "m".into(),
            state: "HY000".into(),
        })
    }

    #[test]
    fn lock_waits_statement_timeouts_and_lost_connections_are_told_apart_by_code() {
        assert!(matches!(
            classify(&server(1205), "adding column x (metadata lock)"),
            TargetError::LockTimeout { skipped: false, .. }
        ));
        assert!(matches!(
            classify(&server(1969), "batch"),
            TargetError::StatementTimeout(_)
        ));
        assert!(matches!(
            classify(&server(1317), "batch"),
            TargetError::StatementTimeout(_)
        ));
        assert!(matches!(
            classify(&server(1927), "batch"),
            TargetError::ConnectionLost(_)
        ));
        let e = classify(&server(1146), "reading");
        assert!(
            matches!(&e, TargetError::Failed(m) if m == "reading: m (error 1146)"),
            "{e}"
        );
        assert!(matches!(
            classify(&Error::Driver(DriverError::ConnectionClosed), "x"),
            TargetError::ConnectionLost(_)
        ));
    }
}
