//! Finding the MariaDB programs: `$PACER_MARIADB_BIN` when set (the only place looked at then; a
//! directory, or several separated by `:` as in `$PATH`, since Debian keeps `mariadbd` in
//! /usr/sbin and the rest in /usr/bin), else `$PATH`, /usr/sbin and /usr/bin; checking that the
//! server is MariaDB 10.6 or later; and where its plugins are.

use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Oldest MariaDB the throwaway servers run (major, minor).
pub(crate) const MIN_VERSION: (u32, u32) = (10, 6);

/// A program, by its names: the MariaDB name first, then the old MySQL-compatible one (the
/// packages install both; a MySQL `mysqld` found this way fails the version check).
type Names = &'static [&'static str];

const INSTALL_DB: Names = &["mariadb-install-db", "mysql_install_db"];
const SERVER: Names = &["mariadbd", "mysqld"];
const CLIENT: Names = &["mariadb", "mysql"];

/// What to install, for every message about missing binaries.
pub(crate) const INSTALL_HINT: &str = "Install the MariaDB server and client (10.6 or later):\n  \
     Debian/Ubuntu:  sudo apt-get install mariadb-server mariadb-client\n  \
     RHEL/Fedora:    sudo dnf install mariadb-server\n  \
     macOS:          brew install mariadb\n\
     or set PACER_MARIADB_BIN to the directory (or :-separated directories) holding \
     mariadb-install-db, mariadbd and mariadb.";

/// The programs a throwaway server needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Binaries {
    /// `mariadb-install-db`: makes a data directory.
    pub(crate) install_db: PathBuf,
    /// `mariadbd`: the server.
    pub(crate) server: PathBuf,
    /// `mariadb`: the client the tests run SQL with.
    pub(crate) client: PathBuf,
}

/// Where to look for the programs (read from the environment by [`Lookup::from_env`]; tests
/// build their own).
#[derive(Debug, Clone, Default)]
pub(crate) struct Lookup {
    /// `$PACER_MARIADB_BIN`: when set, the only place looked at.
    pub(crate) pacer_mariadb_bin: Option<OsString>,
    /// `$PATH`.
    pub(crate) path: Option<OsString>,
    /// Looked at after `$PATH` (which often lacks /usr/sbin for an ordinary user).
    pub(crate) system_dirs: Vec<PathBuf>,
}

