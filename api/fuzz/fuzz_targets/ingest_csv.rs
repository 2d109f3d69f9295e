//! CSV upload: any input gives Ok (readable Parquet, row count as reported) or a DataError.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serre_api::data::{Cancel, CsvOptions, IngestLimits, ingest_csv};

#[path = "common.rs"]
mod common;

fuzz_target!(|input: &[u8]| {
    let mut out = Vec::new();
    let result = ingest_csv(
        input,
        &CsvOptions::default(),
        &mut out,
        &IngestLimits::default(),
        &Cancel::new(),
    );
    common::check(result, out);
});
