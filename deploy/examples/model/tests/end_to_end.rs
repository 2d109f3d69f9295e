//! The real binary on Parquet files written here: results.json checked field by field, the
//! exit codes, and its PUTs (paths, run token, bodies) to a minimal stand-in for the
//! gateway's results endpoint.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use arrow_array::types::Int32Type;
use arrow_array::{
    DictionaryArray, Float32Array, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use serde_json::{Value, json};
use serre_example_model::input::sha256_file;

const ENV: &[&str] = &[
    "SERRE_RUN",
    "SERRE_RUN_KIND",
    "SERRE_GRANTS_DIR",
    "SERRE_RESULTS_URL",
    "SERRE_RUN_TOKEN_FILE",
    "SERRE_MODEL_GROUP",
    "SERRE_MODEL_X",
    "SERRE_MODEL_Y",
    "SERRE_MODEL_PREDICT",
    "SERRE_MODEL_OUT",
    "SERRE_MODEL_EXIT_CODE",
    "SERRE_MODEL_BURN_CPU_SECONDS",
    "SERRE_MODEL_SLEEP_SECONDS",
    "SERRE_MODEL_ALLOCATE_MIB",
];

/// The binary with a clean environment but for SERRE_RUN and SERRE_GRANTS_DIR.
fn model(grants: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_serre-example-model"));
    for var in ENV {
        cmd.env_remove(var);
    }
    cmd.env("SERRE_RUN", "r1").env("SERRE_GRANTS_DIR", grants);
    cmd
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("the binary runs");
    eprintln!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn write_parquet(path: &Path, batch: &RecordBatch) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut writer =
        ArrowWriter::try_new(std::fs::File::create(path).unwrap(), batch.schema(), None).unwrap();
    writer.write(batch).unwrap();
    writer.close().unwrap();
}

/// Two grants: `g1` (string, Int32, Float64) and `g2` (dictionary, Int64, Float32).
/// Bondy: y = 100 + 2·(year − 2020) over both files; Pantin: x = 1..5, y = 2,4,5,4,5
/// (slope 0.6, intercept 2.2, r² 0.6); Noisy-le-Sec: one point; Rosny: one x twice.
fn grants() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let g1 = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("commune", DataType::Utf8, true),
            Field::new("year", DataType::Int32, true),
            Field::new("value", DataType::Float64, true),
        ])),
        vec![
            Arc::new(StringArray::from(vec![
                Some("Bondy"),
                Some("Bondy"),
                Some("Pantin"),
                Some("Pantin"),
                Some("Pantin"),
                Some("Noisy-le-Sec"),
                None,
            ])),
            Arc::new(Int32Array::from(vec![
                Some(2020),
                Some(2021),
                Some(1),
                Some(2),
                None,
                Some(2020),
                Some(2020),
            ])),
            Arc::new(Float64Array::from(vec![
                Some(100.0),
                Some(102.0),
                Some(2.0),
                Some(4.0),
                Some(1000.0),
                Some(1.0),
                Some(1.0),
            ])),
        ],
    )
    .unwrap();
    let communes: DictionaryArray<Int32Type> = vec![
        "Bondy", "Pantin", "Pantin", "Pantin", "Rosny", "Rosny", "Bondy",
    ]
    .into_iter()
    .collect();
    let g2 = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new(
                "commune",
                DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
                false,
            ),
            Field::new("year", DataType::Int64, false),
            Field::new("value", DataType::Float32, true),
            Field::new("other", DataType::Utf8, false),
        ])),
        vec![
            Arc::new(communes),
            Arc::new(Int64Array::from(vec![2022, 3, 4, 5, 2024, 2024, 2023])),
            Arc::new(Float32Array::from(vec![
                Some(104.0),
                Some(5.0),
                Some(4.0),
                Some(5.0),
                Some(1.0),
                Some(2.0),
                None,
            ])),
            Arc::new(StringArray::from(vec!["-"; 7])),
        ],
    )
    .unwrap();
    write_parquet(&dir.path().join("g2/data.parquet"), &g2);
    write_parquet(&dir.path().join("g1/data.parquet"), &g1);
    dir
}

fn close(v: &Value, want: f64) -> bool {
    v.as_f64().is_some_and(|v| (v - want).abs() < 1e-9)
}

