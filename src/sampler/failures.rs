//! Sampling failures as event-log lines: one line when a figure starts failing (or fails for
//! a new reason), one when it works again, none for each failed sample in between, so a
//! server that is down for a minute does not flood the log. Figures failing for the same
//! reason in the same round (a lost connection) share one line.

use std::collections::VecDeque;
use std::time::Duration;

/// Lines kept when nobody drains them.
const MAX_PENDING: usize = 200;

/// A line for the event log about sampling: a failure (once per run of identical failures)
/// or the end of such a run.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleLog {
    /// When (seconds since the sampler started).
    pub t: f64,
    /// true: something failed (a warning); false: it works again.
    pub failed: bool,
    /// What happened, naming the figures concerned.
    pub text: String,
}

#[derive(Debug, Clone, PartialEq)]
struct Failing {
    what: &'static str,
    message: String,
    count: u32,
}

/// The figures failing now, and the lines not yet taken.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FailureLog {
    failing: Vec<Failing>,
    pending: VecDeque<SampleLog>,
}

impl FailureLog {
    /// Records one round's outcome per figure (`what`: its name in the log) at `t`;
    /// `interval` is the retry interval the failure line mentions.
    pub fn record(
        &mut self,
        t: f64,
        outcomes: &[(&'static str, Result<(), &str>)],
        interval: Duration,
    ) {
        let mut failed: Vec<(&str, Vec<&'static str>)> = Vec::new();
        let mut recovered: Vec<&'static str> = Vec::new();
        let mut recovered_after = 0;
        for &(what, outcome) in outcomes {
            let slot = self.failing.iter().position(|f| f.what == what);
            match (outcome, slot) {
                (Ok(()), Some(i)) => {
                    let f = self.failing.remove(i);
                    recovered.push(what);
                    recovered_after = recovered_after.max(f.count);
                }
                (Ok(()), None) => {}
                (Err(message), Some(i)) if self.failing[i].message == message => {
                    self.failing[i].count += 1;
                }
                (Err(message), slot) => {
                    let entry = Failing {
                        what,
                        message: message.to_string(),
                        count: 1,
                    };
                    match slot {
                        Some(i) => self.failing[i] = entry,
                        None => self.failing.push(entry),
                    }
                    match failed.iter_mut().find(|(m, _)| *m == message) {
                        Some((_, whats)) => whats.push(what),
                        None => failed.push((message, vec![what])),
                    }
                }
            }
        }
        for (message, whats) in failed {
            self.push(SampleLog {
                t,
                failed: true,
                text: format!(
                    "sampling {} failed (a gap in the chart; retrying every {}): {message}",
                    whats.join(", "),
                    humantime::format_duration(interval)
                ),
            });
        }
        if !recovered.is_empty() {
            self.push(SampleLog {
                t,
                failed: false,
                text: format!(
                    "sampling {} again, after {recovered_after} failed sample{}",
                    recovered.join(", "),
                    if recovered_after == 1 { "" } else { "s" }
                ),
            });
        }
    }

    /// The lines since the last call, oldest first.
    pub fn take(&mut self) -> Vec<SampleLog> {
        self.pending.drain(..).collect()
    }

    fn push(&mut self, line: SampleLog) {
        if self.pending.len() == MAX_PENDING {
            self.pending.pop_front();
        }
        self.pending.push_back(line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn a_run_of_identical_failures_is_one_line_and_its_end_another() {
        let mut log = FailureLog::default();
        log.record(0.0, &[("a", Ok(())), ("b", Err("boom"))], SECOND);
        log.record(1.0, &[("a", Ok(())), ("b", Err("boom"))], SECOND);
        log.record(2.0, &[("a", Ok(())), ("b", Err("boom"))], SECOND);
        let lines = log.take();
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert_eq!(
            lines[0].text,
            "sampling b failed (a gap in the chart; retrying every 1s): boom"
        );
        log.record(3.0, &[("a", Ok(())), ("b", Ok(()))], SECOND);
        let lines = log.take();
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].text, "sampling b again, after 3 failed samples");
        assert!(!lines[0].failed);
        assert_eq!(lines[0].t, 3.0);
    }

    #[test]
    fn a_new_reason_is_a_new_line_and_shared_reasons_share_one() {
        let mut log = FailureLog::default();
        log.record(
            0.0,
            &[("a", Err("down")), ("b", Err("down")), ("c", Err("other"))],
            SECOND,
        );
        let texts: Vec<String> = log.take().into_iter().map(|l| l.text).collect();
        assert_eq!(texts.len(), 2, "{texts:?}");
        assert!(texts[0].starts_with("sampling a, b failed"), "{texts:?}");
        assert!(texts[1].starts_with("sampling c failed"), "{texts:?}");
        log.record(
            1.0,
            &[
                ("a", Err("refused")),
                ("b", Err("refused")),
                ("c", Err("other")),
            ],
            SECOND,
        );
        let texts: Vec<String> = log.take().into_iter().map(|l| l.text).collect();
        assert_eq!(texts.len(), 1, "{texts:?}");
        assert!(texts[0].ends_with(": refused"), "{texts:?}");
    }

    #[test]
    fn undrained_lines_are_bounded() {
        let mut log = FailureLog::default();
        for i in 0..1000 {
            let reason = format!("reason {i}");
            log.record(f64::from(i), &[("a", Err(&reason))], SECOND);
        }
        let lines = log.take();
        assert_eq!(lines.len(), MAX_PENDING);
        assert!(lines[MAX_PENDING - 1].text.ends_with("reason 999"));
    }
}
