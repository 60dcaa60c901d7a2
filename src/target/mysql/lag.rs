//! Replica lag on MySQL/MariaDB, measured with a heartbeat, not guessed.
//!
//! While a migration runs, pacer writes a heartbeat row in its state database every 200 ms
//! (`seq + 1`, `ts = NOW(6)` on the primary), on a connection of its own, as pt-heartbeat and
//! gh-ost do. A replica's lag is then read from the row it has applied: 0 when it shows the
//! primary's latest `seq`; else the primary's `NOW(6)` minus the `ts` it shows. Both times
//! come from the primary's clock (the row replicates the written value), so no clock offset
//! between the hosts enters the figure; it errs high by at most one heartbeat interval.
//! `Seconds_Behind_Master` is read beside it and shown, never trusted: it reads 0 while a
//! replica applies a long transaction, and goes backwards.
//!
//! Replicas come from the plan (`[mysql] replicas`, credentials as for the target) or, when it
//! names none, from `SHOW SLAVE HOSTS` (`SHOW REPLICAS` on MySQL) with the primary's
//! credentials. A replica that cannot be read has no lag figure: the throttle counts it over
//! the limit after `lag_grace` (fail closed).

use std::time::Duration;

use mysql_async::Value;

use super::connect::MyTarget;
use super::session::{Session, float_at, int_at, text_at};
use super::sql::q;
use crate::audit::Audit;

/// How often the heartbeat is written.
pub const HEARTBEAT_EVERY: Duration = Duration::from_millis(200);
/// How often the heartbeat statements run, in the audit log.
const HEARTBEAT_REPEATS: &str = "every 200 ms while the migration runs";
/// How often the lag is read, in the audit log.
const READ_REPEATS: &str = "at batch boundaries, at most every 100 ms, and every sample interval";

/// The heartbeat table, in pacer's state database.
pub fn heartbeat_table(state_db: &str) -> String {
    format!("{}.{}", q(state_db), q("pacer_heartbeat"))
}

/// Creates the heartbeat table and the migration's row.
pub fn create_heartbeat(state_db: &str) -> [String; 2] {
    [
        format!(
            "CREATE TABLE IF NOT EXISTS {} (job varchar(255) NOT NULL PRIMARY KEY, seq bigint NOT NULL, \
             ts datetime(6) NOT NULL) ENGINE=InnoDB",
            heartbeat_table(state_db)
        ),
        format!(
            "INSERT INTO {} (job, seq, ts) VALUES (?, 0, NOW(6)) ON DUPLICATE KEY UPDATE ts = ts",
            heartbeat_table(state_db)
        ),
    ]
}

/// Writes the heartbeat every [`HEARTBEAT_EVERY`] on `session` until dropped (the task is
/// aborted with its handle). A failed write is retried on a new connection.
pub fn spawn_heartbeat(
    target: MyTarget,
    mut session: Option<Session>,
    job: String,
    state_db: String,
    audit: Audit,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let sql = format!(
            "UPDATE {} SET seq = seq + 1, ts = NOW(6) WHERE job = ?",
            heartbeat_table(&state_db)
        );
        let mut tick = tokio::time::interval(HEARTBEAT_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if session.is_none() {
                let name = super::program_name("pacer-heartbeat", &job);
                match target.connect(&name).await {
                    Ok(c) => session = Some(Session::new(c, "heartbeat", &job, audit.clone())),
                    Err(e) => {
                        tracing::warn!("heartbeat connection failed: {e}");
                        continue;
                    }
                }
            }
            let s = session.as_mut().expect("connected above");
            if let Err(e) = s
                .rows_repeating(&sql, vec![Value::from(job.clone())], HEARTBEAT_REPEATS)
                .await
            {
                tracing::warn!("writing the heartbeat failed: {e}");
                session = None;
            }
        }
    })
}

