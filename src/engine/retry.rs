//! Retry and backoff: pure arithmetic, so it is tested without waiting.

use std::time::Duration;

/// Exponential backoff with jitter, capped.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// Delay after the first failure.
    pub initial: Duration,
    /// Largest delay.
    pub max: Duration,
}

impl Backoff {
    /// Delay before attempt `attempt + 1`, after `attempt` failures (1-based). `jitter` in
    /// [0, 1) spreads delays ±20 % so that several runners do not retry in lockstep.
    pub fn delay(&self, attempt: u32, jitter: f64) -> Duration {
        let exp = attempt.saturating_sub(1).min(30);
        let base = self.initial.as_secs_f64() * f64::from(1u32 << exp.min(20));
        let capped = base.min(self.max.as_secs_f64());
        let spread = 0.8 + 0.4 * jitter.clamp(0.0, 1.0);
        Duration::from_secs_f64((capped * spread).min(self.max.as_secs_f64()))
    }
}

/// Counts failures of one operation and says whether to try again.
#[derive(Debug, Clone)]
pub struct RetryBudget {
    /// How many attempts in all.
    pub max_attempts: u32,
    /// Failures so far.
    pub failures: u32,
    backoff: Backoff,
}

impl RetryBudget {
    /// A budget of `max_attempts` attempts.
    pub fn new(max_attempts: u32, backoff: Backoff) -> RetryBudget {
        RetryBudget {
            max_attempts,
            failures: 0,
            backoff,
        }
    }

    /// Records a failure: the delay before the next attempt, or None when the budget is spent.
    pub fn failed(&mut self, jitter: f64) -> Option<Duration> {
        self.failures += 1;
        (self.failures < self.max_attempts).then(|| self.backoff.delay(self.failures, jitter))
    }
}

/// A small deterministic random source for jitter (xorshift64*).
#[derive(Debug, Clone)]
pub struct Jitter(u64);

impl Jitter {
    /// Seeded from anything (time, pid).
    pub fn new(seed: u64) -> Jitter {
        Jitter(seed | 1)
    }
    /// Next value in [0, 1).
    pub fn next(&mut self) -> f64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: Backoff = Backoff {
        initial: Duration::from_millis(500),
        max: Duration::from_secs(30),
    };

    #[test]
    fn backoff_doubles_from_the_initial_delay() {
        assert_eq!(B.delay(1, 0.5), Duration::from_millis(500));
        assert_eq!(B.delay(2, 0.5), Duration::from_secs(1));
        assert_eq!(B.delay(3, 0.5), Duration::from_secs(2));
        assert_eq!(B.delay(4, 0.5), Duration::from_secs(4));
    }

    #[test]
    fn backoff_is_capped_even_with_jitter() {
        assert_eq!(B.delay(10, 0.5), Duration::from_secs(30));
        assert_eq!(B.delay(40, 0.999), Duration::from_secs(30));
        assert!(B.delay(40, 0.0) >= Duration::from_secs(24));
    }

    #[test]
    fn jitter_spreads_by_at_most_twenty_percent() {
        assert_eq!(B.delay(3, 0.0), Duration::from_millis(1600));
        assert!(B.delay(3, 0.999_999) <= Duration::from_millis(2400));
        let mut j = Jitter::new(42);
        for _ in 0..1000 {
            let v = j.next();
            assert!((0.0..1.0).contains(&v));
        }
    }

    #[test]
    fn budget_allows_exactly_max_attempts() {
        let mut budget = RetryBudget::new(3, B);
        assert_eq!(budget.failed(0.5), Some(Duration::from_millis(500)));
        assert_eq!(budget.failed(0.5), Some(Duration::from_secs(1)));
        assert_eq!(
            budget.failed(0.5),
            None,
            "third failure ends it: 3 attempts in all"
        );
    }

    #[test]
    fn budget_of_one_never_retries() {
        assert_eq!(RetryBudget::new(1, B).failed(0.5), None);
    }
}
