//! DuckDB as the materialise bench's baseline: PyPI `duckdb` in a venv under
//! `~/.cache/serre/` (deploy/dev/bench-datasets.sh creates it), one thread, timed inside
//! Python around the `COPY` only. A missing DuckDB fails the bench: there is no figure
//! without its baseline.

use std::path::{Path, PathBuf};
use std::process::Command;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The venv deploy/dev/bench-datasets.sh makes (PyPI duckdb, this version).
pub const VERSION: &str = "2.0.1";

/// The Python that has DuckDB: `SERRE_BENCH_DUCKDB_PYTHON`, else the cached venv's.
pub fn python() -> PathBuf {
    let python = std::env::var_os("SERRE_BENCH_DUCKDB_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
            let cache = std::env::var("SERRE_CACHE")
                .map(PathBuf::from)
                .unwrap_or_else(|_| Path::new(&home).join(".cache/serre"));
            cache.join(format!("python-duckdb-{VERSION}/bin/python3"))
        });
    let version = Command::new(&python)
        .args(["-c", "import duckdb; print(duckdb.__version__)"])
        .output();
    match version {
        Ok(o) if o.status.success() => {
            let v = String::from_utf8_lossy(&o.stdout).trim().to_owned();
            println!("DuckDB {v} ({})", python.display());
        }
        _ => panic!(
            "DuckDB is missing: {} cannot import duckdb. Run deploy/dev/bench-datasets.sh \
             (it makes the venv: python3 -m venv ~/.cache/serre/python-duckdb-{VERSION} && \
             ~/.cache/serre/python-duckdb-{VERSION}/bin/pip install duckdb=={VERSION}) or set \
             SERRE_BENCH_DUCKDB_PYTHON",
            python.display()
        ),
    }
    python
}

/// `COPY (SELECT {select} FROM read_parquet(input) WHERE {filter}) TO out` (ZSTD Parquet)
/// with `SET threads=1`; the seconds the COPY took.
pub fn copy(python: &Path, input: &Path, out: &Path, select: &str, filter: &str) -> f64 {
    let script = r#"
import sys, time, duckdb
inp, out, select, where = sys.argv[1:5]
con = duckdb.connect()
con.execute("SET threads=1")
con.execute("SET enable_progress_bar=false")
con.execute("SET preserve_insertion_order=true")
t = time.perf_counter()
con.execute(f"COPY (SELECT {select} FROM read_parquet('{inp}') WHERE {where}) TO '{out}' (FORMAT parquet, COMPRESSION zstd)")
print(time.perf_counter() - t)
"#;
    let o = Command::new(python)
        .args(["-c", script])
        .arg(input)
        .arg(out)
        .arg(select)
        .arg(filter)
        .output()
        .expect("run DuckDB's python");
    assert!(
        o.status.success(),
        "duckdb: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    stdout
        .lines()
        .rev()
        .find_map(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("no timing in DuckDB's output: {stdout:?}"))
}

/// The key `grants::spec` derives for a grant (`PseudonymKey::derive(secret,
/// "grant/{id}")`: HMAC-SHA-256(secret, "serre pseudonym key v1\0" ‖ context)).
pub fn grant_key(secret: &[u8], grant_id: &str) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("any key length");
    mac.update(b"serre pseudonym key v1\0");
    mac.update(format!("grant/{grant_id}").as_bytes());
    mac.finalize().into_bytes().into()
}

/// SQL for Serre's pseudonym of the string column `column` under `key`:
/// HMAC-SHA-256 (inner and outer SHA-256 over the padded key, RFC 2104), the first 16
/// bytes, base64url without padding (22 characters). The same text Serre writes.
pub fn keyed_pseudonym_sql(column: &str, key: &[u8; 32]) -> String {
    let mut block = [0u8; 64];
    block[..32].copy_from_slice(key);
    let pad = |byte: u8| -> String { block.iter().map(|b| format!("{:02x}", b ^ byte)).collect() };
    let (ipad, opad) = (pad(0x36), pad(0x5c));
    format!(
        "replace(replace(rtrim(to_base64(unhex(substr(sha256(unhex('{opad}') || \
         unhex(sha256(unhex('{ipad}') || encode({column})))), 1, 32))), '='), '+', '-'), '/', '_') \
         AS {column}"
    )
}
