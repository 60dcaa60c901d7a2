//! Replication lag on PostgreSQL as it is about to be, not only as it was: the forecast the
//! target gives the engine (`Target::replica_lags`) from the replicas' WAL positions.
//!
//! PostgreSQL's `replay_lag` is the age of the WAL a replica has just replayed, so it shows a
//! burst of writes only once the replica reaches it: a throttle that waits for it to cross the
//! limit stops when the WAL already written will keep the replica behind for several times
//! the limit (measured: 3.1 s of lag against a 1 s limit). The forecast adds what the
//! positions say: the WAL written here and not yet replayed there (the backlog), divided by
//! the rate at which that replica has been replaying while it had work, is how far behind it
//! will be when it has replayed what exists now. One poll's worth of writes at the recent
//! write rate is added, because pacer looks again only at the next poll.
//!
//! The primary learns a replica's replay position only from the replica's reply messages:
//! one after each piece of WAL it receives, and otherwise every `wal_receiver_status_interval`
//! (10 s by default). So while pacer waits and writes nothing, the position (and
//! `replay_lag`) the primary shows stands still although the replica is catching up. The
//! replay rate is therefore measured between replies, on the replica's own reply clock, and
//! between replies the position is carried forward at that rate (never past the primary's
//! current position).
//!
//! Pure: positions and an injected instant in, one [`ReplicaReading`] per replica out.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::engine::throttle::ReplicaReading;
use crate::format;

/// One replica's positions, as the primary sees them.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicaPosition {
    /// Its name (unique within a reading).
    pub name: String,
    /// PostgreSQL's `replay_lag` in seconds (None while it cannot tell, e.g. caught up).
    pub replay_lag_s: Option<f64>,
    /// WAL written on the primary and not yet replayed there, bytes (None: unknown).
    pub backlog_bytes: Option<u64>,
    /// The replica's replay position in bytes since 0/0 (a counter; None: unknown).
    pub replayed_bytes: Option<u64>,
    /// When the replica sent the reply that carried that position, seconds on its own clock
    /// (`reply_time`; None: no reply yet).
    pub reply_at: Option<f64>,
}

/// Below this backlog a replica counts as caught up: its rate is not sampled (it may have
/// been idle part of the interval) and it is not behind.
pub const MIN_BACKLOG: u64 = 256 * 1024;

/// Weight of the newest sample in the smoothed rates.
const ALPHA: f64 = 0.4;

/// The replay rate is measured over at least this much of the replica's reply clock: a
/// replica replies each time WAL reaches it, and its replay may come in bursts between them.
const RATE_WINDOW: f64 = 0.25;

/// A replica behind that has replayed nothing for this long (on its reply clock) has stalled.
const STALLED_AFTER: f64 = 0.5;

#[derive(Debug, Clone, Copy)]
struct Reply {
    at: f64,
    seen: Instant,
    replayed: u64,
    backlog: u64,
}

#[derive(Debug, Clone, Default)]
struct Track {
    /// The latest reply.
    reply: Option<Reply>,
    /// The reply the current rate window started at.
    anchor: Option<Reply>,
    replay_rate: Option<f64>,
    /// The reply time at which the replay position last moved (or the replica was caught up).
    progress_at: Option<f64>,
    wal: Option<(Instant, u64)>,
    write_rate: Option<f64>,
}

/// Forecasts each replica's lag from successive readings of its positions.
#[derive(Debug, Clone)]
pub struct LagForecast {
    lookahead: Duration,
    tracks: HashMap<String, Track>,
}

impl LagForecast {
    /// A forecast that adds `lookahead` of writes at the recent write rate (pacer's next look).
    pub fn new(lookahead: Duration) -> LagForecast {
        LagForecast {
            lookahead,
            tracks: HashMap::new(),
        }
    }

    /// Takes a reading taken at `now` and returns each replica's forecast lag, with the figures
    /// behind it in words.
    pub fn observe(&mut self, now: Instant, positions: &[ReplicaPosition]) -> Vec<ReplicaReading> {
        self.tracks
            .retain(|name, _| positions.iter().any(|p| &p.name == name));
        positions.iter().map(|p| self.one(now, p)).collect()
    }

