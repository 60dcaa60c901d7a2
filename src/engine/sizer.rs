//! The adaptive batch sizer: steers the batch size so that batches take about
//! `target_batch_ms`. Pure arithmetic over measured batches; tested without a database.
//!
//! The rate is an exponentially weighted moving average of keys per millisecond over recent
//! batches (as pt-online-schema-change's chunk-time and GitLab's batch optimiser do); the next
//! size is that rate times the target, bounded by `min_batch_size`/`max_batch_size`, and may
//! grow by at most [`MAX_GROWTH`] per batch. A batch that takes more than [`SLOW_FACTOR`] times
//! the target is cut at once (halved, and never above what the rate allows); a batch that
//! times out is halved and retried. An operator's size holds until the operator hands control
//! back; a timeout still halves it (safety wins), and says so.
//!
//! Each change carries a reason short enough to read whole beside the size on any screen
//! (`adaptive → 200 ms`, `operator: holds until r`); the log lines around it carry the rest.

use std::time::Duration;

/// Largest growth of the size from one batch to the next.
pub const MAX_GROWTH: f64 = 1.5;
/// A batch this many times slower than the target is cut at once.
pub const SLOW_FACTOR: f64 = 3.0;
/// Weight of the newest batch in the rate average.
pub const ALPHA: f64 = 0.3;

/// What the sizer works toward and within.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SizerConfig {
    /// Batch duration to steer toward.
    pub target: Duration,
    /// Smallest size.
    pub min: u64,
    /// Largest size.
    pub max: u64,
    /// Whether the sizer steers at all (false: the size changes only by operator or timeout).
    pub adaptive: bool,
}

/// Who holds the size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holder {
    /// The sizer (or the plan, when not adaptive).
    Sizer,
    /// The operator, until handed back.
    Operator,
}

/// A change of the size, with why.
#[derive(Debug, Clone, PartialEq)]
pub struct Resize {
    /// New size.
    pub to: u64,
    /// Why, in a few words for the screen beside the size (no brackets: screens put it in some).
    pub reason: String,
    /// A step of the sizer's steady steering (toward the target, or stopped at a bound): the
    /// progress lines show the size, so logs leave it out. Cuts and hand-overs are news.
    pub routine: bool,
}

/// The sizer's state.
#[derive(Debug, Clone)]
pub struct Sizer {
    config: SizerConfig,
    size: u64,
    holder: Holder,
    rate: Option<f64>,
}

impl Sizer {
    /// A sizer starting at `initial` (the plan's batch_size).
    pub fn new(config: SizerConfig, initial: u64) -> Sizer {
        Sizer {
            config,
            size: initial.clamp(1, config.max.max(1)),
            holder: Holder::Sizer,
            rate: None,
        }
    }

    /// The size of the next batch.
    #[cfg(test)]
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Who holds the size.
    #[cfg(test)]
    pub fn holder(&self) -> Holder {
        self.holder
    }

    /// Takes in a finished batch; returns a change of size, if any.
    pub fn after_batch(&mut self, keys: u64, duration: Duration) -> Option<Resize> {
        let ms = duration.as_secs_f64() * 1000.0;
        if keys > 0 && ms > 0.0 {
            let r = keys as f64 / ms;
            self.rate = Some(match self.rate {
                None => r,
                Some(old) => ALPHA * r + (1.0 - ALPHA) * old,
            });
        }
        if self.holder == Holder::Operator || !self.config.adaptive {
            return None;
        }
        let target_ms = self.config.target.as_secs_f64() * 1000.0;
        let by_rate = self.rate.map(|r| (r * target_ms).round() as u64);
        let slow = ms > SLOW_FACTOR * target_ms;
        let to = if slow {
            let halved = self.size / 2;
            by_rate.map_or(halved, |b| b.min(halved))
        } else {
            let grown = ((self.size as f64) * MAX_GROWTH).floor() as u64;
            by_rate.map_or(self.size, |b| b.min(grown))
        }
        .clamp(self.config.min, self.config.max);
        if to == self.size {
            return None;
        }
        let from = self.size;
        self.size = to;
        let reason = if slow {
            format!("adaptive: cut, a batch took {ms:.0} ms")
        } else if to == self.config.max && to > from {
            "adaptive, at max".to_string()
        } else if to == self.config.min && to < from {
            "adaptive, at min".to_string()
        } else {
            format!("adaptive → {target_ms:.0} ms")
        };
        Some(Resize {
            to,
            reason,
            routine: !slow,
        })
    }

