//! Connections: a small pool of `postgres::Client`s, a session over one of them (statement
//! cache, transactions, error classification), the error mapping and the password-free
//! renderings of the URL.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use postgres::error::SqlState;
use postgres::types::{FromSql, ToSql};
use postgres::{Client, Config, NoTls, Row, Statement};

use crate::error::{Error, ErrorCode, Result};

/// Prepared statements kept per connection; past this the cache starts afresh (filters make
/// statements of many shapes, the fixed ones are prepared again at once).
const STATEMENT_CACHE: usize = 256;

/// What a failed statement means for the connection and the transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Failure {
    /// A serialisation failure or a deadlock: the transaction may be run again.
    Retry,
    /// The connection is gone or in an unknown state: drop it; what did not commit may be
    /// run again on a fresh connection.
    Broken,
    /// Any other error (a constraint, a bad value): the connection is fine.
    Other,
}

/// How a failed call of the `postgres` crate is to be handled.
pub(super) fn classify(e: &postgres::Error) -> Failure {
    if e.is_closed() {
        return Failure::Broken;
    }
    match e.code() {
        Some(c)
            if *c == SqlState::T_R_SERIALIZATION_FAILURE
                || *c == SqlState::T_R_DEADLOCK_DETECTED =>
        {
            Failure::Retry
        }
        // 08: connection exceptions; 57P: the server is shutting down or restarting.
        Some(c) if c.code().starts_with("08") || c.code().starts_with("57P") => Failure::Broken,
        Some(_) => Failure::Other,
        // Not a database error: I/O, a protocol surprise, a closed socket. The connection's
        // state is unknown, so it is not reused.
        None => Failure::Broken,
    }
}

/// The message of a `postgres` error with its cause (the crate's own `Display` leaves the
/// cause out: "db error", "error connecting to server").
pub(super) fn describe(e: &postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut msg = format!("{} (SQLSTATE {})", db.message(), db.code().code());
        if let Some(detail) = db.detail() {
            msg.push_str(&format!("; detail: {detail}"));
        }
        if let Some(hint) = db.hint() {
            msg.push_str(&format!("; hint: {hint}"));
        }
        return msg;
    }
    match std::error::Error::source(e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

/// A `postgres` error as an agent_mem error: `Storage`, with the SQLSTATE when the server
/// reported one.
pub(super) fn pg_error(e: postgres::Error) -> Error {
    let msg = if e.as_db_error().is_some() {
        format!("PostgreSQL: {}", describe(&e))
    } else {
        format!("PostgreSQL connection: {}", describe(&e))
    };
    Error::new(ErrorCode::Storage, msg).with_source(e)
}

/// The URL with its password (in the user part or a `password=` parameter) replaced by
/// `***`: what messages and `location()` show.
pub(super) fn redact_url(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let mut out = match base.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = match rest.find('/') {
                Some(i) => rest.split_at(i),
                None => (rest, ""),
            };
            let authority = match authority.rsplit_once('@') {
                Some((userinfo, hosts)) => match userinfo.split_once(':') {
                    Some((user, _)) => format!("{user}:***@{hosts}"),
                    None => format!("{userinfo}@{hosts}"),
                },
                None => authority.to_string(),
            };
            format!("{scheme}://{authority}{path}")
        }
        None => base.to_string(),
    };
    if let Some(query) = query {
        let params: Vec<String> = query
            .split('&')
            .map(|p| match p.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                _ => p.to_string(),
            })
            .collect();
        out.push('?');
        out.push_str(&params.join("&"));
    }
    out
}

