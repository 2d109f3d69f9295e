//! S3 access to a sandbox bucket with `object_store`: emptying it at teardown, and
//! Serre's own writes, encrypted client-side before they leave the process.

use std::sync::Arc;

use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};

use super::{KeyCredentials, Result};
use crate::crypto::{self, DataKey};

/// A store for one bucket. `sse_c` adds S3 SSE-C with that key to every request.
pub fn bucket_store(
    endpoint: &str,
    region: &str,
    bucket: &str,
    creds: &KeyCredentials,
    sse_c: Option<&DataKey>,
) -> Result<Arc<dyn ObjectStore>> {
    let mut b = AmazonS3Builder::new()
        .with_endpoint(endpoint)
        .with_region(region)
        .with_bucket_name(bucket)
        .with_access_key_id(&creds.access_key_id)
        .with_secret_access_key(&creds.secret_access_key)
        .with_allow_http(endpoint.starts_with("http://"))
        .with_virtual_hosted_style_request(false);
    if let Some(key) = sse_c {
        b = b.with_ssec_encryption(key.sse_c_key_base64().as_str());
    }
    Ok(Arc::new(b.build()?))
}

/// Delete every object; returns (objects, bytes) removed.
pub async fn empty_bucket(store: &dyn ObjectStore) -> Result<(u64, u64)> {
    let mut objects = 0u64;
    let mut bytes = 0u64;
    loop {
        let batch: Vec<_> = store.list(None).take(1000).try_collect().await?;
        if batch.is_empty() {
            return Ok((objects, bytes));
        }
        for meta in batch {
            store.delete(&meta.location).await?;
            objects += 1;
            bytes += meta.size;
        }
    }
}

/// Write an object encrypted client-side (streaming, bounded memory), as a multipart
/// upload. Returns the ciphertext size.
pub async fn put_encrypted<S, E>(
    store: &dyn ObjectStore,
    path: &Path,
    key: &DataKey,
    plaintext: S,
) -> Result<u64>
where
    S: Stream<Item = Result<Bytes, E>> + Send,
    E: Into<crypto::BoxError>,
{
    let ciphertext = crypto::encrypt_stream(key, plaintext)?;
    futures::pin_mut!(ciphertext);
    let upload = store.put_multipart(path).await?;
    let mut writer = WriteMultipart::new_with_chunk_size(upload, 8 * 1024 * 1024);
    let mut written = 0u64;
    while let Some(chunk) = ciphertext.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                let _ = writer.abort().await;
                return Err(e.into());
            }
        };
        written += chunk.len() as u64;
        writer.wait_for_capacity(4).await?;
        writer.write(&chunk);
    }
    writer.finish().await?;
    Ok(written)
}

/// Write a small object encrypted client-side in one request.
pub async fn put_encrypted_bytes(
    store: &dyn ObjectStore,
    path: &Path,
    key: &DataKey,
    plaintext: Bytes,
) -> Result<u64> {
    let mut out = Vec::with_capacity(crypto::ciphertext_len(plaintext.len() as u64) as usize);
    crypto::encrypt_to(key, plaintext.as_ref(), &mut out)?;
    let len = out.len() as u64;
    store.put(path, PutPayload::from(out)).await?;
    Ok(len)
}

/// Read an object written by [`put_encrypted`], decrypting as it streams. Every
/// segment is authenticated before its plaintext is yielded.
pub async fn get_decrypted(
    store: &dyn ObjectStore,
    path: &Path,
    key: &DataKey,
) -> Result<impl Stream<Item = Result<Bytes, crypto::CryptoError>> + use<>> {
    let body = store.get(path).await?.into_stream();
    Ok(crypto::decrypt_stream(key, body))
}
