//! Finding the PostgreSQL server binaries: `$PACER_PG_BIN` when set (the only place looked at
//! then), else `pg_config --bindir`, the newest `/usr/lib/postgresql/*/bin` (Debian) or
//! `/usr/pgsql-*/bin` (PGDG packages), then `$PATH`; and checking their version.

use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Oldest PostgreSQL pacer supports.
pub(crate) const MIN_MAJOR: u32 = 12;

/// The programs every server needs.
pub(crate) const SERVER_PROGRAMS: [&str; 3] = ["initdb", "pg_ctl", "postgres"];
/// The program a replica needs besides.
pub(crate) const REPLICA_PROGRAM: &str = "pg_basebackup";
/// The client the tests run SQL with.
pub(crate) const CLIENT_PROGRAM: &str = "psql";

/// What to install, for every message about missing binaries.
pub(crate) const INSTALL_HINT: &str = "Install the PostgreSQL server binaries (version 12 or later):\n  \
     Debian/Ubuntu:  sudo apt-get install postgresql-15\n  \
     RHEL/Fedora:    sudo dnf install postgresql15-server   (from the PGDG repository)\n  \
     macOS:          brew install postgresql@15\n\
     or set PACER_PG_BIN to the directory that holds initdb, pg_ctl, postgres and pg_basebackup.";

/// A folder holding one folder per major version, each with a `bin` inside:
/// `PARENT/PREFIX<version>/bin`.
#[derive(Debug, Clone)]
pub(crate) struct VersionRoot {
    pub(crate) parent: PathBuf,
    pub(crate) prefix: &'static str,
}

impl From<PathBuf> for VersionRoot {
    /// `PARENT/<version>/bin`.
    fn from(parent: PathBuf) -> VersionRoot {
        VersionRoot { parent, prefix: "" }
    }
}

impl std::fmt::Display for VersionRoot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}*/bin", self.parent.display(), self.prefix)
    }
}

/// Where to look for the server binaries (read from the environment by [`Lookup::from_env`];
/// tests build their own).
#[derive(Debug, Clone, Default)]
pub(crate) struct Lookup {
    /// `$PACER_PG_BIN`: when set, the only place looked at.
    pub(crate) pacer_pg_bin: Option<PathBuf>,
    /// What `pg_config --bindir` printed.
    pub(crate) pg_config_bindir: Option<PathBuf>,
    /// Folders of one folder per major version, the newest looked at first.
    pub(crate) version_roots: Vec<VersionRoot>,
    /// `$PATH`.
    pub(crate) path: Option<OsString>,
}

impl Lookup {
    /// The machine's: `$PACER_PG_BIN`, `pg_config --bindir`, `/usr/lib/postgresql/*/bin`,
    /// `/usr/pgsql-*/bin`, `$PATH`.
    pub(crate) fn from_env() -> Lookup {
        let pacer_pg_bin = std::env::var_os("PACER_PG_BIN")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        let pg_config_bindir = if pacer_pg_bin.is_some() {
            None
        } else {
            Command::new("pg_config")
                .arg("--bindir")
                .stdin(Stdio::null())
                .stderr(Stdio::null())
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
                .filter(|p| !p.as_os_str().is_empty())
        };
        Lookup {
            pacer_pg_bin,
            pg_config_bindir,
            version_roots: vec![
                PathBuf::from("/usr/lib/postgresql").into(),
                VersionRoot {
                    parent: PathBuf::from("/usr"),
                    prefix: "pgsql-",
                },
            ],
            path: std::env::var_os("PATH"),
        }
    }

