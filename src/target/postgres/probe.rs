//! The foreground probe on PostgreSQL (see [`crate::probe`]): every 50 ms (10 ms while a
//! baseline is measured), on a session of its
//! own (`pacer-probe:<job>`), an autocommit UPDATE of the migration's row in pacer's heartbeat
//! table, which waits for the WAL flush as an application's commit does (unless the server
//! runs with `synchronous_commit = off`), and a point read of that row by its primary key.
//! The two round trips together are one sample. The session's `statement_timeout` is the
//! probe's timeout, so a probe stuck behind a lock on the row answers as failed after 1 s.

use std::time::Instant;

use tokio::task::JoinHandle;

use super::connect::PgTarget;
use super::session::Session;
use crate::audit::Audit;
use crate::plan::TableName;
use crate::plan::ident::quote_ident;
use crate::probe::{PROBE_REPEATS, PROBE_TIMEOUT, ProbeLog, ProbeSample};

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

/// Runs the probe every [`PROBE_EVERY`] until the handle is aborted, pushing each sample into
/// `log`. A lost session is connected again at the next tick (the failure is a sample).
pub fn spawn(
    conn: PgTarget,
    job: String,
    state_table: TableName,
    audit: Audit,
    log: ProbeLog,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let [write, read] = statements(&state_table);
        let mut session: Option<Session> = None;
        // Each probe is timed from its first statement to its last answer. (Timing it from
        // when it was due, as `pgbench -R` does, was tried: tokio's timer wakes up to a
        // millisecond late, which tripled the baseline's p99 and hid pacer's cost.)
        let mut due = Instant::now();
        loop {
            tokio::time::sleep_until(due.into()).await;
            due += log.every();
            if session.as_ref().is_some_and(|s| s.is_closed()) {
                session = None;
            }
            if session.is_none() {
                let t0 = Instant::now();
                match connect(&conn, &job, &audit).await {
                    Ok(s) => session = Some(s),
                    Err(e) => {
                        log.push(ProbeSample::failed(Instant::now(), t0.elapsed(), e));
                        continue;
                    }
                }
            }
            let s = session.as_ref().expect("connected above");
            let t0 = Instant::now();
            let once = async {
                let p = s.repeating(PROBE_REPEATS);
                p.execute(write.as_str(), &[&job]).await?;
                p.query_one(read.as_str(), &[&job]).await.map(|_| ())
            };
            let outcome = tokio::time::timeout(PROBE_TIMEOUT * 2, once).await;
            let now = Instant::now();
            // The next probe is due an interval after this one was, or now if this one ran
            // past that (its lateness is this probe's, not the next one's).
            due = due.max(now);
            let took = now.saturating_duration_since(t0);
            match outcome {
                Ok(Ok(())) => log.push(ProbeSample::answered(now, took)),
                Ok(Err(e)) => {
                    let why = super::errors::classify(&e, "the foreground probe").to_string();
                    log.push(ProbeSample::failed(now, took, why));
                }
                Err(_) => {
                    log.push(ProbeSample::failed(
                        now,
                        took,
                        "no answer from the server within 2 s",
                    ));
                    session = None;
                }
            }
        }
    })
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
