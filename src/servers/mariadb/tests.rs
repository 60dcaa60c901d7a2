//! Throwaway MariaDB servers, against the real programs. Skipped (with a note on stderr) where
//! they are not installed; `.ci/run` installs them.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use super::{
    MariaDbServer, Options, PASSWORD, PASSWORD_USER, binaries_available,
    metadata_lock_info_available,
};
use crate::servers::process;
use crate::servers::tls::TlsFiles;

/// Whether the test must be skipped: no MariaDB here.
fn no_mariadb(test: &str) -> bool {
    if binaries_available() {
        return false;
    }
    eprintln!(
        "skipped {test}: no MariaDB 10.6+ binaries (apt-get install mariadb-server mariadb-client)"
    );
    true
}

/// Whether nothing of a server is left: not its process, not its directory.
fn assert_gone(pid: u32, dir: &Path) {
    assert!(
        process::wait_until_dead(pid, Duration::from_secs(10)),
        "mariadbd {pid} still runs"
    );
    assert!(!dir.exists(), "{} was left behind", dir.display());
}

#[test]
fn a_fresh_server_answers_as_mariadb_and_keeps_what_a_database_was_written() {
    if no_mariadb("a_fresh_server_answers_as_mariadb") {
        return;
    }
    let started = Instant::now();
    let db = MariaDbServer::start();
    eprintln!("MariaDB started in {:?}", started.elapsed());
    let version = db.sql("", "SELECT VERSION()");
    assert!(version.contains("MariaDB"), "{version}");
    let url = db.create_database("shop");
    assert_eq!(url, format!("mysql://root@127.0.0.1:{}/shop", db.port()));
    db.sql(
        "shop",
        "CREATE TABLE orders (id BIGINT PRIMARY KEY AUTO_INCREMENT, note VARCHAR(20));\n\
         INSERT INTO orders (note) VALUES ('first'), ('zweite'), (NULL);",
    );
    assert_eq!(
        db.sql("shop", "SELECT id, note FROM orders ORDER BY id"),
        "1\tfirst\n2\tzweite\n3\tNULL"
    );
    let err = db.try_sql("shop", "SELECT * FROM missing").unwrap_err();
    assert!(err.contains("ERROR 1146"), "{err}");
    // The socket is the server's own, in its directory (unless a long TMPDIR left no room for
    // one: then all goes over TCP); the settings the tests rely on.
    match db.socket() {
        Some(socket) => assert!(socket.starts_with(db.dir()), "{}", socket.display()),
        None => assert!(db.dir().as_os_str().len() > 80, "{}", db.dir().display()),
    }
    assert_eq!(
        db.sql(
            "",
            "SELECT @@log_bin, @@binlog_format, @@server_id, @@read_only, @@performance_schema, \
             @@character_set_server"
        ),
        "1\tROW\t1\t0\t0\tutf8mb4"
    );
    let plugin = db.sql(
        "",
        "SELECT PLUGIN_STATUS FROM information_schema.PLUGINS \
         WHERE PLUGIN_NAME = 'METADATA_LOCK_INFO'",
    );
    if metadata_lock_info_available() {
        assert_eq!(plugin, "ACTIVE");
    } else {
        eprintln!("metadata_lock_info is not installed here (Debian: mariadb-server has it)");
    }
}

#[test]
fn root_logs_in_over_tcp_without_a_password_and_the_password_user_only_with_its_own() {
    if no_mariadb("root_logs_in_over_tcp") {
        return;
    }
    let db = MariaDbServer::start();
    assert_eq!(
        db.sql_as("", "root", "", "SELECT CURRENT_USER()").unwrap(),
        "root@127.0.0.1"
    );
    assert_eq!(
        db.sql_as("", PASSWORD_USER, PASSWORD, "SELECT CURRENT_USER()")
            .unwrap(),
        format!("{PASSWORD_USER}@%")
    );
    let err = db
        .sql_as("", PASSWORD_USER, "wrong", "SELECT 1")
        .unwrap_err();
    assert!(err.contains("ERROR 1045"), "{err}");
    assert_eq!(
        db.url_as(PASSWORD_USER, PASSWORD, "a b"),
        format!(
            "mysql://pacer_pw:correct%20horse%20battery@127.0.0.1:{}/a%20b",
            db.port()
        )
    );
}

#[test]
fn a_restart_keeps_the_data_and_the_port() {
    if no_mariadb("a_restart_keeps_the_data_and_the_port") {
        return;
    }
    let mut db = MariaDbServer::start();
    db.create_database("app");
    db.sql(
        "app",
        "CREATE TABLE t (id INT PRIMARY KEY); INSERT INTO t VALUES (1), (2);",
    );
    let (port, pid) = (db.port(), db.pid().expect("it runs"));
    db.stop();
    assert!(db.pid().is_none());
    assert!(db.try_sql("app", "SELECT 1").is_err());
    let started = Instant::now();
    db.start_again();
    eprintln!("MariaDB started again in {:?}", started.elapsed());
    assert_eq!(db.port(), port);
    assert_ne!(db.pid(), Some(pid));
    assert_eq!(db.sql("app", "SELECT COUNT(*) FROM t"), "2");
    db.restart();
    assert_eq!(db.sql("app", "SELECT COUNT(*) FROM t"), "2");
}

