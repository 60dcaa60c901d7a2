//! The foreground guard: keeps what pacer's backfill costs the application within
//! `max_foreground_impact`, as the foreground probe ([`crate::probe`]) measures it.
//!
//! The probe's latency while pacer is idle (paused, throttled, waiting at a gate, measuring) is
//! the **baseline**; its latency while the backfill runs, its rests between batches included
//! (the application feels those too), is what pacer costs. The bound is on the p99: a ratio of
//! the baseline's p99 (`"1.5x"`, the default) or an absolute duration (`"20ms"`).
//!
//! A controller, not a stop-and-hold: it sets the **duty cycle** (the share of time batches
//! run; after a batch of `t`, pacer rests `t × (1 − duty) / duty`) and, once the duty cycle is
//! at its floor, a **cap on the batch size**. It judges only the probes taken under its current
//! setting, as a sequential test (Wald's SPRT) of "1 % of probes over the limit" (the p99 is
//! within) against "4 % over" (it is not), at 5 % error either way:
//! - when the probes prove the p99 over (three over the limit within 42 probes, four within
//!   88, …) the duty cycle halves (at its floor, the cap halves), at once;
//! - when they prove it within (96 probes without one over, 142 with one, …) the cap doubles
//!   (and goes once it no longer binds), then the duty cycle grows by half (at least 5 points)
//!   — but only if at most 1 % of them were over: between 1 % and the test's indifference
//!   (about 2 %), the pacing holds.
//!
//! A single slow probe, or two, is the probe's own noise on a busy host and changes nothing;
//! a latency step is answered within three probes (150 ms), and the speed comes back in steps
//! about 5 s apart once the probe is quiet again. While the guard limits pacer, the baseline is
//! re-measured when it is a minute old (the application's own load may have changed). A probe
//! that cannot answer fails closed: the backfill waits until it answers again (or the operator
//! turns the guard off).
//!
//! Pure: every call takes its time; the engine feeds it the probe's samples and its activity.

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::format;
pub use crate::plan::ImpactBound;
use crate::probe::{ProbeSample, percentile};

/// What the engine is doing, as the guard needs to know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activity {
    /// Nothing of pacer's runs: probes now are the baseline (after [`SETTLE`]).
    Idle,
    /// The backfill runs (its rests included): probes now are what pacer costs.
    Backfill,
    /// Other work (DDL, verify, preflight): probes now are neither.
    Other,
}

/// How pacer paces its batches.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pacing {
    /// Share of the time batches run (0 < duty ≤ 1).
    pub duty: f64,
    /// The most keys a batch may take (None: as the sizer says).
    pub batch_cap: Option<u64>,
}

impl Pacing {
    /// Full speed.
    pub const FULL: Pacing = Pacing {
        duty: 1.0,
        batch_cap: None,
    };

    /// The rest after a batch that took `batch`.
    pub fn rest_after(&self, batch: Duration) -> Duration {
        if self.duty >= 1.0 {
            return Duration::ZERO;
        }
        batch.mul_f64((1.0 - self.duty) / self.duty)
    }

    /// The size of the next batch when the sizer says `size`.
    pub fn batch_size(&self, size: u64) -> u64 {
        self.batch_cap.map_or(size, |cap| size.min(cap))
    }
}

impl fmt::Display for Pacing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "duty {:.0}%", self.duty * 100.0)?;
        if let Some(cap) = self.batch_cap {
            write!(f, ", batches ≤ {}", format::thousands(cap))?;
        }
        Ok(())
    }
}