    fn one(&mut self, now: Instant, p: &ReplicaPosition) -> ReplicaReading {
        let track = self.tracks.entry(p.name.clone()).or_default();
        let (Some(backlog), Some(replayed), Some(reply_at)) =
            (p.backlog_bytes, p.replayed_bytes, p.reply_at)
        else {
            // Positions unknown (e.g. no privilege to see them): the reported lag is all there is.
            *track = Track::default();
            let lag_s = p
                .replay_lag_s
                .or((p.backlog_bytes == Some(0)).then_some(0.0));
            return ReplicaReading::reported(&p.name, lag_s);
        };
        let wal = replayed + backlog;
        if let Some((t, last_wal)) = track.wal {
            let dt = now.saturating_duration_since(t).as_secs_f64();
            if dt > 0.0 {
                let written = wal.saturating_sub(last_wal) as f64 / dt;
                track.write_rate = Some(smooth(track.write_rate, written));
            }
        }
        track.wal = Some((now, wal));
        if track.reply.is_none_or(|last| last.at != reply_at) {
            let reply = Reply {
                at: reply_at,
                seen: now,
                replayed,
                backlog,
            };
            let moved = track.reply.is_none_or(|last| replayed > last.replayed);
            if moved || backlog < MIN_BACKLOG {
                track.progress_at = Some(reply_at);
            }
            match track.anchor {
                Some(a) if reply_at - a.at >= RATE_WINDOW => {
                    // Busy throughout the window: behind at its start (an idle stretch would
                    // understate the rate).
                    if a.backlog >= MIN_BACKLOG {
                        let rate = replayed.saturating_sub(a.replayed) as f64 / (reply_at - a.at);
                        track.replay_rate = Some(smooth(track.replay_rate, rate));
                    }
                    track.anchor = Some(reply);
                }
                Some(a) if reply_at >= a.at => {}
                // The first reply, or the replica's clock went back: start again.
                _ => track.anchor = Some(reply),
            }
            track.reply = Some(reply);
        }
        let reply = track.reply.expect("set above");
        // The replay position in a reply can be stale (a replica replies when WAL arrives,
        // before applying it, and may not reply again for a while), so a replica counts as
        // stalled only when the server's own replay lag for it agrees: it grows while replay
        // stands still. A replica the server sees as clear is never called stalled.
        let stalled = backlog >= MIN_BACKLOG
            && track
                .progress_at
                .is_some_and(|at| reply.at - at >= STALLED_AFTER)
            && p.replay_lag_s.is_none_or(|lag| lag >= STALLED_AFTER);
        // Carried forward since the reply at the measured rate (not while stalled).
        let since = now.saturating_duration_since(reply.seen).as_secs_f64();
        let replayed_now = match track.replay_rate {
            Some(r) if !stalled => (reply.replayed + (r * since) as u64).min(wal),
            _ => reply.replayed,
        };
        let behind = wal - replayed_now.min(wal);
        if behind < MIN_BACKLOG && !stalled {
            return ReplicaReading::reported(&p.name, Some(0.0));
        }
        let detail = |rate: &str| {
            format!(
                "{} behind, {rate}, last reply {} ago",
                format::bytes(behind),
                format::secs(since)
            )
        };
        if stalled {
            return ReplicaReading {
                name: p.name.clone(),
                lag_s: Some(f64::INFINITY),
                detail: detail("replay stalled"),
                forecast: true,
                step_s: None,
                warming: false,
            };
        }
        // Until a whole rate window has passed, the replies so far give a first estimate.
        let provisional = track.anchor.and_then(|a| {
            (a.backlog >= MIN_BACKLOG && reply.at > a.at)
                .then(|| reply.replayed.saturating_sub(a.replayed) as f64 / (reply.at - a.at))
        });
        match track.replay_rate.or(provisional) {
            Some(r) if r > 0.0 => {
                let ahead = track.write_rate.unwrap_or(0.0) * self.lookahead.as_secs_f64();
                ReplicaReading {
                    name: p.name.clone(),
                    lag_s: Some((behind as f64 + ahead) / r),
                    detail: detail(&format!("replaying {}", format::bytes_per_s(r))),
                    forecast: true,
                    step_s: None,
                    warming: false,
                }
            }
            // No rate measured yet: the reported lag is all there is.
            _ => ReplicaReading {
                name: p.name.clone(),
                lag_s: Some(p.replay_lag_s.unwrap_or(0.0)),
                detail: String::new(),
                forecast: false,
                step_s: None,
                warming: false,
            },
        }
    }
}

