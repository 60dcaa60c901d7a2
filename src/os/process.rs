//! Processes: whether one is alive, when it started, its name and command line, signals.

use std::ffi::OsStr;

use sysinfo::{Pid, ProcessRefreshKind, ProcessStatus, ProcessesToUpdate, System, UpdateKind};

/// A process as this system tells of it.
enum Seen<T> {
    /// This system's processes cannot be read (sysinfo does not support it).
    Unreadable,
    /// No such process, or it has exited and only waits to be reaped (a zombie).
    Gone,
    /// It runs; what was asked of it.
    Running(T),
}

impl<T> Seen<T> {
    fn running(self) -> Option<T> {
        match self {
            Seen::Running(t) => Some(t),
            Seen::Unreadable | Seen::Gone => None,
        }
    }
}

/// Runs `f` on process `pid` as it is now.
fn look<T>(pid: u32, kind: ProcessRefreshKind, f: impl FnOnce(&sysinfo::Process) -> T) -> Seen<T> {
    let Ok(mut system) = System::new() else {
        return Seen::Unreadable;
    };
    let pid = Pid::from_u32(pid);
    system.refresh_processes_specifics(ProcessesToUpdate::Some(&[pid]), true, kind.without_tasks());
    match system.process(pid) {
        Some(p) if !matches!(p.status(), ProcessStatus::Zombie | ProcessStatus::Dead) => {
            Seen::Running(f(p))
        }
        _ => Seen::Gone,
    }
}

/// Whether process `pid` runs (a zombie does not). `kill(pid, 0)` answers on every Unix,
/// also for another user's process; sysinfo then tells a zombie from a live one.
pub(crate) fn process_alive(pid: u32) -> bool {
    let Ok(raw) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if raw <= 0 {
        return false;
    }
    // SAFETY: kill with signal 0 only checks that the process exists; it sends nothing.
    let exists = unsafe { libc::kill(raw, 0) } == 0
        || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    exists && !matches!(look(pid, ProcessRefreshKind::nothing(), |_| ()), Seen::Gone)
}

/// The short name of process `pid` (Linux: `/proc/<pid>/comm`, 15 bytes at most).
pub(crate) fn process_name(pid: u32) -> Option<String> {
    look(pid, ProcessRefreshKind::nothing(), |p| {
        p.name().to_string_lossy().into_owned()
    })
    .running()
}

/// Whether the command line of process `pid` contains `needle` (e.g. a server's data
/// directory: a guard against signalling a recycled pid).
pub(crate) fn command_line_contains(pid: u32, needle: &OsStr) -> bool {
    let needle = needle.as_encoded_bytes();
    look(
        pid,
        ProcessRefreshKind::nothing().with_cmd(UpdateKind::Always),
        |p| {
            let mut line = Vec::new();
            for (i, arg) in p.cmd().iter().enumerate() {
                if i > 0 {
                    line.push(0);
                }
                line.extend_from_slice(arg.as_encoded_bytes());
            }
            needle.is_empty() || line.windows(needle.len()).any(|w| w == needle)
        },
    )
    .running()
    .unwrap_or(false)
}

/// When process `pid` started, as a number that stays the same for the process's whole life
/// and differs for a later process given the same pid: with the pid, it names one process.
/// None when it does not run (or is a zombie), or this system cannot tell.
///
/// Linux: clock ticks since boot (`/proc/<pid>/stat`); elsewhere: seconds since the epoch.
pub(crate) fn process_start(pid: u32) -> Option<u64> {
    #[cfg(target_os = "linux")]
    {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The name (field 2) is in parentheses and may hold anything: read after its end.
        let (_, rest) = stat.rsplit_once(") ")?;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if matches!(fields.first(), Some(&"Z") | Some(&"X")) {
            return None;
        }
        fields.get(19)?.parse().ok()
    }
    #[cfg(not(target_os = "linux"))]
    {
        start_from_sysinfo(pid)
    }
}

