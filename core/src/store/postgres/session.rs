//! Running statements on a pooled connection: reads in snapshots, writes in transactions
//! retried when the database asks, connections found dead replaced.

use std::time::Duration;

use super::graph::PgGraph;
use super::pool::{Failure, Lease, Session, TxMode};
use super::text::{self, TextDelta};
use super::tx::PgTx;
use super::PgStore;
use crate::error::{Error, ErrorCode, Result};

/// Attempts of a write transaction that the database asks to retry (deadlock,
/// serialisation failure) or that lost its connection before committing.
const WRITE_ATTEMPTS: u32 = 5;

impl PgStore {
    /// Runs `f` over a connection, in a read snapshot when `snapshot` (several statements)
    /// or statement by statement. A pooled connection found dead (a server restart since
    /// it was last used) is dropped with the other idle ones, and `f` runs again once on a
    /// fresh connection.
    pub(super) fn read<T>(
        &self,
        snapshot: bool,
        mut f: impl FnMut(&mut Session<'_>) -> Result<T>,
    ) -> Result<T> {
        let mut again = true;
        loop {
            let mut lease = self.pool.get()?;
            let (out, failure) = {
                let mut s = lease.session()?;
                let out = if snapshot {
                    s.begin(TxMode::Read).and_then(|()| match f(&mut s) {
                        Ok(v) => s.commit().map(|()| v),
                        Err(e) => {
                            s.rollback();
                            Err(e)
                        }
                    })
                } else {
                    f(&mut s)
                };
                (out, s.failure())
            };
            match out {
                Ok(v) => return Ok(v),
                Err(e) => match self.retire_if_broken(&mut lease, failure) {
                    Some(true) if std::mem::take(&mut again) => {}
                    _ => return Err(e),
                },
            }
        }
    }

    /// Drops a connection that failed for want of a working connection, with the idle
    /// ones (opened before the same server restart, most likely). `Some(reused)` when it
    /// did: a connection that served earlier calls may simply have outlived its server,
    /// which a fresh connection cures.
    pub(super) fn retire_if_broken(
        &self,
        lease: &mut Lease<'_>,
        failure: Option<Failure>,
    ) -> Option<bool> {
        let reused = lease.reused();
        if failure == Some(Failure::Broken) || lease.is_closed() {
            lease.discard();
            self.pool.drain_idle();
            return Some(reused);
        }
        None
    }

    /// Runs `f` in one write transaction (see [`Store::write_tx`]), again when the database
    /// asks for it (deadlock, serialisation failure) or when the connection broke before
    /// the commit.
    pub(super) fn write(&self, mut f: impl FnMut(&mut PgTx<'_, '_>) -> Result<()>) -> Result<()> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (error, failure, committing) = match self.try_write(&mut f) {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            let again = attempt < WRITE_ATTEMPTS
                && match failure {
                    Some(Failure::Retry) => true,
                    Some(Failure::Broken) => !committing,
                    _ => false,
                };
            if !again {
                if committing && failure == Some(Failure::Broken) {
                    return Err(Error::new(
                        ErrorCode::Storage,
                        format!(
                            "the connection to PostgreSQL was lost while committing; the \
                             change may or may not have been stored: {}",
                            error.message()
                        ),
                    )
                    .with_source(error));
                }
                return Err(error);
            }
            if failure == Some(Failure::Retry) {
                backoff(attempt);
            }
        }
    }

    /// One attempt of a write transaction: on failure the error, its failure class, and
    /// whether it came from the commit itself (then the outcome is unknown).
    fn try_write(
        &self,
        f: &mut impl FnMut(&mut PgTx<'_, '_>) -> Result<()>,
    ) -> std::result::Result<(), (Error, Option<Failure>, bool)> {
        let mut lease = self.pool.get().map_err(|e| (e, None, false))?;
        let outcome = {
            let mut s = lease.session().map_err(|e| (e, None, false))?;
            match s.begin(TxMode::Write) {
                Err(e) => Err((e, s.failure(), false)),
                Ok(()) => {
                    let mut tx = PgTx {
                        store: self,
                        graph: PgGraph { s: &mut s },
                        delta: TextDelta::default(),
                        now: None,
                        change: None,
                    };
                    let mut done = f(&mut tx);
                    if done.is_ok() {
                        done = tx.delta.apply(tx.graph.s);
                    }
                    // A statement failed but the closure carried on: the transaction is
                    // aborted, and COMMIT would quietly roll it back.
                    if done.is_ok() {
                        if let Some(e) = s.failed_error() {
                            done = Err(e);
                        }
                    }
                    match done {
                        Ok(()) => s.commit().map_err(|e| {
                            s.rollback();
                            (e, s.failure(), true)
                        }),
                        Err(e) => {
                            s.rollback();
                            Err((e, s.failure(), false))
                        }
                    }
                }
            }
        };
        if let Err((_, failure, _)) = &outcome {
            self.retire_if_broken(&mut lease, *failure);
        }
        outcome
    }
}

/// A short random pause before retrying a transaction (5 to 50 ms, growing per attempt),
/// so that writers that collided do not collide again in step.
fn backoff(attempt: u32) {
    let base = 5 * u64::from(attempt);
    let ms = base + text::random() % (10 * u64::from(attempt));
    std::thread::sleep(Duration::from_millis(ms.min(50)));
}
