//! Rows per second and ETA from batch completions, against an injected clock.
//!
//! Rates are measured on *running time*: time spent paused, throttled, waiting for a lock or
//! reconnecting is left out, so the first batch after a resume shows the speed the backfill
//! really has instead of the rows of the last seconds spread over the whole stop (before:
//! "1,872 rows/s, ETA 6m 22s" right after a resume at ~14k rows/s). While stopped, the rate
//! is 0 and there is no ETA. The "now" rate looks at the last [`RATE_WINDOW`] of running
//! time, so a change of speed (a bigger batch size, a busier server) shows within it.
//!
//! The ETA looks further back: over the last quarter of the running time since the speed was
//! last changed on purpose (an operator's resize, the foreground guard's pacing), at least
//! [`RATE_WINDOW`]. A 2 s window made the ETA jump with every slow second (30 % off at a
//! tenth of a 30M-row run, BENCHMARKS.md); a quarter of the run still follows a speed that
//! drifts as the table grows, and a deliberate change starts afresh.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How much running time the "now" rate looks back over.
pub const RATE_WINDOW: Duration = Duration::from_secs(2);
/// The share of the running time (since the last deliberate change of speed) the ETA's rate
/// looks back over.
pub const ETA_WINDOW_SHARE: u32 = 4;
/// Spacing of the points the ETA's rate is read from (bounds their number: a 10-hour run
/// keeps at most 9,000, a quarter of its seconds).
const ETA_POINT_EVERY: Duration = Duration::from_secs(1);

/// Backfill progress.
#[derive(Debug, Clone)]
pub struct Progress {
    /// Keys walked, including before a resume.
    pub rows_done: u64,
    /// Estimated keys in the range.
    pub rows_total: Option<u64>,
    started: Instant,
    rows_at_start: u64,
    /// Time left out of the rates (stops that ended).
    stopped_total: Duration,
    /// Since when the backfill is stopped, while it is.
    stopped_since: Option<Instant>,
    /// (running time, rows done) at each batch.
    samples: VecDeque<(Duration, u64)>,
    /// (running time, rows done) about every [`ETA_POINT_EVERY`], since `eta_since`.
    eta_points: VecDeque<(Duration, u64)>,
    /// Running time of the last deliberate change of speed (or the start).
    eta_since: Duration,
}

impl Progress {
    /// Progress starting (or resuming) at `rows_done`.
    pub fn new(now: Instant, rows_done: u64, rows_total: Option<u64>) -> Progress {
        let mut samples = VecDeque::new();
        samples.push_back((Duration::ZERO, rows_done));
        let eta_points = samples.clone();
        Progress {
            eta_points,
            eta_since: Duration::ZERO,
            rows_done,
            rows_total,
            started: now,
            rows_at_start: rows_done,
            stopped_total: Duration::ZERO,
            stopped_since: None,
            samples,
        }
    }

    /// Running time at `now`: time since the start, less every stop.
    fn running(&self, now: Instant) -> Duration {
        let stopped = self.stopped_total
            + self
                .stopped_since
                .map_or(Duration::ZERO, |since| now.saturating_duration_since(since));
        now.saturating_duration_since(self.started)
            .saturating_sub(stopped)
    }

    /// The backfill stops at `now` (paused, throttled, waiting): the rates stop counting time.
    pub fn stop(&mut self, now: Instant) {
        if self.stopped_since.is_none() {
            self.stopped_since = Some(now);
        }
    }

    /// The backfill goes on at `now` after a [`Progress::stop`].
    pub fn go(&mut self, now: Instant) {
        if let Some(since) = self.stopped_since.take() {
            self.stopped_total += now.saturating_duration_since(since);
        }
    }

    /// Whether the backfill is stopped.
    pub fn is_stopped(&self) -> bool {
        self.stopped_since.is_some()
    }

    /// Records that `rows` more keys were walked at `now` (ends a stop, if any).
    pub fn record(&mut self, now: Instant, rows: u64) {
        self.go(now);
        self.rows_done += rows;
        let t = self.running(now);
        self.samples.push_back((t, self.rows_done));
        while self.samples.len() > 2 && t.saturating_sub(self.samples[1].0) >= RATE_WINDOW {
            self.samples.pop_front();
        }
        if self
            .eta_points
            .back()
            .is_none_or(|&(at, _)| t.saturating_sub(at) >= ETA_POINT_EVERY)
        {
            self.eta_points.push_back((t, self.rows_done));
        }
        let window = self.eta_window(t);
        while self.eta_points.len() > 2 && t.saturating_sub(self.eta_points[1].0) >= window {
            self.eta_points.pop_front();
        }
    }

    /// The speed was changed on purpose at `now` (a resize, a new pacing): the ETA's rate
    /// starts again from here, over [`RATE_WINDOW`] first.
    pub fn speed_changed(&mut self, now: Instant) {
        let t = self.running(now);
        self.eta_since = t;
        self.eta_points.clear();
        self.eta_points.push_back((t, self.rows_done));
    }