    /// The directory holding every program of `needed` (which `who` needs), or a message that
    /// says what was searched and what to install.
    pub(crate) fn find(&self, who: &str, needed: &[&str]) -> Result<PathBuf, String> {
        let list = needed.join(", ");
        if let Some(dir) = &self.pacer_pg_bin {
            let missing: Vec<&str> = needed
                .iter()
                .copied()
                .filter(|p| !is_executable(&dir.join(p)))
                .collect();
            if missing.is_empty() {
                return Ok(dir.clone());
            }
            return Err(format!(
                "PACER_PG_BIN is {}, but it holds no {}. {who} needs {list} there.\n\
                 {INSTALL_HINT}",
                dir.display(),
                missing.join(", ")
            ));
        }
        let mut searched = Vec::new();
        let mut candidates = Vec::new();
        if let Some(dir) = &self.pg_config_bindir {
            searched.push(format!("{} (pg_config --bindir)", dir.display()));
            candidates.push(dir.clone());
        }
        for root in &self.version_roots {
            searched.push(root.to_string());
            candidates.extend(newest_first(root));
        }
        if let Some(path) = &self.path {
            searched.push("PATH".into());
            candidates.extend(std::env::split_paths(path));
        }
        candidates
            .into_iter()
            .find(|dir| needed.iter().all(|p| is_executable(&dir.join(p))))
            .ok_or_else(|| {
                format!(
                    "PostgreSQL server binaries not found: {who} needs {list} (searched {}).\n\
                     {INSTALL_HINT}",
                    searched.join(", ")
                )
            })
    }
}

/// `PARENT/PREFIX<version>/bin` of `root`, the highest version first.
fn newest_first(root: &VersionRoot) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(&root.parent) else {
        return Vec::new();
    };
    let mut found: Vec<(Vec<u64>, PathBuf)> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let version = name.strip_prefix(root.prefix)?;
            let version = version.split('.').map(|p| p.parse().unwrap_or(0)).collect();
            Some((version, e.path().join("bin")))
        })
        .collect();
    found.sort();
    found.into_iter().rev().map(|(_, dir)| dir).collect()
}

fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The major version of `postgres --version` output ("postgres (PostgreSQL) 15.4 (Debian…)").
pub(crate) fn parse_major(version_output: &str) -> Option<u32> {
    let rest = version_output.split("(PostgreSQL)").nth(1)?.trim();
    let number: String = rest.chars().take_while(char::is_ascii_digit).collect();
    number.parse().ok()
}

