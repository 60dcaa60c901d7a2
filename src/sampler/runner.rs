//! Runs the sampling on its own task and shares the result.
//!
//! Sharing: [`SharedMetrics`] wraps a `tokio::sync::watch::Sender<Metrics>`, one value with a
//! version. The sampler task updates it once per tick (`send_modify`: wakes every receiver);
//! the TUI holds a `watch::Receiver` from [`SharedMetrics::subscribe`], awaits `changed()` in
//! its event loop and then reads with `borrow_and_update()` — only briefly, to build its view
//! model (the borrow is a read lock, and not `Send`, so it cannot be held across an await).
//! pacer's own batches come from the engine's events, so whoever receives those calls
//! [`SharedMetrics::record_batch`]; it does not wake receivers (the engine's event already
//! does; the batch shows in the charts at the end of the current interval).

use std::time::{Duration, Instant};

use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use super::failures::SampleLog;
use super::host::HostSampler;
use super::metrics::{MetricInput, Metrics};
use super::{DbSample, MetricSource};

/// Inputs a tap may fall behind by before it misses some (see [`SharedMetrics::tap`]).
const TAP_CAPACITY: usize = 4096;

/// Share of the interval one round of database queries may take before it counts as failed.
const ROUND_BUDGET: f64 = 0.8;

/// The metrics, shared between the sampler task (writer), the engine-event handler (batches)
/// and any number of readers (TUI, throttle). Cheap to clone.
#[derive(Debug, Clone)]
pub struct SharedMetrics {
    tx: watch::Sender<Metrics>,
    origin: Instant,
    tap: broadcast::Sender<MetricInput>,
}

impl SharedMetrics {
    /// Shares `metrics`; times are measured from now.
    pub fn new(metrics: Metrics) -> SharedMetrics {
        SharedMetrics::with_elapsed(metrics, Duration::ZERO)
    }

    /// Shares `metrics` whose time axis began `elapsed` ago (a viewer joining a running
    /// migration takes the runner's clock).
    pub fn with_elapsed(metrics: Metrics, elapsed: Duration) -> SharedMetrics {
        let now = Instant::now();
        SharedMetrics {
            tx: watch::Sender::new(metrics),
            origin: now.checked_sub(elapsed).unwrap_or(now),
            tap: broadcast::channel(TAP_CAPACITY).0,
        }
    }

    /// Every input recorded from now on, in order (for the control socket's viewers).
    pub fn tap(&self) -> broadcast::Receiver<MetricInput> {
        self.tap.subscribe()
    }

    /// Records `input`: a sampling round wakes the receivers, a batch or a throttle mark does
    /// not (an engine event does). Taps see it too.
    pub fn apply(&self, input: MetricInput) {
        let wake = matches!(input, MetricInput::Round { .. });
        self.tx.send_if_modified(|m| {
            m.apply(&input);
            wake
        });
        let _ = self.tap.send(input);
    }

    /// A receiver for a reader: `changed().await` wakes it after each sampling round.
    pub fn subscribe(&self) -> watch::Receiver<Metrics> {
        self.tx.subscribe()
    }

    /// Seconds since these metrics were created: the time axis of every series.
    pub fn now(&self) -> f64 {
        self.t_at(Instant::now())
    }

    /// The time axis value of `at`.
    pub fn t_at(&self, at: Instant) -> f64 {
        at.saturating_duration_since(self.origin).as_secs_f64()
    }

    /// Reads the metrics (briefly: writers wait meanwhile).
    pub fn read<R>(&self, f: impl FnOnce(&Metrics) -> R) -> R {
        f(&self.tx.borrow())
    }

    /// Records one of pacer's batches that finished now (from the engine's BatchDone event).
    pub fn record_batch(&self, keys: u64, duration: Duration, updated: u64) {
        self.apply(MetricInput::Batch {
            t: self.now(),
            keys,
            ms: duration.as_secs_f64() * 1000.0,
            updated,
        });
    }

    /// Notes that throttling began (`on`) or ended now.
    pub fn mark_throttle(&self, on: bool) {
        self.apply(MetricInput::Throttle { t: self.now(), on });
    }

