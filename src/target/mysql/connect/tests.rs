use super::*;

fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: BTreeMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k: &str| map.get(k).cloned()
}

fn resolve(
    flag: &str,
    pairs: &[(&str, &str)],
    home: Option<&Path>,
) -> Result<MyTarget, MyConnectError> {
    MyTarget::resolve(Some(flag), &env_of(pairs), home)
}

#[test]
fn the_url_gives_user_password_host_port_and_database_percent_decoded() {
    let t = resolve("mysql://app%40x:p%3Ass@db1:3307/my%20shop", &[], None).unwrap();
    assert_eq!(t.user(), "app@x");
    assert_eq!(t.password.as_deref(), Some("p:ss"));
    assert_eq!((t.host().as_str(), t.port()), ("db1", 3307));
    assert_eq!(t.database(), "my shop");
    assert_eq!(t.redacted(), "mysql://app@x@db1:3307/my shop");
    assert_eq!(t.ssl_mode(), SslMode::Preferred);
    let t = resolve("mariadb://app@[::1]/shop", &[], None).unwrap();
    assert_eq!(t.redacted(), "mysql://app@[::1]:3306/shop");
}

#[test]
fn what_the_url_leaves_out_comes_from_the_environment_then_the_option_file() {
    let home = tempfile::tempdir().unwrap();
    std::fs::write(
        home.path().join(".my.cnf"),
        "[client]\nuser = fileuser\npassword = filepw\nhost = filehost\nport = 3310\nssl-mode = REQUIRED\n",
    )
    .unwrap();
    let t = resolve(
        "mysql:///shop",
        &[("MYSQL_PWD", "envpw"), ("MYSQL_TCP_PORT", "3311")],
        Some(home.path()),
    )
    .unwrap();
    assert_eq!(t.user(), "fileuser");
    assert_eq!(
        t.password.as_deref(),
        Some("envpw"),
        "MYSQL_PWD before the file"
    );
    assert_eq!((t.host().as_str(), t.port()), ("filehost", 3311));
    assert_eq!(t.ssl_mode(), SslMode::Required);
    let source = t.source();
    assert!(source.contains("password from MYSQL_PWD"), "{source}");
    assert!(source.contains("user from"), "{source}");
    // The URL wins over both.
    let t = resolve(
        "mysql://u:urlpw@h:1/shop?ssl-mode=disabled",
        &[("MYSQL_PWD", "envpw")],
        Some(home.path()),
    )
    .unwrap();
    assert_eq!(t.password.as_deref(), Some("urlpw"));
    assert_eq!(t.port(), 1);
    assert_eq!(t.ssl_mode(), SslMode::Disabled);
}

#[test]
fn a_defaults_file_replaces_my_cnf_and_a_socket_connects_over_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("other.cnf");
    std::fs::write(&file, "[client]\nsocket = /run/x.sock\nuser = s\n").unwrap();
    let t = resolve(
        &format!("mysql:///shop?defaults-file={}", file.display()),
        &[],
        None,
    )
    .unwrap();
    assert_eq!(t.host(), "/run/x.sock");
    assert_eq!(t.redacted(), "mysql://s@localhost/shop?socket=/run/x.sock");
    let t = resolve(
        "mysql://u@127.0.0.1/shop",
        &[("PACER_MYSQL_DEFAULTS_FILE", file.to_str().unwrap())],
        None,
    )
    .unwrap();
    assert_eq!(
        t.host(),
        "127.0.0.1",
        "a host in the URL is not swapped for the file's socket"
    );
    let err = resolve("mysql://u@h/shop?defaults-file=/no/such.cnf", &[], None).unwrap_err();
    assert!(
        err.to_string()
            .contains("cannot read the option file /no/such.cnf"),
        "{err}"
    );
}

#[test]
fn bad_targets_are_refused_naming_what_to_write() {
    for (url, needle) in [
        ("mysql://u@h", "names no database"),
        ("mysql://u@h:99999/db", "not a number from 1 to 65535"),
        (
            "mysql://u@h/db?sslmode=require",
            "query parameter \"sslmode\"",
        ),
        ("mysql://u@h/db?ssl-mode=maybe", "ssl-mode \"maybe\""),
        (
            "mysql://u@127.0.0.1/db?ssl-mode=VERIFY_IDENTITY",
            "cannot check a certificate against the IP address 127.0.0.1",
        ),
        (
            "mysql://u@h/db?ssl-mode=VERIFY_CA&ssl-ca=/no/ca.pem",
            "ssl-ca file /no/ca.pem does not exist",
        ),
    ] {
        let err = resolve(url, &[], None).unwrap_err().to_string();
        assert!(err.contains(needle), "{url}: {err}");
    }
    assert!(
        resolve(
            "mysql://u@db.example/db?ssl-mode=verify_identity",
            &[],
            None
        )
        .is_ok()
    );
}

#[test]
fn the_password_never_shows_in_display_debug_or_errors() {
    let t = resolve("mysql://app:hunter2@db1/shop", &[], None).unwrap();
    for text in [t.redacted(), t.source(), format!("{t:?}")] {
        assert!(!text.contains("hunter2"), "{text}");
    }
    let err = resolve(
        "mysql://app:hunter2@127.0.0.1/shop?ssl-mode=VERIFY_IDENTITY",
        &[],
        None,
    )
    .unwrap_err();
    assert!(!err.to_string().contains("hunter2") && !format!("{err:?}").contains("hunter2"));
}
