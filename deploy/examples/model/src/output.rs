//! results.json and results.csv: built here, written to a directory and/or sent to the
//! run's results endpoint on Serre's gateway (which keeps them in the sandbox bucket).

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Serialize;

use crate::fit::GroupResult;
use crate::input::InputSummary;

pub const JSON_NAME: &str = "results.json";
pub const CSV_NAME: &str = "results.csv";

/// The columns the model was run on.
#[derive(Debug, Clone, Serialize)]
pub struct ColumnNames {
    pub group: String,
    pub x: String,
    pub y: String,
}

/// Everything results.json holds.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Results {
    pub model: String,
    pub version: String,
    pub run: String,
    pub started_at: String,
    pub finished_at: String,
    pub columns: ColumnNames,
    /// The x every forecast is made at (null when no row was usable).
    pub forecast_x: Option<f64>,
    /// Rows skipped for a null or non-finite group, x or y.
    pub skipped_rows: u64,
    pub inputs: Vec<InputSummary>,
    pub groups: Vec<GroupResult>,
}

impl Results {
    pub fn to_json(&self) -> String {
        // A struct of strings, numbers and vectors: serialising it cannot fail.
        let mut json = serde_json::to_string_pretty(self).unwrap_or_default();
        json.push('\n');
        json
    }

    /// One line per fitted group, after a header.
    pub fn to_csv(&self) -> String {
        let mut csv = String::from("group,n,slope,intercept,r2,forecast\n");
        for g in &self.groups {
            if let GroupResult::Fitted {
                group,
                n,
                slope,
                intercept,
                r2,
                forecast,
            } = g
            {
                let _ = writeln!(
                    csv,
                    "{},{n},{slope},{intercept},{r2},{forecast}",
                    csv_field(group)
                );
            }
        }
        csv
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// Writes both files into `dir` (created if needed).
pub fn write_dir(dir: &Path, json: &str, csv: &str) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for (name, body) in [(JSON_NAME, json), (CSV_NAME, csv)] {
        let path = dir.join(name);
        std::fs::write(&path, body).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// The run's results endpoint on Serre's gateway, as the operator passes it to a trial
/// run: the URL (`SERRE_RESULTS_URL`, ending with `/`) and the run's token. The model holds
/// no storage credential: the gateway writes each file into the sandbox bucket (SSE-C).
#[derive(Clone)]
pub struct ResultsTarget {
    pub url: String,
    pub token: String,
}

impl std::fmt::Debug for ResultsTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResultsTarget")
            .field("url", &self.url)
            .field("token", &"<redacted>")
            .finish()
    }
}

impl ResultsTarget {
    /// The URL a results file is PUT to.
    pub fn file_url(&self, name: &str) -> String {
        if self.url.ends_with('/') {
            format!("{}{name}", self.url)
        } else {
            format!("{}/{name}", self.url)
        }
    }
}

/// How an upload ended, short of an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Uploaded {
    /// Both files written: the URLs.
    Written(Vec<String>),
    /// The sandbox has no object storage (the gateway answered 409 `storage_off`):
    /// nothing was kept, and that is the platform's choice, not the model's failure.
    StorageOff(String),
}

/// How many times a file is sent before giving up (on a connection error or a 5xx).
const ATTEMPTS: u32 = 3;

/// PUTs both files to the gateway with the run's token (`Authorization: Bearer`).
pub async fn upload(target: &ResultsTarget, json: &str, csv: &str) -> anyhow::Result<Uploaded> {
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(60))
        .build()
        .context("building the HTTP client")?;
    let mut written = Vec::new();
    for (name, body, content_type) in [
        (JSON_NAME, json, "application/json"),
        (CSV_NAME, csv, "text/csv"),
    ] {
        let url = target.file_url(name);
        let mut attempt = 0;
        let response = loop {
            attempt += 1;
            let sent = client
                .put(&url)
                .bearer_auth(&target.token)
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .body(body.to_owned())
                .send()
                .await;
            match sent {
                Ok(r) if r.status().is_server_error() && attempt < ATTEMPTS => {}
                Ok(r) => break r,
                Err(e) if attempt < ATTEMPTS => {
                    eprintln!("sending {url}: {e}; trying again");
                }
                Err(e) => return Err(e).with_context(|| format!("sending {url}")),
            }
            tokio::time::sleep(Duration::from_secs(u64::from(attempt))).await;
        };
        let status = response.status();
        if status.is_success() {
            written.push(url);
            continue;
        }
        // The gateway's errors are {"error": {"code", "message"}}.
        let text = response.text().await.unwrap_or_default();
        let error: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        let code = error["error"]["code"].as_str().unwrap_or_default();
        let message = error["error"]["message"].as_str().unwrap_or(&text);
        if status == reqwest::StatusCode::CONFLICT && code == "storage_off" {
            return Ok(Uploaded::StorageOff(message.to_owned()));
        }
        bail!("sending {url}: the gateway answered {status} {code}: {message}");
    }
    Ok(Uploaded::Written(written))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn results() -> Results {
        Results {
            model: "m".into(),
            version: "0".into(),
            run: "r".into(),
            started_at: "s".into(),
            finished_at: "f".into(),
            columns: ColumnNames {
                group: "commune".into(),
                x: "year".into(),
                y: "value".into(),
            },
            forecast_x: Some(2025.0),
            skipped_rows: 0,
            inputs: vec![],
            groups: vec![
                GroupResult::Fitted {
                    group: "Saint-Denis, 93".into(),
                    n: 3,
                    slope: 1.5,
                    intercept: -2.0,
                    r2: 0.25,
                    forecast: 4.0,
                },
                GroupResult::Unfitted {
                    group: "b".into(),
                    n: 1,
                    reason: "r".into(),
                },
            ],
        }
    }

    #[test]
    fn csv_has_fitted_groups_only_and_quotes() {
        assert_eq!(
            results().to_csv(),
            "group,n,slope,intercept,r2,forecast\n\"Saint-Denis, 93\",3,1.5,-2,0.25,4\n"
        );
    }

    #[test]
    fn json_field_names() {
        let v: serde_json::Value = serde_json::from_str(&results().to_json()).unwrap();
        assert_eq!(v["startedAt"], "s");
        assert_eq!(v["finishedAt"], "f");
        assert_eq!(v["forecastX"], 2025.0);
        assert_eq!(v["groups"][0]["r2"], 0.25);
        assert_eq!(v["groups"][1]["reason"], "r");
    }

    #[test]
    fn file_urls_and_no_token_in_debug() {
        let t = ResultsTarget {
            url: "http://gw/v1/runs/r/results/".into(),
            token: "serre-rt1.secret".into(),
        };
        assert_eq!(
            t.file_url("results.json"),
            "http://gw/v1/runs/r/results/results.json"
        );
        let t2 = ResultsTarget {
            url: "http://gw/v1/runs/r/results".into(),
            ..t.clone()
        };
        assert_eq!(t2.file_url("a.csv"), "http://gw/v1/runs/r/results/a.csv");
        assert!(!format!("{t:?}").contains("secret"));
    }
}
