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

pub mod migrations;
mod model;
mod rows;
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
mod audit;
mod sandboxes;

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
                migrations::sqlite().await?.run(&mut conn).await?;
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
                migrations::sqlite().await?.run(&pool).await?;
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
                migrations::postgres().await?.run(&pool).await?;
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
}

/// Attach the audit file as schema [`sqlite_audit::SCHEMA`].
async fn attach_audit(conn: &mut sqlx::SqliteConnection, file: &Path) -> Result<(), sqlx::Error> {
    sqlx::query(&format!("ATTACH DATABASE $1 AS {}", sqlite_audit::SCHEMA))
        .bind(file.to_string_lossy().into_owned())
        .execute(conn)
        .await
        .map(|_| ())
}
