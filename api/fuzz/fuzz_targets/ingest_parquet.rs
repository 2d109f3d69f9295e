//! Parquet upload: any input gives Ok (readable Parquet, row count as reported) or a DataError.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serre_api::data::{Cancel, IngestLimits, ingest_parquet};

#[path = "common.rs"]
mod common;

static PANIC_HOOK: std::sync::Once = std::sync::Once::new();

fuzz_target!(|input: &[u8]| {
    // libfuzzer-sys aborts in its panic hook, before any `catch_unwind`; ingest_parquet
    // catches the parquet crate's panics on malformed pages (as production does), so use
    // the default hook: a panic that escapes ingest_parquet still aborts the run, through
    // libfuzzer-sys's own catch_unwind around this closure.
    PANIC_HOOK.call_once(|| drop(std::panic::take_hook()));
    let mut out = Vec::new();
    let result = ingest_parquet(
        bytes::Bytes::copy_from_slice(input),
        &mut out,
        &IngestLimits::default(),
        &Cancel::new(),
    );
    common::check(result, out);
});
