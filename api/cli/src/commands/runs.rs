//! `serre runs …`: `/v1/sandboxes/{name}/runs` (docs/trial-runs.md).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use super::{Ctx, duration};
use crate::client::{Client, network};
use crate::error::{EXIT_RUN_FAILED, Failure};
use crate::output::{self, Format, Table, field, pairs};

#[derive(Subcommand)]
pub enum Runs {
    /// Start a trial run of an image in a sandbox (its vendors and tenant members).
    #[command(
        after_help = "Example:\n  serre runs start est-ensemble--traffic --image registry.example.fr/acme/model:1.0 \\\n    --arg --epochs --arg 3 --cpu 2 --memory 4Gi --grant 0b7e… --kind inference --timeout 15m"
    )]
    Start(Start),
    /// The sandbox's runs you may see, newest first.
    #[command(after_help = "Example:\n  serre runs list est-ensemble--traffic")]
    List { sandbox: String },
    /// One run: phase, times, figures once accounted.
    #[command(after_help = "Example:\n  serre runs show est-ensemble--traffic run-7k2m9")]
    Show { sandbox: String, run: String },
    /// Follow a run until it is over; exit 0 only if it Succeeded (5 otherwise).
    #[command(
        after_help = "Example:\n  serre runs watch est-ensemble--traffic run-7k2m9 && echo done"
    )]
    Watch {
        sandbox: String,
        run: String,
        /// Time between polls.
        #[arg(long, default_value = "2s", value_parser = duration)]
        interval: Duration,
    },
    /// Cancel a run.
    #[command(after_help = "Example:\n  serre runs cancel est-ensemble--traffic run-7k2m9")]
    Cancel { sandbox: String, run: String },
    /// The run's log (the model's, or the init step's with --container fetch-grants).
    #[command(after_help = "Example:\n  serre runs logs est-ensemble--traffic run-7k2m9 --follow")]
    Logs(Logs),
    /// The objects the run wrote to the sandbox bucket, or one of them (--download).
    #[command(
        after_help = "Examples:\n  serre runs results est-ensemble--traffic run-7k2m9\n  serre runs results est-ensemble--traffic run-7k2m9 --download metrics.json --out -"
    )]
    Results {
        sandbox: String,
        run: String,
        /// Download this object (a key under the run's prefix, e.g. preds/part-0.csv).
        #[arg(long)]
        download: Option<String>,
        /// Where to write it (default: its file name; '-' for standard output).
        #[arg(long, requires = "download")]
        out: Option<PathBuf>,
    },
    /// The run's frugality report: JSON (or -o yaml), the HTML page, or CSV (one row per
    /// figure with its method and uncertainty range).
    #[command(
        after_help = "Examples:\n  serre runs report est-ensemble--traffic run-7k2m9\n  serre runs report est-ensemble--traffic run-7k2m9 --html > report.html\n  serre runs report est-ensemble--traffic run-7k2m9 --csv > report.csv"
    )]
    Report {
        sandbox: String,
        run: String,
        #[arg(long, conflicts_with = "csv")]
        html: bool,
        #[arg(long)]
        csv: bool,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
#[value(rename_all = "camelCase")]
pub enum Kind {
    Training,
    FineTuning,
    Inference,
    Evaluation,
}

#[derive(Args, Debug)]
pub struct Start {
    sandbox: String,
    /// Container image; its registry must be allowed for the tenant.
    #[arg(long)]
    image: String,
    /// The command (entrypoint), one flag per word.
    #[arg(long = "command", allow_hyphen_values = true)]
    command: Vec<String>,
    /// An argument, one flag per argument.
    #[arg(long = "arg", allow_hyphen_values = true)]
    args: Vec<String>,
    #[arg(long)]
    cpu: String,
    #[arg(long)]
    memory: String,
    #[arg(long)]
    gpu: Option<u32>,
    #[arg(long, requires = "gpu")]
    gpu_resource: Option<String>,
    /// A grant whose view is fetched into /data/grants/<id>/ (repeatable).
    #[arg(long = "grant")]
    grants: Vec<String>,
    /// The catalogue solution the run measures.
    #[arg(long)]
    solution: Option<String>,
    #[arg(long, value_enum)]
    kind: Kind,
    /// Longest run time, e.g. 15m (at most 7 days).
    #[arg(long, value_parser = duration)]
    timeout: Duration,
    /// What is counted, as NAME=COUNT (e.g. inference=1000).
    #[arg(long)]
    functional_unit: Option<String>,
}

impl Start {
    /// The body of `POST /v1/sandboxes/{name}/runs`.
    pub fn body(&self) -> Result<Value> {
        let timeout = u32::try_from(self.timeout.as_secs())
            .ok()
            .filter(|s| *s > 0)
            .ok_or_else(|| Failure::Usage("--timeout: between 1s and 7d".into()))?;
        let mut resources = json!({ "cpu": self.cpu, "memory": self.memory });
        if let Some(g) = self.gpu {
            resources["gpu"] = json!(g);
        }
        if let Some(r) = &self.gpu_resource {
            resources["gpuResource"] = json!(r);
        }
        let kind = self
            .kind
            .to_possible_value()
            .map(|v| v.get_name().to_owned())
            .unwrap_or_default();
        let mut body = json!({
            "image": self.image, "resources": resources, "kind": kind, "timeoutSeconds": timeout,
        });
        if !self.command.is_empty() {
            body["command"] = json!(self.command);
        }
        if !self.args.is_empty() {
            body["args"] = json!(self.args);
        }
        if !self.grants.is_empty() {
            body["grants"] = json!(self.grants);
        }
        if let Some(s) = &self.solution {
            body["solution"] = json!(s);
        }
        if let Some(u) = &self.functional_unit {
            let (name, count) = u
                .split_once('=')
                .and_then(|(n, c)| c.parse::<u64>().ok().map(|c| (n, c)))
                .ok_or_else(|| {
                    Failure::Usage(format!("--functional-unit {u:?}: say NAME=COUNT"))
                })?;
            body["functionalUnit"] = json!({ "name": name, "count": count });
        }
        Ok(body)
    }
}

#[derive(Args, Debug)]
pub struct Logs {
    sandbox: String,
    run: String,
    /// trial (the model, default) or fetch-grants (the init step).
    #[arg(long)]
    container: Option<String>,
    /// Stream while the container runs.
    #[arg(short, long)]
    follow: bool,
    /// Only the last lines.
    #[arg(long)]
    tail: Option<i64>,
    /// Prefix each line with its time.
    #[arg(long)]
    timestamps: bool,
    /// At most this many bytes (1024 to 10485760).
    #[arg(long)]
    limit_bytes: Option<u64>,
}

impl Logs {
    /// The query of `GET …/logs`.
    pub fn query(&self) -> Vec<(&'static str, String)> {
        let mut q = Vec::new();
        if let Some(c) = &self.container {
            q.push(("container", c.clone()));
        }
        if let Some(t) = self.tail {
            q.push(("tailLines", t.to_string()));
        }
        if let Some(l) = self.limit_bytes {
            q.push(("limitBytes", l.to_string()));
        }
        if self.follow {
            q.push(("follow", "true".into()));
        }
        if self.timestamps {
            q.push(("timestamps", "true".into()));
        }
        q
    }
}

/// Phases after which a run never changes.
pub fn is_final(phase: &str) -> bool {
    matches!(phase, "Succeeded" | "Failed" | "TimedOut" | "Cancelled")
}

fn list_table(v: &Value) -> String {
    let mut t = Table::new(&["RUN", "KIND", "PHASE", "IMAGE", "BY", "CREATED", "FINISHED"]);
    for r in v.as_array().into_iter().flatten() {
        t.row(vec![
            field(r, "/name"),
            field(r, "/kind"),
            field(r, "/phase"),
            field(r, "/image"),
            field(r, "/requestedBy"),
            field(r, "/createdAt"),
            field(r, "/finishedAt"),
        ]);
    }
    t.render()
}

fn detail(r: &Value) -> String {
    pairs(&[
        ("run", field(r, "/name")),
        ("sandbox", field(r, "/sandbox")),
        ("tenant", field(r, "/tenant")),
        ("namespace", field(r, "/namespace")),
        ("kind", field(r, "/kind")),
        ("image", field(r, "/image")),
        ("grants", field(r, "/grants")),
        ("solution", field(r, "/solution")),
        ("phase", field(r, "/phase")),
        ("exit reason", field(r, "/exitReason")),
        ("requested by", field(r, "/requestedBy")),
        ("created", field(r, "/createdAt")),
        ("started", field(r, "/startedAt")),
        ("finished", field(r, "/finishedAt")),
        (
            "figures",
            if r["figures"].is_null() {
                "-".into()
            } else {
                r["figures"].to_string()
            },
        ),
    ])
}

async fn watch(
    c: &Client,
    fmt: Format,
    sandbox: &str,
    run: &str,
    every: Duration,
) -> Result<ExitCode> {
    let mut last = String::new();
    loop {
        let r = c.get(&["sandboxes", sandbox, "runs", run], &[]).await?;
        let phase = field(&r, "/phase");
        if phase != last {
            if fmt == Format::Table {
                let reason = field(&r, "/exitReason");
                let when = chrono::Utc::now().format("%H:%M:%S");
                if reason == "-" {
                    println!("{when}  {run}  {phase}");
                } else {
                    println!("{when}  {run}  {phase}  {reason}");
                }
            }
            last = phase.clone();
        }
        if is_final(&phase) {
            if fmt != Format::Table {
                output::emit(fmt, &r, detail);
            }
            return Ok(if phase == "Succeeded" {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_RUN_FAILED)
            });
        }
        tokio::time::sleep(every).await;
    }
}

