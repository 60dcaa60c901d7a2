//! Replica lag on MySQL/MariaDB, measured with a heartbeat, not guessed.
//!
//! While a migration runs, pacer writes a heartbeat row in its state database every 50 ms
//! (`seq + 1`, `ts = NOW(6)` on the primary), on a connection of its own, as pt-heartbeat and
//! gh-ost do. The same writes, with a point read of the row after each, are the foreground
//! probe ([`crate::probe`]): each pair's latency is a sample. A replica's lag is then read from the row it has applied: 0 when it shows the
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
//!
//! The heartbeat says how far behind a replica is now; the forecast says how far behind it will
//! be once it has applied what the primary has already written, which is what a throttle must
//! stop on: the backlog in bytes of the primary's binary log (its end, less where the replica
//! has executed it, in the primary's coordinates) over the replica's execution rate (bytes/s,
//! measured from one move of its position to the next while it had a backlog, so neither an
//! idle replica nor one in the middle of a big transaction looks slow). Bytes, not GTID transactions: a heartbeat and a 5,000-row batch are one transaction
//! each, and a rate in transactions measured while the replica applied heartbeats says nothing
//! of how long the batches behind them take (the forecast ran low by half before this was
//! changed; BENCHMARKS.md). The GTID backlog is the fallback where the positions cannot be
//! matched.

use std::time::Duration;

use mysql_async::Value;

use super::connect::MyTarget;
use super::session::{Session, float_at, int_at, text_at};
use super::sql::q;
use crate::audit::Audit;
use crate::probe::{PROBE_REPEATS, PROBE_TIMEOUT, ProbeFailure, ProbeLog, Prober};

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

/// Writes the heartbeat every [`crate::probe::PROBE_EVERY`] (10 ms while the guard measures a
/// baseline) and reads it back, on a connection of its own, until the handle is aborted; each
/// write-and-read is a foreground probe sample pushed into `log` (see [`crate::probe::spawn`]).
pub fn spawn_heartbeat(
    target: MyTarget,
    job: String,
    state_db: String,
    audit: Audit,
    log: ProbeLog,
) -> tokio::task::JoinHandle<()> {
    let table = heartbeat_table(&state_db);
    crate::probe::spawn(
        Heartbeat {
            target,
            audit,
            write: format!("UPDATE {table} SET seq = seq + 1, ts = NOW(6) WHERE job = ?"),
            read: format!("SELECT seq FROM {table} WHERE job = ?"),
            job,
            session: None,
        },
        log,
    )
}

/// The heartbeat's connection and statements.
struct Heartbeat {
    target: MyTarget,
    job: String,
    audit: Audit,
    write: String,
    read: String,
    session: Option<Session>,
}

impl Prober for Heartbeat {
    fn connected(&self) -> bool {
        self.session.is_some()
    }

    async fn connect(&mut self) -> Result<(), String> {
        self.session = Some(connect_probe(&self.target, &self.job, &self.audit).await?);
        Ok(())
    }

    fn disconnect(&mut self) {
        self.session = None;
    }

    async fn probe(&mut self) -> Result<(), ProbeFailure> {
        let s = self.session.as_mut().ok_or_else(|| ProbeFailure {
            why: "not connected".into(),
            lost: true,
        })?;
        let job = || vec![Value::from(self.job.clone())];
        let result = async {
            s.rows_repeating(&self.write, job(), PROBE_REPEATS).await?;
            s.rows_repeating(&self.read, job(), PROBE_REPEATS).await
        }
        .await;
        result.map(|_| ()).map_err(|e| ProbeFailure {
            why: super::errors::describe(&e),
            lost: matches!(e, mysql_async::Error::Io(_) | mysql_async::Error::Driver(_)),
        })
    }
}

