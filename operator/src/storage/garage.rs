//! Garage admin API v2 client: the real [`StorageProvisioner`].

use std::time::Duration;

use async_trait::async_trait;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{BucketInfo, EnsuredBucket, KeyCredentials, Result, StorageError, StorageProvisioner};

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
    /// The buckets this key may use, with its permissions on each.
    #[serde(default)]
    buckets: Vec<KeyBucket>,
}

#[derive(Deserialize)]
struct KeyBucket {
    id: String,
    #[serde(default)]
    permissions: KeyBucketPermissions,
}

#[derive(Deserialize, Default)]
struct KeyBucketPermissions {
    #[serde(default)]
    read: bool,
    #[serde(default)]
    write: bool,
}

impl KeyResponse {
    fn may_read_and_write(&self, bucket_id: &str) -> bool {
        self.buckets
            .iter()
            .any(|b| b.id == bucket_id && b.permissions.read && b.permissions.write)
    }
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

    /// Create a bucket with this global alias; None if one already has it.
    async fn create_bucket(&self, alias: &str) -> Result<Option<BucketInfo>> {
        match self
            .call(
                "CreateBucket",
                Method::POST,
                &[],
                Some(json!({"globalAlias": alias})),
            )
            .await
        {
            Ok(v) => Ok(Some(
                Self::parse::<BucketResponse>("CreateBucket", v.unwrap_or(Value::Null))?.into(),
            )),
            Err(StorageError::Api { status: 409, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The key named `name`, with its secret and its buckets, in one call:
    /// `GetKeyInfo?search=` matches a key's exact name (or a prefix of its id, `GK…`,
    /// which Serre's names never look like). It answers 400 when several keys match (a
    /// CreateKey whose answer was lost, then retried): the first of ListKeys is taken
    /// then, as before. ListKeys every time would cost the whole key list per sandbox,
    /// which grows with the sandboxes.
    async fn key_by_name(&self, name: &str) -> Result<Option<KeyResponse>> {
        let found = self
            .call(
                "GetKeyInfo",
                Method::GET,
                &[("search", name), ("showSecretKey", "true")],
                None,
            )
            .await;
        match found {
            Ok(Some(v)) => Self::parse("GetKeyInfo", v).map(Some),
            Ok(None) => Ok(None),
            Err(StorageError::Api {
                status: 400,
                message,
                ..
            }) if message.contains("matching keys") => match self.key_id_by_name(name).await? {
                Some(id) => self.key_with_secret(&id).await,
                None => Ok(None),
            },
            Err(e) => Err(e),
        }
    }

    async fn key_with_secret(&self, id: &str) -> Result<Option<KeyResponse>> {
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
        Self::parse("GetKeyInfo", v).map(Some)
    }

    fn credentials(operation: &'static str, k: &KeyResponse) -> Result<KeyCredentials> {
        let secret = k.secret_access_key.clone().ok_or(StorageError::Api {
            operation,
            status: 200,
            message: "no secret key in the answer".into(),
        })?;
        Ok(KeyCredentials {
            access_key_id: k.access_key_id.clone(),
            secret_access_key: secret,
        })
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

    async fn ensure_bucket(
        &self,
        alias: &str,
        max_size: u64,
        likely_new: bool,
    ) -> Result<EnsuredBucket> {
        // Every admin call costs Garage an Argon2 check of the token (about 20 ms of CPU):
        // a bucket likely new is created first, and read only if it was there after all.
        let existing = if likely_new {
            None
        } else {
            self.bucket(alias).await?
        };
        let (bucket, created) = match existing {
            Some(b) => (b, false),
            None => match self.create_bucket(alias).await? {
                Some(created) => (created, true),
                None => {
                    let found = self.bucket(alias).await?.ok_or(StorageError::Api {
                        operation: "GetBucketInfo",
                        status: 404,
                        message: format!(
                            "bucket {alias} exists by CreateBucket, not by GetBucketInfo"
                        ),
                    })?;
                    (found, false)
                }
            },
        };
        if bucket.max_size == Some(max_size) {
            return Ok(EnsuredBucket {
                info: bucket,
                created,
            });
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
        Ok(EnsuredBucket {
            info: Self::parse::<BucketResponse>("UpdateBucket", v)?.into(),
            created,
        })
    }

    async fn key(&self, name: &str) -> Result<Option<KeyCredentials>> {
        match self.key_by_name(name).await? {
            Some(k) => Self::credentials("GetKeyInfo", &k).map(Some),
            None => Ok(None),
        }
    }

    async fn ensure_key(
        &self,
        name: &str,
        bucket_id: &str,
        bucket_created: bool,
    ) -> Result<KeyCredentials> {
        // A key is created after its bucket: a bucket this reconcile created has no key
        // yet, so the search (one more Argon2-checked call) is skipped.
        let found = if bucket_created {
            None
        } else {
            self.key_by_name(name).await?
        };
        let (creds, allowed) = match found {
            Some(k) => (
                Self::credentials("GetKeyInfo", &k)?,
                k.may_read_and_write(bucket_id),
            ),
            None => {
                let v = self
                    .call("CreateKey", Method::POST, &[], Some(json!({"name": name})))
                    .await?
                    .unwrap_or(Value::Null);
                let k: KeyResponse = Self::parse("CreateKey", v)?;
                (Self::credentials("CreateKey", &k)?, false)
            }
        };
        // Granted once: a key found with read and write on the bucket is left as it is.
        if !allowed {
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
        }
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
