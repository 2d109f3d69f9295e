//! State in SQL: SQLite (embedded, default) or PostgreSQL (production), chosen by the
//! URL. The SQL text is shared (both accept `$n` parameters, `ON CONFLICT`, `BOOLEAN`);
//! each statement is compiled for both drivers through [`run!`]. Migrations are per
//! backend under `api/migrations/`.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::Connection as _;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

mod model;
pub mod sqlite_audit;
mod sqlite_reader;
pub use model::*;

use sqlite_reader::SqliteReader;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unsupported database URL (expected sqlite:// or postgres://)")]
    UnsupportedUrl,
    #[error("{0}")]
    Conflict(String),
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Database(d) if d.is_unique_violation() => {
                StoreError::Conflict(d.message().to_owned())
            }
            _ => StoreError::Database(e),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Run `$body` with `$p` bound to the concrete pool; the body compiles once per driver.
macro_rules! run {
    ($self:expr, |$p:ident| $body:expr) => {
        match &$self.pool {
            Pool::Sqlite($p) => $body,
            Pool::Postgres($p) => $body,
        }
    };
}

mod datasets;
pub use datasets::{DataPolicyRow, DatasetRow, GrantRow, VersionRow};
mod catalogue;
pub use catalogue::{SolutionRow, TrialResultRow};
mod usage;
pub use usage::{LedgerQuery, RunRow};

/// The gateway's database.
#[derive(Clone)]
pub struct Store {
    pool: Pool,
    /// SQLite only: the hot read path without sqlx's thread hand-off.
    reader: Option<std::sync::Arc<SqliteReader>>,
    /// SQLite file databases: the audit log's own file ([`sqlite_audit`]).
    audit_file: Option<PathBuf>,
}

impl Store {
    /// Connect (creating a SQLite file and its directory if needed) and migrate.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        Self::open(url, max_connections, true).await
    }

    /// Connect to an existing database without migrating it (for inspection tools).
    pub async fn connect_existing(url: &str) -> Result<Self, StoreError> {
        Self::open(url, 1, false).await
    }

    async fn open(url: &str, max_connections: u32, migrate: bool) -> Result<Self, StoreError> {
        let mut reader = None;
        let mut audit_file = None;
        let pool = if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(migrate)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(5))
                .foreign_keys(true);
            let file = options.get_filename().to_owned();
            if let Some(parent) = file.parent().filter(|_| migrate)
                && !parent.as_os_str().is_empty()
            {
                std::fs::create_dir_all(parent).map_err(|source| StoreError::Io {
                    path: parent.display().to_string(),
                    source,
                })?;
            }
            // sqlx names an in-memory database `file:sqlx-in-memory-N`: look at the URL.
            let on_disk = !(url.contains(":memory:")
                || url.contains("mode=memory")
                || file.as_os_str().is_empty());
            if on_disk {
                let audit = sqlite_audit::path_for(&file);
                if migrate {
                    sqlite_audit::create(&audit)?;
                }
                // A database from before the move, inspected without migrating it, still
                // has its log in the main file.
                if audit.exists() {
                    audit_file = Some(audit);
                }
            }
            // A file is migrated (and its audit log moved) on a connection of its own,
            // before the pool's connections attach the audit file.
            if migrate && on_disk {
                let mut conn = sqlx::SqliteConnection::connect_with(&options).await?;
                sqlx::migrate!("./migrations/sqlite").run(&mut conn).await?;
                if let Some(audit) = &audit_file {
                    attach_audit(&mut conn, audit).await?;
                    let moved = sqlite_audit::move_rows(&mut conn).await?;
                    if moved > 0 {
                        tracing::info!(entries = moved, file = %audit.display(),
                            "audit log moved to its own file");
                    }
                }
                conn.close().await?;
            }
            let attach = audit_file.clone();
            let pool = SqlitePoolOptions::new()
                .max_connections(max_connections.max(1))
                .after_connect(move |conn, _meta| {
                    let attach = attach.clone();
                    Box::pin(async move {
                        if let Some(audit) = &attach {
                            attach_audit(conn, audit).await?;
                        }
                        Ok(())
                    })
                })
                .connect_with(options.clone())
                .await?;
            if migrate && !on_disk {
                // In memory: the database lives as long as the pool's connection.
                sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
            }
            if on_disk {
                reader = Some(std::sync::Arc::new(SqliteReader::new(&file)));
            }
            Pool::Sqlite(pool)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let options = PgConnectOptions::from_str(url)?;
            let pool = PgPoolOptions::new()
                .max_connections(max_connections.max(1))
                .acquire_timeout(Duration::from_secs(5))
                .connect_with(options)
                .await?;
            if migrate {
                sqlx::migrate!("./migrations/postgres").run(&pool).await?;
            }
            Pool::Postgres(pool)
        } else {
            return Err(StoreError::UnsupportedUrl);
        };
        Ok(Self {
            pool,
            reader,
            audit_file,
        })
    }

    /// SQLite file databases: the audit log's own file, appended to by one thread
    /// ([`sqlite_audit::AuditFile`]); `None` where the log is a table of the database.
    pub fn audit_file(&self) -> Option<&Path> {
        self.audit_file.as_deref()
    }

    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    pub async fn close(&self) {
        run!(self, |p| p.close().await)
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        run!(self, |p| sqlx::query("SELECT 1")
            .execute(p)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// Run a raw statement (tests use it to tamper with the audit log).
    #[doc(hidden)]
    pub async fn execute_raw(&self, sql: &str) -> Result<u64, StoreError> {
        let sql = sql.to_owned();
        Ok(run!(self, |p| sqlx::raw_sql(&sql)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?)
    }

    // ---- Sandboxes -------------------------------------------------------------------

    pub async fn insert_sandbox(&self, s: &SandboxRow) -> Result<(), StoreError> {
        const SQL: &str = "INSERT INTO sandboxes (name, tenant, spec, state, self_service, \
            created_by, created_at, decided_by, decided_at, decision_reason, approval_reasons, \
            version) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)";
        let result = run!(self, |p| sqlx::query(SQL)
            .bind(&s.name)
            .bind(&s.tenant)
            .bind(&s.spec)
            .bind(&s.state)
            .bind(s.self_service)
            .bind(&s.created_by)
            .bind(&s.created_at)
            .bind(&s.decided_by)
            .bind(&s.decided_at)
            .bind(&s.decision_reason)
            .bind(&s.approval_reasons)
            .bind(s.version)
            .execute(p)
            .await
            .map(|_| ()));
        match result.map_err(StoreError::from) {
            Err(StoreError::Conflict(_)) => Err(StoreError::Conflict(format!(
                "a sandbox named {:?} already exists",
                s.name
            ))),
            other => other.map(|_| ()),
        }
    }

    /// A sandbox and its vendor members (one query: this is the hot read path).
    pub async fn get_sandbox(&self, name: &str) -> Result<Option<SandboxRecord>, StoreError> {
        if let Some(reader) = &self.reader {
            match reader.sandbox(name) {
                Ok(found) => return Ok(found),
                Err(e) => tracing::debug!(error = %e, "direct SQLite read failed; using the pool"),
            }
        }
        const SQL: &str = "SELECT s.*, m.subject AS m_subject, m.added_by AS m_added_by, \
            m.added_at AS m_added_at FROM sandboxes s \
            LEFT JOIN sandbox_members m ON m.sandbox = s.name \
            WHERE s.name = $1 ORDER BY m.subject";
        let found = run!(self, |p| {
            use sqlx::{FromRow, Row};
            let rows = sqlx::query(SQL).bind(name).fetch_all(p).await?;
            let Some(first) = rows.first() else {
                return Ok(None);
            };
            let row = SandboxRow::from_row(first)?;
            let mut members = Vec::new();
            for r in &rows {
                if let Some(subject) = r.try_get::<Option<String>, _>("m_subject")? {
                    members.push(MemberRow {
                        sandbox: row.name.clone(),
                        subject,
                        added_by: r.try_get("m_added_by")?,
                        added_at: r.try_get("m_added_at")?,
                    });
                }
            }
            Ok::<_, sqlx::Error>(Some(SandboxRecord { row, members }))
        })?;
        Ok(found)
    }

    /// Sandboxes of the given tenants (all tenants with `all`), plus those where
    /// `vendor` is a member. Ordered by name.
    pub async fn list_sandboxes(
        &self,
        tenants: &[String],
        vendor: Option<&str>,
        all: bool,
    ) -> Result<Vec<SandboxRecord>, StoreError> {
        const ALL: &str = "SELECT * FROM sandboxes ORDER BY name";
        const OF_TENANT: &str = "SELECT * FROM sandboxes WHERE tenant = $1 ORDER BY name";
        const OF_VENDOR: &str = "SELECT s.* FROM sandboxes s JOIN sandbox_members m \
            ON m.sandbox = s.name WHERE m.subject = $1 ORDER BY s.name";
        const MEMBERS: &str = "SELECT * FROM sandbox_members ORDER BY sandbox, subject";
        let (mut rows, members) = run!(self, |p| {
            let mut conn = p.acquire().await?;
            let mut rows: Vec<SandboxRow> = Vec::new();
            if all {
                rows = sqlx::query_as(ALL).fetch_all(&mut *conn).await?;
            } else {
                for t in tenants {
                    let mut of: Vec<SandboxRow> = sqlx::query_as(OF_TENANT)
                        .bind(t)
                        .fetch_all(&mut *conn)
                        .await?;
                    rows.append(&mut of);
                }
                if let Some(v) = vendor {
                    let mut of: Vec<SandboxRow> = sqlx::query_as(OF_VENDOR)
                        .bind(v)
                        .fetch_all(&mut *conn)
                        .await?;
                    rows.append(&mut of);
                }
            }
            let members: Vec<MemberRow> = if rows.is_empty() {
                Vec::new()
            } else {
                sqlx::query_as(MEMBERS).fetch_all(&mut *conn).await?
            };
            Ok::<_, sqlx::Error>((rows, members))
        })?;
        rows.sort_by(|a, b| a.name.cmp(&b.name));
        rows.dedup_by(|a, b| a.name == b.name);
        Ok(rows
            .into_iter()
            .map(|row| {
                let members = members
                    .iter()
                    .filter(|m| m.sandbox == row.name)
                    .cloned()
                    .collect();
                SandboxRecord { row, members }
            })
            .collect())
    }

    /// Set the request state if the row is still at `version`; bumps the version.
    /// Returns false if someone else changed it first.
    pub async fn decide(
        &self,
        name: &str,
        version: i64,
        state: &str,
        by: &str,
        at: &str,
        reason: Option<&str>,
    ) -> Result<bool, StoreError> {
        const SQL: &str = "UPDATE sandboxes SET state = $1, decided_by = $2, decided_at = $3, \
            decision_reason = $4, version = version + 1 WHERE name = $5 AND version = $6";
        let n = run!(self, |p| sqlx::query(SQL)
            .bind(state)
            .bind(by)
            .bind(at)
            .bind(reason)
            .bind(name)
            .bind(version)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }

    /// Mark a sandbox for deletion from the cluster (optimistic on `version`).
    pub async fn mark_deleting(&self, name: &str, version: i64) -> Result<bool, StoreError> {
        const SQL: &str = "UPDATE sandboxes SET state = 'Deleting', version = version + 1 \
            WHERE name = $1 AND version = $2";
        let n = run!(self, |p| sqlx::query(SQL)
            .bind(name)
            .bind(version)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }

    pub async fn delete_sandbox(&self, name: &str) -> Result<bool, StoreError> {
        const MEMBERS: &str = "DELETE FROM sandbox_members WHERE sandbox = $1";
        const SQL: &str = "DELETE FROM sandboxes WHERE name = $1";
        let n = run!(self, |p| {
            let mut tx = p.begin().await?;
            sqlx::query(MEMBERS).bind(name).execute(&mut *tx).await?;
            let n = sqlx::query(SQL)
                .bind(name)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            tx.commit().await?;
            Ok::<_, sqlx::Error>(n)
        })?;
        Ok(n == 1)
    }

    /// Add a vendor member; false if already a member.
    pub async fn add_member(&self, m: &MemberRow) -> Result<bool, StoreError> {
        const SQL: &str = "INSERT INTO sandbox_members (sandbox, subject, added_by, added_at) \
            VALUES ($1, $2, $3, $4) ON CONFLICT (sandbox, subject) DO NOTHING";
        let n = run!(self, |p| sqlx::query(SQL)
            .bind(&m.sandbox)
            .bind(&m.subject)
            .bind(&m.added_by)
            .bind(&m.added_at)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }

    pub async fn remove_member(&self, sandbox: &str, subject: &str) -> Result<bool, StoreError> {
        const SQL: &str = "DELETE FROM sandbox_members WHERE sandbox = $1 AND subject = $2";
        let n = run!(self, |p| sqlx::query(SQL)
            .bind(sandbox)
            .bind(subject)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }

    /// Requests the cluster has not caught up with: approved ones not applied at their
    /// current version (and not failed at it), and those marked for deletion.
    pub async fn pending_pushes(&self) -> Result<Vec<SandboxRow>, StoreError> {
        const SQL: &str = "SELECT * FROM sandboxes WHERE (state = 'Approved' \
            AND (applied_version IS NULL OR applied_version < version) \
            AND (push_failed_version IS NULL OR push_failed_version < version)) \
            OR state = 'Deleting' ORDER BY created_at";
        Ok(run!(self, |p| sqlx::query_as(SQL).fetch_all(p).await)?)
    }

    pub async fn mark_applied(&self, name: &str, version: i64, at: &str) -> Result<(), StoreError> {
        const SQL: &str = "UPDATE sandboxes SET applied_version = $1, applied_at = $2, \
            push_error = NULL WHERE name = $3 AND version = $1";
        run!(self, |p| sqlx::query(SQL)
            .bind(version)
            .bind(at)
            .bind(name)
            .execute(p)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    pub async fn mark_push_failed(
        &self,
        name: &str,
        version: i64,
        message: &str,
    ) -> Result<(), StoreError> {
        const SQL: &str = "UPDATE sandboxes SET push_failed_version = $1, push_error = $2 \
            WHERE name = $3 AND version = $1";
        run!(self, |p| sqlx::query(SQL)
            .bind(version)
            .bind(message)
            .bind(name)
            .execute(p)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    // ---- Tenant self-service policies ------------------------------------------------

    pub async fn tenant_policy(&self, tenant: &str) -> Result<Option<TenantPolicyRow>, StoreError> {
        const SQL: &str = "SELECT * FROM tenant_policies WHERE tenant = $1";
        Ok(run!(self, |p| sqlx::query_as(SQL)
            .bind(tenant)
            .fetch_optional(p)
            .await)?)
    }

    pub async fn put_tenant_policy(&self, t: &TenantPolicyRow) -> Result<(), StoreError> {
        const SQL: &str = "INSERT INTO tenant_policies (tenant, max_days, allow_gpu, max_cpu, \
            max_memory, max_storage, updated_by, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
            ON CONFLICT (tenant) DO UPDATE SET max_days = excluded.max_days, \
            allow_gpu = excluded.allow_gpu, max_cpu = excluded.max_cpu, \
            max_memory = excluded.max_memory, max_storage = excluded.max_storage, \
            updated_by = excluded.updated_by, updated_at = excluded.updated_at";
        run!(self, |p| sqlx::query(SQL)
            .bind(&t.tenant)
            .bind(t.max_days)
            .bind(t.allow_gpu)
            .bind(&t.max_cpu)
            .bind(&t.max_memory)
            .bind(&t.max_storage)
            .bind(&t.updated_by)
            .bind(&t.updated_at)
            .execute(p)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    // ---- Audit log -------------------------------------------------------------------

    /// The last entry's sequence number and hash.
    pub async fn audit_head(&self) -> Result<Option<(i64, String)>, StoreError> {
        const SQL: &str = "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1";
        Ok(run!(self, |p| sqlx::query_as(SQL).fetch_optional(p).await)?)
    }

    /// Append entries atomically (one multi-row statement; a transaction when more than
    /// one statement is needed). A sequence number already taken (another replica
    /// appended first) is a [`StoreError::Conflict`].
    pub async fn audit_insert(&self, entries: &[AuditRow]) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        const HEAD: &str = "INSERT INTO audit_log (seq, time, principal, tenant, action, \
            resource, decision, policies, request_id, details, prev_hash, hash) ";
        // 12 columns: stay far below SQLite's limit on bound parameters.
        const CHUNK: usize = 512;
        run!(self, |p| {
            if entries.len() <= CHUNK {
                let mut qb = sqlx::QueryBuilder::new(HEAD);
                push_audit_values(&mut qb, entries);
                qb.build().execute(p).await.map(|_| ())
            } else {
                let mut tx = p.begin().await?;
                for chunk in entries.chunks(CHUNK) {
                    let mut qb = sqlx::QueryBuilder::new(HEAD);
                    push_audit_values(&mut qb, chunk);
                    qb.build().execute(&mut *tx).await?;
                }
                tx.commit().await
            }
        })?;
        Ok(())
    }

    /// Entries after `after` (by sequence number), optionally of one tenant.
    pub async fn audit_page(
        &self,
        tenant: Option<&str>,
        after: i64,
        limit: i64,
    ) -> Result<Vec<AuditRow>, StoreError> {
        const ALL: &str = "SELECT * FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2";
        const OF_TENANT: &str =
            "SELECT * FROM audit_log WHERE tenant = $1 AND seq > $2 ORDER BY seq LIMIT $3";
        Ok(match tenant {
            None => run!(self, |p| sqlx::query_as(ALL)
                .bind(after)
                .bind(limit)
                .fetch_all(p)
                .await)?,
            Some(t) => run!(self, |p| sqlx::query_as(OF_TENANT)
                .bind(t)
                .bind(after)
                .bind(limit)
                .fetch_all(p)
                .await)?,
        })
    }
}

/// Attach the audit file as schema [`sqlite_audit::SCHEMA`].
async fn attach_audit(conn: &mut sqlx::SqliteConnection, file: &Path) -> Result<(), sqlx::Error> {
    sqlx::query(&format!("ATTACH DATABASE $1 AS {}", sqlite_audit::SCHEMA))
        .bind(file.to_string_lossy().into_owned())
        .execute(conn)
        .await
        .map(|_| ())
}

fn push_audit_values<'a, DB>(qb: &mut sqlx::QueryBuilder<'a, DB>, entries: &'a [AuditRow])
where
    DB: sqlx::Database,
    i64: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    &'a String: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    &'a Option<String>: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
{
    qb.push_values(entries, |mut b, e| {
        b.push_bind(e.seq)
            .push_bind(&e.time)
            .push_bind(&e.principal)
            .push_bind(&e.tenant)
            .push_bind(&e.action)
            .push_bind(&e.resource)
            .push_bind(&e.decision)
            .push_bind(&e.policies)
            .push_bind(&e.request_id)
            .push_bind(&e.details)
            .push_bind(&e.prev_hash)
            .push_bind(&e.hash);
    });
}
