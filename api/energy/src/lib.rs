//! Compute and energy accounting per sandbox (Kubernetes namespace), tenant and window.
//!
//! A straight line of steps, each in its own module:
//!
//! 1. collect: [`resources`] (CPU, memory, GPU time from cAdvisor and kube-state-metrics),
//!    [`kepler`], [`dcgm`] (energy counters through the [`prometheus`] query API) and
//!    [`rapl`] (powercap counters read on a node by the [`node_agent`], attributed by
//!    CPU-time share in [`node_rapl`]);
//! 2. account (pure): [`usage::account`] picks the best source per component (CPU package,
//!    DRAM, GPU), falls back to the documented [`model`], never adds two sources for the
//!    same component, and converts to kWh at the meter and gCO2e with [`carbon`];
//! 3. record: [`ledger`] plans contiguous windows from the last recorded end (no interval
//!    lost across restarts) and exports ledger rows as CSV or Parquet.
//!
//! Every figure carries its [`Method`] and a `source` string (the query, the sysfs path or
//! the model parameters). See `docs/energy.md` for the methods and their caveats.

mod account;
pub mod carbon;
pub mod dcgm;
mod error;
pub mod kepler;
pub mod ledger;
pub mod model;
pub mod node_agent;
pub mod node_rapl;
pub mod prometheus;
pub mod rapl;
pub mod resources;
pub mod usage;

pub use carbon::{CarbonParams, Embodied, Intensity};
pub use error::EnergyError;
pub use ledger::{Ledger, LedgerRow};
pub use model::PowerModel;
pub use prometheus::{PrometheusClient, Sample};
pub use usage::{
    AccountInputs, ComponentJoules, EnergySource, Method, NamespaceUsage, Quantity, ResourceUsage,
    UsageFigure, Window, account,
};