fn check_results(results: &Value, grants: &Path) {
    assert_eq!(results["model"], "serre-example-model");
    assert_eq!(results["run"], "r1");
    assert!(results["startedAt"].as_str().unwrap().ends_with('Z'));
    assert!(results["finishedAt"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        results["inputs"],
        json!([
            {"grant": "g1", "rows": 7, "sha256": sha256_file(&grants.join("g1/data.parquet")).unwrap()},
            {"grant": "g2", "rows": 7, "sha256": sha256_file(&grants.join("g2/data.parquet")).unwrap()},
        ])
    );
    // Null commune (g1), null year (g1), null value (g2).
    assert_eq!(results["skippedRows"], 3);
    // Largest x is 2024: the forecast is at 2025.
    assert_eq!(results["forecastX"], 2025.0);
    let groups = results["groups"].as_array().unwrap();
    let names: Vec<&str> = groups
        .iter()
        .map(|g| g["group"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Bondy", "Noisy-le-Sec", "Pantin", "Rosny"]);

    let bondy = &groups[0];
    assert_eq!(bondy["n"], 3);
    assert!(close(&bondy["slope"], 2.0), "{bondy}");
    assert!(close(&bondy["intercept"], 100.0 - 2.0 * 2020.0), "{bondy}");
    assert!(close(&bondy["r2"], 1.0), "{bondy}");
    assert!(close(&bondy["forecast"], 110.0), "{bondy}");

    assert_eq!(groups[1]["n"], 1);
    assert!(
        groups[1]["reason"]
            .as_str()
            .unwrap()
            .contains("too few points")
    );
    assert!(groups[1].get("slope").is_none());

    let pantin = &groups[2];
    assert_eq!(pantin["n"], 5);
    assert!(close(&pantin["slope"], 0.6), "{pantin}");
    assert!(close(&pantin["intercept"], 2.2), "{pantin}");
    assert!(close(&pantin["r2"], 0.6), "{pantin}");
    assert!(close(&pantin["forecast"], 2.2 + 0.6 * 2025.0), "{pantin}");

    assert_eq!(groups[3]["n"], 2);
    assert!(
        groups[3]["reason"]
            .as_str()
            .unwrap()
            .contains("zero variance")
    );
}

#[test]
fn fits_the_grants_and_writes_results() {
    let grants = grants();
    let out = tempfile::tempdir().unwrap();
    let output = run(model(grants.path()).args([
        "--out",
        out.path().to_str().unwrap(),
        "--group",
        "commune",
    ]));
    assert_eq!(output.status.code(), Some(0));
    let stdout = String::from_utf8(output.stdout).unwrap();

    // The first line, for the start-latency benchmark.
    let first = stdout.lines().next().unwrap();
    let rest = first
        .strip_prefix("serre-example-model started at ")
        .unwrap_or_else(|| panic!("first line: {first}"));
    let (time, run) = rest.split_once(' ').unwrap();
    assert_eq!(run, "run=r1");
    assert!(chrono::DateTime::parse_from_rfc3339(time).is_ok(), "{time}");
    assert_eq!(time.len(), "2025-01-01T00:00:00.000000Z".len(), "{time}");

    assert!(stdout.contains("read grant g1: 7 rows"), "{stdout}");
    assert!(
        stdout.contains("no results endpoint (SERRE_RESULTS_URL unset)"),
        "{stdout}"
    );

    let results: Value =
        serde_json::from_slice(&std::fs::read(out.path().join("results.json")).unwrap()).unwrap();
    check_results(&results, grants.path());
    // Without a results endpoint, the same results.json is printed after the notice.
    let printed = stdout
        .split_once("results.json follows\n")
        .unwrap()
        .1
        .rsplit_once("done\n")
        .unwrap()
        .0;
    assert_eq!(serde_json::from_str::<Value>(printed).unwrap(), results);

    let csv = std::fs::read_to_string(out.path().join("results.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "group,n,slope,intercept,r2,forecast");
    assert_eq!(lines.len(), 3, "{csv}");
    assert!(lines[1].starts_with("Bondy,3,"), "{csv}");
    assert!(lines[2].starts_with("Pantin,5,"), "{csv}");
}

#[test]
fn exit_code_flag_after_the_results() {
    let grants = grants();
    let out = tempfile::tempdir().unwrap();
    let output = run(model(grants.path())
        .env("SERRE_MODEL_EXIT_CODE", "7")
        .env("SERRE_MODEL_OUT", out.path()));
    assert_eq!(output.status.code(), Some(7));
    assert!(out.path().join("results.json").is_file());
}

#[test]
fn missing_column_is_exit_2() {
    let grants = grants();
    let output = run(model(grants.path()).args(["--y", "ridership"]));
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("column 'ridership' not found"), "{stderr}");
    assert!(stderr.contains("g1/data.parquet"), "{stderr}");
}

#[test]
fn no_grants_is_no_groups() {
    let empty = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let output = run(model(&empty.path().join("absent")).args([
        "--out",
        out.path().to_str().unwrap(),
        "--sleep-seconds",
        "0.01",
        "--burn-cpu-seconds",
        "0.05",
        "--allocate-mib",
        "2",
    ]));
    assert_eq!(output.status.code(), Some(0));
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(stdout.contains("no granted dataset"), "{stdout}");
    assert!(stdout.contains("burned CPU: process CPU time"), "{stdout}");
    assert!(stdout.contains("allocated and wrote 2 MiB"), "{stdout}");
    let results: Value =
        serde_json::from_slice(&std::fs::read(out.path().join("results.json")).unwrap()).unwrap();
    assert_eq!(results["inputs"], json!([]));
    assert_eq!(results["groups"], json!([]));
}

/// One request as the stand-in gateway saw it.
#[derive(Debug, Clone)]
struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A plain-HTTP endpoint that answers every request with `response` (a status line and
/// a JSON body) and records it.
fn fake_gateway(status: &'static str, body: &'static str) -> (String, Arc<Mutex<Vec<Request>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let record = record.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut writer = stream;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let mut parts = line.split_whitespace();
                    let method = parts.next().unwrap_or_default().to_owned();
                    let path = parts.next().unwrap_or_default().to_owned();
                    let mut headers = Vec::new();
                    loop {
                        let mut h = String::new();
                        reader.read_line(&mut h).unwrap();
                        let h = h.trim_end();
                        if h.is_empty() {
                            break;
                        }
                        let (n, v) = h.split_once(':').unwrap();
                        headers.push((n.trim().to_ascii_lowercase(), v.trim().to_owned()));
                    }
                    let len = headers
                        .iter()
                        .find(|(n, _)| n == "content-length")
                        .map_or(0, |(_, v)| v.parse().unwrap());
                    let mut body_in = vec![0; len];
                    reader.read_exact(&mut body_in).unwrap();
                    record.lock().unwrap().push(Request {
                        method,
                        path,
                        headers,
                        body: body_in,
                    });
                    let answer = format!(
                        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\n\
                         Content-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    writer.write_all(answer.as_bytes()).unwrap();
                }
            });
        }
    });
    (url, seen)
}