impl Lookup {
    /// The machine's: `$PACER_MARIADB_BIN`, `$PATH`, /usr/sbin, /usr/bin.
    pub(crate) fn from_env() -> Lookup {
        Lookup {
            pacer_mariadb_bin: std::env::var_os("PACER_MARIADB_BIN").filter(|v| !v.is_empty()),
            path: std::env::var_os("PATH"),
            system_dirs: vec![PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")],
        }
    }

    /// The programs (which `who` needs), or a message that says what was searched and what to
    /// install.
    pub(crate) fn find(&self, who: &str) -> Result<Binaries, String> {
        let (dirs, searched): (Vec<PathBuf>, String) = match &self.pacer_mariadb_bin {
            Some(value) => (
                std::env::split_paths(value).collect(),
                format!("PACER_MARIADB_BIN={}", value.to_string_lossy()),
            ),
            None => {
                let mut dirs: Vec<PathBuf> = self
                    .path
                    .as_ref()
                    .map(|p| std::env::split_paths(p).collect())
                    .unwrap_or_default();
                dirs.extend(self.system_dirs.iter().cloned());
                let mut searched = vec!["PATH".to_string()];
                searched.extend(self.system_dirs.iter().map(|d| d.display().to_string()));
                (dirs, searched.join(", "))
            }
        };
        let found: Vec<Result<PathBuf, &str>> = [INSTALL_DB, SERVER, CLIENT]
            .iter()
            .map(|names| find_program(&dirs, names).ok_or(names[0]))
            .collect();
        let missing: Vec<&str> = found.iter().filter_map(|f| f.clone().err()).collect();
        if !missing.is_empty() {
            return Err(format!(
                "MariaDB binaries not found: {who} needs mariadb-install-db, mariadbd and \
                 mariadb; no {} in {searched}.\n{INSTALL_HINT}",
                missing.join(", ")
            ));
        }
        let mut found = found.into_iter().flatten();
        let (Some(install_db), Some(server), Some(client)) =
            (found.next(), found.next(), found.next())
        else {
            unreachable!("three programs were found");
        };
        Ok(Binaries {
            install_db,
            server,
            client,
        })
    }
}

/// The first of `dirs` holding one of `names`, the earlier names preferred within a directory.
fn find_program(dirs: &[PathBuf], names: &[&str]) -> Option<PathBuf> {
    dirs.iter()
        .flat_map(|dir| names.iter().map(move |name| dir.join(name)))
        .find(|path| is_executable(path))
}

fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Major and minor version of `mariadbd --version` output ("mariadbd  Ver 10.11.19-MariaDB-0+deb12u1
/// for debian-linux-gnu on x86_64 (Debian 12)"); `None` if it is not MariaDB.
pub(crate) fn parse_version(version_output: &str) -> Option<(u32, u32)> {
    let rest = version_output.split(" Ver ").nth(1)?.trim_start();
    let version = rest.split_whitespace().next()?;
    if !version.contains("MariaDB") {
        return None;
    }
    let mut numbers = version
        .split(['.', '-'])
        .map(|part| part.parse::<u32>().ok());
    Some((numbers.next()??, numbers.next()??))
}

/// Checks that `server` is MariaDB 10.6 or later; returns its version line.
pub(crate) fn check_version(server: &Path) -> Result<String, String> {
    let out = Command::new(server)
        .args(["--no-defaults", "--version"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}.\n{INSTALL_HINT}", server.display()))?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    match parse_version(&text) {
        Some(version) if version >= MIN_VERSION => Ok(text),
        Some((major, minor)) => Err(format!(
            "{} is MariaDB {major}.{minor}; pacer's throwaway servers need 10.6 or later.\n\
             {INSTALL_HINT}",
            server.display()
        )),
        None => Err(format!(
            "{} --version printed {text:?}, not a MariaDB version (MySQL's server is not \
             supported here).\n{INSTALL_HINT}",
            server.display()
        )),
    }
}

/// The server's plugin directory, as `mariadbd --no-defaults --help --verbose` reports it.
pub(crate) fn plugin_dir(server: &Path) -> Option<PathBuf> {
    let out = Command::new(server)
        .args(["--no-defaults", "--help", "--verbose"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    parse_plugin_dir(&String::from_utf8_lossy(&out.stdout))
}

/// The `plugin-dir` value of `mariadbd --help --verbose` output.
fn parse_plugin_dir(help: &str) -> Option<PathBuf> {
    help.lines()
        .find_map(|line| line.strip_prefix("plugin-dir "))
        .map(str::trim)
        .filter(|dir| !dir.is_empty() && !dir.starts_with('('))
        .map(PathBuf::from)
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

    fn scratch(name: &str) -> tempfile::TempDir {
        tempfile::Builder::new()
            .prefix(&format!("pacer-unit-mdb-{name}-"))
            .tempdir()
            .unwrap()
    }

    #[test]
    fn programs_are_found_on_path_then_in_the_system_dirs_each_on_its_own() {
        let dir = scratch("order");
        let root = dir.path();
        fake_bin(&root.join("sbin"), &["mariadbd"]);
        fake_bin(
            &root.join("bin"),
            &["mariadb-install-db", "mariadb", "mysql"],
        );
        fake_bin(&root.join("onpath"), &["mysql"]);
        let lookup = Lookup {
            pacer_mariadb_bin: None,
            path: Some(std::env::join_paths([root.join("onpath")]).unwrap()),
            system_dirs: vec![root.join("sbin"), root.join("bin")],
        };
        assert_eq!(
            lookup.find("a test server").unwrap(),
            Binaries {
                install_db: root.join("bin/mariadb-install-db"),
                server: root.join("sbin/mariadbd"),
                client: root.join("onpath/mysql"),
            }
        );
    }

    #[test]
    fn pacer_mariadb_bin_is_the_only_place_looked_at_when_set() {
        let dir = scratch("env");
        let root = dir.path();
        fake_bin(
            &root.join("sys"),
            &["mariadb-install-db", "mariadbd", "mariadb"],
        );
        fake_bin(&root.join("env"), &["mariadb"]);
        fake_bin(&root.join("env2"), &["mariadbd"]);
        let mut lookup = Lookup {
            pacer_mariadb_bin: Some(std::env::join_paths([root.join("env")]).unwrap()),
            path: None,
            system_dirs: vec![root.join("sys")],
        };
        let err = lookup.find("pacer demo").unwrap_err();
        assert!(
            err.contains("no mariadb-install-db, mariadbd in PACER_MARIADB_BIN="),
            "{err}"
        );
        assert!(err.contains("apt-get install mariadb-server"), "{err}");
        fake_bin(&root.join("env2"), &["mysql_install_db"]);
        lookup.pacer_mariadb_bin =
            Some(std::env::join_paths([root.join("env"), root.join("env2")]).unwrap());
        let found = lookup.find("pacer demo").unwrap();
        assert_eq!(found.install_db, root.join("env2/mysql_install_db"));
        assert_eq!(found.server, root.join("env2/mariadbd"));
        assert_eq!(found.client, root.join("env/mariadb"));
    }

    #[test]
    fn missing_binaries_say_what_was_searched_and_what_to_install() {
        let dir = scratch("missing");
        let root = dir.path();
        fake_bin(&root.join("bin"), &["mariadb"]);
        let lookup = Lookup {
            pacer_mariadb_bin: None,
            path: None,
            system_dirs: vec![root.join("bin")],
        };
        let err = lookup.find("a test server").unwrap_err();
        assert!(
            err.starts_with("MariaDB binaries not found: a test server needs"),
            "{err}"
        );
        assert!(
            err.contains(&format!(
                "no mariadb-install-db, mariadbd in PATH, {}",
                root.join("bin").display()
            )),
            "{err}"
        );
        for hint in ["apt-get install mariadb-server", "PACER_MARIADB_BIN"] {
            assert!(err.contains(hint), "{hint} missing from: {err}");
        }
    }

    #[test]
    fn reads_the_version_and_refuses_what_is_not_mariadb() {
        assert_eq!(
            parse_version(
                "mariadbd  Ver 10.11.19-MariaDB-0+deb12u1 for debian-linux-gnu on x86_64 (Debian 12)"
            ),
            Some((10, 11))
        );
        assert_eq!(
            parse_version("/usr/sbin/mysqld  Ver 10.5.23-MariaDB-0+deb11u1 for debian-linux-gnu"),
            Some((10, 5))
        );
        assert_eq!(
            parse_version("mariadbd  Ver 11.4.2-MariaDB for Linux on x86_64 (MariaDB Server)"),
            Some((11, 4))
        );
        assert_eq!(
            parse_version("/usr/sbin/mysqld  Ver 8.0.36 for Linux on x86_64 (MySQL Community)"),
            None
        );
        assert!((10, 5) < MIN_VERSION && (10, 11) >= MIN_VERSION && (11, 0) >= MIN_VERSION);
    }

    #[test]
    fn reads_the_plugin_dir_from_the_help_text() {
        let help = "performance-schema  FALSE\nplugin-dir                      /usr/lib/mysql/plugin/\n\
                    plugin-maturity  gamma\n";
        assert_eq!(
            parse_plugin_dir(help),
            Some(PathBuf::from("/usr/lib/mysql/plugin/"))
        );
        assert_eq!(parse_plugin_dir("plugin-dir   (No default value)\n"), None);
    }
}
