//! Parquet upload: any input gives Ok (readable Parquet, row count as reported) or a DataError.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serre_api::data::{IngestLimits, ingest_parquet};

#[path = "common.rs"]
mod common;

fuzz_target!(|input: &[u8]| {
    let mut out = Vec::new();
    let result = ingest_parquet(
        bytes::Bytes::copy_from_slice(input),
        &mut out,
        &IngestLimits::default(),
    );
    common::check(result, out);
});
