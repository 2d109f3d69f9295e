//! `serre datasets …`: `/v1/datasets` (docs/datasets.md).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::Value;

use super::Ctx;
use crate::error::Failure;
use crate::output::{self, Table, field, pairs};

#[derive(Subcommand)]
pub enum Datasets {
    /// The datasets of your tenants.
    #[command(after_help = "Example:\n  serre datasets list -o json")]
    List,
    /// Upload a CSV or Parquet file as a new dataset (or a new version of one).
    #[command(
        after_help = "Examples:\n  serre datasets upload --tenant est-ensemble --name residents --classification personal residents.csv\n  serre datasets upload --version-of 6f1c… residents-2026.parquet"
    )]
    Upload(Upload),
    /// One dataset and its versions (with their schemas).
    #[command(after_help = "Example:\n  serre datasets show 6f1c2a9e-…")]
    Show { id: String },
}

#[derive(Args, Debug)]
pub struct Upload {
    /// The file: .csv or .parquet (else say --format).
    file: PathBuf,
    /// Tenant that owns the new dataset.
    #[arg(long, required_unless_present = "version_of")]
    tenant: Option<String>,
    /// Name, unique in the tenant: lowercase letters, digits, '-' and '_'.
    #[arg(long, required_unless_present = "version_of")]
    name: Option<String>,
    /// open, internal, personal or anonymised.
    #[arg(long, default_value = "internal")]
    classification: String,
    #[arg(long)]
    description: Option<String>,
    /// Upload a new version of this dataset instead (its tenant, name and classification
    /// stay).
    #[arg(long, conflicts_with_all = ["tenant", "name", "description"])]
    version_of: Option<String>,
    /// csv or parquet (default: from the file's extension).
    #[arg(long)]
    format: Option<String>,
    /// CSV: the first line is data, not column names.
    #[arg(long)]
    no_header: bool,
    /// CSV: field separator (default ',').
    #[arg(long)]
    delimiter: Option<char>,
    /// CSV: column types, e.g. age:int64,postcode:string.
    #[arg(long)]
    types: Option<String>,
}

impl Upload {
    /// The format, from the flag or the extension.
    fn format(&self) -> Result<String> {
        if let Some(f) = &self.format {
            return Ok(f.to_ascii_lowercase());
        }
        let ext = self
            .file
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("csv") => Ok("csv".into()),
            Some("parquet" | "pq") => Ok("parquet".into()),
            _ => Err(Failure::Usage(format!(
                "{}: say --format csv or --format parquet",
                self.file.display()
            ))
            .into()),
        }
    }

    /// The query of the upload: what the gateway's `UploadParams` take.
    pub fn query(&self) -> Result<Vec<(&'static str, String)>> {
        let mut q = Vec::new();
        if self.version_of.is_none() {
            q.push(("tenant", self.tenant.clone().unwrap_or_default()));
            q.push(("name", self.name.clone().unwrap_or_default()));
            q.push(("classification", self.classification.clone()));
            if let Some(d) = &self.description {
                q.push(("description", d.clone()));
            }
        }
        let format = self.format()?;
        if format == "csv" {
            if self.no_header {
                q.push(("header", "false".into()));
            }
            if let Some(d) = self.delimiter {
                q.push(("delimiter", d.to_string()));
            }
            if let Some(t) = &self.types {
                q.push(("types", t.clone()));
            }
        }
        q.push(("format", format));
        Ok(q)
    }

    fn content_type(format: &str) -> &'static str {
        match format {
            "csv" => "text/csv",
            "parquet" => "application/vnd.apache.parquet",
            _ => "application/octet-stream",
        }
    }

    async fn run(&self, ctx: &Ctx) -> Result<Value> {
        let query = self.query()?;
        let c = ctx.streaming_client().await?;
        let url = match &self.version_of {
            Some(id) => c.url(&["datasets", id, "versions"]),
            None => c.url(&["datasets"]),
        };
        let (body, len) = file_body(&self.file).await?;
        let format = query
            .iter()
            .find(|(k, _)| *k == "format")
            .map(|(_, v)| v.as_str());
        let req = c
            .request(Method::POST, url)
            .query(&query)
            .header(
                reqwest::header::CONTENT_TYPE,
                Self::content_type(format.unwrap_or_default()),
            )
            .header(reqwest::header::CONTENT_LENGTH, len)
            .body(body);
        c.json(req).await
    }
}

