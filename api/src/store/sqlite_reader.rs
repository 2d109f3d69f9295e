//! The hot read path on SQLite without a thread hand-off.
//!
//! sqlx's SQLite driver runs every connection on its own thread, so each query costs two
//! thread switches (request → connection thread → back); on the gateway's hottest path
//! (`GET /v1/sandboxes/{name}`) that was a quarter of the CPU. This reader keeps a few
//! read-only connections of its own and runs the one indexed lookup on the calling
//! thread: in WAL mode a reader never waits for the writer, and the pages are in the
//! page cache, so the call takes microseconds. It never blocks longer than
//! [`BUSY_TIMEOUT`]: when SQLite is busy (a checkpoint, a schema change) the caller falls
//! back to the sqlx pool. Writes to the main database always go through sqlx; the audit
//! log has its own file and writer ([`super::sqlite_audit`]), so its commits leave these
//! connections' page caches warm.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension};

use super::{MemberRow, SandboxRecord, SandboxRow};

/// Longest time a read may wait on a lock before the caller falls back to sqlx.
const BUSY_TIMEOUT: Duration = Duration::from_millis(20);
/// Connections kept idle; more are opened under load and dropped when returned.
const IDLE: usize = 8;
/// Bytes of the database file mapped by each reader connection.
const MMAP_SIZE: i64 = 256 << 20;

const SANDBOX_SQL: &str = "SELECT name, tenant, spec, state, self_service, created_by, \
    created_at, decided_by, decided_at, decision_reason, approval_reasons, version, \
    applied_version, applied_at, push_error, push_failed_version \
    FROM sandboxes WHERE name = ?1";
const MEMBERS_SQL: &str = "SELECT subject, added_by, added_at FROM sandbox_members \
    WHERE sandbox = ?1 ORDER BY subject";

pub struct SqliteReader {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl SqliteReader {
    /// A reader of the database file at `path` (which must exist and be migrated).
    pub fn new(path: &Path) -> Self {
        Self {
            path: path.to_owned(),
            idle: Mutex::new(Vec::new()),
        }
    }

    fn open(&self) -> rusqlite::Result<Connection> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
                | OpenFlags::SQLITE_OPEN_URI,
        )?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        // A write to the main database empties a connection's page cache; mapped pages
        // are re-read without a pread() per page.
        conn.pragma_update(None, "mmap_size", MMAP_SIZE)?;
        Ok(conn)
    }

    fn with_conn<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        let pooled = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let conn = match pooled {
            Some(c) => c,
            None => self.open()?,
        };
        let result = f(&conn);
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < IDLE
        {
            idle.push(conn);
        }
        result
    }

    /// The sandbox and its vendor members, read in one transaction (a consistent
    /// snapshot). `Err` means "ask sqlx instead", never "not found".
    pub fn sandbox(&self, name: &str) -> rusqlite::Result<Option<SandboxRecord>> {
        self.with_conn(|conn| {
            let tx = conn.unchecked_transaction()?;
            let row = tx
                .prepare_cached(SANDBOX_SQL)?
                .query_row([name], |r| {
                    Ok(SandboxRow {
                        name: r.get(0)?,
                        tenant: r.get(1)?,
                        spec: r.get(2)?,
                        state: r.get(3)?,
                        self_service: r.get(4)?,
                        created_by: r.get(5)?,
                        created_at: r.get(6)?,
                        decided_by: r.get(7)?,
                        decided_at: r.get(8)?,
                        decision_reason: r.get(9)?,
                        approval_reasons: r.get(10)?,
                        version: r.get(11)?,
                        applied_version: r.get(12)?,
                        applied_at: r.get(13)?,
                        push_error: r.get(14)?,
                        push_failed_version: r.get(15)?,
                    })
                })
                .optional()?;
            let Some(row) = row else {
                return Ok(None);
            };
            let members = tx
                .prepare_cached(MEMBERS_SQL)?
                .query_map([name], |r| {
                    Ok(MemberRow {
                        sandbox: row.name.clone(),
                        subject: r.get(0)?,
                        added_by: r.get(1)?,
                        added_at: r.get(2)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(Some(SandboxRecord { row, members }))
        })
    }
}