/// One replica's reading.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// `host:port`.
    pub name: String,
    /// Seconds behind by the heartbeat (None: could not be read).
    pub lag_s: Option<f64>,
    /// `Seconds_Behind_Master` as the replica reports it (shown, not trusted).
    pub reported_s: Option<f64>,
    /// `applying`, `SQL thread stopped`, `IO thread stopped`, or why it cannot be read.
    pub state: String,
}

/// The lag from the primary's latest heartbeat `(seq, now)` and the one a replica shows.
pub fn heartbeat_lag(
    primary_seq: i64,
    primary_now: f64,
    replica: Option<(i64, f64)>,
) -> Option<f64> {
    let (seq, ts) = replica?;
    if seq >= primary_seq {
        return Some(0.0);
    }
    Some((primary_now - ts).max(0.0))
}

/// The replicas of one primary, each read on a connection of its own.
pub struct Replicas {
    base: MyTarget,
    configured: Vec<String>,
    job: String,
    state_db: String,
    audit: Audit,
    session_name: &'static str,
    list: Option<Vec<(String, MyTarget)>>,
    conns: Vec<Option<Session>>,
}

impl Replicas {
    /// The replicas of `base`'s server: `configured` URLs, else discovered on first read.
    pub fn new(
        base: MyTarget,
        configured: Vec<String>,
        job: &str,
        state_db: &str,
        audit: Audit,
        session_name: &'static str,
    ) -> Replicas {
        Replicas {
            base,
            configured,
            job: job.to_string(),
            state_db: state_db.to_string(),
            audit,
            session_name,
            list: None,
            conns: Vec::new(),
        }
    }

    /// Resolves the replica list once: the plan's URLs, else `SHOW SLAVE HOSTS` on `primary`.
    async fn list(&mut self, primary: &mut Session) -> Result<(), String> {
        if self.list.is_some() {
            return Ok(());
        }
        let mut list = Vec::new();
        if self.configured.is_empty() {
            let rows = match primary.rows("SHOW SLAVE HOSTS", vec![]).await {
                Ok(rows) => rows,
                Err(_) => primary.rows("SHOW REPLICAS", vec![]).await.map_err(|e| {
                    format!("listing the replicas: {}", super::errors::describe(&e))
                })?,
            };
            for r in &rows {
                let host = text_at(r, 1).unwrap_or_default();
                let port = int_at(r, 2) as u16;
                if host.is_empty() || port == 0 {
                    continue;
                }
                list.push((
                    format!("{host}:{port}"),
                    self.base.with_address(&host, port),
                ));
            }
        } else {
            for url in &self.configured {
                let env = |name: &str| std::env::var(name).ok();
                let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
                let t = MyTarget::resolve(Some(url), &env, home.as_deref())
                    .map_err(|e| format!("[mysql] replicas: {e}"))?;
                list.push((t.address_name(), t));
            }
        }
        self.conns = list.iter().map(|_| None).collect();
        self.list = Some(list);
        Ok(())
    }

    /// Reads every replica's lag against the primary's heartbeat (read on `primary`). Empty:
    /// no replicas. Err: the primary's heartbeat could not be read.
    pub async fn read(&mut self, primary: &mut Session) -> Result<Vec<Reading>, String> {
        self.list(primary).await?;
        let table = heartbeat_table(&self.state_db);
        let read = format!(
            "SELECT seq, UNIX_TIMESTAMP(ts), UNIX_TIMESTAMP(NOW(6)) FROM {table} WHERE job = ?"
        );
        let list = self.list.clone().unwrap_or_default();
        if list.is_empty() {
            return Ok(Vec::new());
        }
        let row = primary
            .rows_repeating(&read, vec![Value::from(self.job.clone())], READ_REPEATS)
            .await
            .map_err(|e| format!("reading the heartbeat: {}", super::errors::describe(&e)))?;
        let (primary_seq, primary_now) = row
            .first()
            .map(|r| (int_at(r, 0), float_at(r, 2).unwrap_or(0.0)))
            .ok_or_else(|| "the heartbeat row is missing on the primary".to_string())?;
        let mut out = Vec::new();
        for (i, (name, target)) in list.iter().enumerate() {
            out.push(
                self.read_one(i, name, target, &read, primary_seq, primary_now)
                    .await,
            );
        }
        Ok(out)
    }

