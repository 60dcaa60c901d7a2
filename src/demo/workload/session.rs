//! The application's sessions, whatever the server: each keeps its share of the rate, switches to
//! the new version's statements at the deploy, reconnects after a lost connection and counts
//! what it did. How a session talks to its server is a [`Connection`] ([`super::postgres`],
//! [`super::mysql`]).

use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::{Counters, Param, Rng, WorkloadControl, WorkloadHandle, WorkloadSpec};

/// One session's connection to the server, in one family's driver.
pub(super) trait Connection: Sized + Send + 'static {
    /// The statements of one application version, prepared on this connection, in the order
    /// of the spec's.
    type Statements: Send + Sync;

    /// Opens a session on the database of `url` (named as the application).
    fn connect(url: &str) -> impl Future<Output = Result<Self, String>> + Send;

    /// Whether the connection is gone (the next statement needs a new one).
    fn is_closed(&self) -> bool;

    /// The highest order id now.
    fn max_id(&mut self) -> impl Future<Output = Result<i64, String>> + Send;

    /// Session settings and the statements of the version running (`deployed` or not).
    fn prepare(
        &mut self,
        spec: &WorkloadSpec,
        deployed: bool,
    ) -> impl Future<Output = Result<Self::Statements, String>> + Send;

    /// Runs statement `i` with `values` (one per parameter of the spec's); the new order's id
    /// when it placed one. The error is the server's message.
    fn execute(
        &mut self,
        statements: &Self::Statements,
        i: usize,
        values: &[i64],
    ) -> impl Future<Output = Result<Option<i64>, String>> + Send;
}

/// Opens the sessions on the database of `url` and starts sending `spec`'s mix at `tps`.
pub(super) async fn start<C: Connection>(
    url: &str,
    spec: WorkloadSpec,
    tps: u32,
) -> Result<WorkloadHandle, String> {
    let spec = Arc::new(spec);
    let mut first = C::connect(url).await?;
    let max_id = Arc::new(AtomicI64::new(first.max_id().await?));
    let (tps_tx, _) = watch::channel(tps);
    let (deployed_tx, _) = watch::channel(false);
    let (stop_tx, _) = watch::channel(false);
    let counters = Arc::new(Mutex::new(Counters::default()));
    let rolled_out = Arc::new(AtomicU32::new(0));
    let mut tasks = Vec::new();
    let mut first = Some(first);
    for n in 0..spec.connections {
        let session = Session {
            url: url.to_string(),
            spec: spec.clone(),
            max_id: max_id.clone(),
            counters: counters.clone(),
            tps: tps_tx.subscribe(),
            deployed: deployed_tx.subscribe(),
            rolled_out: rolled_out.clone(),
            stop: stop_tx.subscribe(),
            rng: Rng::new(u64::from(n)),
        };
        let connection = first.take();
        tasks.push(tokio::spawn(session.run(connection)));
    }
    // Closes the latency window every second.
    let window = counters.clone();
    let mut stop = stop_tx.subscribe();
    tasks.push(tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.tick().await;
        let mut last = Instant::now();
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => return,
            }
            let now = Instant::now();
            window
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .rotate(now - last);
            last = now;
        }
    }));
    Ok(WorkloadHandle {
        control: WorkloadControl {
            tps: tps_tx,
            deployed: deployed_tx,
            rolled_out,
            sessions: spec.connections,
            counters,
        },
        stop: stop_tx,
        tasks,
    })
}

/// One session of the application.
struct Session {
    url: String,
    spec: Arc<WorkloadSpec>,
    max_id: Arc<AtomicI64>,
    counters: Arc<Mutex<Counters>>,
    tps: watch::Receiver<u32>,
    deployed: watch::Receiver<bool>,
    /// Counts this session once it sends the new version's statements.
    rolled_out: Arc<AtomicU32>,
    stop: watch::Receiver<bool>,
    rng: Rng,
}