fn smooth(old: Option<f64>, sample: f64) -> f64 {
    match old {
        None => sample,
        Some(o) => o + ALPHA * (sample - o),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: u64 = 1_000_000;

    fn at(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    /// A reading of replica "r1": reported lag, backlog, replay position, reply time (s).
    fn pos(lag: Option<f64>, backlog: u64, replayed: u64, reply_at: f64) -> Vec<ReplicaPosition> {
        vec![ReplicaPosition {
            name: "r1".into(),
            replay_lag_s: lag,
            backlog_bytes: Some(backlog),
            replayed_bytes: Some(replayed),
            reply_at: Some(reply_at),
        }]
    }

    fn lag(r: &[ReplicaReading]) -> f64 {
        r[0].lag_s.unwrap()
    }

    #[test]
    fn a_replica_that_keeps_up_is_not_behind() {
        let mut f = LagForecast::new(Duration::from_millis(100));
        let t0 = Instant::now();
        // 30 MB/s written, replayed as fast: the backlog stays at 100 kB.
        for i in 0..10u64 {
            let r = f.observe(
                at(t0, 100 * i),
                &pos(Some(0.01), 100_000, 3 * MB * i, i as f64 / 10.0),
            );
            assert_eq!(lag(&r), 0.0);
        }
    }

    #[test]
    fn a_growing_backlog_is_seen_before_the_reported_lag_grows() {
        let mut f = LagForecast::new(Duration::from_millis(100));
        let t0 = Instant::now();
        // Written at 30 MB/s, replayed at 5 MB/s, a reply every poll: after 0.8 s the backlog
        // is 20 MB (the rate is measured from 0.3 s to 0.6 s).
        let mut out = Vec::new();
        for i in 0..=8u64 {
            let replayed = MB / 2 * i;
            let backlog = (3 * MB - MB / 2) * i;
            out = f.observe(
                at(t0, 100 * i),
                &pos(Some(0.1), backlog, replayed, i as f64 / 10.0),
            );
        }
        // 20 MB + 0.1 s × 30 MB/s to replay at 5 MB/s: 4.6 s, while replay_lag says 0.1 s.
        let l = lag(&out);
        assert!((4.5..4.7).contains(&l), "{l}");
        assert!(
            out[0].detail.contains("19.1 MiB behind"),
            "{}",
            out[0].detail
        );
        assert!(
            out[0].detail.contains("replaying 4.8 MiB/s"),
            "{}",
            out[0].detail
        );
    }

    #[test]
    fn no_replay_progress_for_half_a_second_while_behind_is_a_stall() {
        let mut f = LagForecast::new(Duration::from_millis(100));
        let t0 = Instant::now();
        // Replay runs 0.4 s at 5 MB/s, then stops while WAL keeps arriving (a reply each time).
        for i in 0..=4u64 {
            f.observe(
                at(t0, 100 * i),
                &pos(Some(0.2), 2 * MB, 100 * MB + MB / 2 * i, i as f64 / 10.0),
            );
        }
        // While replay stands still, the server's own replay lag grows with every reply.
        for i in 5..=8u64 {
            let reported = 0.2 + 0.1 * (i - 4) as f64;
            let r = f.observe(
                at(t0, 100 * i),
                &pos(
                    Some(reported),
                    2 * MB + MB * (i - 4),
                    102 * MB,
                    i as f64 / 10.0,
                ),
            );
            assert!(lag(&r).is_finite(), "still at 0.{i} s is not yet a stall");
        }
        let r = f.observe(at(t0, 900), &pos(Some(0.7), 7 * MB, 102 * MB, 0.9));
        assert_eq!(lag(&r), f64::INFINITY);
        assert!(r[0].detail.contains("replay stalled"), "{}", r[0].detail);
        // Replay resumes: the next reply with progress ends the stall.
        let r = f.observe(at(t0, 1000), &pos(Some(0.3), 6 * MB, 103 * MB, 1.0));
        assert!(lag(&r).is_finite());
    }

    #[test]
    fn stale_replay_positions_of_a_replica_the_server_sees_as_clear_are_not_a_stall() {
        let mut f = LagForecast::new(Duration::from_millis(100));
        let t0 = Instant::now();
        // WAL arrives steadily; the replies carry a replay position that moved, then stood
        // for 0.8 s of replies (it replayed, but replied before applying), while the server
        // measures its replay lag at 0.1 s: the replica is clear, not stalled.
        for i in 0..=2u64 {
            f.observe(
                at(t0, 100 * i),
                &pos(Some(0.1), MB, 100 * MB + MB * i, i as f64 / 10.0),
            );
        }
        for i in 3..=10u64 {
            let r = f.observe(
                at(t0, 100 * i),
                &pos(Some(0.1), MB + MB / 2 * (i - 2), 102 * MB, i as f64 / 10.0),
            );
            assert!(lag(&r).is_finite(), "at 0.{i} s: {:?}", r[0]);
            assert!(!r[0].detail.contains("stalled"), "{}", r[0].detail);
        }
    }

    #[test]
    fn replay_in_bursts_between_replies_is_neither_a_stall_nor_a_slow_rate() {
        let mut f = LagForecast::new(Duration::ZERO);
        let t0 = Instant::now();
        // A reply every 10 ms; the replica replays 1.5 MB in 15 ms of every 100 ms (15 MB/s on
        // average) and nothing in the rest.
        let mut replayed = 0;
        let mut r = Vec::new();
        for i in 0..300u64 {
            if i % 10 < 2 {
                replayed += 750_000;
            }
            r = f.observe(
                at(t0, 10 * i),
                &pos(Some(0.5), 15 * MB, replayed, i as f64 / 100.0),
            );
            assert!(lag(&r).is_finite(), "a stall at {i}0 ms");
        }
        // 15 MB at ~15 MB/s.
        assert!((0.8..1.3).contains(&lag(&r)), "{}", lag(&r));
    }

    #[test]
    fn while_pacer_waits_the_replica_is_carried_forward_between_its_rare_replies() {
        let mut f = LagForecast::new(Duration::from_millis(100));
        let t0 = Instant::now();
        // Two replies 0.5 s apart while WAL flowed: 4 MB/s replayed, 8 MB behind.
        f.observe(t0, &pos(Some(1.0), 10 * MB, 0, 0.0));
        let r = f.observe(at(t0, 500), &pos(Some(1.0), 8 * MB, 2 * MB, 0.5));
        assert!((1.9..2.1).contains(&lag(&r)), "{}", lag(&r));
        // pacer stops writing; the replica replies again only after 1 s (status interval),
        // and the primary's view of its position stands still until then.
        let mut last = lag(&r);
        for i in 6..14u64 {
            let r = f.observe(at(t0, 100 * i), &pos(Some(1.0), 8 * MB, 2 * MB, 0.5));
            let l = lag(&r);
            assert!(
                l < last,
                "{l} after {last}: the forecast falls between replies"
            );
            last = l;
        }
        // 0.8 s after the reply: 8 MB − 0.8 × 4 MB = 4.8 MB left, 1.2 s.
        assert!((1.1..1.3).contains(&last), "{last}");
        // The reply confirms it; 2 s later the replica has caught up.
        f.observe(at(t0, 1500), &pos(Some(1.0), 4 * MB, 6 * MB, 1.5));
        let r = f.observe(at(t0, 3600), &pos(Some(1.0), 4 * MB, 6 * MB, 1.5));
        assert_eq!(lag(&r), 0.0);
    }

    #[test]
    fn an_idle_replica_without_a_backlog_is_zero_even_with_no_reported_lag() {
        let mut f = LagForecast::new(Duration::from_millis(100));
        let r = f.observe(Instant::now(), &pos(None, 0, 10 * MB, 5.0));
        assert_eq!(lag(&r), 0.0);
    }

    #[test]
    fn before_a_rate_is_measured_the_reported_lag_is_used() {
        let mut f = LagForecast::new(Duration::from_millis(100));
        let r = f.observe(Instant::now(), &pos(Some(0.7), 5 * MB, 10 * MB, 5.0));
        assert_eq!(lag(&r), 0.7);
    }

    #[test]
    fn without_positions_the_reported_lag_is_used_and_unknown_stays_unknown() {
        let mut f = LagForecast::new(Duration::from_millis(100));
        let p = |lag| {
            vec![ReplicaPosition {
                name: "r1".into(),
                replay_lag_s: lag,
                backlog_bytes: None,
                replayed_bytes: None,
                reply_at: None,
            }]
        };
        assert_eq!(f.observe(Instant::now(), &p(Some(2.5)))[0].lag_s, Some(2.5));
        assert_eq!(f.observe(Instant::now(), &p(None))[0].lag_s, None);
    }

    #[test]
    fn replicas_are_tracked_apart_and_forgotten_when_gone() {
        let mut f = LagForecast::new(Duration::ZERO);
        let t0 = Instant::now();
        let two = |backlog_b: u64, replayed_b: u64, reply: f64| {
            vec![
                ReplicaPosition {
                    name: "a".into(),
                    replay_lag_s: Some(0.0),
                    backlog_bytes: Some(0),
                    replayed_bytes: Some(0),
                    reply_at: Some(reply),
                },
                ReplicaPosition {
                    name: "b".into(),
                    replay_lag_s: Some(0.3),
                    backlog_bytes: Some(backlog_b),
                    replayed_bytes: Some(replayed_b),
                    reply_at: Some(reply),
                },
            ]
        };
        f.observe(t0, &two(4 * MB, 0, 0.0));
        let r = f.observe(at(t0, 1000), &two(4 * MB, 2 * MB, 1.0));
        assert_eq!(r[0].lag_s, Some(0.0));
        assert_eq!(r[1].lag_s, Some(2.0)); // 4 MB at 2 MB/s
        f.observe(at(t0, 2000), &two(4 * MB, 4 * MB, 2.0)[..1]);
        assert_eq!(f.tracks.len(), 1);
    }
}