/// Checks that the binaries in `bin` are PostgreSQL 12 or later; returns the version line.
pub(crate) fn check_version(bin: &Path) -> Result<String, String> {
    let postgres = bin.join("postgres");
    let out = Command::new(&postgres)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}.\n{INSTALL_HINT}", postgres.display()))?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    match parse_major(&text) {
        Some(major) if major >= MIN_MAJOR => Ok(text),
        Some(major) => Err(format!(
            "{} is PostgreSQL {major}; pacer needs 12 or later.\n{INSTALL_HINT}",
            postgres.display()
        )),
        None => Err(format!(
            "{} --version printed {text:?}, not a PostgreSQL version.\n{INSTALL_HINT}",
            postgres.display()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_bin(dir: &Path, programs: &[&str]) {
        fs::create_dir_all(dir).unwrap();
        for p in programs {
            let path = dir.join(p);
            fs::write(&path, "#!/bin/sh\n").unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        }
    }

    /// A directory of the test's own, removed when dropped (also when the test fails).
    fn scratch(name: &str) -> tempfile::TempDir {
        tempfile::Builder::new()
            .prefix(&format!("pacer-unit-{name}-"))
            .tempdir()
            .unwrap()
    }

    const ALL: [&str; 4] = ["initdb", "pg_ctl", "postgres", "pg_basebackup"];

    #[test]
    fn pacer_pg_bin_is_the_only_place_looked_at_when_set() {
        let dir = scratch("env");
        let root = dir.path();
        fake_bin(&root.join("env"), &["initdb", "pg_ctl"]);
        fake_bin(&root.join("lib/15/bin"), &ALL);
        let lookup = Lookup {
            pacer_pg_bin: Some(root.join("env")),
            version_roots: vec![root.join("lib").into()],
            ..Lookup::default()
        };
        let err = lookup.find("pacer demo", &ALL).unwrap_err();
        assert!(err.contains("PACER_PG_BIN is"), "{err}");
        assert!(err.contains("holds no postgres, pg_basebackup"), "{err}");
        assert!(err.contains("apt-get install postgresql-15"), "{err}");
        fake_bin(&root.join("env"), &["postgres", "pg_basebackup"]);
        assert_eq!(lookup.find("pacer demo", &ALL).unwrap(), root.join("env"));
    }

    #[test]
    fn pg_config_comes_before_the_newest_version_folder_which_comes_before_path() {
        let dir = scratch("order");
        let root = dir.path();
        fake_bin(&root.join("lib/9.6/bin"), &ALL);
        fake_bin(&root.join("lib/13/bin"), &ALL);
        fake_bin(&root.join("lib/16/bin"), &ALL);
        fake_bin(&root.join("lib/17/bin"), &["initdb"]); // incomplete: skipped
        fake_bin(&root.join("onpath"), &ALL);
        fake_bin(&root.join("config"), &ALL);
        let mut lookup = Lookup {
            pacer_pg_bin: None,
            pg_config_bindir: Some(root.join("config")),
            version_roots: vec![root.join("lib").into()],
            path: Some(std::env::join_paths([root.join("onpath")]).unwrap()),
        };
        assert_eq!(
            lookup.find("pacer demo", &ALL).unwrap(),
            root.join("config")
        );
        lookup.pg_config_bindir = Some(root.join("nowhere"));
        assert_eq!(
            lookup.find("pacer demo", &ALL).unwrap(),
            root.join("lib/16/bin")
        );
        lookup.version_roots.clear();
        assert_eq!(
            lookup.find("pacer demo", &ALL).unwrap(),
            root.join("onpath")
        );
    }

    #[test]
    fn pgdg_version_folders_are_found_by_their_prefix() {
        let dir = scratch("pgdg");
        let root = dir.path();
        fake_bin(&root.join("pgsql-14/bin"), &ALL);
        fake_bin(&root.join("pgsql-16/bin"), &ALL);
        fake_bin(&root.join("other-17/bin"), &ALL);
        let lookup = Lookup {
            version_roots: vec![VersionRoot {
                parent: root.to_path_buf(),
                prefix: "pgsql-",
            }],
            ..Lookup::default()
        };
        assert_eq!(
            lookup.find("a test server", &ALL).unwrap(),
            root.join("pgsql-16/bin")
        );
    }

    #[test]
    fn missing_binaries_say_what_was_searched_and_what_to_install() {
        let dir = scratch("missing");
        let root = dir.path();
        fake_bin(&root.join("onpath"), &["initdb", "pg_ctl"]);
        let not_executable = root.join("onpath/postgres");
        fs::write(&not_executable, "").unwrap();
        fs::set_permissions(&not_executable, fs::Permissions::from_mode(0o644)).unwrap();
        let lookup = Lookup {
            version_roots: vec![root.join("lib").into()],
            path: Some(std::env::join_paths([root.join("onpath")]).unwrap()),
            ..Lookup::default()
        };
        let err = lookup.find("pacer demo", &SERVER_PROGRAMS).unwrap_err();
        assert!(
            err.starts_with(
                "PostgreSQL server binaries not found: pacer demo needs initdb, pg_ctl, postgres"
            ),
            "{err}"
        );
        assert!(
            err.contains(&format!("{}/*/bin", root.join("lib").display())),
            "{err}"
        );
        for hint in [
            "apt-get install postgresql-15",
            "postgresql15-server",
            "brew install postgresql@15",
            "PACER_PG_BIN",
        ] {
            assert!(err.contains(hint), "{hint} missing from: {err}");
        }
    }

    #[test]
    fn reads_the_major_version() {
        assert_eq!(
            parse_major("postgres (PostgreSQL) 15.14 (Debian 15.14-0+deb12u1)"),
            Some(15)
        );
        assert_eq!(parse_major("postgres (PostgreSQL) 9.6.24"), Some(9));
        assert_eq!(parse_major("postgres (PostgreSQL) 17beta1"), Some(17));
        assert_eq!(parse_major("something else"), None);
    }
}
