//! The foreground probe's log: what a tiny transaction of the application's kind costs right
//! now, measured every [`PROBE_EVERY`] on a connection of pacer's own.
//!
//! Each target family runs its probe on its own task (PostgreSQL:
//! `target::postgres::probe`; MySQL/MariaDB: the lag heartbeat, `target::mysql::lag`): an
//! autocommit UPDATE of pacer's heartbeat row (so it waits for the log flush as an application
//! commit does) and a point read of it by its primary key. Each round trip pair is one
//! [`ProbeSample`] pushed into a [`ProbeLog`], which any number of readers follow with a cursor
//! of their own: the engine's foreground guard ([`crate::engine::guard`]) and the charts.
//! Nothing here knows a database.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often the probe runs (20 a second).
pub const PROBE_EVERY: Duration = Duration::from_millis(50);

/// How often it runs while the guard measures a baseline (pacer waits meanwhile, so the
/// baseline is measured fast: 60 probes in 0.6 s).
pub const PROBE_EVERY_MEASURING: Duration = Duration::from_millis(10);

/// The longest a probe may take: it is abandoned (and counts as failed) after this.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// How the probe's statements are described in the audit log (each text is logged once).
pub const PROBE_REPEATS: &str = "every 50 ms while the migration runs (the foreground probe)";

/// Samples a log keeps for readers that fall behind (at 20 a second: 200 s).
const KEEP: usize = 4096;

/// One probe: how long its write and its read took, together.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeSample {
    /// When it finished.
    pub at: Instant,
    /// How long it took (for a failed probe, until it failed).
    pub latency: Duration,
    /// Why it failed, in words (never a password); None when it answered.
    pub error: Option<String>,
}

impl ProbeSample {
    /// A probe that answered in `latency`, finishing at `at`.
    pub fn answered(at: Instant, latency: Duration) -> ProbeSample {
        ProbeSample {
            at,
            latency,
            error: None,
        }
    }

    /// A probe that failed after `latency`.
    pub fn failed(at: Instant, latency: Duration, error: impl Into<String>) -> ProbeSample {
        ProbeSample {
            at,
            latency,
            error: Some(error.into()),
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    samples: VecDeque<ProbeSample>,
    /// The sequence number of `samples[0]`.
    first: u64,
}

/// The probe's samples, shared between the probe's task (the writer) and its readers. Cheap to
/// clone.
#[derive(Debug, Clone, Default)]
pub struct ProbeLog {
    inner: Arc<Mutex<Inner>>,
    measuring: Arc<AtomicBool>,
}

impl ProbeLog {
    /// An empty log.
    pub fn new() -> ProbeLog {
        ProbeLog::default()
    }

    /// Asks the probe to run every [`PROBE_EVERY_MEASURING`] (true) or [`PROBE_EVERY`].
    pub fn set_measuring(&self, on: bool) {
        self.measuring.store(on, Ordering::Relaxed);
    }

    /// How long the probe waits from the start of one probe to the next.
    pub fn every(&self) -> Duration {
        if self.measuring.load(Ordering::Relaxed) {
            PROBE_EVERY_MEASURING
        } else {
            PROBE_EVERY
        }
    }

    /// Adds one sample (the oldest is forgotten past a few thousand).
    pub fn push(&self, sample: ProbeSample) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.samples.push_back(sample);
        while inner.samples.len() > KEEP {
            inner.samples.pop_front();
            inner.first += 1;
        }
    }

    /// The samples after `cursor` (a reader's own, starting at 0), oldest first; moves the
    /// cursor past them. A reader that fell further behind than the log keeps misses the
    /// oldest.
    pub fn since(&self, cursor: &mut u64) -> Vec<ProbeSample> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let end = inner.first + inner.samples.len() as u64;
        let from = (*cursor).max(inner.first);
        *cursor = end;
        inner
            .samples
            .iter()
            .skip((from - inner.first) as usize)
            .cloned()
            .collect()
    }
}

/// Why one probe failed, and whether its connection is gone (the next probe reconnects).
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeFailure {
    /// Why, in words (never a password).
    pub why: String,
    /// The connection cannot be used again.
    pub lost: bool,
}

