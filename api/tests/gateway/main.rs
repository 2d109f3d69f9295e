//! The gateway's integration tests that need no cluster, in one test binary: each module
//! was a test binary of its own (`api/tests/<name>.rs`) and is unchanged but for its place.
//! One binary links the gateway once instead of twenty times.
//!
//! Run one module with `cargo test -p serre-api --test gateway -- <module>::`, e.g.
//! `-- energy::`. They share the process: the harness (`api/tests/support/`, loaded once
//! below; every module's own `mod support;` loads `support.rs` beside this file, which
//! re-exports it), so one scratch directory, one PostgreSQL and one OpenID provider when
//! the harness starts them. Kept apart: `api/tests/ingest_limits.rs`, which measures this
//! process's memory, and the cluster tests (`api/cluster-tests/`).
//!
//! Each module is loaded through `#[path]`, which makes its `mod` declarations resolve
//! beside it (in this directory), as they did in `api/tests/`.

// Loading `support.rs` from every module is the point (one shared harness, files unchanged).
#![allow(clippy::duplicate_mod)]

// `#[macro_use]`: the harness's `both_backends!` was named from each binary's root; the
// modules below see it through the textual scope.
#[macro_use]
#[path = "../support/mod.rs"]
mod support;

#[path = "audit.rs"]
mod audit;
#[path = "audit_checkpoints.rs"]
mod audit_checkpoints;
#[path = "blobs.rs"]
mod blobs;
#[path = "catalogue.rs"]
mod catalogue;
#[path = "console.rs"]
mod console;
#[path = "console_admin.rs"]
mod console_admin;
#[path = "console_browser.rs"]
mod console_browser;
#[path = "console_data.rs"]
mod console_data;
#[path = "console_i18n.rs"]
mod console_i18n;
#[path = "console_i18n_catalogue.rs"]
mod console_i18n_catalogue;
#[path = "console_runs.rs"]
mod console_runs;
#[path = "console_upload_progress.rs"]
mod console_upload_progress;
#[path = "datasets.rs"]
mod datasets;
#[path = "energy.rs"]
mod energy;
#[path = "frugality_report.rs"]
mod frugality_report;
#[path = "http.rs"]
mod http;
#[path = "identity.rs"]
mod identity;
#[path = "layering.rs"]
mod layering;
#[path = "policies.rs"]
mod policies;
#[path = "policies_data.rs"]
mod policies_data;
#[path = "policies_runs.rs"]
mod policies_runs;
#[path = "run_outputs.rs"]
mod run_outputs;
#[path = "sandbox_visibility.rs"]
mod sandbox_visibility;
#[path = "sandboxes.rs"]
mod sandboxes;
#[path = "security.rs"]
mod security;
#[path = "trust_boundaries.rs"]
mod trust_boundaries;
#[path = "usage_store.rs"]
mod usage_store;
