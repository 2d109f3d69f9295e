//! results.json and results.csv: built here, written to a directory and/or the sandbox's
//! bucket (SSE-C, as every object of a sandbox bucket must be).

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use object_store::aws::AmazonS3Builder;
use object_store::{ClientOptions, ObjectStoreExt, PutPayload, RetryConfig};
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

/// The sandbox bucket, as the operator passes it to a trial run.
#[derive(Debug, Clone)]
pub struct S3Target {
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub bucket: String,
    /// SSE-C algorithm; only AES256 exists.
    pub sse_c_algorithm: Option<String>,
    /// Base64 of the 32-byte SSE-C key.
    pub sse_c_key: Option<String>,
    /// Key prefix, e.g. `runs/<run>/`.
    pub prefix: String,
}

impl S3Target {
    /// The object key of a results file.
    pub fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }
}

/// PUTs both files to the bucket with SSE-C; returns the `s3://` URLs written.
pub async fn write_s3(target: &S3Target, json: &str, csv: &str) -> anyhow::Result<Vec<String>> {
    let Some(key) = target.sse_c_key.as_deref().filter(|k| !k.is_empty()) else {
        bail!(
            "S3_BUCKET is set but SSE_C_KEY is not: every object of a sandbox bucket must be \
             written with SSE-C, so nothing was written"
        );
    };
    if let Some(alg) = target.sse_c_algorithm.as_deref()
        && alg != "AES256"
    {
        bail!("SSE_C_ALGORITHM is '{alg}': only AES256 is supported");
    }
    let mut builder = AmazonS3Builder::new()
        .with_bucket_name(&target.bucket)
        .with_allow_http(true)
        .with_virtual_hosted_style_request(false)
        .with_ssec_encryption(key)
        .with_client_options(
            ClientOptions::new()
                .with_allow_http(true)
                .with_connect_timeout(Duration::from_secs(10))
                .with_timeout(Duration::from_secs(30)),
        )
        .with_retry(RetryConfig {
            max_retries: 3,
            retry_timeout: Duration::from_secs(60),
            ..RetryConfig::default()
        });
    if let Some(endpoint) = &target.endpoint {
        builder = builder.with_endpoint(endpoint);
    }
    if let Some(region) = &target.region {
        builder = builder.with_region(region);
    }
    if let Some(id) = &target.access_key_id {
        builder = builder.with_access_key_id(id);
    }
    if let Some(secret) = &target.secret_access_key {
        builder = builder.with_secret_access_key(secret);
    }
    let store = builder
        .build()
        .with_context(|| format!("configuring the S3 client for bucket {}", target.bucket))?;
    let mut written = Vec::new();
    for (name, body) in [(JSON_NAME, json), (CSV_NAME, csv)] {
        let key = target.key(name);
        let location = object_store::path::Path::parse(&key)
            .with_context(|| format!("'{key}' is not a valid object key"))?;
        store
            .put(&location, PutPayload::from(body.to_owned()))
            .await
            .with_context(|| format!("writing s3://{}/{key}", target.bucket))?;
        written.push(format!("s3://{}/{key}", target.bucket));
    }
    Ok(written)
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

    #[tokio::test]
    async fn refuses_to_write_without_sse_c_key() {
        let target = S3Target {
            endpoint: Some("http://127.0.0.1:9".into()),
            region: None,
            access_key_id: None,
            secret_access_key: None,
            bucket: "b".into(),
            sse_c_algorithm: None,
            sse_c_key: None,
            prefix: "runs/r/".into(),
        };
        let err = write_s3(&target, "{}", "").await.unwrap_err();
        assert!(err.to_string().contains("SSE_C_KEY"), "{err}");
    }
}
