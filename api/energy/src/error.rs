//! The one error type of the energy module.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum EnergyError {
    /// Prometheus could not be reached, or its answer could not be read.
    #[error("Prometheus at {url} unreachable: {message}")]
    Unreachable { url: String, message: String },
    /// Prometheus answered with an error (bad query, timeout, overload).
    #[error("Prometheus answered HTTP {status} ({error_type}): {message}")]
    Query {
        status: u16,
        error_type: String,
        message: String,
    },
    /// The answer was not a Prometheus instant-vector response.
    #[error("Prometheus response not understood: {0}")]
    Decode(String),
    /// A powercap file could not be read.
    #[error("RAPL {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A powercap directory is not what the kernel exposes (bad number, missing zone).
    #[error("RAPL {path}: {message}")]
    Rapl { path: PathBuf, message: String },
    /// A parameter is out of its domain (negative PUE, zero window, ...).
    #[error("invalid energy configuration: {0}")]
    Config(String),
    /// Writing the CSV or Parquet export failed.
    #[error("ledger export failed: {0}")]
    Export(String),
}

impl EnergyError {
    /// Stable label for metrics and events.
    pub fn category(&self) -> &'static str {
        match self {
            EnergyError::Unreachable { .. } => "prometheus_unreachable",
            EnergyError::Query { .. } => "prometheus_query",
            EnergyError::Decode(_) => "prometheus_decode",
            EnergyError::Io { .. } => "io",
            EnergyError::Rapl { .. } => "rapl",
            EnergyError::Config(_) => "config",
            EnergyError::Export(_) => "export",
        }
    }
}
