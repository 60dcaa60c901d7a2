//! Turning PostgreSQL errors into what the engine reacts to.

use tokio_postgres::error::SqlState;

use crate::target::TargetError;

/// Classifies a driver error; `context` says what pacer was doing (names the object).
pub fn classify(e: &tokio_postgres::Error, context: &str) -> TargetError {
    if e.is_closed() {
        return TargetError::ConnectionLost(format!("{context}: {e}"));
    }
    if let Some(db) = e.as_db_error() {
        let code = db.code();
        let text = describe_db_error(db);
        if *code == SqlState::LOCK_NOT_AVAILABLE
            || *code == SqlState::T_R_DEADLOCK_DETECTED
            || *code == SqlState::T_R_SERIALIZATION_FAILURE
        {
            return TargetError::LockTimeout {
                blockers: Vec::new(),
                detail: format!("{context}: {text}"),
                skipped: false,
            };
        }
        if *code == SqlState::QUERY_CANCELED {
            return TargetError::StatementTimeout(format!("{context}: {text}"));
        }
        if is_connection_gone(code) {
            return TargetError::ConnectionLost(format!("{context}: {text}"));
        }
        return TargetError::Failed(format!("{context}: {text}"));
    }
    // No server error: an I/O error or a protocol problem on the socket.
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = source {
        if s.is::<std::io::Error>() {
            return TargetError::ConnectionLost(format!("{context}: {e}"));
        }
        source = s.source();
    }
    TargetError::Failed(format!("{context}: {e}"))
}

/// Class 08 (connection exception), or the server ending the session: administrator or crash
/// shutdown, not accepting connections now, idle session timeout.
fn is_connection_gone(code: &SqlState) -> bool {
    // The class is the SQLSTATE's first two characters (SQL standard, PostgreSQL Appendix A).
    code.code().starts_with("08")
        || [
            SqlState::ADMIN_SHUTDOWN,
            SqlState::CRASH_SHUTDOWN,
            SqlState::CANNOT_CONNECT_NOW,
            SqlState::IDLE_SESSION_TIMEOUT,
        ]
        .contains(code)
}

/// A failed statement: the error the engine sees, and the server's SQLSTATE for the callers
/// that give a violation its own advice (a CHECK that fails to validate, duplicates under a new
/// unique index).
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct StatementError {
    /// What the engine reacts to.
    pub error: TargetError,
    /// The server's SQLSTATE, when the server refused the statement.
    pub code: Option<SqlState>,
}

impl StatementError {
    /// Classifies a driver error as [`classify`] does, keeping the SQLSTATE.
    pub fn classify(e: &tokio_postgres::Error, context: &str) -> StatementError {
        StatementError {
            error: classify(e, context),
            code: e.code().cloned(),
        }
    }

    /// The message of a plain failure whose SQLSTATE is `code`; None for any other error.
    pub fn failed_with(&self, code: &SqlState) -> Option<&str> {
        match (&self.error, &self.code) {
            (TargetError::Failed(message), Some(c)) if c == code => Some(message),
            _ => None,
        }
    }
}

impl From<TargetError> for StatementError {
    fn from(error: TargetError) -> StatementError {
        StatementError { error, code: None }
    }
}

impl From<StatementError> for TargetError {
    fn from(e: StatementError) -> TargetError {
        e.error
    }
}

/// The server's message with its detail and hint, on one line.
pub fn describe_db_error(db: &tokio_postgres::error::DbError) -> String {
    let mut text = format!("{} (SQLSTATE {})", db.message(), db.code().code());
    if let Some(detail) = db.detail() {
        text.push_str(&format!("; detail: {}", detail.trim_end_matches('.')));
    }
    if let Some(hint) = db.hint() {
        text.push_str(&format!("; hint: {}", hint.trim_end_matches('.')));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_ended_by_the_server_count_as_a_lost_connection() {
        for code in [
            SqlState::CONNECTION_FAILURE,
            SqlState::PROTOCOL_VIOLATION,
            SqlState::ADMIN_SHUTDOWN,
            SqlState::CRASH_SHUTDOWN,
            SqlState::CANNOT_CONNECT_NOW,
            SqlState::IDLE_SESSION_TIMEOUT,
        ] {
            assert!(is_connection_gone(&code), "{code:?}");
        }
        for code in [
            SqlState::CHECK_VIOLATION,
            SqlState::UNIQUE_VIOLATION,
            SqlState::QUERY_CANCELED,
            SqlState::TOO_MANY_CONNECTIONS,
        ] {
            assert!(!is_connection_gone(&code), "{code:?}");
        }
    }

    #[test]
    fn a_statement_error_answers_only_for_its_own_sqlstate() {
        let check = StatementError {
            error: TargetError::Failed("validating: violated (SQLSTATE 23514)".into()),
            code: Some(SqlState::CHECK_VIOLATION),
        };
        assert_eq!(
            check.failed_with(&SqlState::CHECK_VIOLATION),
            Some("validating: violated (SQLSTATE 23514)")
        );
        assert_eq!(check.failed_with(&SqlState::UNIQUE_VIOLATION), None);
        // The wording alone decides nothing: a message that mentions 23505 is not a violation.
        let text_only = StatementError::from(TargetError::Failed("mentions 23505".into()));
        assert_eq!(text_only.failed_with(&SqlState::UNIQUE_VIOLATION), None);
        let lock = StatementError {
            error: TargetError::StatementTimeout("x".into()),
            code: Some(SqlState::UNIQUE_VIOLATION),
        };
        assert_eq!(lock.failed_with(&SqlState::UNIQUE_VIOLATION), None);
    }
}