impl Session {
    async fn run<C: Connection>(mut self, mut connection: Option<C>) {
        let mut statements: Option<C::Statements> = None;
        // The version `statements` were prepared for.
        let mut prepared_deployed = false;
        let mut counted = false;
        let mut next = Instant::now();
        loop {
            if prepared_deployed && statements.is_some() && !counted {
                self.rolled_out.fetch_add(1, Ordering::SeqCst);
                counted = true;
            }
            if *self.stop.borrow() {
                return;
            }
            let deployed = *self.deployed.borrow();
            if deployed != prepared_deployed {
                // The new version: its statements from now on.
                statements = None;
            }
            // (Re)connect and prepare; a failure counts and is retried a second later.
            let prepared = match connection.as_mut() {
                Some(c) if !c.is_closed() => {
                    if statements.is_none() {
                        c.prepare(&self.spec, deployed).await.map(Some)
                    } else {
                        Ok(None)
                    }
                }
                _ => match C::connect(&self.url).await {
                    Ok(mut c) => {
                        let s = c.prepare(&self.spec, deployed).await;
                        connection = Some(c);
                        s.map(Some)
                    }
                    Err(e) => {
                        connection = None;
                        Err(e)
                    }
                },
            };
            match prepared {
                Ok(Some(s)) => {
                    statements = Some(s);
                    prepared_deployed = deployed;
                }
                Ok(None) => {}
                Err(e) => {
                    self.failed(e);
                    if self.sleep(Duration::from_secs(1)).await {
                        return;
                    }
                    continue;
                }
            }
            let tps = *self.tps.borrow_and_update();
            if tps == 0 {
                tokio::select! {
                    _ = self.tps.changed() => {}
                    // A deploy reaches an idle session too, so the rollout completes.
                    _ = self.deployed.changed() => {}
                    _ = self.stop.changed() => return,
                }
                next = Instant::now();
                continue;
            }
            let period = Duration::from_secs_f64(f64::from(self.spec.connections) / f64::from(tps));
            next += period;
            let now = Instant::now();
            if next + Duration::from_secs(1) < now {
                // Far behind (a stall): do not make up for it in a burst.
                next = now;
            }
            tokio::select! {
                _ = tokio::time::sleep_until(next.into()) => {}
                _ = self.tps.changed() => {
                    next = Instant::now();
                    continue;
                }
                _ = self.deployed.changed() => continue,
                _ = self.stop.changed() => return,
            }
            if *self.deployed.borrow() != prepared_deployed {
                // Deployed while this session waited: no statement of the old version after
                // the deploy; the new ones are prepared at the top of the loop.
                continue;
            }
            let (Some(c), Some(s)) = (connection.as_mut(), statements.as_ref()) else {
                continue;
            };
            let i = self.spec.pick(self.rng.below(self.spec.total_weight()));
            let spec = self.spec.clone();
            let values: Vec<i64> = spec.statements[i]
                .params
                .iter()
                .map(|p| self.value(*p))
                .collect();
            let started = Instant::now();
            match c.execute(s, i, &values).await {
                Ok(new_id) => {
                    if let Some(id) = new_id {
                        self.max_id.fetch_max(id, Ordering::Relaxed);
                    }
                    let us = started.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
                    let mut c = self.counters.lock().unwrap_or_else(|p| p.into_inner());
                    c.stats.done += 1;
                    c.window.push(us);
                }
                Err(e) => self.failed(format!("{}: {e}", spec.statements[i].name)),
            }
        }
    }

    fn value(&mut self, p: Param) -> i64 {
        match p {
            Param::Id => {
                1 + self
                    .rng
                    .below_u64(self.max_id.load(Ordering::Relaxed).max(1) as u64)
                    as i64
            }
            Param::Customer => i64::from(self.rng.below(50_000)),
            Param::Cents => 100 + i64::from(self.rng.below(99_900)),
        }
    }

    fn failed(&self, message: String) {
        let mut c = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        c.stats.errors += 1;
        c.stats.last_error = Some(message);
    }

    /// Sleeps; true when the workload was stopped meanwhile.
    async fn sleep(&mut self, d: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(d) => false,
            _ = self.stop.changed() => true,
        }
    }
}
