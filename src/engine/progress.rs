//! Rows per second and ETA from batch completions, against an injected clock.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How far back the "now" rate looks.
pub const RATE_WINDOW: Duration = Duration::from_secs(10);

/// Backfill progress.
#[derive(Debug, Clone)]
pub struct Progress {
    /// Keys walked, including before a resume.
    pub rows_done: u64,
    /// Estimated keys in the range.
    pub rows_total: Option<u64>,
    started: Instant,
    rows_at_start: u64,
    samples: VecDeque<(Instant, u64)>,
}

impl Progress {
    /// Progress starting (or resuming) at `rows_done`.
    pub fn new(now: Instant, rows_done: u64, rows_total: Option<u64>) -> Progress {
        let mut samples = VecDeque::new();
        samples.push_back((now, rows_done));
        Progress {
            rows_done,
            rows_total,
            started: now,
            rows_at_start: rows_done,
            samples,
        }
    }

    /// Records that `rows` more keys were walked at `now`.
    pub fn record(&mut self, now: Instant, rows: u64) {
        self.rows_done += rows;
        self.samples.push_back((now, self.rows_done));
        while self.samples.len() > 2 && now.duration_since(self.samples[1].0) >= RATE_WINDOW {
            self.samples.pop_front();
        }
    }

    /// Rows per second over the last few seconds.
    pub fn rate_now(&self) -> f64 {
        match (self.samples.front(), self.samples.back()) {
            (Some(a), Some(b)) if b.0 > a.0 => {
                (b.1 - a.1) as f64 / b.0.duration_since(a.0).as_secs_f64()
            }
            _ => 0.0,
        }
    }

    /// Rows per second since this run started.
    pub fn rate_avg(&self, now: Instant) -> f64 {
        let secs = now.duration_since(self.started).as_secs_f64();
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

    /// Time left at the current rate.
    pub fn eta(&self) -> Option<Duration> {
        let rate = self.rate_now();
        let total = self.total()?;
        (rate > 0.0).then(|| Duration::from_secs_f64((total - self.rows_done) as f64 / rate))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
