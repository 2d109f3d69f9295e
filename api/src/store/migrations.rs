//! The schema's migrations, embedded in the binary: one list per backend, read from
//! `api/migrations/{sqlite,postgres}/` at compile time and resolved exactly as sqlx resolves
//! a directory (version, description, checksum, `-- no-transaction`), so a database
//! migrated by an earlier build validates against this one.
//!
//! sqlx's `migrate!` macro would do the same, but its proc-macro crate compiles sqlx's
//! SQLite and PostgreSQL drivers a second time for the build host; this list keeps that
//! out of every build. A migration file added to a directory must be added here: the test
//! below compares each list with its directory.

use std::borrow::Cow;

use futures::future::BoxFuture;
use sqlx::error::BoxDynError;
use sqlx::migrate::{MigrateError, Migration, MigrationSource, MigrationType, Migrator};

macro_rules! embed {
    ($dir:literal: $($file:literal),* $(,)?) => {
        &[$((
            $file,
            include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/", $dir, "/", $file)),
        )),*]
    };
}

const SQLITE: &[(&str, &str)] = embed!("sqlite":
    "0001_init.sql",
    "0002_datasets.sql",
    "0003_catalogue.sql",
    "0004_data_policy.sql",
    "0005_usage.sql",
    "0006_run_results.sql",
    "0007_budget_warnings.sql",
    "0008_honest_figures.sql",
);

const POSTGRES: &[(&str, &str)] = embed!("postgres":
    "0001_init.sql",
    "0002_datasets.sql",
    "0003_catalogue.sql",
    "0004_data_policy.sql",
    "0005_usage.sql",
    "0006_run_results.sql",
    "0007_budget_warnings.sql",
    "0008_honest_figures.sql",
);

/// The SQLite schema's migrator.
pub async fn sqlite() -> Result<Migrator, MigrateError> {
    Migrator::new(Embedded(SQLITE)).await
}

/// The PostgreSQL schema's migrator.
pub async fn postgres() -> Result<Migrator, MigrateError> {
    Migrator::new(Embedded(POSTGRES)).await
}

/// Migration files as (file name, SQL) pairs.
#[derive(Debug)]
struct Embedded(&'static [(&'static str, &'static str)]);

impl<'s> MigrationSource<'s> for Embedded {
    fn resolve(self) -> BoxFuture<'s, Result<Vec<Migration>, BoxDynError>> {
        Box::pin(async move {
            self.0
                .iter()
                .map(|(file, sql)| migration(file, sql))
                .collect()
        })
    }
}

/// One migration as sqlx's directory source makes it from `<version>_<description>.sql`.
fn migration(file: &str, sql: &'static str) -> Result<Migration, BoxDynError> {
    let (version, rest) = file
        .split_once('_')
        .filter(|(_, rest)| rest.ends_with(".sql"))
        .ok_or_else(|| format!("migration {file:?} is not named <version>_<description>.sql"))?;
    let version: i64 = version
        .parse()
        .map_err(|_| format!("migration {file:?} does not start with an integer version"))?;
    let kind = MigrationType::from_filename(rest);
    let description = rest.trim_end_matches(kind.suffix()).replace('_', " ");
    Ok(Migration::new(
        version,
        Cow::Owned(description),
        kind,
        Cow::Borrowed(sql),
        sql.starts_with("-- no-transaction"),
    ))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// Each embedded list is its directory, migration for migration, as sqlx's own
    /// directory source resolves it (the source `migrate!` uses).
    #[tokio::test]
    async fn embedded_migrations_are_the_directories_as_sqlx_resolves_them() {
        for (dir, embedded) in [("sqlite", sqlite().await), ("postgres", postgres().await)] {
            let embedded = embedded.expect("embedded migrations resolve");
            let path = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("migrations")
                .join(dir);
            let on_disk = Migrator::new(path.as_path())
                .await
                .expect("directory resolves");
            let key = |m: &Migration| {
                (
                    m.version,
                    m.description.to_string(),
                    m.migration_type,
                    m.checksum.to_vec(),
                    m.no_tx,
                )
            };
            let embedded: Vec<_> = embedded.iter().map(key).collect();
            let on_disk: Vec<_> = on_disk.iter().map(key).collect();
            assert_eq!(
                embedded, on_disk,
                "api/migrations/{dir} and the embedded list differ"
            );
            assert_eq!(embedded.len(), 8, "{dir}");
        }
    }

    #[test]
    fn misnamed_migrations_are_refused_by_name() {
        let err = migration("init.sql", "").unwrap_err().to_string();
        assert!(err.contains("\"init.sql\""), "{err}");
        let err = migration("one_init.sql", "").unwrap_err().to_string();
        assert!(err.contains("integer version"), "{err}");
        let m = migration("0009_more_things.sql", "-- no-transaction\nVACUUM;").unwrap();
        assert_eq!(
            (m.version, m.description.as_ref(), m.no_tx),
            (9, "more things", true)
        );
    }
}
