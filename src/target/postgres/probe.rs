//! The foreground probe on PostgreSQL (see [`crate::probe`]): every 50 ms (10 ms while a
//! baseline is measured), on a session of its
//! own (`pacer-probe:<job>`), an autocommit UPDATE of the migration's row in pacer's heartbeat
//! table, which waits for the WAL flush as an application's commit does (unless the server
//! runs with `synchronous_commit = off`), and a point read of that row by its primary key.
//! The two round trips together are one sample. The session's `statement_timeout` is the
//! probe's timeout, so a probe stuck behind a lock on the row answers as failed after 1 s.

use tokio::task::JoinHandle;

use super::connect::PgTarget;
use super::session::Session;
use crate::audit::Audit;
use crate::plan::TableName;
use crate::plan::ident::quote_ident;
use crate::probe::{PROBE_REPEATS, PROBE_TIMEOUT, ProbeFailure, ProbeLog, Prober};

/// pacer's heartbeat table, beside its state table.
pub fn heartbeat_table(state_table: &TableName) -> String {
    format!(
        "{}.{}",
        quote_ident(state_table.schema.as_deref().unwrap_or("public")),
        quote_ident("pacer_heartbeat")
    )
}

/// Creates the heartbeat table and the migration's row ($1: the job).
pub fn create_heartbeat(state_table: &TableName) -> [String; 2] {
    let table = heartbeat_table(state_table);
    [
        format!(
            "CREATE TABLE IF NOT EXISTS {table} (job text PRIMARY KEY, seq bigint NOT NULL, \
             ts timestamptz NOT NULL)"
        ),
        format!(
            "INSERT INTO {table} (job, seq, ts) VALUES ($1::text, 0, now()) ON CONFLICT (job) DO NOTHING"
        ),
    ]
}

/// The probe's two statements ($1: the job).
fn statements(state_table: &TableName) -> [String; 2] {
    let table = heartbeat_table(state_table);
    [
        format!("UPDATE {table} SET seq = seq + 1, ts = now() WHERE job = $1::text"),
        format!("SELECT seq FROM {table} WHERE job = $1::text"),
    ]
}

/// Runs the probe until the handle is aborted, pushing each sample into `log` (see
/// [`crate::probe::spawn`]).
pub fn spawn(
    conn: PgTarget,
    job: String,
    state_table: TableName,
    audit: Audit,
    log: ProbeLog,
) -> JoinHandle<()> {
    let [write, read] = statements(&state_table);
    crate::probe::spawn(
        PgProbe {
            conn,
            job,
            audit,
            write,
            read,
            session: None,
        },
        log,
    )
}

/// The probe's session and statements.
struct PgProbe {
    conn: PgTarget,
    job: String,
    audit: Audit,
    write: String,
    read: String,
    session: Option<Session>,
}

impl Prober for PgProbe {
    fn connected(&self) -> bool {
        self.session.as_ref().is_some_and(|s| !s.is_closed())
    }

    async fn connect(&mut self) -> Result<(), String> {
        self.session = Some(connect(&self.conn, &self.job, &self.audit).await?);
        Ok(())
    }

    fn disconnect(&mut self) {
        self.session = None;
    }

    async fn probe(&mut self) -> Result<(), ProbeFailure> {
        let s = self.session.as_ref().ok_or_else(|| ProbeFailure {
            why: "not connected".into(),
            lost: true,
        })?;
        let p = s.repeating(PROBE_REPEATS);
        let result = async {
            p.execute(self.write.as_str(), &[&self.job]).await?;
            p.query_one(self.read.as_str(), &[&self.job])
                .await
                .map(|_| ())
        }
        .await;
        result.map_err(|e| ProbeFailure {
            why: super::errors::classify(&e, "the foreground probe").to_string(),
            lost: s.is_closed(),
        })
    }
}

async fn connect(conn: &PgTarget, job: &str, audit: &Audit) -> Result<Session, String> {
    let client = conn
        .connect(&super::application_name("pacer-probe", job))
        .await
        .map_err(|e| format!("connecting the foreground probe: {e}"))?;
    let s = Session::new(client, "probe", audit.clone());
    s.batch_execute(&format!(
        "SET statement_timeout = '{}ms'; SET lock_timeout = '{}ms'",
        PROBE_TIMEOUT.as_millis(),
        PROBE_TIMEOUT.as_millis()
    ))
    .await
    .map_err(|e| format!("setting up the foreground probe: {e}"))?;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_heartbeat_table_sits_beside_the_state_table() {
        let t = TableName::parse("ops.pacer_state").unwrap();
        assert_eq!(heartbeat_table(&t), r#""ops"."pacer_heartbeat""#);
        let [w, r] = statements(&t);
        assert_eq!(
            w,
            r#"UPDATE "ops"."pacer_heartbeat" SET seq = seq + 1, ts = now() WHERE job = $1::text"#
        );
        assert_eq!(
            r,
            r#"SELECT seq FROM "ops"."pacer_heartbeat" WHERE job = $1::text"#
        );
    }
}
