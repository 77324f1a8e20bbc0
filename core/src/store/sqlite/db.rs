//! Connections: one writer behind a mutex and a small pool of readers, all configured alike.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::functions::FunctionFlags;
use rusqlite::types::{Value, ValueRef};
use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};

use super::schema;
use crate::error::{Error, ErrorCode, Result};

/// How long a connection waits for another writer before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);
/// Readers kept for reuse.
const MAX_IDLE_READERS: usize = 8;

pub(crate) struct Db {
    /// `None` for an in-memory store, whose single connection serves reads too.
    path: Option<PathBuf>,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
}

impl Db {
    pub(crate) fn open(path: &Path) -> Result<Db> {
        let label = path.display().to_string();
        if path.is_dir() {
            return Err(Error::invalid(format!(
                "{label} is a directory; give the path of a store file"
            )));
        }
        let mut writer = Connection::open(path).map_err(|e| {
            Error::new(ErrorCode::Storage, format!("cannot open {label}: {e}")).with_source(e)
        })?;
        // Check it is ours before anything (such as WAL mode) writes to it.
        writer.busy_timeout(BUSY_TIMEOUT)?;
        schema::prepare(&mut writer, &label)?;
        configure(&writer, true)?;
        Ok(Db {
            path: Some(path.to_path_buf()),
            writer: Mutex::new(writer),
            readers: Mutex::new(Vec::new()),
        })
    }

    pub(crate) fn open_in_memory() -> Result<Db> {
        let mut conn = Connection::open_in_memory()?;
        schema::prepare(&mut conn, ":memory:")?;
        configure(&conn, false)?;
        Ok(Db {
            path: None,
            writer: Mutex::new(conn),
            readers: Mutex::new(Vec::new()),
        })
    }

    pub(crate) fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    fn lock_writer(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave a half-done transaction behind
        // (rusqlite rolls back on drop), so a poisoned lock is safe to reuse.
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` in one immediate write transaction: it commits if `f` succeeds and rolls
    /// back otherwise, so a failed call leaves the store as it was.
    pub(crate) fn write<T>(&self, f: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        let mut conn = self.lock_writer();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }

    /// Runs `f` inside one read transaction, so every statement sees the same snapshot.
    pub(crate) fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let Some(path) = &self.path else {
            let conn = self.lock_writer();
            return in_read_tx(&conn, f);
        };
        let pooled = self.readers.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let conn = match pooled {
            Some(c) => c,
            None => open_reader(path)?,
        };
        let out = in_read_tx(&conn, f);
        let mut pool = self.readers.lock().unwrap_or_else(|p| p.into_inner());
        if pool.len() < MAX_IDLE_READERS {
            pool.push(conn);
        }
        out
    }
}

fn in_read_tx<T>(conn: &Connection, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
    conn.execute_batch("BEGIN DEFERRED")?;
    let out = f(conn);
    // A read transaction has nothing to keep; end it whatever happened.
    let end = conn.execute_batch("COMMIT");
    let out = out?;
    end?;
    Ok(out)
}

fn open_reader(path: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    configure(&conn, false)?;
    Ok(conn)
}

fn configure(conn: &Connection, writer: bool) -> Result<()> {
    if writer {
        // WAL lets readers (in this and other processes) run beside the one writer.
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") && !mode.eq_ignore_ascii_case("memory") {
            return Err(Error::new(
                ErrorCode::Storage,
                format!("could not switch the store to WAL mode (got {mode})"),
            ));
        }
    }
    conn.execute_batch(
        "PRAGMA foreign_keys = ON;
         PRAGMA synchronous = NORMAL;
         PRAGMA temp_store = MEMORY;",
    )?;
    // Random keys (UUIDs, content hashes) land all over their indexes: with SQLite's default
    // 2 MiB page cache a large store's writes would mostly wait on page reads.
    let cache_kib = if writer { 64 * 1024 } else { 16 * 1024 };
    conn.execute_batch(&format!("PRAGMA cache_size = -{cache_kib};"))?;
    conn.set_prepared_statement_cache_capacity(64);
    conn.create_scalar_function(
        "am_lower",
        1,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            Ok(match ctx.get_raw(0) {
                ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).to_lowercase()),
                ValueRef::Null => Value::Null,
                ValueRef::Integer(i) => Value::Integer(i),
                ValueRef::Real(r) => Value::Real(r),
                ValueRef::Blob(b) => Value::Blob(b.to_vec()),
            })
        },
    )?;
    Ok(())
}
