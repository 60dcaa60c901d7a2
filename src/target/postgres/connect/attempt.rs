//! libpq's connection procedure: which `sslmode` tries what (plain, TLS, both, in which order),
//! one attempt with its overall deadline, and the connection task that outlives it.

use std::time::Duration;

use tokio_postgres::config::{Host, SslMode as WireSslMode, SslNegotiation};
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::{Client, Config, NoTls, Socket};

use super::classify::{Failure, error_text};
use super::errors::{ConnectError, scrub};
use super::progress::Watched;
use super::tls::{RootCerts, Verify};
use super::{PgTarget, SslMode};

/// How one connection attempt negotiates TLS.
#[derive(Clone, Copy)]
enum TlsPlan {
    Plain,
    Tls(WireSslMode, Verify),
}

impl PgTarget {
    /// Connects with the given application_name and a connect timeout (default 10 s), spawns the connection
    /// task on tokio, returns the client. Errors are classified (below).
    pub async fn connect(&self, application_name: &str) -> Result<Client, ConnectError> {
        let mut config = self.config.clone();
        config.application_name(application_name);
        if let Some(t) = self.connect_timeout {
            config.connect_timeout(t);
        }
        // libpq never uses TLS over Unix sockets whatever sslmode says; tokio-postgres would
        // fail `require` there, so do as libpq does.
        let unix_only = config.get_hostaddrs().is_empty()
            && config
                .get_hosts()
                .iter()
                .all(|h| !matches!(h, Host::Tcp(_)));
        // tokio-postgres starts TLS only toward a host name, and never for `prefer` with
        // `sslnegotiation=direct`; where it cannot, `prefer` means plain, as it would after
        // the failed TLS attempt anyway.
        let tls_possible = !config.get_hosts().is_empty()
            && config.get_ssl_negotiation() == SslNegotiation::Postgres;
        let result = if unix_only {
            self.attempt(&config, TlsPlan::Plain).await
        } else {
            match self.ssl_mode {
                SslMode::Disable => self.attempt(&config, TlsPlan::Plain).await,
                // libpq's allow: plain first, TLS only when the server turned plain down.
                SslMode::Allow => match self.attempt(&config, TlsPlan::Plain).await {
                    Err(plain @ Failure::Driver { .. }) if plain.is_server_error() => {
                        match self
                            .attempt(&config, TlsPlan::Tls(WireSslMode::Require, Verify::Nothing))
                            .await
                        {
                            // No TLS either: the server's answer to the plain attempt stands.
                            Err(tls) if tls.is_tls_refused() => Err(plain),
                            other => other,
                        }
                    }
                    other => other,
                },
                // libpq's prefer also falls back to plain when the TLS handshake itself fails.
                SslMode::Prefer if tls_possible => {
                    match self
                        .attempt(&config, TlsPlan::Tls(WireSslMode::Prefer, Verify::Nothing))
                        .await
                    {
                        Err(f) if f.is_tls_failure() => self.attempt(&config, TlsPlan::Plain).await,
                        other => other,
                    }
                }
                SslMode::Prefer => self.attempt(&config, TlsPlan::Plain).await,
                SslMode::Require => {
                    // libpq: with a root certificate configured, require behaves as verify-ca.
                    let verify = match self.roots {
                        RootCerts::Default => Verify::Nothing,
                        RootCerts::System(..) | RootCerts::File(..) => Verify::Chain,
                    };
                    self.attempt(&config, TlsPlan::Tls(WireSslMode::Require, verify))
                        .await
                }
                SslMode::VerifyCa => {
                    self.attempt(&config, TlsPlan::Tls(WireSslMode::Require, Verify::Chain))
                        .await
                }
                SslMode::VerifyFull => {
                    self.attempt(&config, TlsPlan::Tls(WireSslMode::Require, Verify::Full))
                        .await
                }
            }
        };
        result.map_err(|f| self.classify(f).scrubbed(&self.secrets()))
    }

    /// The whole attempt's deadline: tokio-postgres' connect_timeout covers only the TCP
    /// connect, so a server that accepts and then says nothing would hang us forever.
    fn overall_timeout(&self) -> Option<Duration> {
        let endpoints = self
            .config
            .get_hosts()
            .len()
            .max(self.config.get_hostaddrs().len())
            .max(1);
        self.connect_timeout
            .map(|t| t.saturating_mul(u32::try_from(endpoints).unwrap_or(u32::MAX)))
    }

    async fn attempt(&self, config: &Config, plan: TlsPlan) -> Result<Client, Failure> {
        let mut config = config.clone();
        match plan {
            TlsPlan::Plain => {
                config.ssl_mode(WireSslMode::Disable);
                self.open(&config, NoTls).await
            }
            TlsPlan::Tls(mode, verify) => {
                config.ssl_mode(mode);
                let tls = self.rustls_connector(verify).map_err(Failure::TlsSetup)?;
                self.open(&config, tls).await
            }
        }
    }

    async fn open<T>(&self, config: &Config, tls: T) -> Result<Client, Failure>
    where
        T: MakeTlsConnect<Socket>,
        T::Stream: Send + 'static,
        <T::TlsConnect as TlsConnect<Socket>>::Future: Send + 'static,
    {
        let (tls, progress) = Watched::new(tls);
        let pending = config.connect(tls);
        let (client, connection) = match self.overall_timeout() {
            Some(limit) => tokio::time::timeout(limit, pending)
                .await
                .map_err(|_| Failure::TimedOut(limit))?,
            None => pending.await,
        }
        .map_err(|error| Failure::Driver {
            error,
            reached: progress.reached(),
            tls_required: config.get_ssl_mode() == WireSslMode::Require,
        })?;
        let target = self.redacted();
        let secrets = self.secrets();
        tokio::spawn(async move {
            // The client only sees "connection closed"; the reason (e.g. the server was shut
            // down) exists only here, so it must be logged.
            if let Err(e) = connection.await {
                let error = scrub(error_text(&e), &secrets);
                tracing::warn!(target_db = %target, %error, "PostgreSQL connection ended with an error");
            }
        });
        Ok(client)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;

    #[test]
    fn connect_future_is_send() {
        fn assert_send<T: Send>(_: &T) {}
        let t = resolve("postgres://u@h/db", &[]).unwrap();
        let fut = t.connect("pacer");
        assert_send(&fut);
    }
}
