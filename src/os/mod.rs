//! The operating system, in one place: processes (alive, when they started, their name and
//! command line, signals, sessions), the user pacer runs as, the host's name, the standard
//! descriptors. Nothing else in pacer reads `/proc` or calls libc.
//!
//! On sysinfo (processes, host name) and libc (ids, users, signals), so that it works on Linux
//! and macOS alike. One exception, on Linux: a process's start time is read from
//! `/proc/<pid>/stat` in clock ticks since boot, because sysinfo gives it in wall-clock seconds
//! derived from the boot time, which moves when the clock is stepped; a start time that reads
//! differently later would make a live demo look dead to the orphan sweep.

mod process;
mod user;

pub(crate) use process::{
    command_line_contains, kill, kill_group, process_alive, process_name, process_start,
    start_in_new_session, stdio_to_dev_null,
};
pub(crate) use user::{euid, hostname, is_root, user_ids, user_name};

/// The lowest port of the kernel's ephemeral range (the ports outgoing connections take), on
/// Linux; None elsewhere (callers assume the common 32768).
pub(crate) fn ephemeral_port_low() -> Option<u32> {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}
