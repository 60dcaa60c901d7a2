//! TEMPORARY minimal connection (replaced by the full resolver).

use std::path::Path;

use mysql_async::{Conn, Opts, OptsBuilder};

/// TLS modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// No TLS.
    Disabled,
}

impl std::fmt::Display for SslMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DISABLED")
    }
}

/// A resolved target.
#[derive(Clone)]
pub struct MyTarget {
    opts: Opts,
}

/// Connection errors.
#[derive(Debug, thiserror::Error)]
pub enum MyConnectError {
    /// Bad URL.
    #[error("{message}")]
    BadTarget {
        /// Text.
        message: String,
    },
    /// Unreachable.
    #[error("{message}")]
    Unreachable {
        /// Text.
        message: String,
    },
    /// TLS.
    #[error("{message}")]
    Tls {
        /// Text.
        message: String,
    },
}

impl MyConnectError {
    /// Retry may help.
    pub fn is_retryable(&self) -> bool {
        matches!(self, MyConnectError::Unreachable { .. })
    }
}

impl MyTarget {
    /// Resolves.
    pub fn resolve(
        flag: Option<&str>,
        env: &dyn Fn(&str) -> Option<String>,
        _home: Option<&Path>,
    ) -> Result<MyTarget, MyConnectError> {
        let url = crate::target::family::given_target(flag, env).unwrap_or_default();
        let url = url.replacen("mariadb://", "mysql://", 1);
        let opts = Opts::from_url(&url).map_err(|e| MyConnectError::BadTarget {
            message: e.to_string(),
        })?;
        Ok(MyTarget { opts })
    }
    /// Redacted.
    pub fn redacted(&self) -> String {
        format!(
            "mysql://{}@{}:{}/{}",
            self.opts.user().unwrap_or(""),
            self.opts.ip_or_hostname(),
            self.opts.tcp_port(),
            self.database()
        )
    }
    /// Source.
    pub fn source(&self) -> String {
        "--target".into()
    }
    /// TLS.
    pub fn ssl_mode(&self) -> SslMode {
        SslMode::Disabled
    }
    /// Database.
    pub fn database(&self) -> &str {
        self.opts.db_name().unwrap_or("")
    }
    /// Connects.
    pub async fn connect(&self, program_name: &str) -> Result<Conn, MyConnectError> {
        let b = OptsBuilder::from_opts(self.opts.clone())
            .prefer_socket(false)
            .connect_attribute("program_name", program_name);
        Conn::new(b).await.map_err(|e| MyConnectError::Unreachable {
            message: e.to_string(),
        })
    }
}