/// The lowest duty cycle (a twentieth of the time).
pub const MIN_DUTY: f64 = 0.05;
/// Probes in the baseline (the newest idle ones).
pub const BASELINE_KEEP: usize = 100;
/// Idle probes needed before the backfill starts (1 s at the measuring pace, 10 ms apart): a
/// p99 of 100 probes is their second slowest.
pub const BASELINE_FIRST: usize = 100;
/// New idle probes a refresh of the baseline takes.
pub const BASELINE_REFRESH: usize = 50;
/// A baseline older than this is measured again while the guard limits pacer.
pub const BASELINE_MAX_AGE: Duration = Duration::from_secs(60);
/// After pacer's work stops, probes count as idle only after this (the server settles: the
/// log flush of the last batch, the rows it left to clean).
pub const SETTLE: Duration = Duration::from_millis(250);
/// A probe that has not answered for this long holds the backfill (fail closed).
pub const PROBE_GRACE: Duration = Duration::from_secs(2);
/// Probes the shown impact is the p99 of (the newest taken while the backfill ran).
const RECENT: usize = 100;
/// The share of probes over the limit when the p99 is within it, and when it is clearly not.
const WITHIN: f64 = 0.01;
const OVER: f64 = 0.04;
/// The most probes a judgement looks back on while it holds a pacing.
const WINDOW_MAX: usize = 1000;
/// The sequential test's bound: ln((1 − β) / α) with α = β = 5 %.
const PROOF: f64 = 2.944_438_979;

/// What `over` of `n` probes over the limit prove (Wald's sequential probability ratio test).
fn verdict(over: usize, n: usize) -> Option<bool> {
    let llr = over as f64 * (OVER / WITHIN).ln()
        + (n - over.min(n)) as f64 * ((1.0 - OVER) / (1.0 - WITHIN)).ln();
    if llr >= PROOF {
        Some(true)
    } else if llr <= -PROOF {
        Some(false)
    } else {
        None
    }
}

/// What the backfill may do at a boundary.
#[derive(Debug, Clone, PartialEq)]
pub enum Check {
    /// Go on, paced as [`Guard::pacing`] says.
    Go,
    /// Wait: the baseline is being measured (`have` of `need` idle probes).
    Measure { have: usize, need: usize },
    /// Wait: the probe does not answer (why, in words).
    Hold(String),
}

/// A change of pacing, with why (for the event).
#[derive(Debug, Clone, PartialEq)]
pub struct PacingChange {
    pub from: Pacing,
    pub to: Pacing,
    pub reason: String,
}

/// The guard as a status display shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ForegroundView {
    /// The bound in words (`1.5x`, `20ms`); empty while the guard is off.
    pub bound: String,
    /// Whether the guard is on.
    pub on: bool,
    /// The baseline's p99, ms (None until measured).
    pub baseline_p99_ms: Option<f64>,
    /// The probe's p99 over the last probes while the backfill ran, ms.
    pub p99_ms: Option<f64>,
    /// The latency limit, ms.
    pub limit_ms: Option<f64>,
    /// The duty cycle, 0–1.
    pub duty: f64,
    /// The batch-size cap, if any.
    pub batch_cap: Option<u64>,
    /// The latest probe, ms.
    pub last_ms: Option<f64>,
    /// Why the pacing is what it is, in a few words.
    pub reason: String,
}

impl ForegroundView {
    /// The probe's p99 as a multiple of the baseline's, when both are known.
    pub fn impact(&self) -> Option<f64> {
        match (self.p99_ms, self.baseline_p99_ms) {
            (Some(p), Some(b)) if b > 0.0 => Some(p / b),
            _ => None,
        }
    }
}

/// The guard's state between boundaries.
#[derive(Debug, Clone)]
pub struct Guard {
    bound: Option<ImpactBound>,
    min_batch: u64,
    activity: Activity,
    activity_since: Instant,
    /// The newest idle probes' latencies.
    baseline: VecDeque<Duration>,
    /// When the newest baseline probe was taken.
    baseline_at: Option<Instant>,
    /// Idle probes still wanted before the backfill goes on (0: none), of how many.
    wanted: usize,
    need: usize,
    /// Probes taken under the current pacing while the backfill ran: latency, and whether it
    /// failed.
    window: Vec<(Duration, bool)>,
    recent: VecDeque<Duration>,
    pacing: Pacing,
    reason: String,
    last_answer: Option<Instant>,
    last_latency: Option<Duration>,
    last_error: Option<String>,
    /// When the guard first looked for probes (the grace for the first answer runs from then).
    first_check: Option<Instant>,
}

