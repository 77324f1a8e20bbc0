//! The settings of the PostgreSQL backend.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Settings of the PostgreSQL backend (the `postgres` object of the JSON open options).
///
/// Connections are made without TLS (`NoTls`): use them on a trusted network, over a local
/// socket or through a TLS-terminating proxy. A URL asking for TLS (`sslmode=require`) is
/// refused rather than silently connected in plain text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PostgresOptions {
    /// Most connections open at once (1 to 256; default 8).
    pub pool_size: usize,
    /// Time allowed to connect, in milliseconds (default 10,000); a `connect_timeout` in
    /// the URL takes precedence.
    pub connect_timeout_ms: u64,
    /// Time a call waits for a free connection when all are busy, in milliseconds (default
    /// 30,000; 0 fails at once).
    pub pool_timeout_ms: u64,
    /// The server's `statement_timeout` for every connection, in milliseconds (default 0:
    /// none).
    pub statement_timeout_ms: u64,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions {
            pool_size: 8,
            connect_timeout_ms: 10_000,
            pool_timeout_ms: 30_000,
            statement_timeout_ms: 0,
        }
    }
}

impl PostgresOptions {
    pub(crate) fn validate(&self) -> Result<()> {
        if !(1..=256).contains(&self.pool_size) {
            return Err(Error::invalid(
                "postgres.pool_size must be between 1 and 256",
            ));
        }
        const HOUR_MS: u64 = 3_600_000;
        if !(1..=HOUR_MS).contains(&self.connect_timeout_ms) {
            return Err(Error::invalid(
                "postgres.connect_timeout_ms must be between 1 and 3600000",
            ));
        }
        if self.pool_timeout_ms > HOUR_MS {
            return Err(Error::invalid(
                "postgres.pool_timeout_ms must be at most 3600000",
            ));
        }
        // The server's limit for statement_timeout.
        if self.statement_timeout_ms > i32::MAX as u64 {
            return Err(Error::invalid(format!(
                "postgres.statement_timeout_ms must be at most {}",
                i32::MAX
            )));
        }
        Ok(())
    }
}