/// One target family's probe: its connection and its two round trips.
pub trait Prober: Send {
    /// Whether a connection is up.
    fn connected(&self) -> bool;
    /// Connects (the error, in words, is a failed sample).
    fn connect(&mut self) -> impl Future<Output = Result<(), String>> + Send;
    /// Forgets the connection.
    fn disconnect(&mut self);
    /// The write and the read, once.
    fn probe(&mut self) -> impl Future<Output = Result<(), ProbeFailure>> + Send;
}

/// Runs `prober` every [`ProbeLog::every`] until the handle is aborted, pushing each sample into
/// `log`. Each probe is timed from its first statement to its last answer. (Timing it from when
/// it was due, as `pgbench -R` does, was tried: tokio's timer wakes up to a millisecond late,
/// which tripled the baseline's p99 and hid pacer's cost.) A probe that takes longer than twice
/// [`PROBE_TIMEOUT`] is abandoned with its connection; a lost connection is made again at the
/// next probe (its failure is a sample).
pub fn spawn<P: Prober + 'static>(mut prober: P, log: ProbeLog) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut due = Instant::now();
        loop {
            tokio::time::sleep_until(due.into()).await;
            due += log.every();
            if !prober.connected() {
                let t0 = Instant::now();
                if let Err(e) = prober.connect().await {
                    tracing::warn!("foreground probe: {e}");
                    log.push(ProbeSample::failed(Instant::now(), t0.elapsed(), e));
                    continue;
                }
            }
            let t0 = Instant::now();
            let outcome = tokio::time::timeout(PROBE_TIMEOUT * 2, prober.probe()).await;
            let now = Instant::now();
            // The next probe is due an interval after this one was, or now if this one ran
            // past that (its lateness is this probe's, not the next one's).
            due = due.max(now);
            let took = now.saturating_duration_since(t0);
            match outcome {
                Ok(Ok(())) => log.push(ProbeSample::answered(now, took)),
                Ok(Err(f)) => {
                    tracing::warn!("foreground probe failed: {}", f.why);
                    log.push(ProbeSample::failed(now, took, f.why));
                    if f.lost {
                        prober.disconnect();
                    }
                }
                Err(_) => {
                    log.push(ProbeSample::failed(
                        now,
                        took,
                        "no answer from the server within 2 s",
                    ));
                    prober.disconnect();
                }
            }
        }
    })
}

/// The `p`-th percentile (0–100) of `values` by nearest rank (`values` need not be sorted);
/// None when empty. With 100 values, p99 is the second largest.
pub fn percentile(values: &[Duration], p: f64) -> Option<Duration> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn readers_follow_the_log_with_cursors_of_their_own() {
        let log = ProbeLog::new();
        let t = Instant::now();
        let (mut a, mut b) = (0, 0);
        log.push(ProbeSample::answered(t, ms(1)));
        log.push(ProbeSample::answered(t, ms(2)));
        assert_eq!(log.since(&mut a).len(), 2);
        log.push(ProbeSample::failed(t, ms(3), "timeout"));
        let new = log.since(&mut a);
        assert_eq!(new.len(), 1);
        assert_eq!(new[0].error.as_deref(), Some("timeout"));
        assert!(log.since(&mut a).is_empty());
        assert_eq!(log.since(&mut b).len(), 3, "b reads all three");
    }

    #[test]
    fn a_reader_that_fell_behind_misses_only_the_oldest() {
        let log = ProbeLog::new();
        let t = Instant::now();
        for i in 0..(KEEP as u64 + 10) {
            log.push(ProbeSample::answered(t, ms(i)));
        }
        let mut cursor = 0;
        let got = log.since(&mut cursor);
        assert_eq!(got.len(), KEEP);
        assert_eq!(got[0].latency, ms(10));
        assert_eq!(cursor, KEEP as u64 + 10);
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let values: Vec<Duration> = (1..=100).map(ms).collect();
        assert_eq!(percentile(&values, 99.0), Some(ms(99)));
        assert_eq!(percentile(&values, 50.0), Some(ms(50)));
        assert_eq!(percentile(&values[..10], 99.0), Some(ms(10)));
        assert_eq!(percentile(&[ms(5)], 0.0), Some(ms(5)));
        assert_eq!(percentile(&[], 99.0), None);
    }
}
