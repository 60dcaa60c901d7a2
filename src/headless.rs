//! Headless output: human progress lines on stderr, or one JSON object per event on stdout.
//!
//! Progress lines (batches, verification) come at most once a second: verification reports
//! about 50 times a second (101 lines in 1.8 s before this limit). The latest one held back is
//! printed before the next other line, so every phase ends on its final figures.

use std::io::Write;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::engine::{Event, EventKind, SizeSource};
use crate::format::{human, millis, percent_done, secs, secs_of_ms, thousands};
use crate::sampler::ReplicaLag;

/// How events are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Lines for people on stderr; batch progress at most once a second.
    Human,
    /// One JSON object per event on stdout (every event, nothing dropped).
    Json,
}

/// The worst replica's lag, for the progress lines.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum WorstReplicaLag {
    /// Seconds behind the primary.
    Secs(f64),
    /// There are replicas, and none reports a lag.
    Unknown,
}

/// Reads the worst replica's lag now: `None` when there are no replicas, or no recent sample.
pub type ReplicaLagSource = Box<dyn Fn() -> Option<WorstReplicaLag> + Send>;

/// The worst of `replicas` (None: there are none).
pub fn worst_replica_lag(replicas: &[ReplicaLag]) -> Option<WorstReplicaLag> {
    if replicas.is_empty() {
        return None;
    }
    Some(
        replicas
            .iter()
            .filter_map(ReplicaLag::effective_lag_s)
            .reduce(f64::max)
            .map_or(WorstReplicaLag::Unknown, WorstReplicaLag::Secs),
    )
}

/// Prints events until the engine's event channel closes.
pub struct Printer {
    style: Style,
    started: Instant,
    last_progress: Option<Instant>,
    pending_progress: Option<String>,
    replica_lag: Option<ReplicaLagSource>,
}

/// Batch progress lines are printed at most this often.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

impl Printer {
    /// A printer in the given style.
    pub fn new(style: Style) -> Printer {
        Printer {
            style,
            started: Instant::now(),
            last_progress: None,
            pending_progress: None,
            replica_lag: None,
        }
    }

    /// Batch progress lines end with the worst replica's lag read from `source`.
    pub fn with_replica_lag(mut self, source: ReplicaLagSource) -> Printer {
        self.replica_lag = Some(source);
        self
    }

    /// Consumes events until the channel closes.
    pub async fn run(mut self, mut events: mpsc::UnboundedReceiver<Event>) {
        while let Some(event) = events.recv().await {
            self.print(&event);
        }
        self.flush_progress();
    }

    fn print(&mut self, event: &Event) {
        match self.style {
            Style::Json => {
                if let Ok(line) = serde_json::to_string(event) {
                    let mut out = std::io::stdout().lock();
                    let _ = writeln!(out, "{line}");
                    let _ = out.flush();
                }
            }
            Style::Human => {
                let lag = match (&event.kind, &self.replica_lag) {
                    (EventKind::BatchDone { .. }, Some(source)) => source(),
                    _ => None,
                };
                for line in self.human_lines_at(&event.kind, lag, Instant::now()) {
                    eprintln!("{line}");
                }
            }
        }
    }

    /// The lines to print for one event at `now`, `lag` being the worst replica's: none while
    /// a progress line is held back (less than a second after the last one).
    fn human_lines_at(
        &mut self,
        kind: &EventKind,
        lag: Option<WorstReplicaLag>,
        now: Instant,
    ) -> Vec<String> {
        let Some(mut text) = human_line(kind) else {
            return Vec::new();
        };
        if let Some(lag) = lag {
            text.push_str("  replica lag ");
            text.push_str(&lag_text(lag));
        }
        let elapsed = now.saturating_duration_since(self.started).as_secs_f64();
        let line = format!("[{elapsed:>7.1}s] {text}");
        if is_progress(kind) {
            if self
                .last_progress
                .is_some_and(|t| now.saturating_duration_since(t) < PROGRESS_EVERY)
            {
                self.pending_progress = Some(line);
                return Vec::new();
            }
            self.last_progress = Some(now);
            self.pending_progress = None;
            return vec![line];
        }
        let mut lines: Vec<String> = self.pending_progress.take().into_iter().collect();
        lines.push(line);
        lines
    }