/// A token file as the operator mounts it.
fn token_file(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("token");
    std::fs::write(&path, "serre-rt1.claims.mac\n").unwrap();
    path
}

#[test]
fn sends_its_results_to_the_gateway_with_the_run_token() {
    let grants = grants();
    let out = tempfile::tempdir().unwrap();
    let (gateway, seen) = fake_gateway("201 Created", r#"{"path":"x"}"#);
    let results_url = format!("{gateway}/v1/runs/r1/results/");
    let output = run(model(grants.path())
        .args(["--out", out.path().to_str().unwrap()])
        .env("SERRE_RESULTS_URL", &results_url)
        .env("SERRE_RUN_TOKEN_FILE", token_file(out.path())));
    assert_eq!(output.status.code(), Some(0));
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        stdout.contains(&format!("wrote {results_url}results.json")),
        "{stdout}"
    );
    assert!(!stdout.contains("results.json follows"), "{stdout}");

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    for (req, (name, ctype)) in seen.iter().zip([
        ("results.json", "application/json"),
        ("results.csv", "text/csv"),
    ]) {
        assert_eq!(req.method, "PUT");
        assert_eq!(req.path, format!("/v1/runs/r1/results/{name}"));
        assert_eq!(
            req.header("authorization"),
            Some("Bearer serre-rt1.claims.mac")
        );
        assert_eq!(req.header("content-type"), Some(ctype));
        assert_eq!(req.body, std::fs::read(out.path().join(name)).unwrap());
    }
}

#[test]
fn a_sandbox_without_storage_gets_the_results_on_stdout() {
    let grants = grants();
    let dir = tempfile::tempdir().unwrap();
    let (gateway, seen) = fake_gateway(
        "409 Conflict",
        r#"{"error":{"code":"storage_off","message":"sandbox x has no object storage"}}"#,
    );
    let output = run(model(grants.path())
        .env(
            "SERRE_RESULTS_URL",
            format!("{gateway}/v1/runs/r1/results/"),
        )
        .env("SERRE_RUN_TOKEN_FILE", token_file(dir.path())));
    assert_eq!(output.status.code(), Some(0));
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        stdout.contains(
            "the sandbox keeps no results (sandbox x has no object storage): results.json follows"
        ),
        "{stdout}"
    );
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[test]
fn results_the_gateway_refuses_are_exit_3() {
    let grants = grants();
    let dir = tempfile::tempdir().unwrap();
    let (gateway, _) = fake_gateway(
        "403 Forbidden",
        r#"{"error":{"code":"forbidden","message":"run \"r1\" is over (Succeeded)"}}"#,
    );
    let output = run(model(grants.path())
        .env(
            "SERRE_RESULTS_URL",
            format!("{gateway}/v1/runs/r1/results/"),
        )
        .env("SERRE_RUN_TOKEN_FILE", token_file(dir.path())));
    assert_eq!(output.status.code(), Some(3));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("403 Forbidden forbidden: run \"r1\" is over"),
        "{stderr}"
    );
}

#[test]
fn an_unreachable_gateway_or_no_token_is_exit_3() {
    let grants = grants();
    let dir = tempfile::tempdir().unwrap();
    // A port nothing listens on.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/v1/runs/r1/results/");
    let output = run(model(grants.path())
        .env("SERRE_RESULTS_URL", &url)
        .env("SERRE_RUN_TOKEN_FILE", token_file(dir.path())));
    assert_eq!(output.status.code(), Some(3));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains(&format!("sending {url}results.json")),
        "{stderr}"
    );

    let (gateway, seen) = fake_gateway("201 Created", "{}");
    let output = run(model(grants.path())
        .env(
            "SERRE_RESULTS_URL",
            format!("{gateway}/v1/runs/r1/results/"),
        )
        .env("SERRE_RUN_TOKEN_FILE", dir.path().join("absent")));
    assert_eq!(output.status.code(), Some(3));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("SERRE_RUN_TOKEN_FILE"), "{stderr}");
    assert!(seen.lock().unwrap().is_empty());
}
