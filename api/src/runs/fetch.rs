//! `serre-api fetch-grants`: the init step of a trial run. Downloads each granted view
//! with the run's token into `<out>/<grant>/data.parquet`, checking its length and its
//! SHA-256 against the gateway's ETag; a partial file never keeps the final name.

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("the token file {0}: {1}")]
    Token(String, String),
    #[error("grant {grant}: {message}")]
    Grant { grant: String, message: String },
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

/// The run a token belongs to (its claims, unverified: the gateway verifies them).
pub fn run_of_token(token: &str) -> Option<String> {
    let body = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(body).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    claims.get("g")?.as_str().map(str::to_owned)
}

/// One fetched view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    pub grant: String,
    pub path: PathBuf,
    pub bytes: u64,
    pub sha256: String,
}

/// Fetch every grant; stops at the first failure (the run then fails at its init step,
/// saying which grant and why).
pub async fn fetch_all(
    gateway: &str,
    token_file: &Path,
    run: Option<&str>,
    grants: &[String],
    out: &Path,
) -> Result<Vec<Fetched>, FetchError> {
    let token = std::fs::read_to_string(token_file)
        .map_err(|e| FetchError::Token(token_file.display().to_string(), e.to_string()))?;
    let token = token.trim();
    let run = match run {
        Some(r) => r.to_owned(),
        None => run_of_token(token).ok_or_else(|| {
            FetchError::Token(
                token_file.display().to_string(),
                "not a run token (no run in its claims)".into(),
            )
        })?,
    };
    let client = reqwest::Client::builder()
        .build()
        .map_err(|e| FetchError::Token("(client)".into(), e.to_string()))?;
    let mut done = Vec::new();
    for grant in grants {
        done.push(fetch_one(&client, gateway, token, &run, grant, out).await?);
    }
    Ok(done)
}

async fn fetch_one(
    client: &reqwest::Client,
    gateway: &str,
    token: &str,
    run: &str,
    grant: &str,
    out: &Path,
) -> Result<Fetched, FetchError> {
    let fail = |message: String| FetchError::Grant {
        grant: grant.to_owned(),
        message,
    };
    if grant.is_empty()
        || !grant
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err(fail("not a grant id".into()));
    }
    let url = format!(
        "{}/v1/runs/{run}/grants/{grant}/data",
        gateway.trim_end_matches('/')
    );
    let mut response = client
        .get(&url)
        .bearer_auth(token)
        .send()
        .await
        .map_err(|e| fail(format!("gateway unreachable: {e}")))?;
    if !response.status().is_success() {
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        return Err(fail(format!("the gateway answered {status}: {body}")));
    }
    let expected_len = response.content_length();
    let etag = response
        .headers()
        .get(reqwest::header::ETAG)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim_matches('"').to_owned());
    let dir = out.join(grant);
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| FetchError::Io { path, source }
    };
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let part = dir.join("data.parquet.part");
    let path = dir.join("data.parquet");
    let mut file = std::fs::File::create(&part).map_err(io(&part))?;
    let mut hasher = Sha256::new();
    let mut bytes = 0u64;
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| fail(format!("download interrupted: {e}")))?
    {
        hasher.update(&chunk);
        file.write_all(&chunk).map_err(io(&part))?;
        bytes += chunk.len() as u64;
    }
    file.sync_all().map_err(io(&part))?;
    let sha256 = hex::encode(hasher.finalize());
    if expected_len.is_some_and(|n| n != bytes) {
        let _ = std::fs::remove_file(&part);
        return Err(fail(format!(
            "received {bytes} bytes, the gateway announced {}",
            expected_len.unwrap_or_default()
        )));
    }
    if let Some(etag) = etag.filter(|e| e.len() == 64)
        && etag != sha256
    {
        let _ = std::fs::remove_file(&part);
        return Err(fail(format!(
            "SHA-256 {sha256} does not match the view's {etag}"
        )));
    }
    std::fs::rename(&part, &path).map_err(io(&path))?;
    Ok(Fetched {
        grant: grant.to_owned(),
        path,
        bytes,
        sha256,
    })
}
