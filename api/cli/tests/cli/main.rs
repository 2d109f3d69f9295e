//! `serre` against the real gateway, started in-process (`api/tests/support`, no cluster).
//! One test binary: each module was a binary of its own, and each linked the whole gateway.

#[path = "../../../tests/support/mod.rs"]
mod support;
mod support_cli;

mod governance;
mod journeys;