#[test]
fn dropping_a_server_stops_it_and_removes_its_directory_also_when_the_test_panics() {
    if no_mariadb("dropping_a_server_stops_it") {
        return;
    }
    let db = MariaDbServer::start();
    let (pid, dir) = (db.pid().expect("it runs"), db.dir().to_path_buf());
    let started = Instant::now();
    drop(db);
    eprintln!("MariaDB dropped in {:?}", started.elapsed());
    assert_gone(pid, &dir);

    let (tx, rx) = std::sync::mpsc::channel();
    let failed = std::thread::spawn(move || {
        let db = MariaDbServer::start();
        tx.send((db.pid().expect("it runs"), db.dir().to_path_buf()))
            .unwrap();
        panic!("a test failing while its MariaDB server runs");
    })
    .join();
    assert!(failed.is_err());
    let (pid, dir) = rx.recv().unwrap();
    assert_gone(pid, &dir);
}

#[test]
fn the_server_of_a_process_that_died_is_killed_and_removed_by_the_next_start() {
    if no_mariadb("the_server_of_a_process_that_died") {
        return;
    }
    let orphan = MariaDbServer::start();
    let (pid, dir) = (orphan.pid().expect("it runs"), orphan.dir().to_path_buf());
    // An owner that is gone: this process's pid with another start time.
    std::fs::write(dir.join("owner"), format!("{} 1\n", std::process::id())).unwrap();
    // What a test process killed with its server running leaves: a server nobody stops.
    std::mem::forget(orphan);
    let next = MariaDbServer::start();
    assert_gone(pid, &dir);
    assert_eq!(next.sql("", "SELECT 1"), "1");
}

#[test]
fn a_replica_receives_rows_and_pause_replay_holds_them_back() {
    if no_mariadb("a_replica_receives_rows") {
        return;
    }
    let primary = MariaDbServer::start();
    primary.create_database("app");
    primary.sql(
        "app",
        "CREATE TABLE t (id INT PRIMARY KEY); INSERT INTO t VALUES (1);",
    );
    let started = Instant::now();
    let replica = primary.start_replica();
    eprintln!("MariaDB replica started in {:?}", started.elapsed());
    // Made after the primary had data: it replicated the binary log from the start.
    assert_eq!(replica.sql("app", "SELECT COUNT(*) FROM t"), "1");
    assert_eq!(replica.sql("", "SELECT @@server_id, @@read_only"), "2\t1");
    assert!(
        primary
            .sql("", "SHOW SLAVE HOSTS")
            .contains(&format!("2\t127.0.0.1\t{}\t1", replica.port())),
        "{}",
        primary.sql("", "SHOW SLAVE HOSTS")
    );
    // The password user came with the binary log.
    assert_eq!(
        replica
            .sql_as("", PASSWORD_USER, PASSWORD, "SELECT 1")
            .unwrap(),
        "1"
    );

    primary.sql("app", "INSERT INTO t VALUES (2)");
    primary.wait_for_replica(&replica);
    assert_eq!(replica.sql("app", "SELECT COUNT(*) FROM t"), "2");

    replica.pause_replay();
    primary.sql("app", "INSERT INTO t VALUES (3)");
    let position = primary.sql("", "SELECT @@gtid_binlog_pos");
    // The event arrives (the I/O thread still runs) but is not applied.
    let received = format!("Gtid_IO_Pos: {position}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = replica.replica_status();
        if status.contains(&received) {
            break;
        }
        assert!(Instant::now() < deadline, "never received:\n{status}");
        std::thread::sleep(Duration::from_millis(25));
    }
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(replica.sql("app", "SELECT COUNT(*) FROM t"), "2");
    assert_ne!(replica.sql("", "SELECT @@gtid_slave_pos"), position);
    replica.resume_replay();
    primary.wait_for_replica(&replica);
    assert_eq!(replica.sql("app", "SELECT COUNT(*) FROM t"), "3");
}

#[test]
fn a_server_with_tls_and_the_performance_schema_serves_both() {
    if no_mariadb("a_server_with_tls") {
        return;
    }
    let certs = tempfile::Builder::new()
        .prefix("pacer-unit-mdb-tls-")
        .tempdir()
        .unwrap();
    let files = TlsFiles::for_localhost(certs.path());
    let db = MariaDbServer::start_with(Options {
        tls: Some(files.clone()),
        performance_schema: true,
        server_id: 7,
        ..Options::default()
    });
    assert_eq!(
        db.sql("", "SELECT @@performance_schema, @@server_id, @@have_ssl"),
        "1\t7\tYES"
    );
    // The mariadb client verifies the server against the test CA, by its IP address.
    let out = Command::new(super::Lookup::from_env().find("a test").unwrap().client)
        .args(["--no-defaults", "--batch", "--skip-column-names"])
        .args(["--protocol=TCP", "--host=127.0.0.1", "--user=root"])
        .arg(format!("--port={}", db.port()))
        .arg("--ssl-verify-server-cert")
        .arg(format!("--ssl-ca={}", files.ca.display()))
        .args(["-e", "SHOW SESSION STATUS LIKE 'Ssl_version'"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with("Ssl_version\tTLSv1."),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let replica = db.start_replica();
    assert_eq!(
        replica.sql("", "SELECT @@server_id, @@performance_schema, @@have_ssl"),
        "8\t1\tYES"
    );
}
