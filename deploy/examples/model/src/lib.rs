//! Serre's example vendor model. The binary (`main.rs`) reads its flags and runs these
//! steps: [`input`] reads the granted Parquet datasets, [`fit`] fits a least-squares line
//! per group, [`output`] writes results.json and results.csv; [`stress`] holds the test
//! modes the platform's tests use (CPU burn, memory allocation).

pub mod fit;
pub mod input;
pub mod output;
pub mod stress;

/// The model's name in its results and log lines.
pub const MODEL: &str = "serre-example-model";