impl Guard {
    /// A guard for `bound` (None: off) over batches of at least `min_batch` keys.
    pub fn new(bound: Option<ImpactBound>, min_batch: u64, now: Instant) -> Guard {
        Guard {
            bound,
            min_batch: min_batch.max(1),
            activity: Activity::Other,
            activity_since: now,
            baseline: VecDeque::with_capacity(BASELINE_KEEP),
            baseline_at: None,
            wanted: BASELINE_FIRST,
            need: BASELINE_FIRST,
            window: Vec::new(),
            recent: VecDeque::with_capacity(RECENT),
            pacing: Pacing::FULL,
            reason: "measuring the baseline".into(),
            last_answer: None,
            last_latency: None,
            last_error: None,
            first_check: None,
        }
    }

    /// The bound (None: off).
    pub fn bound(&self) -> Option<ImpactBound> {
        self.bound
    }

    /// What the engine does, as last noted.
    pub fn activity(&self) -> Activity {
        self.activity
    }

    /// Turns the guard off for good: there is nothing to measure with (why, in words).
    pub fn unavailable(&mut self, why: &str) {
        self.set_bound(None);
        self.reason = why.to_string();
    }

    /// The current pacing (full while the guard is off).
    pub fn pacing(&self) -> Pacing {
        if self.bound.is_none() {
            Pacing::FULL
        } else {
            self.pacing
        }
    }

    /// Sets the bound (the operator's command); pacing starts again from full speed.
    pub fn set_bound(&mut self, bound: Option<ImpactBound>) {
        self.bound = bound;
        self.pacing = Pacing::FULL;
        self.clear_window();
        self.reason = match bound {
            Some(b) => format!("bound set to {b}"),
            None => "off".into(),
        };
    }

    /// Notes what the engine does from `now` on. Feed it the probes taken before first.
    pub fn set_activity(&mut self, now: Instant, activity: Activity) {
        if activity != self.activity {
            self.activity = activity;
            self.activity_since = now;
        }
    }

    /// Takes the probes taken since the last call (oldest first), under the current activity.
    pub fn observe(&mut self, samples: &[ProbeSample]) {
        for s in samples {
            match &s.error {
                None => {
                    self.last_answer = Some(s.at);
                    self.last_error = None;
                }
                Some(e) => self.last_error = Some(e.clone()),
            }
            self.last_latency = Some(s.latency);
            let started = s.at.checked_sub(s.latency).unwrap_or(s.at);
            match self.activity {
                Activity::Idle if s.error.is_none() && started >= self.activity_since + SETTLE => {
                    if self.baseline.len() == BASELINE_KEEP {
                        self.baseline.pop_front();
                    }
                    self.baseline.push_back(s.latency);
                    self.baseline_at = Some(s.at);
                    self.wanted = self.wanted.saturating_sub(1);
                }
                Activity::Backfill => {
                    self.window.push((s.latency, s.error.is_some()));
                    if self.recent.len() == RECENT {
                        self.recent.pop_front();
                    }
                    self.recent.push_back(s.latency);
                }
                _ => {}
            }
        }
    }

    /// Probes in the baseline.
    pub fn baseline_len(&self) -> usize {
        self.baseline.len()
    }

    /// The baseline's p99.
    pub fn baseline_p99(&self) -> Option<Duration> {
        let v: Vec<Duration> = self.baseline.iter().copied().collect();
        percentile(&v, 99.0)
    }

    /// Whether the backfill may go on at `now`.
    pub fn check(&mut self, now: Instant) -> Check {
        if self.bound.is_none() {
            return Check::Go;
        }
        let first = *self.first_check.get_or_insert(now);
        let quiet_since = self.last_answer.unwrap_or(first).max(first);
        if now.saturating_duration_since(quiet_since) >= PROBE_GRACE {
            let why = match &self.last_error {
                Some(e) => format!("foreground probe failing: {e}"),
                None => format!(
                    "foreground probe: no answer for {:.1}s",
                    now.saturating_duration_since(quiet_since).as_secs_f64()
                ),
            };
            return Check::Hold(why);
        }
        if self.wanted == 0
            && self.pacing != Pacing::FULL
            && self
                .baseline_at
                .is_some_and(|at| now.saturating_duration_since(at) >= BASELINE_MAX_AGE)
        {
            self.wanted = BASELINE_REFRESH;
            self.need = BASELINE_REFRESH;
        }
        if self.wanted > 0 {
            return Check::Measure {
                have: self.need.saturating_sub(self.wanted),
                need: self.need,
            };
        }
        Check::Go
    }