    /// How far back the ETA's rate looks at running time `t`.
    fn eta_window(&self, t: Duration) -> Duration {
        (t.saturating_sub(self.eta_since) / ETA_WINDOW_SHARE).max(RATE_WINDOW)
    }

    /// Rows per second the ETA assumes: over [`Progress::eta_window`], up to the last batch;
    /// until that window has passed since the last change, the "now" rate.
    fn rate_for_eta(&self) -> f64 {
        let (Some(&(t0, r0)), Some(&(t1, r1))) = (self.eta_points.front(), self.samples.back())
        else {
            return 0.0;
        };
        if t1.saturating_sub(t0) < RATE_WINDOW {
            return self.rate_now();
        }
        (r1.saturating_sub(r0)) as f64 / (t1 - t0).as_secs_f64()
    }

    /// Rows per second over the last [`RATE_WINDOW`] of running time; 0 while stopped.
    pub fn rate_now(&self) -> f64 {
        if self.is_stopped() {
            return 0.0;
        }
        match (self.samples.front(), self.samples.back()) {
            (Some(a), Some(b)) if b.0 > a.0 => (b.1 - a.1) as f64 / (b.0 - a.0).as_secs_f64(),
            _ => 0.0,
        }
    }

    /// Rows per second since this run started, over running time only.
    pub fn rate_avg(&self, now: Instant) -> f64 {
        let secs = self.running(now).as_secs_f64();
        if secs <= 0.0 {
            0.0
        } else {
            (self.rows_done - self.rows_at_start) as f64 / secs
        }
    }

    /// The total, never less than what is done (estimates can be low).
    pub fn total(&self) -> Option<u64> {
        self.rows_total.map(|t| t.max(self.rows_done))
    }

