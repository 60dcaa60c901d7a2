//! Time as the engine sees it: injectable, so tests of retries and rates never sleep.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

/// A source of "now" and of sleeps.
pub trait Clock: Send + Sync {
    /// The current instant.
    fn now(&self) -> Instant;
    /// Sleeps for `d`.
    fn sleep(&self, d: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>>;
}

/// The real clock (tokio's timer).
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
    fn sleep(&self, d: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(tokio::time::sleep(d))
    }
}

/// A clock for tests: sleeping advances it at once and records the sleep.
#[cfg(test)]
#[derive(Debug)]
pub struct ManualClock {
    start: Instant,
    state: std::sync::Mutex<(Duration, Vec<Duration>)>,
}

#[cfg(test)]
impl ManualClock {
    /// A clock at an arbitrary start.
    pub fn new() -> ManualClock {
        ManualClock {
            start: Instant::now(),
            state: std::sync::Mutex::new((Duration::ZERO, Vec::new())),
        }
    }
    /// Moves time forward.
    pub fn advance(&self, d: Duration) {
        self.state.lock().unwrap().0 += d;
    }
    /// Every sleep asked for so far.
    pub fn sleeps(&self) -> Vec<Duration> {
        self.state.lock().unwrap().1.clone()
    }
}

#[cfg(test)]
impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.start + self.state.lock().unwrap().0
    }
    fn sleep(&self, d: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        let mut s = self.state.lock().unwrap();
        s.0 += d;
        s.1.push(d);
        Box::pin(std::future::ready(()))
    }
}
