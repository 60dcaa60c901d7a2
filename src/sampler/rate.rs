//! Counters to rates: per-second rates from differences of counter snapshots taken at known
//! times. Pure: the caller supplies the timestamps.

/// A monotonic counter (WAL position, rows updated, bytes received …) turned into a rate.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Counter {
    last: Option<(f64, u64)>,
}

impl Counter {
    /// A counter with no snapshot yet.
    pub fn new() -> Counter {
        Counter::default()
    }

    /// Records the counter's `value` at `t` seconds and returns the rate per second since the
    /// previous snapshot. None when there is no previous snapshot (first sample), when the
    /// counter went down (a reset: a server restart, a statistics reset; the new value becomes the
    /// baseline, a negative rate would be a lie), or when no time passed (`t` not after the
    /// previous snapshot: the previous snapshot is kept, so the next rate spans a real interval).
    pub fn update(&mut self, t: f64, value: u64) -> Option<f64> {
        if !t.is_finite() {
            return None;
        }
        let Some((t0, v0)) = self.last else {
            self.last = Some((t, value));
            return None;
        };
        if value < v0 {
            self.last = Some((t, value));
            return None;
        }
        let dt = t - t0;
        if dt <= 0.0 {
            return None;
        }
        self.last = Some((t, value));
        Some((value - v0) as f64 / dt)
    }

    #[cfg(test)]
    /// Forgets the snapshot: the next update is a first sample again.
    pub fn reset(&mut self) {
        self.last = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_sample_has_no_rate() {
        let mut c = Counter::new();
        assert_eq!(c.update(0.0, 1_000), None);
        assert_eq!(c.update(2.0, 3_000), Some(1_000.0));
        assert_eq!(c.update(2.5, 3_000), Some(0.0));
    }

    #[test]
    fn a_counter_that_goes_down_is_a_reset_not_a_negative_rate() {
        let mut c = Counter::new();
        c.update(0.0, 5_000);
        assert_eq!(c.update(1.0, 100), None);
        // The value after the reset is the new baseline.
        assert_eq!(c.update(2.0, 400), Some(300.0));
    }

    #[test]
    fn no_time_passed_gives_no_rate_and_keeps_the_baseline() {
        let mut c = Counter::new();
        c.update(1.0, 100);
        assert_eq!(c.update(1.0, 200), None);
        assert_eq!(c.update(0.5, 300), None);
        assert_eq!(c.update(3.0, 500), Some(200.0));
    }

    #[test]
    fn a_failed_sample_in_between_makes_the_next_rate_span_the_whole_interval() {
        let mut c = Counter::new();
        c.update(0.0, 0);
        // Samples at t = 1 and 2 failed: nothing recorded.
        assert_eq!(c.update(3.0, 900), Some(300.0));
    }

    #[test]
    fn reset_starts_over() {
        let mut c = Counter::new();
        c.update(0.0, 10);
        c.reset();
        assert_eq!(c.update(1.0, 20), None);
        assert_eq!(c.update(2.0, 30), Some(10.0));
        assert_eq!(c.update(f64::NAN, 40), None);
    }
}