    /// Time left at the ETA's rate; None while stopped or before a rate is known.
    pub fn eta(&self) -> Option<Duration> {
        if self.is_stopped() {
            return None;
        }
        let rate = self.rate_for_eta();
        let total = self.total()?;
        (rate > 0.0).then(|| Duration::from_secs_f64((total - self.rows_done) as f64 / rate))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 20 ms batches of `rows` from `from` for `secs` seconds; returns the time reached.
    fn run(p: &mut Progress, from: Instant, secs: u64, rows: u64) -> Instant {
        let mut t = from;
        for _ in 0..secs * 50 {
            t += Duration::from_millis(20);
            p.record(t, rows);
        }
        t
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= b * 0.01
    }

    #[test]
    fn rate_and_eta_follow_recent_batches() {
        let t0 = Instant::now();
        let mut p = Progress::new(t0, 0, Some(100_000));
        for i in 1..=10 {
            p.record(t0 + Duration::from_secs(i), 5_000);
        }
        assert_eq!(p.rows_done, 50_000);
        assert!((p.rate_now() - 5_000.0).abs() < 1e-6);
        assert_eq!(p.eta(), Some(Duration::from_secs(10)));
    }

    #[test]
    fn rate_now_forgets_old_speed_but_average_does_not() {
        let t0 = Instant::now();
        let mut p = Progress::new(t0, 0, None);
        for i in 1..=10 {
            p.record(t0 + Duration::from_secs(i), 10_000);
        }
        for i in 11..=40 {
            p.record(t0 + Duration::from_secs(i), 1_000);
        }
        assert!((p.rate_now() - 1_000.0).abs() < 1.0, "{}", p.rate_now());
        let avg = p.rate_avg(t0 + Duration::from_secs(40));
        assert!((avg - 3_250.0).abs() < 1.0, "{avg}");
        assert_eq!(p.eta(), None, "no total, no ETA");
    }

    #[test]
    fn while_paused_the_rate_is_zero_and_there_is_no_eta() {
        let t0 = Instant::now();
        let mut p = Progress::new(t0, 0, Some(1_000_000));
        let t = run(&mut p, t0, 5, 280); // 14,000 rows/s
        assert!(close(p.rate_now(), 14_000.0), "{}", p.rate_now());
        p.stop(t);
        assert_eq!(p.rate_now(), 0.0);
        assert_eq!(p.eta(), None);
    }

    #[test]
    fn right_after_a_resume_the_rate_and_eta_are_the_running_speed_not_diluted_by_the_pause() {
        let t0 = Instant::now();
        let mut p = Progress::new(t0, 0, Some(1_400_000));
        let t = run(&mut p, t0, 5, 280); // 70,000 rows at 14,000 rows/s
        p.stop(t);
        let resumed = t + Duration::from_secs(300); // five minutes paused
        p.go(resumed);
        // The first batch after the resume already shows the real speed.
        p.record(resumed + Duration::from_millis(20), 280);
        assert!(close(p.rate_now(), 14_000.0), "{}", p.rate_now());
        let eta = p.eta().unwrap().as_secs_f64();
        let left = (1_400_000 - p.rows_done) as f64 / 14_000.0;
        assert!((eta - left).abs() < 1.0, "ETA {eta}s, {left}s left");
        // The average leaves the pause out too.
        let avg = p.rate_avg(resumed + Duration::from_millis(20));
        assert!(close(avg, 14_000.0), "{avg}");
    }

    #[test]
    fn a_throttle_that_lifts_leaves_the_eta_at_the_running_speed() {
        let t0 = Instant::now();
        let mut p = Progress::new(t0, 0, Some(2_000_000));
        let t = run(&mut p, t0, 10, 300); // 15,000 rows/s
        // Throttled for 40 s: the engine stops the progress at the boundary and lets it go
        // when the next batch starts.
        p.stop(t);
        assert_eq!(p.eta(), None);
        let lifted = t + Duration::from_secs(40);
        p.go(lifted);
        let t = run(&mut p, lifted, 1, 300);
        assert!(close(p.rate_now(), 15_000.0), "{}", p.rate_now());
        let left = (2_000_000 - p.rows_done) as f64 / 15_000.0;
        let eta = p.eta().unwrap().as_secs_f64();
        assert!((eta - left).abs() < 1.0, "ETA {eta}s, {left}s left");
        assert!(close(p.rate_avg(t), 15_000.0));
    }

    #[test]
    fn a_change_of_speed_shows_within_two_seconds_of_running_time() {
        let t0 = Instant::now();
        let mut p = Progress::new(t0, 0, Some(10_000_000));
        let t = run(&mut p, t0, 30, 40); // 2,000 rows/s for 30 s
        assert!(close(p.rate_now(), 2_000.0));
        // The operator sets a bigger batch: 14,000 rows/s from now on.
        p.speed_changed(t);
        run(&mut p, t, 2, 280);
        assert!(close(p.rate_now(), 14_000.0), "{}", p.rate_now());
        let left = (10_000_000 - p.rows_done) as f64 / 14_000.0;
        let eta = p.eta().unwrap().as_secs_f64();
        assert!((eta - left).abs() < 2.0, "ETA {eta}s, {left}s left");
    }

    #[test]
    fn the_eta_looks_past_a_slow_second_but_follows_a_drift() {
        let t0 = Instant::now();
        let total = 6_000_000;
        let mut p = Progress::new(t0, 0, Some(total));
        // 60 s at 10,000 rows/s, with every fifth second at half speed: the truth is the mean.
        let mut t = t0;
        for s in 0..60 {
            let rows = if s % 5 == 4 { 100 } else { 200 };
            t = run(&mut p, t, 1, rows);
        }
        let mean = p.rows_done as f64 / 60.0;
        let eta = p.eta().unwrap().as_secs_f64();
        let left = (total - p.rows_done) as f64 / mean;
        assert!((eta - left).abs() / left < 0.05, "ETA {eta}s, {left}s left");
        // Right after a slow second the 2 s rate is more than 10 % off; the ETA is not.
        assert!(p.rate_now() < 0.9 * mean, "{}", p.rate_now());

        // The server slows down for good (the table outgrew the cache): within a quarter of
        // the run the ETA reads the new speed.
        for _ in 0..30 {
            t = run(&mut p, t, 1, 100);
        }
        let eta = p.eta().unwrap().as_secs_f64();
        let left = (total - p.rows_done) as f64 / 5_000.0;
        assert!((eta - left).abs() / left < 0.05, "ETA {eta}s, {left}s left");
    }

    #[test]
    fn the_eta_keeps_a_bounded_number_of_points() {
        let t0 = Instant::now();
        let mut p = Progress::new(t0, 0, Some(u64::MAX / 2));
        run(&mut p, t0, 2_000, 10);
        assert!(
            p.eta_points.len() <= 2_000 / 4 + 2,
            "{}",
            p.eta_points.len()
        );
        assert!(p.samples.len() <= 102, "{}", p.samples.len());
    }

    #[test]
    fn resumed_progress_counts_rate_from_the_resume() {
        let t0 = Instant::now();
        let mut p = Progress::new(t0, 40_000, Some(50_000));
        p.record(t0 + Duration::from_secs(2), 2_000);
        assert!((p.rate_avg(t0 + Duration::from_secs(2)) - 1_000.0).abs() < 1e-6);
        assert_eq!(p.rows_done, 42_000);
    }

    #[test]
    fn low_estimate_never_gives_more_than_everything() {
        let t0 = Instant::now();
        let mut p = Progress::new(t0, 0, Some(10));
        p.record(t0 + Duration::from_secs(1), 20);
        assert_eq!(p.total(), Some(20));
        assert_eq!(p.eta(), Some(Duration::ZERO));
    }
}