/// The heartbeat's connection: row-lock waits end after the probe's timeout.
async fn connect_probe(target: &MyTarget, job: &str, audit: &Audit) -> Result<Session, String> {
    let name = super::program_name("pacer-heartbeat", job);
    let c = target
        .connect(&name)
        .await
        .map_err(|e| format!("connecting the heartbeat: {e}"))?;
    let mut s = Session::new(c, "heartbeat", job, audit.clone());
    s.simple(&format!(
        "SET SESSION innodb_lock_wait_timeout = {}",
        PROBE_TIMEOUT.as_secs().max(1)
    ))
    .await
    .map_err(|e| format!("setting up the heartbeat: {}", super::errors::describe(&e)))?;
    Ok(s)
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
    /// `applying`, `SQL thread stopped`, `IO thread stopped`, or why it cannot be read; with the
    /// GTID backlog when there is one.
    pub state: String,
    /// Whether `lag_s` is the forecast from the GTID backlog (larger than the heartbeat's).
    pub forecast: bool,
    /// It has a backlog but no apply rate yet: the forecast is blind (read it again soon).
    pub warming: bool,
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

/// Transactions in a GTID list (`0-1-1234,1-2-55`), per replication domain: the highest
/// sequence number of each domain (MariaDB's format; MySQL's `uuid:1-1234` sets are not read).
pub fn gtid_seqs(list: &str) -> std::collections::BTreeMap<u32, u64> {
    let mut out = std::collections::BTreeMap::new();
    for gtid in list.split(',').map(str::trim).filter(|g| !g.is_empty()) {
        let mut parts = gtid.split('-');
        if let (Some(d), Some(_server), Some(seq)) = (parts.next(), parts.next(), parts.next())
            && let (Ok(d), Ok(seq)) = (d.parse::<u32>(), seq.parse::<u64>())
        {
            let e = out.entry(d).or_insert(0);
            *e = (*e).max(seq);
        }
    }
    out
}

/// Transactions a replica has still to apply, per domain it receives: the newest of what the
/// primary has written (`primary`, its `gtid_binlog_pos`, when known) and what the replica has
/// received (`received`, its `Gtid_IO_Pos`), less what it has applied (`applied`). Counting
/// from the primary includes the transactions still in transit, which a replica whose I/O
/// thread falls behind has not received yet; domains the replica does not receive (a
/// `DO_DOMAIN_IDS` filter, another source's) are left out.
pub fn gtid_backlog_from(primary: Option<&str>, received: &str, applied: &str) -> u64 {
    let p = primary.map(gtid_seqs).unwrap_or_default();
    let r = gtid_seqs(received);
    let a = gtid_seqs(applied);
    r.iter()
        .map(|(d, seq)| {
            let top = (*seq).max(p.get(d).copied().unwrap_or(0));
            top.saturating_sub(a.get(d).copied().unwrap_or(0))
        })
        .sum()
}

/// A replica's apply rate (transactions or bytes per second), measured from one move of its
/// applied position to the next while it had a backlog: a replica applies a transaction at a
/// time, so on a slow one a big batch leaves the position still for longer than any fixed
/// window, and a window that saw no move says nothing of its speed (measured over fixed 250 ms
/// windows, the rate fell toward zero between moves and the forecast grew to minutes:
/// BENCHMARKS.md). Time while it had nothing to apply is left out.
#[derive(Debug, Clone, Default)]
pub struct ApplyRate {
    /// The backlog below which the replica counts as idle: the heartbeats alone keep a slow
    /// replica a few hundred bytes behind all the time, and a rate taken over that trickle
    /// says nothing of how fast it applies a batch.
    busy_from: u64,
    /// `(time, segment, applied)` where the current measurement began: the last move, or the
    /// moment a backlog appeared.
    since: Option<(f64, u64, u64)>,
    /// The recent busy spans, `(seconds, applied in them)`, newest last, [`RATE_WINDOW_S`] at
    /// most: the rate is their sum of work over their sum of time, so a small transaction
    /// applied quickly ahead of a big one weighs as little as it is.
    spans: std::collections::VecDeque<(f64, u64)>,
    rate: Option<f64>,
    /// Average time between moves while busy (seconds).
    gap: Option<f64>,
}

/// How much busy time the rate is taken over.
pub const RATE_WINDOW_S: f64 = 3.0;

/// Time with a backlog and no move after which a replica counts as stalled, at least; a
/// replica whose moves are further apart (big transactions) gets three of its usual gaps.
const STALL_S: f64 = 0.5;
/// Before any rate is known, a replica that has not moved for this long counts as stalled.
const FIRST_STALL_S: f64 = 2.0;
/// Moves closer together than this are measured together (too short to time well).
const MIN_SPAN_S: f64 = 0.1;

/// The busy threshold of a rate in bytes (a few heartbeats' worth of binlog).
pub const BUSY_BYTES: u64 = 64 * 1024;
/// The busy threshold of a rate in transactions.
pub const BUSY_TRANSACTIONS: u64 = 3;

impl ApplyRate {
    /// A rate that counts the replica as idle while its backlog is below `busy_from`.
    pub fn new(busy_from: u64) -> ApplyRate {
        ApplyRate {
            busy_from,
            ..ApplyRate::default()
        }
    }

    /// Takes a reading at `now` (seconds): `applied` so far within `segment` (a binlog file's
    /// number; a count restarts in a new one), `backlog` waiting. Returns the forecast lag:
    /// backlog ÷ rate; infinite when applying has stalled with a backlog; None while there is
    /// no rate yet or no backlog.
    pub fn observe(&mut self, now: f64, segment: u64, applied: u64, backlog: u64) -> Option<f64> {
        match self.since {
            _ if backlog < self.busy_from.max(1) => {
                // Idle (or caught up, or only the heartbeats' trickle): the next measurement
                // starts here.
                self.since = Some((now, segment, applied));
                return if backlog == 0 {
                    None
                } else {
                    self.rate.filter(|r| *r > 0.0).map(|r| backlog as f64 / r)
                };
            }
            None => self.since = Some((now, segment, applied)),
            Some((_, seg0, _)) if seg0 != segment => {
                // A new file: the count restarted; it moved, but by an unknown amount.
                self.since = Some((now, segment, applied));
            }
            Some((t0, _, a0)) if applied > a0 && now - t0 >= MIN_SPAN_S => {
                let span = now - t0;
                self.spans.push_back((span, applied - a0));
                while self.spans.len() > 1
                    && self.spans.iter().map(|(t, _)| t).sum::<f64>() - self.spans[0].0
                        >= RATE_WINDOW_S
                {
                    self.spans.pop_front();
                }
                let (time, work) = self
                    .spans
                    .iter()
                    .fold((0.0, 0u64), |(t, w), (dt, dw)| (t + dt, w + dw));
                self.rate = Some(work as f64 / time);
                self.gap = Some(self.gap.map_or(span, |g| 0.5 * g + 0.5 * span));
                self.since = Some((now, segment, applied));
            }
            Some(_) => {}
        }
        let (t0, _, _) = self.since.expect("set above");
        let still = now - t0;
        let stalled = match self.gap {
            Some(gap) => still >= STALL_S.max(3.0 * gap),
            None => still >= FIRST_STALL_S,
        };
        if stalled {
            return Some(f64::INFINITY);
        }
        match self.rate {
            Some(r) if r > 0.0 => Some(backlog as f64 / r),
            _ => None,
        }
    }

    /// Whether a rate has been measured yet.
    pub fn has_rate(&self) -> bool {
        self.rate.is_some()
    }
}

/// A byte backlog that does not drain while the replica shows the primary's latest heartbeat
/// is not a backlog: the two positions are not comparable, and a forecast from them would hold
/// pacer for nothing. Seen in the benchmark on a replica slowed by SIGSTOP/SIGCONT: its executed
/// position trailed the primary's end by a constant ~540 KiB for minutes while its heartbeat
/// was current, and the forecast grew as the measured rate fell toward zero (BENCHMARKS.md).
/// After [`STANDING_S`] of that, the byte forecast is set aside for the GTID backlog and the
/// heartbeat, until the heartbeat falls behind again.
#[derive(Debug, Clone, Default)]
pub struct StandingGap {
    since: Option<(f64, u64)>,
}

/// How long a backlog must stand still, with the heartbeat current, to be set aside.
pub const STANDING_S: f64 = 2.0;

impl StandingGap {
    /// Takes a reading at `now`: the byte `backlog`, and whether the replica shows the
    /// primary's latest heartbeat. True when the backlog is to be set aside.
    pub fn observe(&mut self, now: f64, backlog: u64, current: bool) -> bool {
        if !current || backlog == 0 {
            self.since = None;
            return false;
        }
        match self.since {
            // Within a tenth (or 4 KiB) of where it stood: standing still.
            Some((t0, b0)) if backlog.abs_diff(b0) <= (b0 / 10).max(4096) => now - t0 >= STANDING_S,
            _ => {
                self.since = Some((now, backlog));
                false
            }
        }
    }
}

/// A position in a binary log: its file and the offset in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinlogPos {
    pub file: String,
    pub pos: u64,
}

