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
        let c = code.code();
        if c.starts_with("08") || c == "57P01" || c == "57P02" || c == "57P03" || c == "57P05" {
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
