//! serre-example-model: the example vendor model Serre's trial runs execute. See
//! deploy/examples/model/README.md for its contract (flags, env, output, exit codes).

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{SecondsFormat, Utc};
use clap::Parser;
use serre_example_model::fit::{GroupResult, Groups};
use serre_example_model::input::{self, Columns};
use serre_example_model::output::{self, ColumnNames, Results, ResultsTarget, Uploaded};
use serre_example_model::{MODEL, stress};

/// Exit status for bad input: a flag, a missing column, an unreadable dataset.
const EXIT_INPUT: u8 = 2;
/// Exit status when the results could not be written (the gateway refused them or could
/// not be reached, or --out).
const EXIT_STORAGE: u8 = 3;

/// A line on stdout; a closed stdout (EPIPE) is not a reason to stop the model.
macro_rules! say {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

/// Per-group least squares `y = intercept + slope·x` over the granted Parquet datasets.
#[derive(Debug, Parser)]
#[command(name = MODEL, version, about)]
struct Args {
    /// Directory of the granted datasets, one `<grant id>/data.parquet` each.
    #[arg(long, env = "SERRE_GRANTS_DIR", default_value = "/data/grants")]
    grants_dir: PathBuf,
    /// Column whose values form the groups (string, dictionary or integer).
    #[arg(long, env = "SERRE_MODEL_GROUP", default_value = "commune")]
    group: String,
    /// Explanatory column (integer or floating point).
    #[arg(long, env = "SERRE_MODEL_X", default_value = "year")]
    x: String,
    /// Explained column (integer or floating point).
    #[arg(long, env = "SERRE_MODEL_Y", default_value = "value")]
    y: String,
    /// The x of the forecast [default: the largest x of all usable rows, plus one].
    #[arg(long, env = "SERRE_MODEL_PREDICT", allow_negative_numbers = true)]
    predict: Option<f64>,
    /// Also write results.json and results.csv into this directory.
    #[arg(long, env = "SERRE_MODEL_OUT")]
    out: Option<PathBuf>,
    /// Test mode: after writing the results, exit with this status (the failing model).
    #[arg(long, env = "SERRE_MODEL_EXIT_CODE")]
    exit_code: Option<u8>,
    /// Test mode: before the fit, spin on one thread until the process has used this many
    /// seconds of CPU time.
    #[arg(long, env = "SERRE_MODEL_BURN_CPU_SECONDS")]
    burn_cpu_seconds: Option<f64>,
    /// Test mode: sleep this many seconds before the fit.
    #[arg(long, env = "SERRE_MODEL_SLEEP_SECONDS")]
    sleep_seconds: Option<f64>,
    /// Test mode: allocate this many MiB, write to all of it and keep it until exit.
    #[arg(long, env = "SERRE_MODEL_ALLOCATE_MIB")]
    allocate_mib: Option<u64>,
    /// The run's results endpoint on Serre's gateway (set by the operator); each file is
    /// PUT to this URL followed by its name. Unset: results.json goes to stdout.
    #[arg(long, env = "SERRE_RESULTS_URL")]
    results_url: Option<String>,
    /// File holding the run's token, sent with each result (set by the operator).
    #[arg(
        long,
        env = "SERRE_RUN_TOKEN_FILE",
        default_value = "/var/run/serre/token"
    )]
    run_token_file: PathBuf,
}

/// A failure and the exit status it maps to.
struct Failure {
    code: u8,
    error: anyhow::Error,
}

trait Category<T> {
    fn input(self) -> Result<T, Failure>;
    fn storage(self) -> Result<T, Failure>;
}

impl<T> Category<T> for anyhow::Result<T> {
    fn input(self) -> Result<T, Failure> {
        self.map_err(|error| Failure {
            code: EXIT_INPUT,
            error,
        })
    }
    fn storage(self) -> Result<T, Failure> {
        self.map_err(|error| Failure {
            code: EXIT_STORAGE,
            error,
        })
    }
}

fn main() -> ExitCode {
    // First, before anything else: the line the start-latency benchmark waits for.
    let started_at = Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true);
    let run = std::env::var("SERRE_RUN").unwrap_or_default();
    say!("{MODEL} started at {started_at} run={run}");
    let _ = std::io::stdout().flush();

    let args = Args::parse();
    let code = match execute(&args, started_at, run) {
        Ok(code) => code,
        Err(Failure { code, error }) => {
            eprintln!("{MODEL}: error: {error:#}");
            code
        }
    };
    let _ = std::io::stdout().flush();
    ExitCode::from(code)
}

fn seconds(flag: &str, value: f64) -> Result<Duration, Failure> {
    Duration::try_from_secs_f64(value)
        .with_context(|| format!("--{flag} must be a non-negative number of seconds, not {value}"))
        .input()
}