    /// Judges the probes taken under the current pacing; a change when they prove it over or
    /// within the bound. `size`: the sizer's batch size (a cap at or above it is dropped).
    pub fn adjust(&mut self, size: u64) -> Option<PacingChange> {
        let bound = self.bound?;
        let baseline = self.baseline_p99()?;
        let limit = bound.limit(baseline);
        let n = self.window.len();
        let over = self
            .window
            .iter()
            .filter(|(l, failed)| *failed || *l > limit)
            .count();
        let latencies: Vec<Duration> = self.window.iter().map(|(l, _)| *l).collect();
        let p99 = percentile(&latencies, 99.0)?;
        let against = match bound {
            ImpactBound::Ratio(_) => {
                format!("{} ({bound} of the {} baseline)", ms(limit), ms(baseline))
            }
            ImpactBound::Absolute(_) => format!("the {bound} bound (baseline {})", ms(baseline)),
        };
        let figures = format!(
            "probe p99 {} against {against}: {over} of {n} over",
            ms(p99)
        );
        let from = self.pacing;
        let proven_over = verdict(over, n)?;
        if !proven_over && over * 100 > n {
            // Proven nearer 1 % than 4 % over, but still more than 1 %: the p99 is not within
            // yet. Hold this pacing, judging the newest probes only.
            if n > WINDOW_MAX {
                self.window.drain(..n - WINDOW_MAX);
            }
            return None;
        }
        let to = if proven_over {
            self.lower(size)
        } else {
            self.raise(size)
        };
        self.clear_window();
        if to == from {
            if proven_over {
                self.reason = format!("at the floor: {figures}");
            }
            return None;
        }
        self.pacing = to;
        self.reason = figures.clone();
        Some(PacingChange {
            from,
            to,
            reason: figures,
        })
    }

    fn lower(&self, size: u64) -> Pacing {
        let mut p = self.pacing;
        if p.duty > MIN_DUTY {
            p.duty = (p.duty * 0.5).max(MIN_DUTY);
        } else {
            let cap = p.batch_cap.unwrap_or(size).min(size);
            p.batch_cap = Some((cap / 2).max(self.min_batch));
        }
        p
    }

    fn raise(&self, size: u64) -> Pacing {
        let mut p = self.pacing;
        if let Some(cap) = p.batch_cap {
            let up = cap.saturating_mul(2);
            p.batch_cap = (up < size).then_some(up);
        } else if p.duty < 1.0 {
            p.duty = (p.duty + (p.duty * 0.5).max(0.05)).min(1.0);
        }
        p
    }

    fn clear_window(&mut self) {
        self.window.clear();
    }

    /// The guard as a status display shows it.
    pub fn view(&self) -> ForegroundView {
        let pacing = self.pacing();
        let baseline = self.baseline_p99();
        let recent: Vec<Duration> = self.recent.iter().copied().collect();
        ForegroundView {
            bound: self.bound.map(|b| b.to_string()).unwrap_or_default(),
            on: self.bound.is_some(),
            baseline_p99_ms: baseline.map(as_ms),
            p99_ms: percentile(&recent, 99.0).map(as_ms),
            limit_ms: self.bound.zip(baseline).map(|(b, l)| as_ms(b.limit(l))),
            duty: pacing.duty,
            batch_cap: pacing.batch_cap,
            last_ms: self.last_latency.map(as_ms),
            reason: self.reason.clone(),
        }
    }
}

