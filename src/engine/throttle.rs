//! Health throttling: pure rules over the latest signals, with hysteresis and fail-closed
//! handling, against an injected clock.
//!
//! The engine asks [`Throttle::evaluate`] at every batch boundary. Any signal over its limit
//! throttles at once; the throttle lifts only after every signal has been clear for
//! `resume_after` (so it does not flap). A replica whose lag cannot be read counts as over
//! the limit once it has been unreadable for `lag_grace` (fail closed).

use std::fmt;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::format;

pub use crate::plan::ThrottleSpec as ThrottleConfig;

/// One replica's lag as last read or forecast (see [`super::lag`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicaReading {
    /// Its name.
    pub name: String,
    /// Seconds behind, or None when it could not be read.
    pub lag_s: Option<f64>,
    /// The figures behind `lag_s`, in words (empty when it is the reported lag alone).
    pub detail: String,
    /// Whether `lag_s` is a forecast from the backlog (else a measurement, e.g. a heartbeat).
    pub forecast: bool,
    /// How much `lag_s` grew since the reading before, when that was at the previous batch
    /// boundary (set by the engine): what one more batch is likely to add.
    pub step_s: Option<f64>,
    /// It has a backlog whose apply rate is not measured yet, so `lag_s` cannot be forecast:
    /// the engine reads it at every batch boundary until it can.
    pub warming: bool,
}

impl ReplicaReading {
    /// A reading of the reported lag alone.
    pub fn reported(name: &str, lag_s: Option<f64>) -> ReplicaReading {
        ReplicaReading {
            name: name.into(),
            lag_s,
            detail: String::new(),
            forecast: false,
            step_s: None,
            warming: false,
        }
    }

    /// The lag to hold against the limit: `lag_s` plus what one more batch adds, when that was
    /// measured (a throttle that waited for the limit itself would overshoot it by a batch).
    pub fn ahead_s(&self) -> Option<f64> {
        let step = self.step_s.filter(|s| s.is_finite() && *s > 0.0);
        self.lag_s.map(|l| l + step.unwrap_or(0.0))
    }
}

/// The latest readings. `None` everywhere means "not read (yet, or the read failed)".
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Signals {
    /// Each replica's lag (Some(empty): no replicas; None: the lag query failed).
    pub replicas: Option<Vec<ReplicaReading>>,
    /// Sessions waiting on locks held by pacer.
    pub lock_waiters: Option<u32>,
    /// The database's own background maintenance working on the table (PostgreSQL: an
    /// autovacuum), which the target words in its reasons.
    pub maintenance: Option<bool>,
    /// The volume of redo the server writes, bytes per second (PostgreSQL: WAL;
    /// MySQL/MariaDB: the binary log).
    pub write_volume: Option<f64>,
    /// Sessions running a statement, pacer's own not counted (PostgreSQL: active backends;
    /// MySQL/MariaDB: `Threads_running`).
    pub active_sessions: Option<u32>,
    /// InnoDB's history list length (MySQL/MariaDB): undo logs the purge has not caught up on.
    pub history_length: Option<u64>,
    /// The throttle query's value, or its error.
    pub query: Option<Result<f64, String>>,
    /// Whether the throttle file exists.
    pub file_exists: bool,
}

/// One signal over its limit, with the value against the limit.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Reason {
    /// Which signal.
    pub signal: String,
    /// Its value, in words.
    pub value: String,
    /// The limit, in words.
    pub limit: String,
}

impl Reason {
    /// The reason without the figures behind its value, and with what it is about (a
    /// replica's name) last, so that a status line cut short keeps the value and the limit:
    /// `replication lag 14.2s forecast > 10s (replica-a)` (the event has it all).
    pub fn short(&self) -> String {
        let value = self.value.split(" (").next().unwrap_or(&self.value);
        let (signal, about) = match self.signal.split_once(" (") {
            Some((signal, about)) => (signal, format!(" ({about}")),
            None => (self.signal.as_str(), String::new()),
        };
        let reason = Reason {
            signal: signal.to_string(),
            value: value.to_string(),
            limit: self.limit.clone(),
        };
        format!("{reason}{about}")
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.limit.is_empty() {
            write!(f, "{} {}", self.signal, self.value)
        } else {
            write!(f, "{} {} > {}", self.signal, self.value, self.limit)
        }
    }
}

