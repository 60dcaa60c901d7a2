//! SQL through the `mariadb` client, as the tests and the start-up checks run it: batch mode,
//! read from standard input, none of the caller's option files or `MYSQL*` variables.

use std::io::Write;
use std::process::Stdio;
use std::thread;

use super::{Mariadbd, flag};

/// Whom the client logs in as, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Login<'a> {
    /// root, without a password, over the socket (over TCP when there is none).
    Root,
    /// root, without a password, over TCP.
    RootOverTcp,
    /// `user` with `password`, over TCP.
    User { user: &'a str, password: &'a str },
}

impl Mariadbd {
    /// Runs `sql` with `mariadb --batch` (tab-separated, stops at the first error), without
    /// column names unless `column_names`, logged in as `login`, against `db` (none when
    /// empty). Returns the trimmed standard output, or the client's error output.
    pub(crate) fn client(
        &self,
        db: &str,
        login: Login<'_>,
        column_names: bool,
        sql: &str,
    ) -> Result<String, String> {
        let program = &self.programs.binaries.client;
        let mut cmd = self.programs.command(program);
        cmd.args([
            "--no-defaults",
            "--batch",
            "--no-auto-rehash",
            "--connect-timeout=10",
            "--default-character-set=utf8mb4",
        ]);
        if !column_names {
            cmd.arg("--skip-column-names");
        }
        match (&self.socket, login) {
            (Some(socket), Login::Root) => {
                cmd.arg("--protocol=SOCKET").arg(flag("--socket=", socket));
            }
            _ => {
                cmd.args(["--protocol=TCP", "--host=127.0.0.1"])
                    .arg(format!("--port={}", self.port));
            }
        }
        match login {
            Login::Root | Login::RootOverTcp => {
                cmd.arg("--user=root");
            }
            Login::User { user, password } => {
                cmd.arg(format!("--user={user}")).env("MYSQL_PWD", password);
            }
        }
        if !db.is_empty() {
            cmd.arg(format!("--database={db}"));
        }
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
        // Feed the script from another thread so a large output cannot deadlock.
        let writer = child.stdin.take().map(|mut stdin| {
            let script = sql.to_owned();
            thread::spawn(move || {
                let _ = stdin.write_all(script.as_bytes());
            })
        });
        let out = child
            .wait_with_output()
            .map_err(|e| format!("waiting for {} failed: {e}", program.display()))?;
        if let Some(writer) = writer {
            let _ = writer.join();
        }
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        } else {
            let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
            if stderr.is_empty() {
                Err(format!("{} exited with {}", program.display(), out.status))
            } else {
                Err(stderr)
            }
        }
    }
}