impl BinlogPos {
    /// The file's number (`mysql-bin.000042` → 42).
    pub fn number(&self) -> Option<u64> {
        self.file.rsplit_once('.')?.1.parse().ok()
    }
}

/// Bytes of the primary's binary log between what a replica has executed and what the primary
/// has written. Across files it needs the sizes of the files in between (`sizes`, from `SHOW
/// BINARY LOGS`); None when they are not known or the two are not of the same log.
pub fn binlog_backlog(
    written: &BinlogPos,
    executed: &BinlogPos,
    sizes: &[(String, u64)],
) -> Option<u64> {
    if written.file == executed.file {
        return Some(written.pos.saturating_sub(executed.pos));
    }
    let base = |f: &str| f.rsplit_once('.').map(|(b, _)| b.to_string());
    if base(&written.file)? != base(&executed.file)? {
        return None;
    }
    let (w, e) = (written.number()?, executed.number()?);
    if e > w {
        return Some(0); // read the primary first: the replica may have moved on since
    }
    let size = |n: u64| {
        sizes
            .iter()
            .find(|(f, _)| {
                BinlogPos {
                    file: f.clone(),
                    pos: 0,
                }
                .number()
                    == Some(n)
            })
            .map(|(_, s)| *s)
    };
    let mut total = size(e)?.saturating_sub(executed.pos);
    for n in e + 1..w {
        total += size(n)?;
    }
    Some(total + written.pos)
}