    async fn read_one(
        &mut self,
        i: usize,
        name: &str,
        target: &MyTarget,
        read: &str,
        primary_seq: i64,
        primary_now: f64,
    ) -> Reading {
        let unreadable = |why: String| Reading {
            name: name.to_string(),
            lag_s: None,
            reported_s: None,
            state: why,
        };
        if self.conns[i].is_none() {
            let program = super::program_name("pacer-replica", &self.job);
            match tokio::time::timeout(Duration::from_secs(2), target.connect(&program)).await {
                Ok(Ok(c)) => {
                    self.conns[i] = Some(Session::new(
                        c,
                        self.session_name,
                        &self.job,
                        self.audit.clone(),
                    ))
                }
                Ok(Err(e)) => return unreadable(format!("cannot connect: {e}")),
                Err(_) => return unreadable("no answer within 2 s".into()),
            }
        }
        let session = self.conns[i].as_mut().expect("connected above");
        let job = self.job.clone();
        let result = async {
            let hb = session
                .rows_repeating(read, vec![Value::from(job)], READ_REPEATS)
                .await?;
            let status = session
                .rows_repeating("SHOW SLAVE STATUS", vec![], READ_REPEATS)
                .await
                .unwrap_or_default();
            Ok::<_, mysql_async::Error>((hb, status))
        };
        match tokio::time::timeout(Duration::from_secs(1), result).await {
            Ok(Ok((hb, status))) => {
                let applied = hb
                    .first()
                    .map(|r| (int_at(r, 0), float_at(r, 1).unwrap_or(0.0)));
                let field = |row: &mysql_async::Row, name: &str| {
                    let idx = row
                        .columns_ref()
                        .iter()
                        .position(|c| c.name_str() == name)?;
                    text_at(row, idx)
                };
                let (state, reported) = match status.first() {
                    Some(r) => {
                        let sql = field(r, "Slave_SQL_Running").unwrap_or_default();
                        let io = field(r, "Slave_IO_Running").unwrap_or_default();
                        let state = if sql != "Yes" {
                            "SQL thread stopped".to_string()
                        } else if io != "Yes" {
                            "IO thread stopped".to_string()
                        } else {
                            "applying".to_string()
                        };
                        (
                            state,
                            field(r, "Seconds_Behind_Master").and_then(|v| v.parse().ok()),
                        )
                    }
                    None => ("not a replica (no SHOW SLAVE STATUS)".into(), None),
                };
                Reading {
                    name: name.to_string(),
                    lag_s: if applied.is_none() {
                        // The heartbeat row has not reached it yet: as far behind as the row is old.
                        None
                    } else {
                        heartbeat_lag(primary_seq, primary_now, applied)
                    },
                    reported_s: reported,
                    state: if applied.is_none() {
                        format!("{state}; pacer's heartbeat has not reached it yet")
                    } else {
                        state
                    },
                }
            }
            Ok(Err(e)) => {
                self.conns[i] = None;
                unreadable(format!("cannot read: {}", super::errors::describe(&e)))
            }
            Err(_) => {
                self.conns[i] = None;
                unreadable("no answer within 1 s".into())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replica_at_the_latest_heartbeat_is_not_behind_and_one_behind_is_as_old_as_its_row() {
        assert_eq!(heartbeat_lag(10, 100.0, Some((10, 99.8))), Some(0.0));
        assert_eq!(heartbeat_lag(10, 100.0, Some((7, 97.5))), Some(2.5));
        assert_eq!(heartbeat_lag(10, 100.0, None), None);
        // A replica clock never enters: both times are the primary's.
        assert_eq!(heartbeat_lag(10, 100.0, Some((9, 100.2))), Some(0.0));
    }
}