/// Seconds since the epoch, as sysinfo tells them (macOS: the kernel's record of the start;
/// stable for the process's life).
#[cfg(any(not(target_os = "linux"), test))]
fn start_from_sysinfo(pid: u32) -> Option<u64> {
    look(pid, ProcessRefreshKind::nothing(), |p| p.start_time()).running()
}

/// Sends SIGKILL to process `pid`. A pid of 0 or beyond `pid_t` is ignored (0 would be this
/// process's own group).
pub(crate) fn kill(pid: u32) {
    if let Ok(raw) = libc::pid_t::try_from(pid)
        && raw > 0
    {
        // SAFETY: kill has no memory-safety preconditions; a gone pid is ESRCH.
        unsafe {
            libc::kill(raw, libc::SIGKILL);
        }
    }
}

/// Sends SIGKILL to the process group led by `pid`, then to `pid` itself (a leader that has
/// left its group). Pids 0 and 1 are ignored: `kill(-1)` would reach every process.
pub(crate) fn kill_group(pid: u32) {
    if let Ok(raw) = libc::pid_t::try_from(pid)
        && raw > 1
    {
        // SAFETY: as in `kill`; a negative pid names the group `raw` leads.
        unsafe {
            libc::kill(-raw, libc::SIGKILL);
        }
        kill(pid);
    }
}

/// Makes the child of `cmd` start a session of its own (`setsid`): no controlling terminal,
/// so a hangup of pacer's terminal does not reach it, nor a Ctrl-C typed there.
pub(crate) fn start_in_new_session(cmd: &mut tokio::process::Command) {
    // SAFETY: setsid is async-signal-safe; it only fails when already a group leader, which a
    // freshly forked child is not.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
}

/// Points stdin, stdout and stderr at /dev/null (a process whose terminal went away: a write
/// to a closed pipe must not end it).
pub(crate) fn stdio_to_dev_null() {
    use std::os::fd::AsRawFd;
    let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    else {
        return;
    };
    for fd in [0, 1, 2] {
        // SAFETY: dup2 onto the standard descriptors with a valid open descriptor.
        unsafe {
            libc::dup2(null.as_raw_fd(), fd);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_with_a_stable_start_and_its_own_name() {
        let me = std::process::id();
        assert!(process_alive(me));
        let start = process_start(me).expect("the start time of this process");
        assert_eq!(
            process_start(me),
            Some(start),
            "the same on a second reading"
        );
        let exe = std::env::current_exe().unwrap();
        let stem = exe.file_name().unwrap().to_string_lossy().into_owned();
        let name = process_name(me).unwrap();
        assert!(stem.starts_with(&name), "{name} is not the start of {stem}");
        assert!(command_line_contains(me, exe.file_name().unwrap()));
        assert!(!command_line_contains(
            me,
            OsStr::new("no-such-argument-anywhere")
        ));
    }

    #[test]
    fn sysinfo_tells_when_this_process_started() {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let start = start_from_sysinfo(std::process::id()).unwrap();
        assert!(
            start <= now + 1 && now - start < 3600,
            "started at {start}, now {now}"
        );
    }

    #[test]
    fn a_process_that_ended_is_not_alive_and_has_no_start() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(!process_alive(pid));
        assert_eq!(process_start(pid), None);
        assert_eq!(process_name(pid), None);
    }

    #[test]
    fn a_zombie_is_not_alive() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        // Exited but not yet reaped: a zombie until `wait`.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while process_alive(pid) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(!process_alive(pid), "a zombie counts as gone");
        assert_eq!(process_start(pid), None);
        child.wait().unwrap();
    }

    #[test]
    fn kill_group_ends_a_group_and_ignores_pids_that_would_reach_everyone() {
        kill_group(0);
        kill_group(1);
        kill(0);
        let mut child = std::process::Command::new("sleep");
        child.arg("30");
        std::os::unix::process::CommandExt::process_group(&mut child, 0);
        let mut child = child.spawn().unwrap();
        kill_group(child.id());
        let status = child.wait().unwrap();
        assert!(!status.success());
    }
}