/// Copy a streamed answer to standard output or a file, as it comes.
async fn copy_body(mut resp: reqwest::Response, out: Option<&std::path::Path>) -> Result<u64> {
    let url = resp.url().to_string();
    let mut sink: Box<dyn tokio::io::AsyncWrite + Unpin> = match out {
        None => Box::new(tokio::io::stdout()),
        Some(p) => Box::new(
            tokio::fs::File::create(p)
                .await
                .with_context(|| format!("create {}", p.display()))?,
        ),
    };
    let mut n = 0u64;
    while let Some(chunk) = resp.chunk().await.map_err(|e| network(&url, e))? {
        sink.write_all(&chunk).await?;
        sink.flush().await?;
        n += chunk.len() as u64;
    }
    sink.shutdown().await.ok();
    Ok(n)
}

impl Runs {
    pub async fn run(self, ctx: &Ctx) -> Result<ExitCode> {
        let fmt = ctx.global.output;
        match self {
            Runs::Start(s) => {
                let body = s.body()?;
                let c = ctx.client().await?;
                let v = c.post(&["sandboxes", &s.sandbox, "runs"], &body).await?;
                output::emit(fmt, &v, detail);
            }
            Runs::List { sandbox } => {
                let v = ctx
                    .client()
                    .await?
                    .get(&["sandboxes", &sandbox, "runs"], &[])
                    .await?;
                output::emit(fmt, &v, list_table);
            }
            Runs::Show { sandbox, run } => {
                let c = ctx.client().await?;
                let v = c.get(&["sandboxes", &sandbox, "runs", &run], &[]).await?;
                output::emit(fmt, &v, detail);
            }
            Runs::Watch {
                sandbox,
                run,
                interval,
            } => {
                let c = ctx.client().await?;
                return watch(&c, fmt, &sandbox, &run, interval).await;
            }
            Runs::Cancel { sandbox, run } => {
                let c = ctx.client().await?;
                let v = c.delete(&["sandboxes", &sandbox, "runs", &run]).await?;
                if v.is_null() {
                    eprintln!("Cancelled {run}.");
                } else {
                    output::emit(fmt, &v, detail);
                }
            }
            Runs::Logs(l) => {
                let c = if l.follow {
                    ctx.streaming_client().await?
                } else {
                    ctx.client().await?
                };
                let url = c.url(&["sandboxes", &l.sandbox, "runs", &l.run, "logs"]);
                let resp = c
                    .send(c.request(Method::GET, url).query(&l.query()))
                    .await?;
                copy_body(resp, None).await?;
            }
            Runs::Results {
                sandbox,
                run,
                download: None,
                ..
            } => {
                let c = ctx.client().await?;
                let v = c
                    .get(&["sandboxes", &sandbox, "runs", &run, "results"], &[])
                    .await?;
                output::emit(fmt, &v, |v| {
                    let mut t = Table::new(&["PATH", "SIZE", "MODIFIED"]);
                    for o in v["objects"].as_array().into_iter().flatten() {
                        t.row(vec![
                            field(o, "/path"),
                            field(o, "/size"),
                            field(o, "/lastModified"),
                        ]);
                    }
                    let mut s = t.render();
                    if v["truncated"] == json!(true) {
                        s.push_str("(more objects than listed)\n");
                    }
                    s
                });
            }
            Runs::Results {
                sandbox,
                run,
                download: Some(path),
                out,
            } => {
                let c = ctx.streaming_client().await?;
                let mut segments = vec!["sandboxes", &sandbox, "runs", &run, "results"];
                segments.extend(path.split('/'));
                let resp = c.send(c.request(Method::GET, c.url(&segments))).await?;
                let target = match out {
                    Some(p) if p.as_os_str() == "-" => None,
                    Some(p) => Some(p),
                    None => Some(PathBuf::from(path.rsplit('/').next().unwrap_or("result"))),
                };
                let n = copy_body(resp, target.as_deref()).await?;
                if let Some(p) = target {
                    eprintln!("Wrote {} ({n} bytes).", p.display());
                }
            }
            Runs::Report {
                sandbox,
                run,
                html,
                csv,
            } => {
                let c = ctx.client().await?;
                let url = c.url(&["sandboxes", &sandbox, "runs", &run, "report"]);
                if html || csv {
                    let format = if html { "html" } else { "csv" };
                    let req = c.request(Method::GET, url).query(&[("format", format)]);
                    copy_body(c.send(req).await?, None).await?;
                } else {
                    let v = c.json(c.request(Method::GET, url)).await?;
                    // The report is a document: people get it as YAML.
                    let shown = if fmt == Format::Table {
                        Format::Yaml
                    } else {
                        fmt
                    };
                    output::emit(shown, &v, |_| String::new());
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct S {
        #[command(flatten)]
        s: Start,
    }

    #[derive(Parser)]
    struct L {
        #[command(flatten)]
        l: Logs,
    }

    #[test]
    fn start_body_has_the_gateway_shape() {
        let t = S::parse_from([
            "t",
            "est-ensemble--traffic",
            "--image",
            "registry.example.fr/acme/model:1.0",
            "--arg",
            "--epochs",
            "--arg",
            "3",
            "--cpu",
            "2",
            "--memory",
            "4Gi",
            "--grant",
            "g-1",
            "--grant",
            "g-2",
            "--kind",
            "fineTuning",
            "--timeout",
            "15m",
            "--functional-unit",
            "inference=1000",
            "--solution",
            "sol-1",
        ]);
        assert_eq!(t.s.sandbox, "est-ensemble--traffic");
        assert_eq!(
            t.s.body().unwrap(),
            json!({
                "image": "registry.example.fr/acme/model:1.0", "args": ["--epochs", "3"],
                "resources": {"cpu": "2", "memory": "4Gi"}, "grants": ["g-1", "g-2"],
                "kind": "fineTuning", "timeoutSeconds": 900, "solution": "sol-1",
                "functionalUnit": {"name": "inference", "count": 1000}
            })
        );
    }

    #[test]
    fn start_body_minimal_with_gpu_and_bad_unit() {
        let t = S::parse_from([
            "t",
            "sb",
            "--image",
            "i",
            "--cpu",
            "1",
            "--memory",
            "1Gi",
            "--gpu",
            "1",
            "--kind",
            "inference",
            "--timeout",
            "1h",
        ]);
        assert_eq!(
            t.s.body().unwrap(),
            json!({"image": "i", "resources": {"cpu": "1", "memory": "1Gi", "gpu": 1},
                   "kind": "inference", "timeoutSeconds": 3600})
        );
        let t = S::parse_from([
            "t",
            "sb",
            "--image",
            "i",
            "--cpu",
            "1",
            "--memory",
            "1Gi",
            "--kind",
            "training",
            "--timeout",
            "1h",
            "--functional-unit",
            "x",
        ]);
        assert_eq!(
            crate::error::exit_code(&t.s.body().unwrap_err()),
            crate::error::EXIT_USAGE
        );
        assert!(
            S::try_parse_from([
                "t",
                "sb",
                "--image",
                "i",
                "--cpu",
                "1",
                "--memory",
                "1",
                "--kind",
                "guess",
                "--timeout",
                "1h"
            ])
            .is_err()
        );
    }

    #[test]
    fn logs_query() {
        let t = L::parse_from([
            "t",
            "sb",
            "r",
            "--container",
            "fetch-grants",
            "--follow",
            "--tail",
            "50",
        ]);
        assert_eq!(
            t.l.query(),
            vec![
                ("container", "fetch-grants".to_string()),
                ("tailLines", "50".into()),
                ("follow", "true".into()),
            ]
        );
    }

    #[test]
    fn final_phases() {
        for p in ["Succeeded", "Failed", "TimedOut", "Cancelled"] {
            assert!(is_final(p));
        }
        for p in ["Pending", "Running", "-"] {
            assert!(!is_final(p));
        }
    }
}