    fn flush_progress(&mut self) {
        if let Some(line) = self.pending_progress.take() {
            eprintln!("{line}");
        }
    }
}

/// Lines that report progress, at most one a second.
fn is_progress(kind: &EventKind) -> bool {
    matches!(
        kind,
        EventKind::BatchDone { .. } | EventKind::VerifyProgress { .. }
    )
}

fn lag_text(lag: WorstReplicaLag) -> String {
    match lag {
        WorstReplicaLag::Unknown => "?".into(),
        WorstReplicaLag::Secs(s) => secs(s),
    }
}

/// A pacing in words: `duty 50%`, `duty 5%, batches ≤ 500`.
pub fn pacing_words(duty: f64, batch_cap: Option<u64>) -> String {
    crate::engine::guard::Pacing { duty, batch_cap }.to_string()
}

/// The line for one event, or None for events that only JSON consumers want.
pub fn human_line(kind: &EventKind) -> Option<String> {
    Some(match kind {
        EventKind::Started {
            target,
            table,
            phases,
            batch_size,
        } => format!(
            "target {target}, table {table}, batch size {}; phases {}",
            thousands(*batch_size),
            phases
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(" → ")
        ),
        EventKind::Planned { .. } => return None,
        EventKind::Finding { severity, message } => {
            format!("{severity:?}: {message}").to_lowercase_first()
        }
        EventKind::PhaseStarted { phase } => format!("{phase}: started"),
        EventKind::PhaseSkipped { phase, reason } => format!("{phase}: skipped ({reason})"),
        EventKind::PhaseDone { phase, elapsed_ms } => {
            format!("{phase}: done in {}", secs_of_ms(*elapsed_ms))
        }
        EventKind::StepDone {
            phase,
            step,
            outcome,
            detail,
        } => {
            // "repaired" and a done step that cleared its way both say what they did.
            let what = match (outcome.as_str(), detail) {
                ("already_done", _) => "already done".to_string(),
                (_, Some(d)) => format!("done — {d}"),
                (_, None) => "done".to_string(),
            };
            format!("{phase}: {step}: {what}")
        }
        EventKind::LockTimeout {
            phase,
            step,
            attempt,
            max_attempts,
            retry_in_ms,
            blockers,
            detail,
            skipped,
        } => {
            let who = if blockers.is_empty() {
                format!("({detail})")
            } else {
                format!(
                    "blocked by {}",
                    blockers
                        .iter()
                        .map(|b| b.to_string())
                        .collect::<Vec<_>>()
                        .join("; ")
                )
            };
            let what = if *skipped {
                "not attempted while a session holds the table"
            } else {
                "lock wait timed out"
            };
            format!(
                "{phase}: {step}: {what} (attempt {attempt}/{max_attempts}), {who}; retrying in {}",
                secs_of_ms(*retry_in_ms)
            )
        }
        EventKind::Waiting {
            phase,
            step,
            attempt,
            max_attempts,
            retry_in_ms,
            detail,
        } => format!(
            "{phase}: {step}: {detail} (attempt {attempt}/{max_attempts}); retrying in {}",
            secs_of_ms(*retry_in_ms)
        ),
        EventKind::BackfillRange {
            after,
            end,
            rows_done,
            rows_total,
        } => match end {
            None => "backfill: the table was empty when the backfill began; nothing to fill".into(),
            Some(end) => format!(
                "backfill: keys {} up to {end}; ~{} rows{}",
                after
                    .as_ref()
                    .map_or("from the first".to_string(), |a| format!("after {a}")),
                rows_total.map_or("?".to_string(), thousands),
                if *rows_done > 0 {
                    format!(", resuming after {} done", thousands(*rows_done))
                } else {
                    String::new()
                }
            ),
        },
        EventKind::BatchDone {
            rows_done,
            rows_total,
            rows_per_s,
            batch_size,
            eta_s,
            hi,
            duration_ms,
            ..
        } => {
            let of = match rows_total {
                Some(t) if *t > 0 => format!(
                    "/{} rows ({})",
                    thousands(*t),
                    percent_done(*rows_done as f64 / *t as f64)
                ),
                _ => " rows".to_string(),
            };
            format!(
                "backfill  {}{of}  {} rows/s  batch {} ({})  ETA {}  checkpoint {hi}",
                thousands(*rows_done),
                thousands(rows_per_s.round() as u64),
                thousands(*batch_size),
                millis(*duration_ms as f64),
                eta_s.map_or("?".to_string(), |s| human(std::time::Duration::from_secs(
                    s
                ))),
            )
        }
        EventKind::BatchTimeout { from, to, detail } => format!(
            "backfill: a batch of {} rows timed out and was rolled back ({detail}); batch size now {}",
            thousands(*from),
            thousands(*to)
        ),
        // The sizer adjusts most batches; progress lines show the size. The batch_timeout line
        // says what a timeout made of the size.
        EventKind::BatchSizeChanged { routine: true, .. }
        | EventKind::BatchSizeChanged {
            by: SizeSource::Timeout,
            ..
        } => return None,
        EventKind::BatchSizeChanged {
            from, to, reason, ..
        } if from == to => format!("batch size {} — {reason}", thousands(*to)),
        EventKind::BatchSizeChanged {
            from, to, reason, ..
        } => format!(
            "batch size {} → {} — {reason}",
            thousands(*from),
            thousands(*to)
        ),
        EventKind::VerifyProgress { rows_checked, .. } => {
            format!("verify: {} rows checked", thousands(*rows_checked))
        }
        EventKind::ForegroundBaseline {
            p99_ms,
            probes,
            waited_ms,
        } => format!(
            "foreground: baseline p99 {} over {probes} probes (measured in {})",
            millis(*p99_ms),
            secs_of_ms(*waited_ms)
        ),
        EventKind::PacingChanged {
            from_duty,
            duty,
            from_batch_cap,
            batch_cap,
            reason,
        } => format!(
            "foreground: pacing {} → {} — {reason}",
            pacing_words(*from_duty, *from_batch_cap),
            pacing_words(*duty, *batch_cap)
        ),
        EventKind::ForegroundBoundChanged { bound } => match bound {
            Some(b) => format!("foreground: bound set to {b}; pacing from full speed"),
            None => "foreground: guard turned off; batches run at full speed".into(),
        },
        EventKind::Throttled { reasons } => format!(
            "THROTTLED: {}; waiting at the batch boundary",
            reasons
                .iter()
                .map(|r| r.to_string())
                .collect::<Vec<_>>()
                .join("; ")
        ),
        EventKind::Unthrottled { after_ms } => {
            format!("throttle lifted after {}; going on", secs_of_ms(*after_ms))
        }
        EventKind::PauseRequested => {
            "pause requested: takes effect at the next batch boundary".into()
        }
        EventKind::Paused { phase } => format!("{phase}: PAUSED at a batch boundary"),
        EventKind::Resumed => "resumed".into(),
        EventKind::AbortRequested => "abort requested: stopping at the next batch boundary".into(),
        EventKind::GateReached { phase, lock } => {
            format!("gate: waiting before {phase} ({lock}); proceed with: pacer ctl proceed")
        }
        EventKind::GateProceeded { phase } => {
            format!("gate: the operator proceeded; {phase} starts")
        }
        EventKind::ConnectionLost {
            detail,
            attempt,
            max_attempts,
            retry_in_ms,
        } => format!(
            "connection lost ({detail}); reconnecting in {} (attempt {attempt}/{max_attempts})",
            secs_of_ms(*retry_in_ms)
        ),
        EventKind::Reconnected { .. } => "reconnected; going on from the last checkpoint".into(),
        EventKind::AlreadyDone => "this migration finished in an earlier run; nothing to do".into(),
        EventKind::Done {
            rows_done,
            rows_updated,
            elapsed_ms,
        } => format!(
            "DONE: {} rows walked, {} updated, in {}",
            thousands(*rows_done),
            thousands(*rows_updated),
            secs_of_ms(*elapsed_ms)
        ),
        EventKind::Aborted { phase } => format!(
            "ABORTED by the operator{}; everything is resumable: run the same command again",
            phase.map(|p| format!(" during {p}")).unwrap_or_default()
        ),
        // `pacer run` prints the error itself as its last line (`pacer: …`), in every style.
        EventKind::Failed { phase, .. } => format!(
            "FAILED{}",
            phase.map(|p| format!(" during {p}")).unwrap_or_default()
        ),
    })
}