fn execute(args: &Args, started_at: String, run: String) -> Result<u8, Failure> {
    let kind = std::env::var("SERRE_RUN_KIND").unwrap_or_default();
    say!(
        "{MODEL} {} run kind={kind} grants={} group={} x={} y={}",
        env!("CARGO_PKG_VERSION"),
        args.grants_dir.display(),
        args.group,
        args.x,
        args.y
    );

    if let Some(x) = args.predict
        && !x.is_finite()
    {
        return Err(anyhow::anyhow!(
            "--predict must be a finite number, not {x}"
        ))
        .input();
    }

    // Test modes, before the fit; the memory stays held until exit.
    let _held = match args.allocate_mib {
        Some(mib) => {
            say!("allocating {mib} MiB");
            let memory = stress::allocate_mib(mib).input()?;
            say!("allocated and wrote {mib} MiB");
            Some(memory)
        }
        None => None,
    };
    if let Some(s) = args.sleep_seconds {
        let d = seconds("sleep-seconds", s)?;
        say!("sleeping {s} s");
        std::thread::sleep(d);
    }
    if let Some(s) = args.burn_cpu_seconds {
        let target = seconds("burn-cpu-seconds", s)?;
        say!("burning CPU until the process has used {s} s of CPU time");
        let wall = Instant::now();
        let used = stress::burn_cpu(target).input()?;
        say!(
            "burned CPU: process CPU time {:.3} s, wall time {:.3} s",
            used.as_secs_f64(),
            wall.elapsed().as_secs_f64()
        );
    }

    // Inputs.
    let columns = Columns {
        group: args.group.clone(),
        x: args.x.clone(),
        y: args.y.clone(),
    };
    let grants = input::discover(&args.grants_dir).input()?;
    if grants.is_empty() {
        say!(
            "no granted dataset under {} (no <grant>/{}): the results have no groups",
            args.grants_dir.display(),
            input::DATA_FILE
        );
    }
    let mut groups = Groups::new();
    let mut inputs = Vec::with_capacity(grants.len());
    for grant in &grants {
        let summary = input::read_grant(grant, &columns, &mut groups).input()?;
        say!(
            "read grant {}: {} rows, sha256 {} ({})",
            summary.grant,
            summary.rows,
            summary.sha256,
            grant.path.display()
        );
        inputs.push(summary);
    }

    // Fit.
    let results_groups = groups.finish(args.predict);
    let fitted = results_groups
        .iter()
        .filter(|g| matches!(g, GroupResult::Fitted { .. }))
        .count();
    say!(
        "fitted {fitted} of {} groups ({} rows used, {} skipped for a null or non-finite value)",
        results_groups.len(),
        groups.used(),
        groups.skipped()
    );
    let results = Results {
        model: MODEL.to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        run: run.clone(),
        started_at,
        finished_at: Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true),
        columns: ColumnNames {
            group: args.group.clone(),
            x: args.x.clone(),
            y: args.y.clone(),
        },
        forecast_x: groups.forecast_x(args.predict),
        skipped_rows: groups.skipped(),
        inputs,
        groups: results_groups,
    };
    let json = results.to_json();
    let csv = results.to_csv();

    // Outputs.
    if let Some(dir) = &args.out {
        output::write_dir(dir, &json, &csv).storage()?;
        say!(
            "wrote {} and {} to {}",
            output::JSON_NAME,
            output::CSV_NAME,
            dir.display()
        );
    }
    let print_results = |why: &str| {
        say!("{why}: results.json follows");
        let _ = std::io::stdout().lock().write_all(json.as_bytes());
    };
    match args.results_url.as_deref().filter(|u| !u.is_empty()) {
        Some(url) => {
            let token = std::fs::read_to_string(&args.run_token_file)
                .with_context(|| {
                    format!(
                        "reading the run token {} (SERRE_RUN_TOKEN_FILE)",
                        args.run_token_file.display()
                    )
                })
                .storage()?;
            let target = ResultsTarget {
                url: url.to_owned(),
                token: token.trim().to_owned(),
            };
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")
                .storage()?;
            match runtime
                .block_on(output::upload(&target, &json, &csv))
                .storage()?
            {
                Uploaded::Written(urls) => {
                    for url in urls {
                        say!("wrote {url}");
                    }
                }
                Uploaded::StorageOff(message) => {
                    print_results(&format!("the sandbox keeps no results ({message})"));
                }
            }
        }
        None => print_results("no results endpoint (SERRE_RESULTS_URL unset)"),
    }

    match args.exit_code {
        Some(code) => {
            say!("exiting with the requested status {code} (--exit-code)");
            Ok(code)
        }
        None => {
            say!("done");
            Ok(0)
        }
    }
}
