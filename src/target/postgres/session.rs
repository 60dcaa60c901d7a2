//! One of pacer's database sessions, with every statement it sends written to the audit log.
//!
//! [`Session`] wraps a `tokio_postgres::Client` and offers the client's own method names and
//! signatures; each logs the statement (SQL text and parameters) and then sends it. The client
//! is not reachable from outside, so nothing sent on a session escapes the log. A prepared
//! statement ([`Prepared`]) keeps its SQL text and is logged at each execution with that
//! execution's parameters (so each batch's key range appears); preparing itself is not logged.

use std::sync::Arc;

use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Error, Row, Statement};

use crate::audit::Audit;

/// A database session of pacer (`name`: "main", "observer", "sampler") whose statements are
/// audited.
pub struct Session {
    client: Client,
    name: &'static str,
    audit: Audit,
}

/// A prepared statement with its SQL text.
#[derive(Clone, Debug)]
pub struct Prepared {
    statement: Statement,
    sql: Arc<str>,
}

/// What a session can run: SQL text, or a [`Prepared`] statement.
pub trait Sql: Sync {
    /// The SQL text, as logged.
    fn text(&self) -> &str;
    /// The prepared statement, when there is one.
    fn prepared(&self) -> Option<&Statement>;
}

impl Sql for str {
    fn text(&self) -> &str {
        self
    }
    fn prepared(&self) -> Option<&Statement> {
        None
    }
}

impl Sql for String {
    fn text(&self) -> &str {
        self
    }
    fn prepared(&self) -> Option<&Statement> {
        None
    }
}

impl Sql for Prepared {
    fn text(&self) -> &str {
        &self.sql
    }
    fn prepared(&self) -> Option<&Statement> {
        Some(&self.statement)
    }
}

impl Session {
    /// Wraps a connected client.
    pub fn new(client: Client, name: &'static str, audit: Audit) -> Session {
        Session {
            client,
            name,
            audit,
        }
    }

    /// Whether the connection is gone.
    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    /// This session for statements that run again and again with the same text: each is
    /// logged on its first use only, with `"repeats": repeats` (see
    /// [`Audit::statement_repeating`]).
    pub fn repeating(&self, repeats: &'static str) -> Logged<'_> {
        Logged {
            session: self,
            repeats: Some(repeats),
        }
    }

    fn logged(&self) -> Logged<'_> {
        Logged {
            session: self,
            repeats: None,
        }
    }

    /// Prepares a statement (logged when it runs, not here).
    pub async fn prepare(&self, sql: &str) -> Result<Prepared, Error> {
        let statement = self.client.prepare(sql).await?;
        Ok(Prepared {
            statement,
            sql: Arc::from(sql),
        })
    }

