//! A tmux server of our own for terminal tests: start a command in a detached session, read
//! the screen, type keys.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A tmux server of our own, on a socket in a temporary directory of its own (not in
/// /tmp/tmux-UID, where tmux would leave it: it does not remove its socket when it exits).
/// Dropping it kills the server and removes the directory, also when the test panicked; after
/// a passing test it asserts that neither the server nor its socket is left.
pub struct Tmux {
    /// Guard of the socket's directory; `None` only during `Drop`.
    dir: Option<tempfile::TempDir>,
    socket: PathBuf,
    server_pid: Option<u32>,
}

impl Tmux {
    /// Starts `command` in a detached session of `width`×`height`.
    pub fn start(command: &str, width: u16, height: u16) -> Tmux {
        let dir = tempfile::Builder::new()
            .prefix("pacer-tmux-")
            .tempdir()
            .expect("temp dir for the tmux socket");
        let socket = dir.path().join("tmux");
        let mut tmux = Tmux {
            dir: Some(dir),
            socket,
            server_pid: None,
        };
        let out = tmux
            .cmd()
            .args([
                "new-session",
                "-d",
                "-s",
                "t",
                "-x",
                &width.to_string(),
                "-y",
                &height.to_string(),
            ])
            .arg(command)
            .output()
            .expect("tmux runs");
        assert!(
            out.status.success(),
            "tmux: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let pid = tmux
            .cmd()
            .args(["display-message", "-p", "#{pid}"])
            .output()
            .expect("tmux runs");
        tmux.server_pid = String::from_utf8_lossy(&pid.stdout).trim().parse().ok();
        tmux
    }

    /// A tmux command talking to this server.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new("tmux");
        c.arg("-S").arg(&self.socket);
        c
    }

    /// The server's socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The server's process id (`None` if the session had already ended when asked).
    pub fn server_pid(&self) -> Option<u32> {
        self.server_pid
    }

    /// The visible screen as text.
    pub fn screen(&self) -> String {
        let out = self
            .cmd()
            .args(["capture-pane", "-p", "-t", "t"])
            .output()
            .expect("capture");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Types keys (tmux key names: "p", "Space", "Escape", "+").
    pub fn keys(&self, keys: &[&str]) {
        let status = self
            .cmd()
            .args(["send-keys", "-t", "t"])
            .args(keys)
            .status()
            .expect("send-keys");
        assert!(status.success());
    }

    /// The screen once a frame has been drawn whole: two captures a moment apart that agree
    /// (a capture can land while the terminal is still applying a frame; tmux does not hold
    /// synchronized updates back), else the last one.
    pub fn settled_screen(&self) -> String {
        let mut last = self.screen();
        for _ in 0..20 {
            std::thread::sleep(Duration::from_millis(30));
            let now = self.screen();
            if now == last {
                return now;
            }
            last = now;
        }
        last
    }

    /// Waits until the screen contains `text`; returns the screen as drawn whole.
    pub fn wait_for(&self, text: &str, timeout: Duration) -> String {
        let start = Instant::now();
        loop {
            let screen = self.settled_screen();
            if screen.contains(text) {
                return screen;
            }
            if start.elapsed() > timeout {
                panic!("timed out waiting for {text:?} on the screen:\n{screen}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Whether process `pid` is gone (or a zombie nobody will reap: tmux servers are daemons).
pub fn process_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z') || rest.starts_with('X')),
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd().arg("kill-server").output();
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut server_gone = self.server_pid.is_none_or(process_gone);
        while !server_gone && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            server_gone = self.server_pid.is_none_or(process_gone);
        }
        if !server_gone && let Some(pid) = self.server_pid {
            // SAFETY: kill(2) on a pid we read from our own tmux server.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        }
        let removed = self.dir.take().is_some_and(|dir| dir.close().is_ok());
        if !std::thread::panicking() {
            assert!(
                server_gone,
                "the tmux server {:?} outlived kill-server",
                self.server_pid
            );
            assert!(
                removed && !self.socket.exists(),
                "the tmux socket {} was left behind",
                self.socket.display()
            );
        }
    }
}