fn as_ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn ms(d: Duration) -> String {
    let v = as_ms(d);
    if v < 10.0 {
        format!("{v:.2} ms")
    } else {
        format!("{v:.0} ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    /// Probes every 50 ms from `from_ms` for `n` probes, each of `latency_us`.
    fn probes(t0: Instant, from_ms: u64, n: u64, latency_us: u64) -> Vec<ProbeSample> {
        (0..n)
            .map(|i| {
                ProbeSample::answered(
                    at(t0, from_ms + i * 50 + 50),
                    Duration::from_micros(latency_us),
                )
            })
            .collect()
    }

    /// A guard with its first baseline measured (p99 1 ms), backfilling from 10 s.
    fn measured() -> (Guard, Instant) {
        let t0 = Instant::now();
        let mut g = Guard::new(Some(ImpactBound::DEFAULT), 100, t0);
        g.set_activity(t0, Activity::Idle);
        assert_eq!(g.check(t0), Check::Measure { have: 0, need: 100 });
        g.observe(&probes(t0, 300, 194, 1000));
        assert_eq!(g.check(at(t0, 10_000)), Check::Go);
        g.set_activity(at(t0, 10_000), Activity::Backfill);
        (g, t0)
    }

    #[test]
    fn the_baseline_waits_for_the_server_to_settle_and_then_for_a_hundred_probes() {
        let t0 = Instant::now();
        let mut g = Guard::new(Some(ImpactBound::DEFAULT), 100, t0);
        g.set_activity(t0, Activity::Idle);
        // The first 250 ms after pacer stopped are not the baseline.
        g.observe(&probes(t0, 0, 4, 9000));
        assert_eq!(g.check(at(t0, 200)), Check::Measure { have: 0, need: 100 });
        g.observe(&probes(t0, 250, 30, 1000));
        assert_eq!(
            g.check(at(t0, 1800)),
            Check::Measure {
                have: 30,
                need: 100
            }
        );
        g.observe(&probes(t0, 1800, 70, 1000));
        assert_eq!(g.check(at(t0, 5300)), Check::Go);
        assert_eq!(g.baseline_p99(), Some(Duration::from_millis(1)));
    }

    #[test]
    fn steady_probes_within_the_bound_leave_full_speed_alone() {
        let (mut g, t0) = measured();
        for round in 0..10 {
            g.observe(&probes(t0, 10_000 + round * 2000, 40, 1200));
            assert_eq!(g.adjust(5000), None);
        }
        assert_eq!(g.pacing(), Pacing::FULL);
        let v = g.view();
        assert_eq!(v.p99_ms, Some(1.2));
        assert!((v.impact().unwrap() - 1.2).abs() < 1e-9);
    }

    #[test]
    fn a_latency_step_halves_the_duty_cycle_within_three_probes_then_caps_the_batches() {
        let (mut g, t0) = measured();
        g.observe(&probes(t0, 10_000, 2, 5000));
        assert_eq!(g.adjust(5000), None, "two slow probes are not proof");
        g.observe(&probes(t0, 10_100, 1, 5000));
        let change = g.adjust(5000).expect("three of three over the limit");
        assert_eq!(change.to.duty, 0.5);
        assert!(
            change.reason.contains(
                "probe p99 5.00 ms against 1.50 ms (1.5x of the 1.00 ms baseline): 3 of 3 over"
            ),
            "{}",
            change.reason
        );
        let mut duties = vec![g.pacing().duty];
        for i in 0..6 {
            g.observe(&probes(t0, 10_200 + i * 150, 3, 5000));
            g.adjust(5000);
            duties.push(g.pacing().duty);
        }
        assert_eq!(duties[..6], [0.5, 0.25, 0.125, 0.0625, MIN_DUTY, MIN_DUTY]);
        assert_eq!(
            g.pacing().batch_cap,
            Some(1250),
            "at the floor the batches shrink"
        );
        for i in 0..10 {
            g.observe(&probes(t0, 11_200 + i * 150, 3, 5000));
            g.adjust(5000);
        }
        assert_eq!(
            g.pacing().batch_cap,
            Some(100),
            "never below min_batch_size"
        );
        assert!(
            g.view().reason.starts_with("at the floor"),
            "{}",
            g.view().reason
        );
    }

    #[test]
    fn the_probe_s_own_noise_changes_nothing() {
        let (mut g, t0) = measured();
        // Two slow probes in every 100: 2 % over, neither proven over nor within for long.
        for round in 0..20 {
            let mut window = probes(t0, 10_000 + round * 5000, 98, 1000);
            window.push(ProbeSample::answered(
                at(t0, 10_000 + round * 5000 + 4950),
                Duration::from_millis(5),
            ));
            window.insert(
                50,
                ProbeSample::answered(
                    at(t0, 10_000 + round * 5000 + 2500),
                    Duration::from_millis(5),
                ),
            );
            for s in window {
                g.observe(&[s]);
                g.adjust(5000);
            }
        }
        assert!(g.pacing().duty >= 0.5, "{:?}", g.pacing());
    }

    #[test]
    fn between_one_and_two_percent_over_the_pacing_holds() {
        let (mut g, t0) = measured();
        g.observe(&probes(t0, 10_000, 3, 5000));
        g.adjust(5000);
        assert_eq!(g.pacing().duty, 0.5);
        // 14 of 741 over (1.9 %): nearer 1 % than 4 %, but the p99 is over the limit.
        for i in 0..741u64 {
            let slow = i % 53 == 0;
            g.observe(&probes(
                t0,
                10_200 + i * 50,
                1,
                if slow { 5000 } else { 1000 },
            ));
            assert_eq!(g.adjust(5000), None, "probe {i}");
        }
        assert_eq!(g.pacing().duty, 0.5);
    }

    #[test]
    fn recovery_comes_back_in_steps_once_the_probe_is_quiet() {
        let (mut g, t0) = measured();
        g.observe(&probes(t0, 10_000, 3, 5000));
        g.adjust(5000);
        g.observe(&probes(t0, 10_150, 3, 5000));
        g.adjust(5000);
        assert_eq!(g.pacing().duty, 0.25);
        let mut t = 11_000;
        let mut steps = Vec::new();
        while g.pacing() != Pacing::FULL {
            g.observe(&probes(t0, t, 95, 1000));
            assert_eq!(g.adjust(5000), None, "95 quiet probes are not yet proof");
            g.observe(&probes(t0, t + 95 * 50, 1, 1000));
            let c = g.adjust(5000).expect("96 quiet probes raise");
            steps.push(c.to.duty);
            t += 5000;
            assert!(steps.len() < 20);
        }
        assert_eq!(steps, [0.375, 0.5625, 0.84375, 1.0]);
        // One probe over in 142 is within a p99.
        let (mut g, t0) = measured();
        g.observe(&probes(t0, 10_000, 3, 5000));
        g.adjust(5000);
        let mut mixed = probes(t0, 10_200, 141, 1000);
        mixed.push(ProbeSample::answered(
            at(t0, 17_300),
            Duration::from_millis(5),
        ));
        g.observe(&mixed);
        assert_eq!(g.adjust(5000).map(|c| c.to.duty), Some(0.75));
    }

    #[test]
    fn the_cap_goes_before_the_duty_cycle_grows() {
        let (mut g, t0) = measured();
        g.pacing = Pacing {
            duty: MIN_DUTY,
            batch_cap: Some(1000),
        };
        g.observe(&probes(t0, 10_000, 96, 1000));
        assert_eq!(g.adjust(5000).unwrap().to.batch_cap, Some(2000));
        g.observe(&probes(t0, 12_000, 96, 1000));
        assert_eq!(g.adjust(5000).unwrap().to.batch_cap, Some(4000));
        g.observe(&probes(t0, 14_000, 96, 1000));
        let c = g.adjust(5000).unwrap();
        assert_eq!((c.to.batch_cap, c.to.duty), (None, MIN_DUTY));
        g.observe(&probes(t0, 16_000, 96, 1000));
        assert_eq!(g.adjust(5000).unwrap().to.duty, 0.1);
    }

    #[test]
    fn probes_while_idle_or_at_other_work_do_not_judge_the_backfill() {
        let (mut g, t0) = measured();
        g.set_activity(at(t0, 10_000), Activity::Other);
        g.observe(&probes(t0, 10_000, 50, 9000));
        assert_eq!(g.adjust(5000), None);
        assert_eq!(g.baseline_p99(), Some(Duration::from_millis(1)));
        g.set_activity(at(t0, 13_000), Activity::Idle);
        g.observe(&probes(t0, 13_300, 100, 2000));
        assert_eq!(
            g.baseline_p99(),
            Some(Duration::from_millis(2)),
            "refreshed"
        );
    }

    #[test]
    fn a_probe_that_fails_holds_the_backfill_until_it_answers_again() {
        let (mut g, t0) = measured();
        assert_eq!(g.check(at(t0, 11_000)), Check::Go);
        let failed: Vec<ProbeSample> = (0..3)
            .map(|i| {
                ProbeSample::failed(
                    at(t0, 11_000 + i * 1000),
                    Duration::from_secs(1),
                    "canceling statement due to statement timeout",
                )
            })
            .collect();
        g.observe(&failed);
        assert_eq!(
            g.check(at(t0, 13_100)),
            Check::Hold(
                "foreground probe failing: canceling statement due to statement timeout".into()
            )
        );
        let c = g
            .adjust(5000)
            .expect("failed probes count as over the limit");
        assert_eq!(c.to.duty, 0.5);
        g.observe(&probes(t0, 13_100, 1, 1000));
        assert_eq!(g.check(at(t0, 13_200)), Check::Go);
        // No answer at all, not even an error, holds too.
        assert_eq!(
            g.check(at(t0, 15_300)),
            Check::Hold("foreground probe: no answer for 2.1s".into())
        );
    }

    #[test]
    fn the_first_answer_gets_its_grace_from_the_first_look() {
        let t0 = Instant::now();
        let mut g = Guard::new(Some(ImpactBound::DEFAULT), 100, t0);
        // Created long before the backfill; the probe starts just before it.
        assert!(matches!(g.check(at(t0, 60_000)), Check::Measure { .. }));
        assert!(matches!(g.check(at(t0, 61_900)), Check::Measure { .. }));
        assert!(matches!(g.check(at(t0, 62_000)), Check::Hold(_)));
    }

    #[test]
    fn the_operator_can_turn_it_off_and_set_another_bound() {
        let (mut g, t0) = measured();
        g.observe(&probes(t0, 10_000, 3, 5000));
        g.adjust(5000);
        assert_eq!(g.pacing().duty, 0.5);
        g.set_bound(None);
        assert_eq!(g.pacing(), Pacing::FULL);
        assert_eq!(
            g.check(at(t0, 60_000)),
            Check::Go,
            "off: not even a dead probe holds"
        );
        g.observe(&probes(t0, 10_200, 10, 5000));
        assert_eq!(g.adjust(5000), None);
        assert!(!g.view().on);
        g.set_bound(Some(ImpactBound::Absolute(Duration::from_millis(10))));
        g.observe(&probes(t0, 60_000, 96, 5000));
        assert_eq!(g.check(at(t0, 64_900)), Check::Go);
        assert_eq!(
            g.adjust(5000).map(|c| c.to),
            None,
            "5 ms is within 10 ms: stays full"
        );
        assert_eq!(g.view().limit_ms, Some(10.0));
    }

    #[test]
    fn a_stale_baseline_is_measured_again_only_while_the_guard_limits() {
        let (mut g, t0) = measured();
        g.observe(&probes(t0, 79_000, 20, 1000));
        assert_eq!(
            g.check(at(t0, 80_000)),
            Check::Go,
            "at full speed it does not matter"
        );
        g.observe(&probes(t0, 80_000, 3, 5000));
        g.adjust(5000);
        assert_eq!(
            g.check(at(t0, 80_200)),
            Check::Measure { have: 0, need: 50 }
        );
        g.set_activity(at(t0, 80_200), Activity::Idle);
        g.observe(&probes(t0, 80_450, 50, 1000));
        assert_eq!(g.check(at(t0, 83_000)), Check::Go);
    }

    #[test]
    fn rests_follow_the_duty_cycle() {
        let p = Pacing {
            duty: 0.25,
            batch_cap: Some(300),
        };
        assert_eq!(
            p.rest_after(Duration::from_millis(20)),
            Duration::from_millis(60)
        );
        assert_eq!(p.batch_size(5000), 300);
        assert_eq!(p.batch_size(200), 200);
        assert_eq!(
            Pacing::FULL.rest_after(Duration::from_secs(1)),
            Duration::ZERO
        );
        assert_eq!(p.to_string(), "duty 25%, batches ≤ 300");
    }
}