/// The file as a streamed body, and its length.
async fn file_body(path: &Path) -> Result<(reqwest::Body, u64)> {
    let f = tokio::fs::File::open(path)
        .await
        .with_context(|| format!("open {}", path.display()))?;
    let len = f.metadata().await?.len();
    let stream = tokio_util::io::ReaderStream::new(f);
    Ok((reqwest::Body::wrap_stream(stream), len))
}

fn list_table(v: &Value) -> String {
    let mut t = Table::new(&[
        "ID",
        "TENANT",
        "NAME",
        "CLASSIFICATION",
        "LATEST",
        "CREATED",
    ]);
    for d in v.as_array().into_iter().flatten() {
        t.row(vec![
            field(d, "/id"),
            field(d, "/tenant"),
            field(d, "/name"),
            field(d, "/classification"),
            field(d, "/latestVersion"),
            field(d, "/createdAt"),
        ]);
    }
    t.render()
}

fn detail(d: &Value) -> String {
    let mut out = pairs(&[
        ("id", field(d, "/id")),
        ("tenant", field(d, "/tenant")),
        ("name", field(d, "/name")),
        ("description", field(d, "/description")),
        ("classification", field(d, "/classification")),
        ("latest version", field(d, "/latestVersion")),
        ("created by", field(d, "/createdBy")),
        ("created", field(d, "/createdAt")),
    ]);
    let mut t = Table::new(&[
        "VERSION", "FORMAT", "ROWS", "SIZE", "SHA256", "CREATED", "DELETED",
    ]);
    for v in d["versions"].as_array().into_iter().flatten() {
        t.row(vec![
            field(v, "/version"),
            field(v, "/sourceFormat"),
            field(v, "/rows"),
            field(v, "/size"),
            field(v, "/sha256").chars().take(12).collect(),
            field(v, "/createdAt"),
            field(v, "/deletedAt"),
        ]);
    }
    out.push('\n');
    out.push_str(&t.render());
    if let Some(latest) = d["versions"].as_array().and_then(|v| v.last()) {
        let mut cols = Table::new(&["COLUMN", "TYPE", "NULLABLE"]);
        for c in latest["schema"].as_array().into_iter().flatten() {
            cols.row(vec![
                field(c, "/name"),
                field(c, "/type"),
                field(c, "/nullable"),
            ]);
        }
        out.push('\n');
        out.push_str(&cols.render());
    }
    out
}

impl Datasets {
    pub async fn run(self, ctx: &Ctx) -> Result<ExitCode> {
        let fmt = ctx.global.output;
        match self {
            Datasets::List => {
                let v = ctx.client().await?.get(&["datasets"], &[]).await?;
                output::emit(fmt, &v, list_table);
            }
            Datasets::Show { id } => {
                let v = ctx.client().await?.get(&["datasets", &id], &[]).await?;
                output::emit(fmt, &v, detail);
            }
            Datasets::Upload(u) => {
                let v = u.run(ctx).await?;
                output::emit(fmt, &v, detail);
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
    struct T {
        #[command(flatten)]
        u: Upload,
    }

    #[test]
    fn upload_query_names_tenant_name_classification_and_format() {
        let t = T::parse_from([
            "t",
            "--tenant",
            "est-ensemble",
            "--name",
            "residents",
            "--classification",
            "personal",
            "--types",
            "age:int64",
            "residents.CSV",
        ]);
        assert_eq!(
            t.u.query().unwrap(),
            vec![
                ("tenant", "est-ensemble".to_string()),
                ("name", "residents".into()),
                ("classification", "personal".into()),
                ("types", "age:int64".into()),
                ("format", "csv".into()),
            ]
        );
    }

    #[test]
    fn a_new_version_sends_only_the_format() {
        let t = T::parse_from(["t", "--version-of", "abc", "x.parquet"]);
        assert_eq!(
            t.u.query().unwrap(),
            vec![("format", "parquet".to_string())]
        );
        let t = T::parse_from(["t", "--version-of", "abc", "x.bin"]);
        assert_eq!(
            crate::error::exit_code(&t.u.query().unwrap_err()),
            crate::error::EXIT_USAGE
        );
    }
}
