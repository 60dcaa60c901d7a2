//! TLS through rustls against a real server that refuses unencrypted connections.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use common::*;
use pacer::servers::postgres::PgServer;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA and a server certificate for `localhost` only (no IP address in it).
fn make_certs(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=pacer test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
    );
    std::fs::write(dir.join("ext.cnf"), "subjectAltName=DNS:localhost\n").unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
            "-out",
            "server.crt",
        ],
    );
}

/// A server with ssl = on that rejects every connection without TLS.
fn tls_server(certs: &Path) -> PgServer {
    let mut pg = PgServer::start();
    let data = pg.data_dir();
    let owner = std::fs::metadata(&data).unwrap();
    for f in ["server.crt", "server.key"] {
        let to = data.join(f);
        std::fs::copy(certs.join(f), &to).unwrap();
        std::os::unix::fs::chown(&to, Some(owner.uid()), Some(owner.gid())).unwrap();
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let mut conf = std::fs::OpenOptions::new()
        .append(true)
        .open(data.join("postgresql.conf"))
        .unwrap();
    use std::io::Write;
    writeln!(
        conf,
        "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'"
    )
    .unwrap();
    let hba = std::fs::read_to_string(data.join("pg_hba.conf")).unwrap();
    std::fs::write(
        data.join("pg_hba.conf"),
        format!("hostnossl all all 127.0.0.1/32 reject\nhostnossl all all ::1/128 reject\n{hba}"),
    )
    .unwrap();
    pg.restart();
    pg
}

#[test]
fn tls_modes_connect_verify_and_refuse_as_libpq_does() {
    let certs = tempfile::tempdir().unwrap();
    make_certs(certs.path());
    let pg = tls_server(certs.path());
    pg.create_database("shop");
    seed_orders(&pg, "shop", 100);
    let plan = plan_file(&orders_plan(50, "", ""));
    let port = pg.port();
    let ca = certs.path().join("ca.crt");
    let ca = ca.display();

    let plain = run_pacer(
        &["plan"],
        &plan.path,
        &format!("postgres://postgres@127.0.0.1:{port}/shop?sslmode=disable"),
    );
    assert_ne!(
        plain.code, 0,
        "the server rejects connections without TLS: {plain}"
    );

    for url in [
        format!("postgres://postgres@127.0.0.1:{port}/shop?sslmode=require"),
        format!("postgres://postgres@127.0.0.1:{port}/shop"), // prefer
        format!("postgres://postgres@localhost:{port}/shop?sslmode=verify-full&sslrootcert={ca}"),
        format!("postgres://postgres@127.0.0.1:{port}/shop?sslmode=verify-ca&sslrootcert={ca}"),
    ] {
        let ran = run_pacer(&["plan"], &plan.path, &url);
        assert_eq!(ran.code, 0, "{url}: {ran}");
        assert!(ran.stdout.contains("ADD COLUMN IF NOT EXISTS"), "{ran}");
    }

    // verify-full checks the host name: the certificate names localhost, not 127.0.0.1.
    let wrong_name = run_pacer(
        &["plan"],
        &plan.path,
        &format!("postgres://postgres@127.0.0.1:{port}/shop?sslmode=verify-full&sslrootcert={ca}"),
    );
    assert_eq!(wrong_name.code, 1, "{wrong_name}");
    assert!(
        wrong_name.stderr.to_lowercase().contains("tls"),
        "{wrong_name}"
    );

    // Without our CA, the chain is not trusted.
    let unknown_ca = run_pacer(
        &["plan"],
        &plan.path,
        &format!("postgres://postgres@localhost:{port}/shop?sslmode=verify-full"),
    );
    assert_eq!(unknown_ca.code, 1, "{unknown_ca}");

    // A full run over TLS.
    let ran = run_pacer(
        &["run", "--headless"],
        &plan.path,
        &format!("postgres://postgres@localhost:{port}/shop?sslmode=verify-full&sslrootcert={ca}"),
    );
    assert_eq!(ran.code, 0, "{ran}");
    assert_eq!(wrong_amounts(&pg, "shop"), 0);
}