/// `postgres://user@host:port/db` of a configuration, for connection errors.
pub(super) fn config_label(config: &Config) -> String {
    let host = match config.get_hosts().first() {
        Some(postgres::config::Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".to_string(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or_default();
    let db = config.get_dbname().unwrap_or(user);
    let at = if user.is_empty() {
        String::new()
    } else {
        format!("{user}@")
    };
    format!("postgres://{at}{host}:{port}/{db}")
}

/// One open connection and its prepared statements.
pub(super) struct Conn {
    client: Client,
    statements: HashMap<String, Statement>,
    /// It served an earlier call: it may have died since (a server restart).
    reused: bool,
    /// A transaction was begun and not yet ended.
    in_transaction: bool,
}

/// The pool: at most `size` connections open, idle ones kept for reuse.
pub(super) struct Pool {
    config: Config,
    label: String,
    size: usize,
    wait: Duration,
    statement_timeout_ms: u64,
    state: Mutex<PoolState>,
    freed: Condvar,
}

struct PoolState {
    idle: Vec<Conn>,
    /// Connections open, idle or leased.
    open: usize,
}

impl Pool {
    pub(super) fn new(
        config: Config,
        size: usize,
        wait: Duration,
        statement_timeout_ms: u64,
    ) -> Pool {
        Pool {
            label: config_label(&config),
            config,
            size,
            wait,
            statement_timeout_ms,
            state: Mutex::new(PoolState {
                idle: Vec::new(),
                open: 0,
            }),
            freed: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, PoolState> {
        // The state is two plain fields, consistent after any panic.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A connection: an idle one, a new one while fewer than `size` are open, or the first
    /// one freed within the pool timeout.
    pub(super) fn get(&self) -> Result<Lease<'_>> {
        let deadline = Instant::now() + self.wait;
        let mut state = self.lock();
        loop {
            while let Some(mut conn) = state.idle.pop() {
                if conn.client.is_closed() {
                    state.open -= 1;
                    continue;
                }
                conn.reused = true;
                return Ok(Lease {
                    pool: self,
                    conn: Some(conn),
                });
            }
            if state.open < self.size {
                state.open += 1;
                drop(state);
                return match self.connect() {
                    Ok(conn) => Ok(Lease {
                        pool: self,
                        conn: Some(conn),
                    }),
                    Err(e) => {
                        self.lock().open -= 1;
                        self.freed.notify_one();
                        Err(e)
                    }
                };
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(Error::new(
                    ErrorCode::Storage,
                    format!(
                        "PostgreSQL connection pool exhausted: all {} connections to {} stayed \
                         busy for {} ms (raise pool_size or pool_timeout_ms)",
                        self.size,
                        self.label,
                        self.wait.as_millis()
                    ),
                ));
            }
            state = self
                .freed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Drops every idle connection: one of them was found dead, so the others (opened
    /// before the same server restart) most likely are too.
    pub(super) fn drain_idle(&self) {
        let dead: Vec<Conn> = {
            let mut state = self.lock();
            let dead: Vec<Conn> = state.idle.drain(..).collect();
            state.open -= dead.len();
            dead
        };
        // Closing sockets happens outside the lock.
        drop(dead);
        self.freed.notify_all();
    }

    fn connect(&self) -> Result<Conn> {
        let mut client = self.config.connect(NoTls).map_err(|e| {
            Error::new(
                ErrorCode::Storage,
                format!("cannot connect to {}: {}", self.label, describe(&e)),
            )
            .with_source(e)
        })?;
        let mut setup = String::new();
        if self.statement_timeout_ms > 0 {
            setup.push_str(&format!(
                "SET statement_timeout = {};",
                self.statement_timeout_ms
            ));
        }
        if !setup.is_empty() {
            client.batch_execute(&setup).map_err(pg_error)?;
        }
        // The store lives in the first existing schema of the URL's search_path; without one
        // it would land in whatever schema comes first once the extensions' are appended.
        let row = client
            .query_one("SELECT current_schema()", &[])
            .map_err(pg_error)?;
        if row.try_get::<_, Option<String>>(0).ok().flatten().is_none() {
            return Err(Error::invalid(format!(
                "{}: the connection's search_path names no existing schema to hold the store; \
                 create it (CREATE SCHEMA …) or fix `options=-csearch_path%3D…` in the URL",
                self.label
            )));
        }
        // The extensions may live in a schema the URL's search_path leaves out (`public`,
        // where an administrator created them, while the store lives in `myschema`): their
        // types, operators and functions must still resolve. Appended, so that the store's
        // own schema stays the first (where its tables are created).
        client
            .query(
                "SELECT set_config('search_path',
                     CASE WHEN current_setting('search_path') = '' THEN ''
                          ELSE current_setting('search_path') || ', ' END
                     || string_agg(DISTINCT quote_ident(n.nspname), ', '), false)
                 FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
                 WHERE e.extname IN ('vector', 'pg_trgm')
                   AND n.nspname <> ALL (current_schemas(true))
                 HAVING count(*) > 0",
                &[],
            )
            .map_err(pg_error)?;
        Ok(Conn {
            client,
            statements: HashMap::new(),
            reused: false,
            in_transaction: false,
        })
    }
}

/// A connection taken from the pool; it goes back when dropped, unless it was found broken.
pub(super) struct Lease<'p> {
    pool: &'p Pool,
    conn: Option<Conn>,
}

impl Lease<'_> {
    /// Whether the connection served earlier calls.
    pub(super) fn reused(&self) -> bool {
        self.conn.as_ref().is_some_and(|c| c.reused)
    }

    /// True when the connection can no longer be used.
    pub(super) fn is_closed(&self) -> bool {
        self.conn.as_ref().is_none_or(|c| c.client.is_closed())
    }

    /// Drops the connection instead of returning it to the pool.
    pub(super) fn discard(&mut self) {
        if self.conn.take().is_some() {
            self.pool.lock().open -= 1;
            self.pool.freed.notify_one();
        }
    }

    /// A session over the connection.
    pub(super) fn session(&mut self) -> Result<Session<'_>> {
        match self.conn.as_mut() {
            Some(conn) => Ok(Session {
                conn,
                failure: None,
            }),
            None => Err(Error::internal(
                "a discarded PostgreSQL connection was used",
            )),
        }
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        // A transaction left open (a panic went through it) is rolled back here, so the next
        // user starts clean; a connection that cannot even do that is dropped.
        if conn.in_transaction {
            if conn.client.batch_execute("ROLLBACK").is_err() {
                self.discard_conn(conn);
                return;
            }
            conn.in_transaction = false;
        }
        if conn.client.is_closed() {
            self.discard_conn(conn);
            return;
        }
        self.pool.lock().idle.push(conn);
        self.pool.freed.notify_one();
    }
}

impl Lease<'_> {
    fn discard_conn(&self, conn: Conn) {
        drop(conn);
        self.pool.lock().open -= 1;
        self.pool.freed.notify_one();
    }
}

/// How a transaction begins.
#[derive(Debug, Clone, Copy)]
pub(super) enum TxMode {
    /// One consistent snapshot for several statements.
    Read,
    /// A write transaction (read committed: each statement sees what committed before it,
    /// which is what the unique-constraint waits of concurrent inserts rely on).
    Write,
}

/// Statements over one leased connection, with the first failure remembered (a transaction
/// is aborted after an error: what comes after fails with 25P02, and the cause matters).
pub(super) struct Session<'c> {
    conn: &'c mut Conn,
    failure: Option<(Failure, String)>,
}

impl Session<'_> {
    /// The first failure seen in this session, if any.
    pub(super) fn failure(&self) -> Option<Failure> {
        self.failure.as_ref().map(|(f, _)| *f)
    }

    fn fail(&mut self, e: postgres::Error) -> Error {
        let kind = classify(&e);
        let err = pg_error(e);
        if self.failure.is_none() {
            self.failure = Some((kind, err.message().to_string()));
        }
        err
    }

    /// An error for a session whose transaction failed although the caller carried on.
    pub(super) fn failed_error(&self) -> Option<Error> {
        self.failure.as_ref().map(|(_, msg)| {
            Error::new(
                ErrorCode::Storage,
                format!("a statement of the transaction failed: {msg}"),
            )
        })
    }

    /// Begins a transaction.
    pub(super) fn begin(&mut self, mode: TxMode) -> Result<()> {
        let sql = match mode {
            TxMode::Read => "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY",
            TxMode::Write => "BEGIN ISOLATION LEVEL READ COMMITTED, READ WRITE",
        };
        self.batch(sql)?;
        self.conn.in_transaction = true;
        Ok(())
    }

    /// Commits the open transaction.
    pub(super) fn commit(&mut self) -> Result<()> {
        self.batch("COMMIT")?;
        self.conn.in_transaction = false;
        Ok(())
    }

    /// Rolls the open transaction back (best effort: a dead connection has none left).
    pub(super) fn rollback(&mut self) {
        if self.conn.in_transaction && self.conn.client.batch_execute("ROLLBACK").is_ok() {
            self.conn.in_transaction = false;
        }
    }

    /// Runs SQL text without parameters (DDL, transaction control), by the simple protocol.
    pub(super) fn batch(&mut self, sql: &str) -> Result<()> {
        match self.conn.client.batch_execute(sql) {
            Ok(()) => Ok(()),
            Err(e) => Err(self.fail(e)),
        }
    }

    fn statement(&mut self, sql: &str) -> Result<Statement> {
        if let Some(s) = self.conn.statements.get(sql) {
            return Ok(s.clone());
        }
        match self.conn.client.prepare(sql) {
            Ok(s) => {
                if self.conn.statements.len() >= STATEMENT_CACHE {
                    self.conn.statements.clear();
                }
                self.conn.statements.insert(sql.to_string(), s.clone());
                Ok(s)
            }
            Err(e) => Err(self.fail(e)),
        }
    }

    /// The rows of a query.
    pub(super) fn query(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>> {
        let stmt = self.statement(sql)?;
        match self.conn.client.query(&stmt, params) {
            Ok(rows) => Ok(rows),
            Err(e) => Err(self.fail(e)),
        }
    }

    /// The row of a query that returns at most one.
    pub(super) fn query_opt(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>> {
        let stmt = self.statement(sql)?;
        match self.conn.client.query_opt(&stmt, params) {
            Ok(row) => Ok(row),
            Err(e) => Err(self.fail(e)),
        }
    }

    /// The row of a query that returns exactly one.
    pub(super) fn query_one(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Row> {
        let stmt = self.statement(sql)?;
        match self.conn.client.query_one(&stmt, params) {
            Ok(row) => Ok(row),
            Err(e) => Err(self.fail(e)),
        }
    }

    /// Runs a statement; the number of rows it touched.
    pub(super) fn execute(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64> {
        let stmt = self.statement(sql)?;
        match self.conn.client.execute(&stmt, params) {
            Ok(n) => Ok(n),
            Err(e) => Err(self.fail(e)),
        }
    }
}

/// Column `i` of a row, a conversion failure reported as stored data that does not fit.
pub(super) fn get<'a, T: FromSql<'a>>(row: &'a Row, i: usize) -> Result<T> {
    row.try_get(i).map_err(|e| {
        Error::new(
            ErrorCode::Corrupted,
            format!(
                "PostgreSQL: column {i} holds an unexpected value: {}",
                describe(&e)
            ),
        )
        .with_source(e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        assert_eq!(
            redact_url("postgres://alice:s3cret@db.example:5432/mem?sslmode=disable"),
            "postgres://alice:***@db.example:5432/mem?sslmode=disable"
        );
        assert_eq!(
            redact_url("postgresql://alice@h/db?password=s3cret&options=-csearch_path%3Dx"),
            "postgresql://alice@h/db?password=***&options=-csearch_path%3Dx"
        );
        assert_eq!(redact_url("postgres://h1,h2/db"), "postgres://h1,h2/db");
        assert_eq!(redact_url("postgres://a:p%40ss@h"), "postgres://a:***@h");
        let config: Config = "postgres://bob:pw@127.0.0.1:6543/store".parse().unwrap();
        assert_eq!(config_label(&config), "postgres://bob@127.0.0.1:6543/store");
    }

    #[test]
    fn failures_are_classified() {
        // Only what can be built without a server: a bad connection string is not a
        // database error, so a connection that saw it would not be reused.
        let e = "postgres://h/db?sslmode=bogus"
            .parse::<Config>()
            .unwrap_err();
        assert_eq!(classify(&e), Failure::Broken);
        assert_eq!(pg_error(e).code(), ErrorCode::Storage);
    }
}
