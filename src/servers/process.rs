//! What the throwaway servers need of the operating system, in the words they use: process
//! liveness and start times, SIGKILL to a server's process group, whether we are root, the OS
//! user a server runs as, and where the kernel's ephemeral ports begin; all from [`crate::os`],
//! the one place that reads `/proc` or calls libc.

use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use crate::os;

/// Start time of a live, non-zombie process (see [`os::process_start`]).
pub(crate) fn start_time(pid: u32) -> Option<u64> {
    os::process_start(pid)
}

/// Whether `pid` is alive (a zombie counts as dead).
pub(crate) fn is_alive(pid: u32) -> bool {
    os::process_alive(pid)
}

/// Waits up to `timeout` for `pid` to end; whether it did.
pub(crate) fn wait_until_dead(pid: u32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while is_alive(pid) {
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
    true
}

/// Whether the command line of `pid` names `path` (a server's names its data directory): guards
/// against signalling a recycled pid.
pub(crate) fn command_line_names(pid: u32, path: &Path) -> bool {
    os::command_line_contains(pid, path.as_os_str())
}

/// SIGKILL to `pid`, or to its whole process group when `group` (a server started by its
/// control program leads a session and process group of its own).
pub(crate) fn kill(pid: u32, group: bool) {
    if group {
        os::kill_group(pid);
    } else {
        os::kill(pid);
    }
}

/// Whether this process runs as root.
pub(crate) fn running_as_root() -> bool {
    os::is_root()
}

/// uid and gid of the OS user `name`.
pub(crate) fn user_ids(name: &str) -> Option<(u32, u32)> {
    os::user_ids(name)
}

/// The lowest port of the kernel's ephemeral range (see [`os::ephemeral_port_low`]).
pub(crate) fn ephemeral_port_low() -> Option<u32> {
    os::ephemeral_port_low()
}