/// The position in the primary's binary log up to which a replica has executed, from its
/// replication connections: the one reading `primary_file`'s log (multi-source: another
/// source's log has another name or another server's files).
pub fn executed_position(rows: &[Fields], primary_file: &str) -> Option<BinlogPos> {
    let base = |f: &str| f.rsplit_once('.').map(|(b, _)| b.to_string());
    let want = base(primary_file)?;
    let get = |r: &Fields, names: &[&str]| names.iter().find_map(|n| r.get(*n).cloned());
    let mut found = rows.iter().filter_map(|r| {
        let file = get(r, &["Relay_Master_Log_File", "Relay_Source_Log_File"])?;
        let pos = get(r, &["Exec_Master_Log_Pos", "Exec_Source_Log_Pos"])?
            .parse()
            .ok()?;
        (base(&file)? == want).then_some(BinlogPos { file, pos })
    });
    let first = found.next()?;
    // Two connections reading logs of the same name: which is this primary's is not known.
    found.next().is_none().then_some(first)
}

/// One row of `SHOW … STATUS`, by column name.
pub type Fields = std::collections::BTreeMap<String, String>;

fn fields(row: &mysql_async::Row) -> Fields {
    row.columns_ref()
        .iter()
        .enumerate()
        .filter_map(|(i, c)| Some((c.name_str().into_owned(), text_at(row, i)?)))
        .collect()
}

/// A replica's state from its replication connections (MariaDB `SHOW ALL SLAVES STATUS`, one
/// row per source; MySQL `SHOW REPLICA STATUS`, one per channel, `Replica_*`/`*_Source` names):
/// the worst thread state (naming the connection when there are several), the largest
/// `Seconds_Behind_Master`, and the received GTID position.
pub fn replication_state(rows: &[Fields]) -> (String, Option<f64>, Option<String>) {
    if rows.is_empty() {
        return (
            "not a replica (no replication connection)".into(),
            None,
            None,
        );
    }
    let get = |r: &Fields, names: &[&str]| names.iter().find_map(|n| r.get(*n).cloned());
    let mut states = Vec::new();
    let mut reported: Option<f64> = None;
    let mut received: Option<String> = None;
    for r in rows {
        let conn = get(r, &["Connection_name", "Channel_Name"]).unwrap_or_default();
        let named = |what: &str| {
            if rows.len() > 1 {
                format!(
                    "{what} ({})",
                    if conn.is_empty() { "default" } else { &conn }
                )
            } else {
                what.to_string()
            }
        };
        let sql = get(r, &["Slave_SQL_Running", "Replica_SQL_Running"]).unwrap_or_default();
        let io = get(r, &["Slave_IO_Running", "Replica_IO_Running"]).unwrap_or_default();
        if sql != "Yes" {
            states.push(named("SQL thread stopped"));
        } else if io != "Yes" {
            states.push(named("IO thread stopped"));
        }
        if let Some(v) = get(r, &["Seconds_Behind_Master", "Seconds_Behind_Source"])
            .and_then(|v| v.parse::<f64>().ok())
        {
            reported = Some(reported.map_or(v, |o| o.max(v)));
        }
        if received.is_none() {
            received = get(r, &["Gtid_IO_Pos"]).filter(|g| !g.is_empty());
        }
    }
    let state = if states.is_empty() {
        "applying".to_string()
    } else {
        states.join(", ")
    };
    (state, reported, received)
}

