//! Garage admin API v2 client: the real [`StorageProvisioner`].

use std::time::Duration;

use async_trait::async_trait;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{BucketInfo, KeyCredentials, Result, StorageError, StorageProvisioner};

/// Talks to one Garage cluster's admin API with a bearer token.
pub struct GarageAdmin {
    endpoint: String,
    token: String,
    http: reqwest::Client,
}

impl std::fmt::Debug for GarageAdmin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GarageAdmin")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BucketResponse {
    id: String,
    #[serde(default)]
    objects: u64,
    #[serde(default)]
    bytes: u64,
    #[serde(default)]
    quotas: Quotas,
    #[serde(default)]
    global_aliases: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Quotas {
    max_size: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct KeyResponse {
    access_key_id: String,
    #[serde(default)]
    secret_access_key: Option<String>,
}

#[derive(Deserialize)]
struct KeyListItem {
    id: String,
    #[serde(default)]
    name: String,
}

impl From<BucketResponse> for BucketInfo {
    fn from(b: BucketResponse) -> Self {
        Self {
            id: b.id,
            max_size: b.quotas.max_size,
            objects: b.objects,
            bytes: b.bytes,
        }
    }
}

impl GarageAdmin {
    pub fn new(endpoint: &str, token: String) -> Result<Self> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(20))
            .build()
            .map_err(|e| StorageError::Unreachable(e.to_string()))?;
        Ok(Self {
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            token,
            http,
        })
    }

    /// Call an admin endpoint. `Ok(None)` for a 404 (missing bucket or key).
    async fn call(
        &self,
        operation: &'static str,
        method: Method,
        query: &[(&str, &str)],
        body: Option<Value>,
    ) -> Result<Option<Value>> {
        let url = format!("{}/v2/{operation}", self.endpoint);
        let mut req = self
            .http
            .request(method, &url)
            .bearer_auth(&self.token)
            .query(query);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| StorageError::Unreachable(format!("{operation}: {e}")))?;
        let status = resp.status();
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let text = resp
            .text()
            .await
            .map_err(|e| StorageError::Unreachable(format!("{operation}: {e}")))?;
        if !status.is_success() {
            let message = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_owned))
                .unwrap_or(text);
            return Err(StorageError::Api {
                operation,
                status: status.as_u16(),
                message,
            });
        }
        if text.trim().is_empty() {
            return Ok(Some(Value::Null));
        }
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| StorageError::Api {
                operation,
                status: status.as_u16(),
                message: format!("unexpected answer: {e}"),
            })
    }

    fn parse<T: serde::de::DeserializeOwned>(operation: &'static str, v: Value) -> Result<T> {
        serde_json::from_value(v).map_err(|e| StorageError::Api {
            operation,
            status: 200,
            message: format!("unexpected answer: {e}"),
        })
    }

    async fn key_id_by_name(&self, name: &str) -> Result<Option<String>> {
        let list = self
            .call("ListKeys", Method::GET, &[], None)
            .await?
            .unwrap_or(Value::Null);
        let keys: Vec<KeyListItem> = Self::parse("ListKeys", list)?;
        Ok(keys.into_iter().find(|k| k.name == name).map(|k| k.id))
    }

    async fn key_with_secret(&self, id: &str) -> Result<Option<KeyCredentials>> {
        let Some(v) = self
            .call(
                "GetKeyInfo",
                Method::GET,
                &[("id", id), ("showSecretKey", "true")],
                None,
            )
            .await?
        else {
            return Ok(None);
        };
        let k: KeyResponse = Self::parse("GetKeyInfo", v)?;
        let secret = k.secret_access_key.ok_or(StorageError::Api {
            operation: "GetKeyInfo",
            status: 200,
            message: "no secret key in the answer".into(),
        })?;
        Ok(Some(KeyCredentials {
            access_key_id: k.access_key_id,
            secret_access_key: secret,
        }))
    }
}

#[async_trait]
impl StorageProvisioner for GarageAdmin {
    async fn bucket(&self, alias: &str) -> Result<Option<BucketInfo>> {
        match self
            .call(
                "GetBucketInfo",
                Method::GET,
                &[("globalAlias", alias)],
                None,
            )
            .await?
        {
            Some(v) => Ok(Some(
                Self::parse::<BucketResponse>("GetBucketInfo", v)?.into(),
            )),
            None => Ok(None),
        }
    }

    async fn ensure_bucket(&self, alias: &str, max_size: u64) -> Result<BucketInfo> {
        let bucket = match self.bucket(alias).await? {
            Some(b) => b,
            None => {
                let v = self
                    .call(
                        "CreateBucket",
                        Method::POST,
                        &[],
                        Some(json!({"globalAlias": alias})),
                    )
                    .await?
                    .unwrap_or(Value::Null);
                Self::parse::<BucketResponse>("CreateBucket", v)?.into()
            }
        };
        if bucket.max_size == Some(max_size) {
            return Ok(bucket);
        }
        let v = self
            .call(
                "UpdateBucket",
                Method::POST,
                &[("id", &bucket.id)],
                Some(json!({"quotas": {"maxSize": max_size, "maxObjects": null}})),
            )
            .await?
            .unwrap_or(Value::Null);
        Ok(Self::parse::<BucketResponse>("UpdateBucket", v)?.into())
    }

    async fn key(&self, name: &str) -> Result<Option<KeyCredentials>> {
        match self.key_id_by_name(name).await? {
            Some(id) => self.key_with_secret(&id).await,
            None => Ok(None),
        }
    }

    async fn ensure_key(&self, name: &str, bucket_id: &str) -> Result<KeyCredentials> {
        let creds = match self.key(name).await? {
            Some(c) => c,
            None => {
                let v = self
                    .call("CreateKey", Method::POST, &[], Some(json!({"name": name})))
                    .await?
                    .unwrap_or(Value::Null);
                let k: KeyResponse = Self::parse("CreateKey", v)?;
                KeyCredentials {
                    secret_access_key: k.secret_access_key.ok_or(StorageError::Api {
                        operation: "CreateKey",
                        status: 200,
                        message: "no secret key in the answer".into(),
                    })?,
                    access_key_id: k.access_key_id,
                }
            }
        };
        self.call(
            "AllowBucketKey",
            Method::POST,
            &[],
            Some(json!({
                "bucketId": bucket_id,
                "accessKeyId": creds.access_key_id,
                "permissions": {"read": true, "write": true, "owner": false}
            })),
        )
        .await?;
        Ok(creds)
    }

    async fn delete_bucket(&self, id: &str) -> Result<()> {
        self.call("DeleteBucket", Method::POST, &[("id", id)], None)
            .await
            .map(|_| ())
    }

    async fn delete_key(&self, access_key_id: &str) -> Result<()> {
        self.call("DeleteKey", Method::POST, &[("id", access_key_id)], None)
            .await
            .map(|_| ())
    }

    async fn inventory(&self) -> Result<(Vec<String>, Vec<String>)> {
        let buckets = self
            .call("ListBuckets", Method::GET, &[], None)
            .await?
            .unwrap_or(Value::Null);
        let buckets: Vec<BucketResponse> = Self::parse("ListBuckets", buckets)?;
        let keys = self
            .call("ListKeys", Method::GET, &[], None)
            .await?
            .unwrap_or(Value::Null);
        let keys: Vec<KeyListItem> = Self::parse("ListKeys", keys)?;
        Ok((
            buckets.into_iter().flat_map(|b| b.global_aliases).collect(),
            keys.into_iter().map(|k| k.name).collect(),
        ))
    }
}