    /// Runs a statement; its rows.
    pub async fn query<S: Sql + ?Sized>(
        &self,
        sql: &S,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, Error> {
        self.logged().query(sql, params).await
    }

    /// Runs a statement that returns exactly one row.
    pub async fn query_one<S: Sql + ?Sized>(
        &self,
        sql: &S,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, Error> {
        self.logged().query_one(sql, params).await
    }

    /// Runs a statement; the number of rows it changed.
    pub async fn execute<S: Sql + ?Sized>(
        &self,
        sql: &S,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, Error> {
        self.logged().execute(sql, params).await
    }

    /// Runs statements separated by `;` with the simple query protocol (no parameters).
    pub async fn batch_execute(&self, sql: &str) -> Result<(), Error> {
        self.logged().batch_execute(sql).await
    }
}

/// A session whose statements are logged each time (behind [`Session`]'s own methods) or on
/// first use only (from [`Session::repeating`]).
pub struct Logged<'a> {
    session: &'a Session,
    repeats: Option<&'static str>,
}

impl Logged<'_> {
    fn log(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) {
        let s = self.session;
        let params = params_json(params);
        match self.repeats {
            None => s.audit.statement(s.name, sql, &params),
            Some(r) => s.audit.statement_repeating(s.name, sql, &params, r),
        }
    }

    /// [`Session::query`].
    pub async fn query<S: Sql + ?Sized>(
        &self,
        sql: &S,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, Error> {
        self.log(sql.text(), params);
        let client = &self.session.client;
        match sql.prepared() {
            Some(st) => client.query(st, params).await,
            None => client.query(sql.text(), params).await,
        }
    }

    /// [`Session::query_one`].
    pub async fn query_one<S: Sql + ?Sized>(
        &self,
        sql: &S,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, Error> {
        self.log(sql.text(), params);
        let client = &self.session.client;
        match sql.prepared() {
            Some(st) => client.query_one(st, params).await,
            None => client.query_one(sql.text(), params).await,
        }
    }

    /// [`Session::query_opt`].
    pub async fn query_opt<S: Sql + ?Sized>(
        &self,
        sql: &S,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, Error> {
        self.log(sql.text(), params);
        let client = &self.session.client;
        match sql.prepared() {
            Some(st) => client.query_opt(st, params).await,
            None => client.query_opt(sql.text(), params).await,
        }
    }

    /// [`Session::execute`].
    pub async fn execute<S: Sql + ?Sized>(
        &self,
        sql: &S,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, Error> {
        self.log(sql.text(), params);
        let client = &self.session.client;
        match sql.prepared() {
            Some(st) => client.execute(st, params).await,
            None => client.execute(sql.text(), params).await,
        }
    }

    /// [`Session::batch_execute`].
    pub async fn batch_execute(&self, sql: &str) -> Result<(), Error> {
        self.log(sql, &[]);
        self.session.client.batch_execute(sql).await
    }
}

/// tokio-postgres parameters as JSON for the audit log. `ToSql` shows a value only through
/// its Debug text, so that is read: the JSON value it spells when it is one (`"1000"`, `4999`,
/// `["7"]`), `Some(x)` as `x`, `None` as null, anything else as its Debug text.
fn params_json(params: &[&(dyn ToSql + Sync)]) -> Vec<serde_json::Value> {
    params
        .iter()
        .map(|p| param_value(&format!("{p:?}")))
        .collect()
}

/// A parameter's Debug text as JSON: `"a"` → "a", `5` → 5, `["1", "2"]` → ["1","2"],
/// `Some(x)` → x, `None` → null; what is no JSON stays its Debug text.
fn param_value(debug: &str) -> serde_json::Value {
    let mut text = debug;
    while let Some(inner) = text.strip_prefix("Some(").and_then(|t| t.strip_suffix(')')) {
        text = inner;
    }
    if text == "None" {
        return serde_json::Value::Null;
    }
    serde_json::from_str(text).unwrap_or_else(|_| serde_json::Value::from(text))
}

#[cfg(test)]
mod audit_params {
    use super::*;
    use serde_json::Value;

    #[test]
    fn driver_parameters_read_as_the_json_values_they_are() {
        let lo = "1000".to_string();
        let hi = Some("2000".to_string());
        let none: Option<String> = None;
        let range = vec!["7".to_string()];
        let offset = 4999i64;
        assert_eq!(
            params_json(&[&lo, &hi, &none, &range, &offset]),
            vec![
                Value::from("1000"),
                Value::from("2000"),
                Value::Null,
                serde_json::json!(["7"]),
                Value::from(4999)
            ]
        );
    }

    #[test]
    fn params_render_as_their_json_values() {
        assert_eq!(param_value("\"a \\\"b\\\"\""), Value::from("a \"b\""));
        assert_eq!(param_value("Some(Some(3))"), Value::from(3));
        assert_eq!(param_value("None"), Value::Null);
        assert_eq!(param_value("true"), Value::from(true));
        assert_eq!(param_value("'x'"), Value::from("'x'"));
        assert_eq!(
            param_value("Json(Object {})"),
            Value::from("Json(Object {})")
        );
    }
}