    /// Sampling failures and recoveries since the last call, for the event log (does not wake
    /// receivers).
    pub fn take_errors(&self) -> Vec<SampleLog> {
        let mut out = Vec::new();
        self.tx.send_if_modified(|m| {
            out = m.take_errors();
            false
        });
        out
    }
}

/// Samples `source` and the host every `interval` on a new task, recording into `metrics`.
///
/// Ticks that fall behind are delayed, not bunched (`MissedTickBehavior::Delay`). Each round
/// of database queries may take 80% of the interval; one that takes longer is dropped and
/// counts as failed (a gap and a log line), so a hung query never freezes the loop. The host
/// is read in the same tick. Runs until the returned handle is aborted (dropping it does not
/// stop the task); aborting drops the source and with it its connection.
pub fn spawn<S: MetricSource + 'static>(
    mut source: S,
    interval: Duration,
    metrics: SharedMetrics,
) -> JoinHandle<()> {
    let interval = interval.max(Duration::from_millis(10));
    let budget = interval.mul_f64(ROUND_BUDGET);
    tokio::spawn(async move {
        let mut host = HostSampler::new();
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let t = metrics.now();
            let db = match tokio::time::timeout(budget, source.sample()).await {
                Ok(sample) => sample,
                Err(_) => DbSample::failed(&format!(
                    "no answer from the database within {} ms; the sampling queries were abandoned",
                    budget.as_millis()
                )),
            };
            let host_sample = host.sample();
            metrics.apply(MetricInput::Round {
                t,
                db: Box::new(db),
                host: host_sample,
            });
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sampler::{LockWaits, SeriesId, TableStats};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A source that answers from a script: slow on the calls listed in `hang_on`.
    struct Scripted {
        calls: Arc<AtomicU32>,
        hang_on: Vec<u32>,
    }

    impl MetricSource for Scripted {
        async fn sample(&mut self) -> DbSample {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            if self.hang_on.contains(&n) {
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
            DbSample {
                lock_waits: Ok(LockWaits::default()),
                replicas: Ok(Vec::new()),
                redo_bytes: Ok(u64::from(n) * 1000),
                table: Ok(TableStats::default()),
                table_bytes: Ok(8192),
                active_sessions: Ok(2),
            }
        }
    }

    #[tokio::test]
    async fn a_hung_round_is_a_gap_and_the_loop_goes_on() {
        let interval = Duration::from_millis(50);
        let calls = Arc::new(AtomicU32::new(0));
        let shared = SharedMetrics::new(Metrics::new(Duration::from_secs(60), interval));
        let mut rx = shared.subscribe();
        let handle = spawn(
            Scripted {
                calls: calls.clone(),
                hang_on: vec![1],
            },
            interval,
            shared.clone(),
        );
        let rounds = || shared.read(|m| m.series(SeriesId::TableBytes).len());
        let started = Instant::now();
        while rounds() < 4 {
            tokio::time::timeout(Duration::from_secs(5), rx.changed())
                .await
                .expect("the loop keeps going")
                .unwrap();
        }
        handle.abort();
        assert!(started.elapsed() < Duration::from_secs(2));
        let segments = shared.read(|m| m.series(SeriesId::TableBytes).points_since(0.0));
        assert_eq!(segments.len(), 2, "{segments:?}");
        let logs = shared.take_errors();
        assert_eq!(logs.len(), 2, "{logs:?}");
        assert!(
            logs[0]
                .text
                .contains("no answer from the database within 40 ms"),
            "{logs:?}"
        );
        assert!(!logs[1].failed);
    }

    #[tokio::test]
    async fn batches_do_not_wake_readers_but_show_at_the_next_tick() {
        let shared = SharedMetrics::new(Metrics::new(
            Duration::from_secs(60),
            Duration::from_secs(1),
        ));
        let rx = shared.subscribe();
        shared.record_batch(500, Duration::from_millis(20), 500);
        assert!(!rx.has_changed().unwrap());
        assert!(shared.take_errors().is_empty());
        assert!(!rx.has_changed().unwrap());
        assert_eq!(shared.read(|m| m.batch_ms_percentile(50.0)), Some(20.0));
    }
}
