//! One of pacer's MySQL/MariaDB connections, with every statement it sends written to the
//! audit log and tagged with a comment naming pacer and the migration (`/* pacer:<job> */`),
//! so a DBA reading the process list or the slow log sees whose statement it is.
//!
//! Statements with parameters go through the binary protocol (prepared once, then cached by
//! the driver per connection); statements without go through the text protocol, which is
//! also the only one that takes every DDL (CREATE TRIGGER … BEGIN … END).

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Error, Params, Row, Value};

use crate::audit::Audit;

/// A connection of pacer (`name`: "main", "observer", "sampler") whose statements are
/// audited and tagged.
pub struct Session {
    conn: Conn,
    name: &'static str,
    audit: Audit,
    tag: String,
}

impl Session {
    /// Wraps a connection; `job` names the migration in each statement's comment tag.
    pub fn new(conn: Conn, name: &'static str, job: &str, audit: Audit) -> Session {
        Session {
            conn,
            name,
            audit,
            tag: tag(job),
        }
    }

    /// The server's id of this connection (what `SHOW PROCESSLIST` and `KILL` use).
    pub fn id(&self) -> u32 {
        self.conn.id()
    }

    fn tagged(&self, sql: &str) -> String {
        format!("{}{sql}", self.tag)
    }

    fn log(&self, sql: &str, params: &[Value], repeats: Option<&'static str>) {
        let json: Vec<serde_json::Value> = params.iter().map(value_json).collect();
        match repeats {
            None => self.audit.statement(self.name, sql, &json),
            Some(r) => self.audit.statement_repeating(self.name, sql, &json, r),
        }
    }

    /// Runs a statement; its rows.
    pub async fn rows(&mut self, sql: &str, params: Vec<Value>) -> Result<Vec<Row>, Error> {
        self.log(sql, &params, None);
        self.send_rows(sql, params).await
    }

    /// Runs a statement that runs again and again with the same text, logged on its first
    /// use only (see [`Audit::statement_repeating`]).
    pub async fn rows_repeating(
        &mut self,
        sql: &str,
        params: Vec<Value>,
        repeats: &'static str,
    ) -> Result<Vec<Row>, Error> {
        self.log(sql, &params, Some(repeats));
        self.send_rows(sql, params).await
    }

    async fn send_rows(&mut self, sql: &str, params: Vec<Value>) -> Result<Vec<Row>, Error> {
        let text = self.tagged(sql);
        if params.is_empty() {
            self.conn.query(text).await
        } else {
            self.conn.exec(text, Params::Positional(params)).await
        }
    }

    /// Runs a statement; the rows it changed.
    pub async fn execute(&mut self, sql: &str, params: Vec<Value>) -> Result<u64, Error> {
        self.log(sql, &params, None);
        let text = self.tagged(sql);
        if params.is_empty() {
            self.conn.query_drop(text).await?;
        } else {
            self.conn
                .exec_drop(text, Params::Positional(params))
                .await?;
        }
        Ok(self.conn.affected_rows())
    }

    /// Runs one statement through the text protocol (DDL, SET, START TRANSACTION …).
    pub async fn simple(&mut self, sql: &str) -> Result<(), Error> {
        self.log(sql, &[], None);
        let text = self.tagged(sql);
        self.conn.query_drop(text).await
    }

    /// Closes the connection politely (a dropped one is closed by the server later).
    pub async fn close(self) {
        let _ = self.conn.disconnect().await;
    }
}

fn tag(job: &str) -> String {
    // A comment cannot contain its own end.
    format!("/* pacer:{} */ ", job.replace("*/", "* /"))
}

/// A driver value as JSON for the audit log.
pub fn value_json(v: &Value) -> serde_json::Value {
    match v {
        Value::NULL => serde_json::Value::Null,
        Value::Int(i) => serde_json::Value::from(*i),
        Value::UInt(u) => serde_json::Value::from(*u),
        Value::Float(f) => serde_json::Value::from(*f),
        Value::Double(f) => serde_json::Value::from(*f),
        Value::Bytes(b) => serde_json::Value::from(String::from_utf8_lossy(b).into_owned()),
        other => serde_json::Value::from(value_text(other).unwrap_or_default()),
    }
}

/// A value read back as text, the way the server prints it; None for NULL.
pub fn value_text(v: &Value) -> Option<String> {
    Some(match v {
        Value::NULL => return None,
        Value::Int(i) => i.to_string(),
        Value::UInt(u) => u.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Double(f) => f.to_string(),
        Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        Value::Date(y, mo, d, h, mi, s, us) => {
            let mut t = format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}");
            if *us > 0 {
                t.push_str(&format!(".{us:06}"));
            }
            t
        }
        Value::Time(neg, days, h, mi, s, us) => {
            let hours = u64::from(*days) * 24 + u64::from(*h);
            let mut t = format!("{}{hours:02}:{mi:02}:{s:02}", if *neg { "-" } else { "" });
            if *us > 0 {
                t.push_str(&format!(".{us:06}"));
            }
            t
        }
    })
}

/// Column `i` of a row as text (None for NULL or a missing column).
pub fn text_at(row: &Row, i: usize) -> Option<String> {
    row.as_ref(i).and_then(value_text)
}

/// Column `i` of a row as a signed number (0 for NULL; text is parsed).
pub fn int_at(row: &Row, i: usize) -> i64 {
    match row.as_ref(i) {
        Some(Value::Int(v)) => *v,
        Some(Value::UInt(v)) => i64::try_from(*v).unwrap_or(i64::MAX),
        Some(Value::Double(v)) => *v as i64,
        Some(Value::Float(v)) => *v as i64,
        Some(other) => value_text(other)
            .and_then(|t| t.trim().parse::<f64>().ok())
            .map(|f| f as i64)
            .unwrap_or(0),
        None => 0,
    }
}

/// Column `i` as a float, None for NULL.
pub fn float_at(row: &Row, i: usize) -> Option<f64> {
    match row.as_ref(i)? {
        Value::NULL => None,
        Value::Int(v) => Some(*v as f64),
        Value::UInt(v) => Some(*v as f64),
        Value::Double(v) => Some(*v),
        Value::Float(v) => Some(f64::from(*v)),
        other => value_text(other).and_then(|t| t.trim().parse().ok()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_read_back_as_the_server_prints_them() {
        assert_eq!(value_text(&Value::Int(-5)).as_deref(), Some("-5"));
        assert_eq!(
            value_text(&Value::Date(2026, 12, 3, 9, 5, 0, 0)).as_deref(),
            Some("2026-12-03 09:05:00")
        );
        assert_eq!(
            value_text(&Value::Date(2026, 1, 2, 3, 4, 5, 60)).as_deref(),
            Some("2026-01-02 03:04:05.000060")
        );
        assert_eq!(
            value_text(&Value::Time(true, 1, 2, 3, 4, 0)).as_deref(),
            Some("-26:03:04")
        );
        assert_eq!(value_text(&Value::NULL), None);
        assert_eq!(
            value_json(&Value::Bytes(b"42".to_vec())),
            serde_json::json!("42")
        );
    }

    #[test]
    fn the_tag_names_the_job_and_cannot_end_the_comment_early() {
        assert_eq!(tag("shop.orders.amount"), "/* pacer:shop.orders.amount */ ");
        assert_eq!(tag("a*/b"), "/* pacer:a* /b */ ");
    }
}