trait LowercaseFirst {
    fn to_lowercase_first(self) -> String;
}

impl LowercaseFirst for String {
    fn to_lowercase_first(self) -> String {
        let mut chars = self.chars();
        match chars.next() {
            Some(c) => c.to_lowercase().chain(chars).collect(),
            None => self,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Phase;
    use crate::target::Key;

    fn verify(rows_checked: u64) -> EventKind {
        EventKind::VerifyProgress {
            rows_checked,
            up_to: None,
        }
    }

    fn batch_done(rows_done: u64) -> EventKind {
        EventKind::BatchDone {
            batch: 1,
            lo: None,
            hi: Key(vec!["10".into()]),
            keys: 1000,
            rows_updated: 1000,
            duration_ms: 12,
            rows_done,
            rows_total: Some(100_000),
            rows_per_s: 50_000.0,
            avg_rows_per_s: 50_000.0,
            batch_size: 1000,
            eta_s: Some(2),
        }
    }

    #[test]
    fn verify_prints_at_most_one_progress_line_a_second_and_ends_on_its_final_count() {
        // What a real verify of 101 steps in 1.8 s sent: one every 18 ms.
        let mut printer = Printer::new(Style::Human);
        let t0 = printer.started;
        let mut printed = Vec::new();
        for i in 0..=100u64 {
            let now = t0 + Duration::from_millis(18 * i);
            printed.extend(printer.human_lines_at(&verify(i * 1000), None, now));
        }
        assert_eq!(
            printed,
            vec![
                "[    0.0s] verify: 0 rows checked",
                "[    1.0s] verify: 56,000 rows checked",
            ],
            "one line a second"
        );
        // The next other line brings the held-back final figure first.
        let done = EventKind::PhaseDone {
            phase: Phase::Verify,
            elapsed_ms: 1800,
        };
        let lines = printer.human_lines_at(&done, None, t0 + Duration::from_millis(1810));
        assert_eq!(
            lines,
            vec![
                "[    1.8s] verify: 100,000 rows checked",
                "[    1.8s] verify: done in 1.8s",
            ]
        );
    }

    #[test]
    fn batch_progress_lines_show_the_worst_replica_lag_when_there_are_replicas() {
        let mut printer = Printer::new(Style::Human);
        let t0 = printer.started;
        let line = printer
            .human_lines_at(&batch_done(1000), Some(WorstReplicaLag::Secs(0.42)), t0)
            .pop()
            .unwrap();
        assert!(line.ends_with("checkpoint 10  replica lag 0.4s"), "{line}");
        let later = t0 + Duration::from_secs(2);
        let line = printer
            .human_lines_at(&batch_done(2000), None, later)
            .pop()
            .unwrap();
        assert!(line.ends_with("checkpoint 10"), "no replicas: {line}");

        let replica = |name: &str, lag: Option<f64>, bytes: Option<u64>| ReplicaLag {
            name: name.into(),
            state: "streaming".into(),
            replay_lag_s: lag,
            lag_bytes: bytes,
        };
        assert_eq!(worst_replica_lag(&[]), None);
        assert_eq!(
            worst_replica_lag(&[
                replica("a", Some(0.2), Some(10)),
                replica("b", Some(1.5), Some(900)),
                replica("c", None, None),
            ]),
            Some(WorstReplicaLag::Secs(1.5))
        );
        assert_eq!(
            worst_replica_lag(&[replica("idle", None, Some(0))]),
            Some(WorstReplicaLag::Secs(0.0)),
            "caught up"
        );
        assert_eq!(
            worst_replica_lag(&[replica("c", None, None)]),
            Some(WorstReplicaLag::Unknown)
        );
        assert_eq!(lag_text(WorstReplicaLag::Unknown), "?");
        assert_eq!(lag_text(WorstReplicaLag::Secs(75.0)), "1m 15s");
    }

    fn resized(from: u64, to: u64, by: SizeSource, reason: &str, routine: bool) -> Option<String> {
        human_line(&EventKind::BatchSizeChanged {
            from,
            to,
            by,
            reason: reason.into(),
            routine,
        })
    }

    #[test]
    fn a_batch_size_change_is_one_line_without_nested_brackets_and_a_hand_back_says_who_took_over()
    {
        assert_eq!(
            resized(
                1000,
                2000,
                SizeSource::Operator,
                "operator: holds until r",
                false
            )
            .unwrap(),
            "batch size 1,000 → 2,000 — operator: holds until r"
        );
        assert_eq!(
            resized(
                1234,
                1234,
                SizeSource::Adaptive,
                "adaptive sizer took over",
                false
            )
            .unwrap(),
            "batch size 1,234 — adaptive sizer took over"
        );
        assert_eq!(
            resized(
                8000,
                3000,
                SizeSource::Adaptive,
                "adaptive: cut, a batch took 900 ms",
                false
            )
            .unwrap(),
            "batch size 8,000 → 3,000 — adaptive: cut, a batch took 900 ms"
        );
        // Steering shows in the progress lines; a timeout in the batch_timeout line.
        assert_eq!(
            resized(1000, 1500, SizeSource::Adaptive, "adaptive → 200 ms", true),
            None
        );
        assert_eq!(
            resized(8000, 4000, SizeSource::Timeout, "timeout: halved", false),
            None
        );
    }

    #[test]
    fn a_gate_says_what_it_waits_before_with_its_locks_and_how_to_proceed() {
        assert_eq!(
            human_line(&EventKind::GateReached {
                phase: Phase::NotNull,
                lock: "ACCESS EXCLUSIVE briefly".into()
            })
            .unwrap(),
            "gate: waiting before not_null (ACCESS EXCLUSIVE briefly); proceed with: pacer ctl proceed"
        );
        assert_eq!(
            human_line(&EventKind::GateProceeded {
                phase: Phase::Index
            })
            .unwrap(),
            "gate: the operator proceeded; index starts"
        );
    }

    #[test]
    fn gate_events_are_json_with_snake_case_tags() {
        let event = Event {
            ts: "t".into(),
            job: "public.t.c".into(),
            kind: EventKind::GateReached {
                phase: Phase::NotNull,
                lock: "ACCESS EXCLUSIVE briefly".into(),
            },
        };
        assert_eq!(
            serde_json::to_value(&event).unwrap(),
            serde_json::json!({
                "ts": "t",
                "job": "public.t.c",
                "event": "gate_reached",
                "phase": "not_null",
                "lock": "ACCESS EXCLUSIVE briefly"
            })
        );
        let event = Event {
            kind: EventKind::GateProceeded {
                phase: Phase::NotNull,
            },
            ..event
        };
        assert_eq!(
            serde_json::to_value(&event).unwrap()["event"],
            "gate_proceeded"
        );
    }
}