/// What to do at a batch boundary.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Go on.
    Go,
    /// Wait; why (every signal over its limit, or the last ones while clearing).
    Wait(Vec<Reason>),
}

/// The throttle's state between evaluations.
#[derive(Debug, Clone)]
pub struct Throttle {
    config: ThrottleConfig,
    throttled: bool,
    last_reasons: Vec<Reason>,
    clear_since: Option<Instant>,
    lag_unreadable_since: Option<Instant>,
}

impl Throttle {
    /// A throttle for the plan's settings.
    pub fn new(config: ThrottleConfig) -> Throttle {
        Throttle {
            config,
            throttled: false,
            last_reasons: Vec::new(),
            clear_since: None,
            lag_unreadable_since: None,
        }
    }

    /// The settings.
    pub fn config(&self) -> &ThrottleConfig {
        &self.config
    }

    /// Judges the latest signals at `now`.
    pub fn evaluate(&mut self, now: Instant, s: &Signals) -> Verdict {
        let reasons = self.over_limits(now, s);
        if !reasons.is_empty() {
            self.throttled = true;
            self.clear_since = None;
            self.last_reasons = reasons.clone();
            return Verdict::Wait(reasons);
        }
        if !self.throttled {
            return Verdict::Go;
        }
        let since = *self.clear_since.get_or_insert(now);
        if now.saturating_duration_since(since) >= self.config.resume_after {
            self.throttled = false;
            self.clear_since = None;
            self.last_reasons.clear();
            return Verdict::Go;
        }
        let mut waiting = self.last_reasons.clone();
        for r in &mut waiting {
            r.value = format!(
                "{} (clear; resuming after {})",
                r.value,
                humantime::format_duration(self.config.resume_after)
            );
            r.limit.clear();
        }
        Verdict::Wait(waiting)
    }

