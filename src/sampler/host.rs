//! Host figures: the machine pacer runs on (CPU, memory, network) and pacer's own process.
//!
//! Reads `/proc` through sysinfo; one sample costs well under a millisecond, so it runs
//! inline in the sampler's tick.

use sysinfo::{MemoryRefreshKind, Networks, Pid, ProcessRefreshKind, ProcessesToUpdate, System};

/// One reading of the host. Counters are totals since boot (or since pacer started, for its
/// own CPU time); [`crate::sampler::Metrics`] turns them into rates.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct HostSample {
    /// Machine CPU use, percent of all cores, since the previous sample (None on the first).
    pub cpu_pct: Option<f64>,
    /// Memory in use (total minus available), bytes.
    pub mem_used: Option<u64>,
    /// Memory in all, bytes.
    pub mem_total: Option<u64>,
    /// Bytes received on all interfaces but loopback, total.
    pub net_rx_bytes: Option<u64>,
    /// Bytes sent on all interfaces but loopback, total.
    pub net_tx_bytes: Option<u64>,
    /// pacer's own CPU time, milliseconds, total.
    pub own_cpu_ms: Option<u64>,
    /// pacer's own resident memory, bytes.
    pub own_rss: Option<u64>,
}

/// Reads host figures; keeps sysinfo's state between samples (CPU use needs two readings).
pub struct HostSampler {
    system: Option<System>,
    networks: Option<Networks>,
    pid: Pid,
    primed: bool,
}

impl HostSampler {
    /// Prepares the readers. On a platform sysinfo does not support, every figure stays None.
    pub fn new() -> HostSampler {
        HostSampler {
            system: System::new().ok(),
            networks: Networks::new_with_refreshed_list().ok(),
            pid: Pid::from_u32(std::process::id()),
            primed: false,
        }
    }

    /// Reads the host now.
    pub fn sample(&mut self) -> HostSample {
        let mut sample = HostSample::default();
        if let Some(system) = &mut self.system {
            system.refresh_cpu_usage();
            system.refresh_memory_specifics(MemoryRefreshKind::nothing().with_ram());
            system.refresh_processes_specifics(
                ProcessesToUpdate::Some(&[self.pid]),
                true,
                ProcessRefreshKind::nothing()
                    .with_cpu()
                    .with_memory()
                    .without_tasks(),
            );
            // sysinfo's CPU use is the difference between two refreshes: the first means nothing.
            if self.primed {
                sample.cpu_pct = Some(f64::from(system.global_cpu_usage()).clamp(0.0, 100.0));
            }
            let total = system.total_memory();
            if total > 0 {
                sample.mem_total = Some(total);
                sample.mem_used = Some(system.used_memory().min(total));
            }
            if let Some(own) = system.process(self.pid) {
                sample.own_cpu_ms = Some(own.accumulated_cpu_time());
                sample.own_rss = Some(own.memory()).filter(|&m| m > 0);
            }
            self.primed = true;
        }
        if let Some(networks) = &mut self.networks {
            networks.refresh(true);
            let (rx, tx) = sum_interfaces(networks.iter().map(|(name, data)| {
                (
                    name.to_string_lossy(),
                    data.total_received(),
                    data.total_transmitted(),
                )
            }));
            sample.net_rx_bytes = Some(rx);
            sample.net_tx_bytes = Some(tx);
        }
        sample
    }
}

impl Default for HostSampler {
    fn default() -> Self {
        HostSampler::new()
    }
}

/// Total received and sent bytes over all interfaces except loopback (traffic to a database
/// on the same machine is not network load).
pub fn sum_interfaces<S: AsRef<str>>(
    interfaces: impl IntoIterator<Item = (S, u64, u64)>,
) -> (u64, u64) {
    interfaces
        .into_iter()
        .filter(|(name, _, _)| !is_loopback(name.as_ref()))
        .fold((0u64, 0u64), |(rx, tx), (_, r, t)| {
            (rx.saturating_add(r), tx.saturating_add(t))
        })
}

fn is_loopback(name: &str) -> bool {
    name == "lo" || name.starts_with("lo0") || name.eq_ignore_ascii_case("loopback")
}

/// Own CPU use in percent of one core from a CPU-time rate in milliseconds per second.
pub fn cpu_pct_from_ms_per_s(ms_per_s: f64) -> f64 {
    (ms_per_s / 10.0).max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_traffic_is_not_network_load() {
        let (rx, tx) = sum_interfaces([
            ("lo", 1_000_000, 1_000_000),
            ("eth0", 500, 40),
            ("wlan0", 20, 2),
        ]);
        assert_eq!((rx, tx), (520, 42));
        assert_eq!(sum_interfaces(Vec::<(&str, u64, u64)>::new()), (0, 0));
    }

    #[test]
    fn cpu_time_per_second_is_percent_of_one_core() {
        assert_eq!(cpu_pct_from_ms_per_s(1000.0), 100.0);
        assert_eq!(cpu_pct_from_ms_per_s(25.0), 2.5);
        assert_eq!(cpu_pct_from_ms_per_s(2500.0), 250.0);
    }
}
