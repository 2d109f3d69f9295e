//! Small documents stored unencrypted because they are public by design and carry their
//! own integrity (signed audit checkpoints): they sit beside the encrypted blobs, in the
//! same store, under their own prefix.

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use super::{BlobError, BlobStore, validate_key};

impl BlobStore {
    /// Store `bytes` as is under `key` (replacing what was there).
    pub async fn put_public(&self, key: &str, bytes: Bytes) -> Result<(), BlobError> {
        let path = validate_key(key)?;
        self.inner
            .store
            .put(&path, PutPayload::from_bytes(bytes))
            .await
            .map_err(|e| BlobError::from_store(key, e))?;
        Ok(())
    }

    /// The document stored under `key`; `None` when there is none.
    pub async fn get_public(&self, key: &str) -> Result<Option<Bytes>, BlobError> {
        let path = validate_key(key)?;
        match self.inner.store.get(&path).await {
            Ok(got) => Ok(Some(
                got.bytes()
                    .await
                    .map_err(|e| BlobError::from_store(key, e))?,
            )),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(BlobError::from_store(key, e)),
        }
    }

    /// Keys of the documents under `prefix` (a directory-like key without the trailing
    /// `/`), in no particular order.
    pub async fn list_public(&self, prefix: &str) -> Result<Vec<String>, BlobError> {
        let path: Path = validate_key(prefix)?;
        let store: &dyn ObjectStore = self.inner.store.as_ref();
        let listed: Vec<_> = match store.list(Some(&path)).try_collect().await {
            Ok(listed) => listed,
            // A local directory that was never created lists as not found.
            Err(object_store::Error::NotFound { .. }) => Vec::new(),
            Err(e) => return Err(BlobError::from_store(prefix, e)),
        };
        Ok(listed.into_iter().map(|m| m.location.to_string()).collect())
    }
}
