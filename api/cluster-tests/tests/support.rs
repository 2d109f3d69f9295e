//! The gateway's test harness, `api/tests/support/` (shared with serre-api's own tests and
//! serre-cli's), under the name each test binary of this crate declares (`mod support;`).

#[path = "../../tests/support/mod.rs"]
mod harness;

#[allow(unused_imports)]
pub use harness::*;
