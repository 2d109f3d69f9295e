//! SQLite: the audit log in its own database file, written by one thread.
//!
//! The gateway appends an audit entry for every request. With the log inside the main
//! database every audit commit changed the main file, so each read of a sandbox found its
//! connection's page cache stale and re-validated it (the largest SQLite cost on the hot
//! path), and every batch went through sqlx's connection thread. Here the log lives in
//! `<stem>-audit.db` beside the main file (WAL): audit commits leave the main file alone,
//! and [`AuditFile`] is used by one dedicated thread that chains and commits batches
//! directly (group commit).
//!
//! Everything else reads the log through the sqlx pool, whose connections attach the file
//! as schema `audit`. The main database no longer has an `audit_log` table, so the
//! unqualified name `audit_log` resolves to `audit.audit_log` and the SQL shared with
//! PostgreSQL is unchanged. A database that still has the table in the main file (written
//! before the move) has its rows copied once, byte for byte, when the gateway opens it
//! ([`move_rows`]); the chain's hashes cover the stored values, so it still verifies.
//!
//! PostgreSQL and in-memory SQLite keep the table in their one database.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior};
use sqlx::{Connection as _, SqliteConnection};

use super::{AuditRow, StoreError};

/// Schema name under which the pool's connections attach the audit file.
pub const SCHEMA: &str = "audit";

/// Same columns as the `audit_log` table of the migrations; `seq` is the rowid.
const CREATE: &str = "CREATE TABLE IF NOT EXISTS audit_log (
    seq INTEGER PRIMARY KEY,
    time TEXT NOT NULL,
    principal TEXT NOT NULL,
    tenant TEXT,
    action TEXT NOT NULL,
    resource TEXT NOT NULL,
    decision TEXT NOT NULL,
    policies TEXT NOT NULL,
    request_id TEXT NOT NULL,
    details TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_log_tenant ON audit_log (tenant, seq);";

const COLUMNS: &str = "seq, time, principal, tenant, action, resource, decision, policies, request_id, \
     details, prev_hash, hash";

/// The audit file of the main database file `main`: `<stem>-audit.db` in its directory.
pub fn path_for(main: &Path) -> PathBuf {
    let stem = main
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "serre-api".into());
    main.with_file_name(format!("{stem}-audit.db"))
}

/// Create the audit file and its table if missing.
pub fn create(path: &Path) -> Result<(), StoreError> {
    AuditFile::open(path).map(|_| ())
}

/// Copy the entries still in the main database's `audit_log` into the audit file, check
/// that every one of them is there unchanged, then drop the old table. Idempotent: only
/// entries after the audit file's last one are copied, and an interrupted move is
/// finished on the next open. `conn` is a connection to the main database with the audit
/// file attached as [`SCHEMA`].
pub async fn move_rows(conn: &mut SqliteConnection) -> Result<u64, StoreError> {
    let old: Option<i64> = sqlx::query_scalar(
        "SELECT 1 FROM main.sqlite_master WHERE type = 'table' AND name = 'audit_log'",
    )
    .fetch_optional(&mut *conn)
    .await?;
    if old.is_none() {
        return Ok(0);
    }
    let mut tx = conn.begin().await?;
    let copied = sqlx::query(&format!(
        "INSERT INTO {SCHEMA}.audit_log ({COLUMNS}) SELECT {COLUMNS} FROM main.audit_log \
         WHERE seq > (SELECT COALESCE(MAX(seq), 0) FROM {SCHEMA}.audit_log) ORDER BY seq"
    ))
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    // Every old entry must be in the audit file with the same stored values (`IS`
    // compares NULLs too) before the old table goes.
    let differing: i64 = sqlx::query_scalar(&format!(
        "SELECT COUNT(*) FROM main.audit_log m WHERE NOT EXISTS (SELECT 1 FROM \
         {SCHEMA}.audit_log a WHERE a.seq = m.seq AND a.time IS m.time \
         AND a.principal IS m.principal AND a.tenant IS m.tenant AND a.action IS m.action \
         AND a.resource IS m.resource AND a.decision IS m.decision \
         AND a.policies IS m.policies AND a.request_id IS m.request_id \
         AND a.details IS m.details AND a.prev_hash IS m.prev_hash AND a.hash IS m.hash)"
    ))
    .fetch_one(&mut *conn)
    .await?;
    if differing != 0 {
        return Err(StoreError::Corrupt(format!(
            "{differing} audit entries of the main database differ from the audit file's; \
             the old table is kept"
        )));
    }
    sqlx::query("DROP TABLE main.audit_log")
        .execute(&mut *conn)
        .await?;
    Ok(copied)
}

/// A read-write connection to the audit file, for the one thread that appends.
pub struct AuditFile {
    conn: Connection,
}

impl AuditFile {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(Duration::from_secs(5))?;
        // Same durability as the main database: WAL, synchronous=NORMAL.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.execute_batch(CREATE)?;
        Ok(Self { conn })
    }

    /// Append in one transaction: `seal` gets the last entry's (seq, hash), read under
    /// the write lock, and returns the chained rows to insert. Returns how many.
    pub fn append(
        &mut self,
        seal: impl FnOnce(Option<(i64, String)>) -> Vec<AuditRow>,
    ) -> Result<usize, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let head: Option<(i64, String)> = tx
            .prepare_cached("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")?
            .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let rows = seal(head);
        {
            let mut insert = tx.prepare_cached(&format!(
                "INSERT INTO audit_log ({COLUMNS}) VALUES \
                 (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
            ))?;
            for e in &rows {
                insert.execute(rusqlite::params![
                    e.seq,
                    e.time,
                    e.principal,
                    e.tenant,
                    e.action,
                    e.resource,
                    e.decision,
                    e.policies,
                    e.request_id,
                    e.details,
                    e.prev_hash,
                    e.hash,
                ])?;
            }
        }
        tx.commit()?;
        Ok(rows.len())
    }
}