/// The primary's side of one reading: its latest heartbeat and its clock, and the GTID position
/// it has written (when it has one pacer reads).
#[derive(Clone, Copy)]
struct Primary<'a> {
    seq: i64,
    now: f64,
    written: Option<&'a str>,
    binlog_end: Option<&'a BinlogPos>,
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
    /// Each replica's apply rate in transactions (GTID backlog) and in bytes (binlog backlog).
    rates: Vec<ApplyRate>,
    byte_rates: Vec<ApplyRate>,
    standing: Vec<StandingGap>,
    /// Whether the primary has `@@gtid_binlog_pos` (MariaDB): None until first asked.
    primary_gtid: Option<bool>,
    /// Sizes of the primary's binary log files (`SHOW BINARY LOGS`), read when a replica is
    /// behind by more than the current file.
    binlog_sizes: Vec<(String, u64)>,
    need_sizes: bool,
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
            rates: Vec::new(),
            byte_rates: Vec::new(),
            standing: Vec::new(),
            primary_gtid: None,
            binlog_sizes: Vec::new(),
            need_sizes: false,
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
        self.rates = list
            .iter()
            .map(|_| ApplyRate::new(BUSY_TRANSACTIONS))
            .collect();
        self.byte_rates = list.iter().map(|_| ApplyRate::new(BUSY_BYTES)).collect();
        self.standing = list.iter().map(|_| StandingGap::default()).collect();
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
        // What the primary has written, read before the replicas so that it is never ahead of
        // what they are compared with (MariaDB; MySQL's GTID sets are not read).
        let mut written = None;
        if self.primary_gtid != Some(false) {
            match primary
                .rows_repeating("SELECT @@GLOBAL.gtid_binlog_pos", vec![], READ_REPEATS)
                .await
            {
                Ok(rows) => {
                    self.primary_gtid = Some(true);
                    written = rows.first().and_then(|r| text_at(r, 0));
                }
                Err(_) => self.primary_gtid = Some(false),
            }
        }
        // Where the primary's binary log ends: the replicas' backlog in bytes is counted to it.
        let status = match primary
            .rows_repeating("SHOW MASTER STATUS", vec![], READ_REPEATS)
            .await
        {
            Ok(rows) => Some(rows),
            Err(_) => primary
                .rows_repeating("SHOW BINARY LOG STATUS", vec![], READ_REPEATS)
                .await
                .ok(),
        };
        let binlog_end = status.and_then(|rows| {
            let r = rows.first()?;
            Some(BinlogPos {
                file: text_at(r, 0)?,
                pos: int_at(r, 1).max(0) as u64,
            })
        });
        if std::mem::take(&mut self.need_sizes)
            && let Ok(rows) = primary
                .rows_repeating("SHOW BINARY LOGS", vec![], READ_REPEATS)
                .await
        {
            self.binlog_sizes = rows
                .iter()
                .filter_map(|r| Some((text_at(r, 0)?, int_at(r, 1).max(0) as u64)))
                .collect();
        }
        let mut out = Vec::new();
        for (i, (name, target)) in list.iter().enumerate() {
            let primary = Primary {
                seq: primary_seq,
                now: primary_now,
                written: written.as_deref(),
                binlog_end: binlog_end.as_ref(),
            };
            out.push(self.read_one(i, name, target, &read, primary).await);
        }
        Ok(out)
    }

    async fn read_one(
        &mut self,
        i: usize,
        name: &str,
        target: &MyTarget,
        read: &str,
        primary: Primary<'_>,
    ) -> Reading {
        let Primary {
            seq: primary_seq,
            now: primary_now,
            written,
            binlog_end,
        } = primary;
        let unreadable = |why: String| Reading {
            name: name.to_string(),
            lag_s: None,
            reported_s: None,
            state: why,
            forecast: false,
            warming: false,
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
            // Every replication connection (MariaDB multi-source), else the one (MySQL:
            // every channel).
            let status = match session
                .rows_repeating("SHOW ALL SLAVES STATUS", vec![], READ_REPEATS)
                .await
            {
                Ok(rows) => rows,
                Err(_) => session
                    .rows_repeating("SHOW REPLICA STATUS", vec![], READ_REPEATS)
                    .await
                    .unwrap_or_default(),
            };
            let status: Vec<Fields> = status.iter().map(fields).collect();
            let applied = session
                .rows_repeating("SELECT @@GLOBAL.gtid_slave_pos", vec![], READ_REPEATS)
                .await
                .ok()
                .and_then(|r| r.first().and_then(|r| text_at(r, 0)));
            Ok::<_, mysql_async::Error>((hb, status, applied))
        };
        match tokio::time::timeout(Duration::from_secs(1), result).await {
            Ok(Ok((hb, status, gtid_applied))) => {
                let applied = hb
                    .first()
                    .map(|r| (int_at(r, 0), float_at(r, 1).unwrap_or(0.0)));
                let (state, reported, received) = replication_state(&status);
                // The forecast: the backlog in bytes of the primary's binary log (written but
                // not executed there), at the rate the replica executes it; else in GTID
                // transactions, whose sizes differ (a heartbeat and a batch count as one each).
                let executed = binlog_end.and_then(|end| executed_position(&status, &end.file));
                let current = applied.is_some_and(|(seq, _)| seq >= primary_seq);
                let mut set_aside = None;
                let bytes = match (binlog_end, &executed) {
                    (Some(end), Some(exec)) => {
                        let backlog = binlog_backlog(end, exec, &self.binlog_sizes);
                        self.need_sizes |= backlog.is_none();
                        match backlog {
                            Some(b) if self.standing[i].observe(primary_now, b, current) => {
                                set_aside = Some(b);
                                None
                            }
                            b => b.map(|b| (exec.number().unwrap_or(0), exec.pos, b)),
                        }
                    }
                    _ => None,
                };
                let mut warming = false;
                let forecast = match (bytes, &received, &gtid_applied) {
                    (Some((segment, pos, backlog)), _, _) => {
                        let f = self.byte_rates[i].observe(primary_now, segment, pos, backlog);
                        warming = backlog >= BUSY_BYTES && !self.byte_rates[i].has_rate();
                        f.map(|f| {
                            let exec = executed.as_ref().expect("matched above");
                            let end = binlog_end.expect("matched above");
                            (
                                f,
                                format!(
                                    "{} of binlog ({}:{} executed, {}:{} written)",
                                    crate::format::bytes(backlog),
                                    exec.file,
                                    exec.pos,
                                    end.file,
                                    end.pos
                                ),
                            )
                        })
                    }
                    (None, Some(rx), Some(ap)) => {
                        let backlog = gtid_backlog_from(written, rx, ap);
                        let applied_total: u64 = gtid_seqs(ap).values().sum();
                        let f = self.rates[i].observe(primary_now, 0, applied_total, backlog);
                        warming = backlog >= BUSY_TRANSACTIONS && !self.rates[i].has_rate();
                        f.map(|f| (f, format!("{backlog} transactions")))
                    }
                    _ => None,
                };
                let measured = if applied.is_none() {
                    // The heartbeat row has not reached it yet.
                    None
                } else {
                    heartbeat_lag(primary_seq, primary_now, applied)
                };
                let (lag_s, forecast_used) = match (measured, &forecast) {
                    (Some(m), Some((f, _))) if *f > m => (Some(*f), true),
                    (m, _) => (m, false),
                };
                let mut state = if applied.is_none() {
                    format!("{state}; pacer's heartbeat has not reached it yet")
                } else {
                    state
                };
                if let Some(b) = set_aside {
                    state.push_str(&format!(
                        "; its executed position stands {} behind the primary's end although its \
                         heartbeat is current: not counted",
                        crate::format::bytes(b)
                    ));
                }
                if let Some((f, backlog)) = &forecast {
                    state.push_str(&format!(
                        "; {backlog} written, not applied{}",
                        if f.is_infinite() {
                            ", applying stalled".to_string()
                        } else {
                            format!(" (~{} at its rate)", crate::format::secs(*f))
                        }
                    ));
                }
                Reading {
                    name: name.to_string(),
                    lag_s,
                    reported_s: reported,
                    state,
                    forecast: forecast_used,
                    warming,
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

    fn row(pairs: &[(&str, &str)]) -> Fields {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_worst_replication_connection_names_the_state() {
        let one = row(&[
            ("Slave_SQL_Running", "Yes"),
            ("Slave_IO_Running", "Yes"),
            ("Seconds_Behind_Master", "0"),
            ("Gtid_IO_Pos", "0-1-9"),
        ]);
        assert_eq!(
            replication_state(std::slice::from_ref(&one)),
            ("applying".into(), Some(0.0), Some("0-1-9".into()))
        );
        let stopped = row(&[
            ("Connection_name", "eu"),
            ("Slave_SQL_Running", "No"),
            ("Slave_IO_Running", "Yes"),
        ]);
        let (state, reported, _) = replication_state(&[one, stopped]);
        assert_eq!(state, "SQL thread stopped (eu)");
        assert_eq!(reported, Some(0.0));
        let mysql = row(&[
            ("Replica_SQL_Running", "Yes"),
            ("Replica_IO_Running", "Connecting"),
            ("Seconds_Behind_Source", "4"),
        ]);
        assert_eq!(
            replication_state(&[mysql]),
            ("IO thread stopped".into(), Some(4.0), None)
        );
        assert_eq!(
            replication_state(&[]).0,
            "not a replica (no replication connection)"
        );
    }

    #[test]
    fn the_gtid_backlog_is_received_less_applied_per_domain() {
        assert_eq!(
            gtid_backlog_from(None, "0-1-120,1-2-7", "0-1-100,1-2-7"),
            20
        );
        assert_eq!(gtid_backlog_from(None, "0-1-120", ""), 120);
        assert_eq!(gtid_backlog_from(None, "", "0-1-5"), 0);
        assert_eq!(gtid_seqs("0-1-5, 0-2-9").get(&0), Some(&9));
    }

    #[test]
    fn the_backlog_counts_what_the_primary_wrote_for_the_domains_the_replica_receives() {
        // 30 written on the primary but not yet received: in transit, counted.
        assert_eq!(gtid_backlog_from(Some("0-1-150"), "0-1-120", "0-1-100"), 50);
        // Unknown on the primary (MySQL): received less applied.
        assert_eq!(gtid_backlog_from(None, "0-1-120", "0-1-100"), 20);
        // Domain 5 is another source's (not on this primary); domain 9 is the primary's but
        // not replicated to this replica: left out.
        assert_eq!(
            gtid_backlog_from(Some("0-1-150,9-1-4000"), "0-1-150,5-3-10", "0-1-140,5-3-8"),
            12
        );
        // A primary behind what the replica received (read first, the replica later): the
        // received position counts.
        assert_eq!(gtid_backlog_from(Some("0-1-100"), "0-1-110", "0-1-105"), 5);
    }

    #[test]
    fn the_forecast_is_backlog_over_rate_and_infinite_once_applying_stalls() {
        let mut r = ApplyRate::default();
        assert_eq!(r.observe(0.0, 0, 1000, 10), None, "no rate yet");
        assert_eq!(
            r.observe(0.5, 0, 1100, 50),
            Some(0.25),
            "200 tx/s, 50 waiting"
        );
        assert_eq!(
            r.observe(0.55, 0, 1100, 60),
            Some(0.3),
            "no move: the same rate"
        );
        // Nothing applied for 1.5 s (three gaps of 0.5 s) with a backlog: stalled.
        assert!(r.observe(1.5, 0, 1100, 80).is_some_and(f64::is_finite));
        assert_eq!(r.observe(2.1, 0, 1100, 90), Some(f64::INFINITY));
        // Applying again: finite once more.
        assert!(r.observe(2.5, 0, 1300, 10).is_some_and(f64::is_finite));
        assert_eq!(r.observe(3.0, 0, 1310, 0), None, "no backlog, no forecast");
    }

    #[test]
    fn the_rate_is_taken_between_moves_and_idle_time_is_left_out() {
        let mut r = ApplyRate::new(BUSY_BYTES);
        // The heartbeats' trickle (a few hundred bytes behind, moving slowly) is not busy.
        for (t, applied) in [(0.0, 0), (0.2, 300), (0.4, 600)] {
            assert_eq!(r.observe(t, 7, applied, 300), None, "idle: no rate");
        }
        assert!(!r.has_rate());
        let mut r = ApplyRate::new(BUSY_BYTES);
        r.observe(0.0, 7, 0, 1000);
        // One big transaction: the position stands still for 0.8 s, then moves by 400 kB.
        for t in [0.25, 0.5, 0.75] {
            assert_eq!(r.observe(t, 7, 0, 400_000), None, "no move yet: no rate");
        }
        assert_eq!(
            r.observe(0.8, 7, 400_000, 400_000),
            Some(0.8),
            "500 kB/s, 400 kB waiting"
        );
        // Half a second into the next one: still 500 kB/s, not a falling rate.
        assert_eq!(r.observe(1.3, 7, 400_000, 400_000), Some(0.8));
        // Caught up and idle for a second: the next measurement starts when it is busy again.
        r.observe(1.6, 7, 800_000, 0);
        r.observe(2.6, 7, 800_100, 0);
        assert_eq!(
            r.observe(2.7, 7, 800_100, 250_000),
            Some(0.5),
            "250 kB at 500 kB/s"
        );
        // The executed position restarts in the next file: no rate from it, no stall.
        r.observe(3.0, 8, 200, 300_000);
        let f = r.observe(3.2, 8, 100_200, 300_000).unwrap();
        assert!((f - 300_000.0 / 500_000.0).abs() < 0.05, "{f}");
    }

    #[test]
    fn a_small_transaction_applied_ahead_of_a_big_one_does_not_make_the_replica_look_slow() {
        let mut r = ApplyRate::new(BUSY_BYTES);
        r.observe(0.0, 1, 0, 500_000);
        r.observe(1.0, 1, 500_000, 500_000); // 500 kB/s
        // A heartbeat's 300 bytes, 0.15 s later: a per-move rate would read 2 kB/s.
        let f = r.observe(1.15, 1, 500_300, 500_000).unwrap();
        assert!(
            f < 1.2,
            "{f} s: the rate is work over time, 500,300 B in 1.15 s"
        );
    }

    #[test]
    fn a_backlog_that_stands_still_while_the_heartbeat_is_current_is_set_aside() {
        let mut g = StandingGap::default();
        assert!(!g.observe(0.0, 540_000, true));
        assert!(!g.observe(1.0, 545_000, true), "not yet 2 s");
        assert!(g.observe(2.1, 538_000, true), "standing for 2 s");
        assert!(g.observe(3.0, 541_000, true), "still");
        // The heartbeat falls behind: a real backlog again, counted.
        assert!(!g.observe(3.2, 900_000, false));
        assert!(!g.observe(5.5, 900_000, true), "the 2 s start again");
        // A backlog that drains is not standing.
        let mut g = StandingGap::default();
        assert!(!g.observe(0.0, 500_000, true));
        assert!(!g.observe(1.0, 300_000, true));
        assert!(!g.observe(2.5, 100_000, true));
    }

    #[test]
    fn the_binlog_backlog_spans_files_by_their_sizes() {
        let at = |file: &str, pos| BinlogPos {
            file: file.into(),
            pos,
        };
        let sizes = vec![
            ("mysql-bin.000041".to_string(), 1000),
            ("mysql-bin.000042".to_string(), 5000),
            ("mysql-bin.000043".to_string(), 300),
        ];
        let w = at("mysql-bin.000043", 300);
        assert_eq!(
            binlog_backlog(&w, &at("mysql-bin.000043", 100), &sizes),
            Some(200)
        );
        assert_eq!(
            binlog_backlog(&w, &at("mysql-bin.000041", 400), &sizes),
            Some(600 + 5000 + 300)
        );
        assert_eq!(
            binlog_backlog(&w, &at("mysql-bin.000040", 0), &sizes),
            None,
            "size unknown"
        );
        assert_eq!(
            binlog_backlog(&w, &at("other-bin.000043", 0), &sizes),
            None,
            "another log"
        );
        assert_eq!(
            binlog_backlog(
                &at("mysql-bin.000042", 10),
                &at("mysql-bin.000043", 4),
                &sizes
            ),
            Some(0)
        );
        // The executed position is read from the connection reading this primary's log.
        let conn = |file: &str, pos: &str| {
            row(&[
                ("Relay_Master_Log_File", file),
                ("Exec_Master_Log_Pos", pos),
            ])
        };
        let rows = [conn("eu-bin.000002", "77"), conn("mysql-bin.000043", "120")];
        assert_eq!(
            executed_position(&rows, "mysql-bin.000043"),
            Some(at("mysql-bin.000043", 120))
        );
        assert_eq!(executed_position(&rows[..1], "mysql-bin.000043"), None);
        let mysql = row(&[
            ("Relay_Source_Log_File", "binlog.000003"),
            ("Exec_Source_Log_Pos", "9"),
        ]);
        assert_eq!(
            executed_position(&[mysql], "binlog.000004"),
            Some(at("binlog.000003", 9))
        );
    }

    #[test]
    fn a_replica_at_the_latest_heartbeat_is_not_behind_and_one_behind_is_as_old_as_its_row() {
        assert_eq!(heartbeat_lag(10, 100.0, Some((10, 99.8))), Some(0.0));
        assert_eq!(heartbeat_lag(10, 100.0, Some((7, 97.5))), Some(2.5));
        assert_eq!(heartbeat_lag(10, 100.0, None), None);
        // A replica clock never enters: both times are the primary's.
        assert_eq!(heartbeat_lag(10, 100.0, Some((9, 100.2))), Some(0.0));
    }
}