    /// A batch timed out: halve, whoever holds the size.
    pub fn after_timeout(&mut self) -> Resize {
        let floor = if self.holder == Holder::Operator || !self.config.adaptive {
            1
        } else {
            self.config.min.max(1)
        };
        self.size = (self.size / 2).max(floor);
        Resize {
            to: self.size,
            reason: match self.holder {
                Holder::Operator if self.config.adaptive => "timeout: halved, held until r".into(),
                Holder::Operator | Holder::Sizer => "timeout: halved".into(),
            },
            routine: false,
        }
    }

    /// The operator sets a size; it holds until [`Sizer::hand_back`].
    pub fn set_by_operator(&mut self, n: u64) -> Resize {
        self.holder = Holder::Operator;
        self.size = n.max(1);
        Resize {
            to: self.size,
            reason: if self.config.adaptive {
                "operator: holds until r".into()
            } else {
                "operator".into()
            },
            routine: false,
        }
    }

    /// The operator hands the size back to the sizer, which steers from the current size.
    pub fn hand_back(&mut self) -> Option<Resize> {
        if self.holder == Holder::Sizer {
            return None;
        }
        self.holder = Holder::Sizer;
        let clamped = self.size.clamp(self.config.min, self.config.max);
        let changed = clamped != self.size;
        self.size = clamped;
        Some(Resize {
            to: self.size,
            reason: match (self.config.adaptive, changed) {
                (true, false) => "adaptive sizer took over".into(),
                (true, true) => "adaptive sizer took over, clamped".into(),
                (false, _) => "operator let go; fixed size".into(),
            },
            routine: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> SizerConfig {
        SizerConfig {
            target: Duration::from_millis(200),
            min: 100,
            max: 50_000,
            adaptive: true,
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// A database that does `rows_per_ms` keys per millisecond, plus a fixed overhead.
    fn run(s: &mut Sizer, rows_per_ms: f64, overhead_ms: f64, batches: usize) -> Vec<u64> {
        (0..batches)
            .map(|_| {
                let size = s.size();
                let took = overhead_ms + size as f64 / rows_per_ms;
                s.after_batch(size, Duration::from_secs_f64(took / 1000.0));
                s.size()
            })
            .collect()
    }

    #[test]
    fn steady_state_settles_where_batches_take_the_target() {
        let mut s = Sizer::new(cfg(), 1000);
        let sizes = run(&mut s, 40.0, 0.0, 30);
        let last = *sizes.last().unwrap();
        assert!(
            (7_600..=8_400).contains(&last),
            "settles near 40 rows/ms × 200 ms = 8000: {sizes:?}"
        );
        let took = last as f64 / 40.0;
        assert!((took - 200.0).abs() < 10.0, "{took} ms");
    }

    #[test]
    fn growth_is_limited_per_step() {
        let mut s = Sizer::new(cfg(), 1000);
        let sizes = run(&mut s, 1000.0, 0.0, 4);
        assert_eq!(sizes, vec![1500, 2250, 3375, 5062]);
    }

    #[test]
    fn a_slow_batch_cuts_the_size_at_once() {
        let mut s = Sizer::new(cfg(), 1000);
        run(&mut s, 40.0, 0.0, 30);
        let before = s.size();
        let r = s.after_batch(before, ms(2000)).unwrap();
        assert!(r.to <= before / 2, "{} → {}", before, r.to);
        assert!(r.reason.starts_with("adaptive: cut"), "{}", r.reason);
    }

    #[test]
    fn a_timeout_halves_and_the_bounds_hold() {
        let mut s = Sizer::new(cfg(), 400);
        assert_eq!(s.after_timeout().to, 200);
        assert_eq!(s.after_timeout().to, 100);
        assert_eq!(s.after_timeout().to, 100, "not below min_batch_size");
        let mut s = Sizer::new(cfg(), 40_000);
        let sizes = run(&mut s, 10_000.0, 0.0, 3);
        assert_eq!(*sizes.last().unwrap(), 50_000, "not above max_batch_size");
    }

    #[test]
    fn an_operator_size_holds_until_handed_back() {
        let mut s = Sizer::new(cfg(), 1000);
        let r = s.set_by_operator(20_000);
        assert_eq!((r.to, s.holder()), (20_000, Holder::Operator));
        let sizes = run(&mut s, 10.0, 0.0, 5);
        assert_eq!(
            sizes,
            vec![20_000; 5],
            "the sizer does not fight the operator"
        );
        // A timeout still halves it.
        assert_eq!(s.after_timeout().to, 10_000);
        let back = s.hand_back().unwrap();
        assert_eq!((back.to, s.holder()), (10_000, Holder::Sizer));
        let sizes = run(&mut s, 10.0, 0.0, 10);
        assert!(
            *sizes.last().unwrap() <= 2_100,
            "steers back toward 10 rows/ms × 200 ms: {sizes:?}"
        );
        assert!(s.hand_back().is_none(), "nothing to hand back");
    }

    #[test]
    fn every_reason_is_short_enough_to_read_whole_and_has_no_brackets() {
        let mut reasons = Vec::new();
        let mut s = Sizer::new(cfg(), 1000);
        reasons.push(s.after_batch(1000, ms(100)).unwrap()); // steers
        reasons.push(s.after_batch(1500, ms(99_999)).unwrap()); // cut
        reasons.push(s.after_timeout());
        reasons.push(s.set_by_operator(200_000));
        reasons.push(s.after_timeout());
        reasons.push(s.hand_back().unwrap()); // clamped to max
        let mut s = Sizer::new(cfg(), 40_000);
        reasons.push(s.after_batch(40_000, ms(1)).unwrap()); // at max
        let mut s = Sizer::new(cfg(), 150);
        reasons.push(s.after_batch(150, ms(500)).unwrap()); // at min
        let mut fixed = Sizer::new(
            SizerConfig {
                adaptive: false,
                ..cfg()
            },
            500,
        );
        reasons.push(fixed.set_by_operator(900));
        reasons.push(fixed.hand_back().unwrap());
        let texts: Vec<&str> = reasons.iter().map(|r| r.reason.as_str()).collect();
        assert_eq!(
            texts,
            [
                "adaptive → 200 ms",
                "adaptive: cut, a batch took 99999 ms",
                "timeout: halved",
                "operator: holds until r",
                "timeout: halved, held until r",
                "adaptive sizer took over, clamped",
                "adaptive, at max",
                "adaptive, at min",
                "operator",
                "operator let go; fixed size",
            ]
        );
        for r in &reasons {
            assert!(r.reason.chars().count() <= 36, "too long: {}", r.reason);
            assert!(!r.reason.contains(['(', ')', '[', ']']), "{}", r.reason);
        }
        let routine: Vec<bool> = reasons.iter().map(|r| r.routine).collect();
        assert_eq!(
            routine,
            [
                true, false, false, false, false, false, true, true, false, false
            ],
            "steering is routine; cuts, timeouts and changes of hands are news"
        );
    }

    #[test]
    fn not_adaptive_keeps_the_plan_size() {
        let mut s = Sizer::new(
            SizerConfig {
                adaptive: false,
                ..cfg()
            },
            5000,
        );
        assert_eq!(run(&mut s, 1.0, 0.0, 3), vec![5000; 3]);
        assert_eq!(s.after_timeout().to, 2500);
    }

    #[test]
    fn fixed_overhead_per_batch_pushes_toward_larger_batches() {
        // 50 ms per batch no matter its size, then 20 rows/ms.
        let mut s = Sizer::new(cfg(), 500);
        let sizes = run(&mut s, 20.0, 50.0, 40);
        let last = *sizes.last().unwrap() as f64;
        let took = 50.0 + last / 20.0;
        assert!(
            (150.0..=260.0).contains(&took),
            "batches take {took} ms at size {last}"
        );
    }
}