    fn over_limits(&mut self, now: Instant, s: &Signals) -> Vec<Reason> {
        let c = &self.config;
        let mut out = Vec::new();
        if let Some(limit) = c.max_replication_lag {
            let limit_s = limit.as_secs_f64();
            let unreadable = match &s.replicas {
                None => true,
                Some(rs) => rs.iter().any(|r| r.lag_s.is_none()),
            };
            if unreadable {
                let since = *self.lag_unreadable_since.get_or_insert(now);
                if now.saturating_duration_since(since) >= c.lag_grace {
                    out.push(Reason {
                        signal: "replication lag".into(),
                        value: format!(
                            "unreadable for {}",
                            format::human(Duration::from_secs(
                                now.saturating_duration_since(since).as_secs()
                            ))
                        ),
                        limit: format!(
                            "grace {} (fail closed)",
                            humantime::format_duration(c.lag_grace)
                        ),
                    });
                }
            } else {
                self.lag_unreadable_since = None;
            }
            if let Some(rs) = &s.replicas
                && let Some((worst, ahead)) = rs
                    .iter()
                    .filter_map(|r| r.ahead_s().map(|l| (r, l)))
                    .max_by(|a, b| a.1.total_cmp(&b.1))
                && ahead > limit_s
            {
                let lag = worst.lag_s.unwrap_or(ahead);
                let mut value = match (lag.is_finite(), worst.detail.is_empty()) {
                    (true, true) => format::secs(lag),
                    (true, false) if worst.forecast => {
                        format!("{} forecast ({})", format::secs(lag), worst.detail)
                    }
                    (true, false) => format!("{} ({})", format::secs(lag), worst.detail),
                    (false, _) => format!("growing ({})", worst.detail),
                };
                if ahead > lag && lag.is_finite() {
                    value = format!("{value}, +{} per batch", format::secs(ahead - lag));
                }
                out.push(Reason {
                    signal: format!("replication lag ({})", worst.name),
                    value,
                    limit: format!("{limit_s}s"),
                });
            }
        }
        if let (Some(limit), Some(n)) = (c.max_lock_waiters, s.lock_waiters)
            && n > limit
        {
            out.push(Reason {
                signal: "sessions waiting on pacer's locks".into(),
                value: n.to_string(),
                limit: limit.to_string(),
            });
        }
        if c.pause_on_autovacuum && s.maintenance == Some(true) {
            out.push(Reason {
                signal: "autovacuum".into(),
                value: "working on the table".into(),
                limit: String::new(),
            });
        }
        if let (Some((limit, signal)), Some(rate)) = (c.write_volume_limit(), s.write_volume)
            && rate > limit as f64
        {
            out.push(Reason {
                signal: signal.into(),
                value: format::bytes_per_s(rate),
                limit: format::bytes_per_s(limit as f64),
            });
        }
        if let (Some(limit), Some(n)) = (c.max_threads_running, s.active_sessions)
            && n > limit
        {
            out.push(Reason {
                signal: "threads running".into(),
                value: n.to_string(),
                limit: limit.to_string(),
            });
        }
        if let (Some(limit), Some(n)) = (c.max_history_length, s.history_length)
            && n > limit
        {
            out.push(Reason {
                signal: "history list length".into(),
                value: format::thousands(n),
                limit: format::thousands(limit),
            });
        }
        if c.throttle_query.is_some() {
            match &s.query {
                Some(Ok(v)) if *v > 0.0 => out.push(Reason {
                    signal: "throttle_query".into(),
                    value: format!("{v}"),
                    limit: "0".into(),
                }),
                // A query that fails throttles too: its author wanted a say.
                Some(Err(e)) => out.push(Reason {
                    signal: "throttle_query".into(),
                    value: format!("failed: {e}"),
                    limit: String::new(),
                }),
                _ => {}
            }
        }
        if let Some(path) = &c.throttle_file
            && s.file_exists
        {
            out.push(Reason {
                signal: "throttle_file".into(),
                value: format!("{} exists", path.display()),
                limit: String::new(),
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn the_short_reason_drops_the_figures_behind_the_value() {
        let r = Reason {
            signal: "replication lag (replica-a)".into(),
            value: "14.2s forecast (96.0 MiB behind, replaying 6.8 MiB/s, last reply 0.1s ago)"
                .into(),
            limit: "10s".into(),
        };
        assert_eq!(
            r.short(),
            "replication lag 14.2s forecast > 10s (replica-a)"
        );
        assert!(r.to_string().contains("96.0 MiB behind"));
        let plain = Reason {
            signal: "autovacuum".into(),
            value: "working on the table".into(),
            limit: String::new(),
        };
        assert_eq!(plain.short(), "autovacuum working on the table");
    }

    use super::*;

    fn config() -> ThrottleConfig {
        ThrottleConfig {
            max_replication_lag: Some(Duration::from_secs(1)),
            max_lock_waiters: Some(3),
            pause_on_autovacuum: true,
            max_wal_rate: Some(50_000_000),
            max_binlog_rate: None,
            max_threads_running: Some(25),
            max_history_length: Some(1_000_000),
            throttle_query: Some("SELECT 0".into()),
            throttle_file: Some("/tmp/pacer-throttle".into()),
            lag_grace: Duration::from_secs(5),
            resume_after: Duration::from_secs(2),
            max_foreground_impact: None,
        }
    }

    fn clear() -> Signals {
        Signals {
            replicas: Some(vec![ReplicaReading::reported("r1", Some(0.2))]),
            lock_waiters: Some(0),
            maintenance: Some(false),
            write_volume: Some(1e6),
            active_sessions: Some(4),
            history_length: Some(1_200),
            query: Some(Ok(0.0)),
            file_exists: false,
        }
    }

    fn secs(t0: Instant, s: f64) -> Instant {
        t0 + Duration::from_secs_f64(s)
    }

    #[test]
    fn clear_signals_go() {
        let mut t = Throttle::new(config());
        assert_eq!(t.evaluate(Instant::now(), &clear()), Verdict::Go);
    }

    #[test]
    fn each_signal_over_its_limit_throttles_with_value_and_limit() {
        let t0 = Instant::now();
        let cases: Vec<(Signals, &str)> = vec![
            (
                Signals {
                    replicas: Some(vec![
                        ReplicaReading::reported("r1", Some(0.2)),
                        ReplicaReading::reported("r2", Some(4.2)),
                    ]),
                    ..clear()
                },
                "replication lag (r2) 4.2s > 1s",
            ),
            (
                Signals {
                    lock_waiters: Some(5),
                    ..clear()
                },
                "sessions waiting on pacer's locks 5 > 3",
            ),
            (
                Signals {
                    maintenance: Some(true),
                    ..clear()
                },
                "autovacuum working on the table",
            ),
            (
                Signals {
                    write_volume: Some(80e6),
                    ..clear()
                },
                "WAL rate 76.3 MiB/s > 47.7 MiB/s",
            ),
            (
                Signals {
                    active_sessions: Some(31),
                    ..clear()
                },
                "threads running 31 > 25",
            ),
            (
                Signals {
                    history_length: Some(2_500_000),
                    ..clear()
                },
                "history list length 2,500,000 > 1,000,000",
            ),
            (
                Signals {
                    query: Some(Ok(2.0)),
                    ..clear()
                },
                "throttle_query 2 > 0",
            ),
            (
                Signals {
                    query: Some(Err("relation does not exist".into())),
                    ..clear()
                },
                "throttle_query failed: relation does not exist",
            ),
            (
                Signals {
                    file_exists: true,
                    ..clear()
                },
                "throttle_file /tmp/pacer-throttle exists",
            ),
        ];
        for (signals, expected) in cases {
            let mut t = Throttle::new(config());
            match t.evaluate(t0, &signals) {
                Verdict::Wait(r) => assert_eq!(
                    r.iter().map(|r| r.to_string()).collect::<Vec<_>>(),
                    vec![expected]
                ),
                Verdict::Go => panic!("{expected}: not throttled"),
            }
        }
    }

    #[test]
    fn unreadable_lag_fails_closed_after_the_grace_period() {
        let t0 = Instant::now();
        let mut t = Throttle::new(config());
        let unreadable = Signals {
            replicas: None,
            ..clear()
        };
        assert_eq!(
            t.evaluate(t0, &unreadable),
            Verdict::Go,
            "within the grace period"
        );
        assert_eq!(t.evaluate(secs(t0, 4.9), &unreadable), Verdict::Go);
        let Verdict::Wait(r) = t.evaluate(secs(t0, 5.0), &unreadable) else {
            panic!("fails closed after 5s")
        };
        assert!(r[0].to_string().contains("unreadable for 5s"), "{}", r[0]);
        let one_unknown = Signals {
            replicas: Some(vec![ReplicaReading::reported("r1", None)]),
            ..clear()
        };
        assert!(
            matches!(t.evaluate(secs(t0, 6.0), &one_unknown), Verdict::Wait(_)),
            "a replica without a reading counts too"
        );
    }

    #[test]
    fn no_replicas_is_not_a_reason_to_wait() {
        let mut t = Throttle::new(config());
        let none = Signals {
            replicas: Some(vec![]),
            ..clear()
        };
        assert_eq!(t.evaluate(Instant::now(), &none), Verdict::Go);
    }

    #[test]
    fn hysteresis_resumes_only_after_signals_stay_clear() {
        let t0 = Instant::now();
        let mut t = Throttle::new(config());
        let lagging = Signals {
            replicas: Some(vec![ReplicaReading::reported("r1", Some(3.0))]),
            ..clear()
        };
        assert!(matches!(t.evaluate(t0, &lagging), Verdict::Wait(_)));
        // Clear for 1.5 s: still waiting, and it says it is clearing.
        let Verdict::Wait(r) = t.evaluate(secs(t0, 1.0), &clear()) else {
            panic!("resumed too soon")
        };
        assert!(
            r[0].to_string().contains("clear; resuming after 2s"),
            "{}",
            r[0]
        );
        assert!(matches!(
            t.evaluate(secs(t0, 2.5), &clear()),
            Verdict::Wait(_)
        ));
        // Over again: the clear time starts over.
        assert!(matches!(
            t.evaluate(secs(t0, 2.9), &lagging),
            Verdict::Wait(_)
        ));
        assert!(matches!(
            t.evaluate(secs(t0, 3.0), &clear()),
            Verdict::Wait(_)
        ));
        assert!(matches!(
            t.evaluate(secs(t0, 4.9), &clear()),
            Verdict::Wait(_)
        ));
        assert_eq!(
            t.evaluate(secs(t0, 5.0), &clear()),
            Verdict::Go,
            "clear for 2s"
        );
        assert_eq!(t.evaluate(secs(t0, 5.1), &clear()), Verdict::Go);
    }

    #[test]
    fn unset_signals_never_throttle() {
        let mut t = Throttle::new(ThrottleConfig::default());
        let noisy = Signals {
            replicas: None,
            lock_waiters: Some(100),
            maintenance: Some(true),
            write_volume: Some(1e12),
            active_sessions: Some(10_000),
            history_length: Some(u64::MAX),
            query: Some(Ok(5.0)),
            file_exists: true,
        };
        let t0 = Instant::now();
        assert_eq!(t.evaluate(t0, &noisy), Verdict::Go);
        assert_eq!(t.evaluate(secs(t0, 60.0), &noisy), Verdict::Go);
        assert!(!ThrottleConfig::default().any());
    }

    #[test]
    fn the_binlog_rate_bounds_the_write_volume_in_the_binlog_s_words() {
        let mut t = Throttle::new(ThrottleConfig {
            max_binlog_rate: Some(10 << 20),
            ..ThrottleConfig::default()
        });
        let busy = Signals {
            write_volume: Some(12.0 * 1024.0 * 1024.0),
            ..clear()
        };
        let Verdict::Wait(r) = t.evaluate(Instant::now(), &busy) else {
            panic!("not throttled")
        };
        assert_eq!(r[0].to_string(), "binlog rate 12.0 MiB/s > 10.0 MiB/s");
    }

    #[test]
    fn threads_running_and_history_length_throttle_and_release_after_resume_after() {
        let t0 = Instant::now();
        let mut t = Throttle::new(ThrottleConfig {
            max_threads_running: Some(8),
            max_history_length: Some(100_000),
            resume_after: Duration::from_secs(2),
            ..ThrottleConfig::default()
        });
        let calm = Signals {
            active_sessions: Some(8),
            history_length: Some(100_000),
            ..Signals::default()
        };
        assert_eq!(
            t.evaluate(t0, &calm),
            Verdict::Go,
            "at the limit is not over it"
        );
        let busy = Signals {
            active_sessions: Some(9),
            ..calm.clone()
        };
        let Verdict::Wait(r) = t.evaluate(secs(t0, 1.0), &busy) else {
            panic!("9 threads running > 8")
        };
        assert_eq!(r[0].short(), "threads running 9 > 8");
        // Busy sessions gone, but the purge falls behind: still waiting, on the other signal.
        let behind = Signals {
            history_length: Some(150_000),
            ..calm.clone()
        };
        let Verdict::Wait(r) = t.evaluate(secs(t0, 2.0), &behind) else {
            panic!("history over its limit")
        };
        assert_eq!(r[0].to_string(), "history list length 150,000 > 100,000");
        // Both clear: released only after resume_after of calm.
        assert!(matches!(t.evaluate(secs(t0, 3.0), &calm), Verdict::Wait(_)));
        assert!(matches!(t.evaluate(secs(t0, 4.9), &calm), Verdict::Wait(_)));
        assert_eq!(t.evaluate(secs(t0, 5.0), &calm), Verdict::Go);
        // An unread figure (a failed sample) neither throttles nor releases on its own.
        let unread = Signals::default();
        assert_eq!(t.evaluate(secs(t0, 6.0), &unread), Verdict::Go);
    }

    #[test]
    fn a_replica_is_held_to_its_lag_plus_what_one_more_batch_adds() {
        let mut t = Throttle::new(ThrottleConfig {
            max_replication_lag: Some(Duration::from_secs(1)),
            ..ThrottleConfig::default()
        });
        let now = Instant::now();
        let mut r = ReplicaReading::reported("r1", Some(0.8));
        r.step_s = Some(0.15);
        let signals = |r: &ReplicaReading| Signals {
            replicas: Some(vec![r.clone()]),
            ..Signals::default()
        };
        assert_eq!(t.evaluate(now, &signals(&r)), Verdict::Go, "0.95 s: under");
        r.step_s = Some(0.3);
        match t.evaluate(now, &signals(&r)) {
            Verdict::Wait(reasons) => {
                assert_eq!(reasons[0].value, "0.8s, +0.3s per batch", "{reasons:?}")
            }
            v => panic!("{v:?}"),
        }
        // A shrinking lag (the replica catching up) does not lower the bar.
        let mut t = Throttle::new(t.config().clone());
        r.lag_s = Some(1.2);
        r.step_s = Some(-0.4);
        assert!(matches!(t.evaluate(now, &signals(&r)), Verdict::Wait(_)));
    }
}
