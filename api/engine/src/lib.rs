//! Data engine: datasets in, anonymised grant views out.
//!
//! Crate `serre-engine` (`api/engine/`); the gateway re-exports it as `serre_api::data`.
//!
//! Pure and synchronous: no HTTP, no database, no async. The HTTP handlers call it from a
//! blocking task and map [`DataError::category`] to a status code.
//!
//! * [`ingest`]: CSV or Parquet upload → validated, normalised Parquet (ZSTD level 3,
//!   row groups of at most 128 Ki rows). Every value is parsed, every row group decoded,
//!   within a memory budget ([`IngestLimits`]) and until cancelled ([`Cancel`]).
//! * [`recipe`]: the anonymisation recipe of a grant (keep, drop, pseudonymise, generalise
//!   per column; quasi-identifiers; minimum class size `k`; suppression).
//! * [`filter`]: a row filter written as a small, checked subset of SQL.
//! * [`anonymise`]: applies a recipe to a record batch (HMAC-SHA-256 pseudonyms).
//! * [`kanon`]: counts equivalence classes over the quasi-identifiers (k-anonymity).
//! * [`materialise`]: streams a dataset through projection, filter, recipe and suppression
//!   into a new Parquet file; [`materialise::kanon_preview`] runs the counting pass only.
//! * [`view`]: the view a grant releases ([`ViewRequest`] as JSON, [`ViewSpec`] checked).
//!
//! Column types the engine names in its messages and in [`ingest::schema_json`]:
//! `string`, `int64`, `float64`, `boolean`, `date`, `timestamp`; any other Arrow type read
//! from a Parquet upload is named by its Arrow type name.

pub mod anonymise;
pub mod filter;
pub mod ingest;
pub mod kanon;
pub mod materialise;
pub mod recipe;
mod source;
pub mod view;

pub use anonymise::PseudonymKey;
pub use filter::RowFilter;
pub use ingest::{
    Cancel, ColumnType, CsvOptions, IngestLimits, IngestReport, ingest_csv, ingest_parquet,
    schema_json,
};
pub use kanon::KAnonymityReport;
pub use materialise::{kanon_preview, materialise};
pub use recipe::{ColumnRule, DateUnit, Generalisation, Recipe};
pub use view::{ViewReport, ViewRequest, ViewSpec, dataset_schema};

/// Every failure of the data engine. Messages are written for the data team that uploaded
/// the file or wrote the grant: they name the line, row group and column where known.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The CSV upload cannot be read (ragged line, bad value, bad encoding, empty file).
    #[error("invalid CSV: {0}")]
    InvalidCsv(String),
    /// The Parquet upload or stored dataset cannot be read (footer, page, type).
    #[error("invalid Parquet: {0}")]
    InvalidParquet(String),
    /// Column names or types the engine refuses (empty, duplicate, control characters,
    /// nested types).
    #[error("invalid columns: {0}")]
    InvalidSchema(String),
    /// More rows, columns or bytes (a field, a record, a decoded batch, the pages decoded
    /// at once) than the limits allow.
    #[error("too large: {0}")]
    TooLarge(String),
    /// The recipe or the view's projection does not fit the dataset.
    #[error("invalid recipe: {0}")]
    InvalidRecipe(String),
    /// The row filter is not in the accepted subset of SQL or does not type-check.
    #[error("invalid filter: {0}")]
    InvalidFilter(String),
    /// The view would not be k-anonymous.
    #[error("{0}")]
    KAnonymity(String),
    /// Reading the input or writing the output failed.
    #[error("I/O error: {0}")]
    Io(String),
    /// The work was abandoned through its [`Cancel`] flag (the request timed out or its
    /// client went away).
    #[error("cancelled: the request was abandoned")]
    Cancelled,
    /// A bug in the engine or in a library it calls (not the caller's fault).
    #[error("internal data engine error: {0}")]
    Internal(String),
}

impl DataError {
    /// Stable label for metrics and for the HTTP mapping. All but `io`, `cancelled` and
    /// `internal` are the client's to fix (4xx).
    pub fn category(&self) -> &'static str {
        match self {
            DataError::InvalidCsv(_) => "invalid_csv",
            DataError::InvalidParquet(_) => "invalid_parquet",
            DataError::InvalidSchema(_) => "invalid_schema",
            DataError::TooLarge(_) => "too_large",
            DataError::InvalidRecipe(_) => "invalid_recipe",
            DataError::InvalidFilter(_) => "invalid_filter",
            DataError::KAnonymity(_) => "k_anonymity",
            DataError::Io(_) => "io",
            DataError::Cancelled => "cancelled",
            DataError::Internal(_) => "internal",
        }
    }

    /// True when the caller's input is at fault (maps to 4xx), false for `io`,
    /// `cancelled` and `internal`.
    pub fn is_client_error(&self) -> bool {
        !matches!(
            self,
            DataError::Io(_) | DataError::Cancelled | DataError::Internal(_)
        )
    }

    pub(crate) fn internal(context: &str, err: impl std::fmt::Display) -> DataError {
        DataError::Internal(format!("{context}: {err}"))
    }
}

impl From<std::io::Error> for DataError {
    fn from(err: std::io::Error) -> Self {
        DataError::Io(err.to_string())
    }
}

/// Result of the data engine.
pub type Result<T, E = DataError> = std::result::Result<T, E>;

/// Name of a column type as the API shows it: the six CSV types by their short names,
/// anything else by its Arrow name.
pub fn type_name(data_type: &arrow_schema::DataType) -> String {
    use arrow_schema::DataType as T;
    match data_type {
        T::Utf8 | T::LargeUtf8 | T::Utf8View => "string".into(),
        T::Int64 => "int64".into(),
        T::Float64 => "float64".into(),
        T::Boolean => "boolean".into(),
        T::Date32 => "date".into(),
        T::Timestamp(_, _) => "timestamp".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests;
