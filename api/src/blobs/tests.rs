//! The blob store on the Local backend, in a temp directory. The same round trip
//! against a real Garage is in `api/tests/blobs.rs`.

use std::io::Read;
use std::sync::Arc;

use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use futures::TryStreamExt;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serre_crypto::{Kek, KekRing, ciphertext_len};
use sha2::{Digest, Sha256};

use super::*;

const SEG: usize = 64 * 1024;

fn ring(id: &str) -> KekRing {
    KekRing::new(Kek::generate(id).unwrap(), vec![]).unwrap()
}

struct Fixture {
    dir: tempfile::TempDir,
    store: BlobStore,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::new(
            BlobBackend::Local {
                dir: dir.path().join("blobs"),
            },
            ring("kek-1"),
        )
        .unwrap();
        Self { dir, store }
    }

    fn stored_path(&self, key: &str) -> std::path::PathBuf {
        self.dir.path().join("blobs").join(key)
    }

    /// Write `data` to a plaintext temp file and store it under `key`.
    async fn put(&self, key: &str, data: &[u8]) -> StoredBlob {
        let src = self.dir.path().join("plain.tmp");
        std::fs::write(&src, data).unwrap();
        let stored = self.store.put_file(key, &src).await.unwrap();
        std::fs::remove_file(&src).unwrap();
        stored
    }
}

fn plaintext(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15).to_be_bytes()[0])
        .collect()
}

async fn collect(store: &BlobStore, blob: &BlobRef) -> Result<Vec<u8>, BlobError> {
    let chunks: Vec<Bytes> = store.get_stream(blob).await?.try_collect().await?;
    Ok(chunks.concat())
}

#[tokio::test]
async fn round_trip_of_several_sizes() {
    let fx = Fixture::new();
    for len in [0, 1, SEG, (1 << 20) + 3, PART_SIZE + 5] {
        let key = format!("tenants/acme/datasets/d{len}/v1.parquet");
        let plain = plaintext(len);
        let stored = fx.put(&key, &plain).await;
        assert_eq!(stored.key, key);
        assert_eq!(stored.plain_size, len as u64);
        assert_eq!(stored.stored_size, ciphertext_len(len as u64));
        assert_eq!(stored.sha256, hex::encode(Sha256::digest(&plain)));
        assert!(stored.wrapped_key.starts_with("serre-wk1:kek-1:"));

        // On disk: the encrypted format, not the plaintext.
        let on_disk = std::fs::read(fx.stored_path(&key)).unwrap();
        assert_eq!(on_disk.len() as u64, stored.stored_size);
        assert!(on_disk.starts_with(b"SERREC"));
        if len >= 32 {
            let needle = &plain[len / 2..len / 2 + 32];
            assert!(!on_disk.windows(32).any(|w| w == needle), "len {len}");
        }

        let blob = stored.blob_ref();
        assert_eq!(collect(&fx.store, &blob).await.unwrap(), plain, "len {len}");

        let l = len as u64;
        let s = SEG as u64;
        let ranges = [
            0..l,
            0..l.min(1),
            l.saturating_sub(1)..l,
            l / 2..l,
            l.min(s - 1)..l.min(s + 1),
            l.min(s)..l.min(3 * s + 7),
            l.min(10)..l.min(10),
        ];
        let reader = fx.store.open_reader(&blob).await.unwrap();
        assert_eq!(reader.plain_len(), l);
        for r in ranges {
            let want = &plain[r.start as usize..r.end as usize];
            let got = fx.store.get_range(&blob, r.clone()).await.unwrap();
            assert_eq!(&got[..], want, "get_range len {len} range {r:?}");
            let got = reader.read_range(r.clone()).unwrap();
            assert_eq!(&got[..], want, "read_range len {len} range {r:?}");
        }
        let mut all = Vec::new();
        reader.cursor(0).read_to_end(&mut all).unwrap();
        assert_eq!(all, plain);
    }
}

#[tokio::test]
async fn parquet_reads_through_the_decrypting_reader() {
    let fx = Fixture::new();
    let rows = 20_000;
    let ids: ArrayRef = Arc::new(Int64Array::from_iter_values(0..rows));
    let names: ArrayRef = Arc::new(StringArray::from_iter_values(
        (0..rows).map(|i| format!("commune-{i}-{}", i * 7919 % 1000)),
    ));
    let batch = RecordBatch::try_from_iter([("id", ids), ("name", names)]).unwrap();
    let src = fx.dir.path().join("in.parquet");
    let mut writer = ArrowWriter::try_new(
        std::fs::File::create(&src).unwrap(),
        batch.schema(),
        Some(
            parquet::file::properties::WriterProperties::builder()
                .set_max_row_group_row_count(Some(5_000))
                .build(),
        ),
    )
    .unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    assert!(std::fs::metadata(&src).unwrap().len() > 2 * SEG as u64);

    let stored = fx
        .store
        .put_file("tenants/acme/datasets/communes/v1.parquet", &src)
        .await
        .unwrap();
    let reader = fx.store.open_reader(&stored.blob_ref()).await.unwrap();
    let builder = ParquetRecordBatchReaderBuilder::try_new(reader.clone()).unwrap();
    assert_eq!(builder.metadata().num_row_groups(), 4);
    let batches: Vec<RecordBatch> = builder.build().unwrap().collect::<Result<_, _>>().unwrap();
    let back = arrow_select::concat::concat_batches(&batch.schema(), &batches).unwrap();
    assert_eq!(back, batch);

    // The reader is shareable across threads.
    fn send_sync_static<T: Send + Sync + 'static>(_: &T) {}
    send_sync_static(&reader);
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let r = reader.clone();
            std::thread::spawn(move || {
                ParquetRecordBatchReaderBuilder::try_new(r)
                    .unwrap()
                    .build()
                    .unwrap()
                    .map(|b| b.unwrap().num_rows())
                    .sum::<usize>()
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), rows as usize);
    }
}

#[tokio::test]
async fn a_wrong_kek_or_another_key_name_fails_to_open() {
    let fx = Fixture::new();
    let plain = plaintext(3 * SEG);
    let stored = fx.put("tenants/a/datasets/x/v1.parquet", &plain).await;
    let blob = stored.blob_ref();

    // Same KEK id, other key material.
    let other = BlobStore::new(
        BlobBackend::Local {
            dir: fx.dir.path().join("blobs"),
        },
        ring("kek-1"),
    )
    .unwrap();
    let err = other.get_range(&blob, 0..10).await.unwrap_err();
    assert_eq!(err.category(), "key_unwrap", "{err}");
    assert_eq!(
        other.open_reader(&blob).await.unwrap_err().category(),
        "key_unwrap"
    );
    assert!(other.get_stream(&blob).await.is_err());

    // A KEK the ring does not hold.
    let stranger = BlobStore::new(
        BlobBackend::Local {
            dir: fx.dir.path().join("blobs"),
        },
        ring("kek-2"),
    )
    .unwrap();
    let err = stranger.get_range(&blob, 0..10).await.unwrap_err();
    assert_eq!(err.category(), "key_unwrap", "{err}");

    // The same object and wrapped key under another name: the wrapping context differs.
    let moved = "tenants/b/datasets/x/v1.parquet";
    std::fs::create_dir_all(fx.stored_path(moved).parent().unwrap()).unwrap();
    std::fs::copy(fx.stored_path(&blob.key), fx.stored_path(moved)).unwrap();
    let renamed = BlobRef {
        key: moved.into(),
        ..blob.clone()
    };
    let err = fx.store.get_range(&renamed, 0..10).await.unwrap_err();
    assert_eq!(err.category(), "key_unwrap", "{err}");

    // The right store still reads it.
    assert_eq!(
        &fx.store.get_range(&blob, 0..10).await.unwrap()[..],
        &plain[..10]
    );
}

#[tokio::test]
async fn a_tampered_stored_file_fails() {
    let fx = Fixture::new();
    let plain = plaintext(3 * SEG + 17);
    let stored = fx.put("tenants/a/datasets/t/v1.parquet", &plain).await;
    let blob = stored.blob_ref();
    let path = fx.stored_path(&blob.key);
    let mut bytes = std::fs::read(&path).unwrap();
    // A byte inside segment 1.
    let at = 44 + (SEG + 16) + 100;
    bytes[at] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();

    let s = SEG as u64;
    let err = fx.store.get_range(&blob, s..s + 10).await.unwrap_err();
    assert_eq!(err.category(), "integrity", "{err}");
    // Ranges that do not need segment 1 still read.
    assert_eq!(
        &fx.store.get_range(&blob, 0..10).await.unwrap()[..],
        &plain[..10]
    );
    let err = collect(&fx.store, &blob).await.unwrap_err();
    assert_eq!(err.category(), "integrity", "{err}");

    let reader = fx.store.open_reader(&blob).await.unwrap();
    assert_eq!(
        reader.read_range(0..s + 1).unwrap_err().category(),
        "integrity"
    );
    let mut sink = Vec::new();
    assert!(reader.cursor(0).read_to_end(&mut sink).is_err());
    assert!(ParquetRecordBatchReaderBuilder::try_new(reader).is_err());
}

#[tokio::test]
async fn truncation_and_a_wrong_recorded_size_fail() {
    let fx = Fixture::new();
    let plain = plaintext(3 * SEG + 17);
    let stored = fx.put("tenants/a/datasets/t/v1.parquet", &plain).await;
    let blob = stored.blob_ref();

    // The recorded size is checked even by reads that stop early.
    let wrong = BlobRef {
        plain_size: blob.plain_size - 1,
        ..blob.clone()
    };
    let err = fx.store.get_range(&wrong, 0..10).await.unwrap_err();
    assert_eq!(err.category(), "integrity", "{err}");
    assert_eq!(
        fx.store.open_reader(&wrong).await.unwrap_err().category(),
        "integrity"
    );
    let err = collect(&fx.store, &wrong).await.unwrap_err();
    assert_eq!(err.category(), "integrity", "{err}");

    // Cut at a segment boundary: no possible length.
    let path = fx.stored_path(&blob.key);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..44 + 2 * (SEG + 16)]).unwrap();
    assert_eq!(
        fx.store.open_reader(&blob).await.unwrap_err().category(),
        "integrity"
    );
    assert_eq!(
        fx.store
            .get_range(&blob, 0..1)
            .await
            .unwrap_err()
            .category(),
        "integrity"
    );
    let err = collect(&fx.store, &blob).await.unwrap_err();
    assert_eq!(err.category(), "integrity", "{err}");
}

#[tokio::test]
async fn keys_ranges_missing_blobs_and_delete() {
    let fx = Fixture::new();
    let src = fx.dir.path().join("p");
    std::fs::write(&src, b"hello").unwrap();
    for bad in [
        "",
        "/etc/passwd",
        "../up",
        "a/../b",
        "a/..",
        "a\\b",
        "a//b",
        "a/./b",
        "a/",
        "a/\u{7}b",
    ] {
        let err = fx.store.put_file(bad, &src).await.unwrap_err();
        assert_eq!(err.category(), "invalid_key", "{bad:?}: {err}");
    }
    assert!(validate_key("tenants/t-1/datasets/0b7c/v12.parquet").is_ok());

    let stored = fx.store.put_file("a/b.bin", &src).await.unwrap();
    let blob = stored.blob_ref();
    let err = fx.store.get_range(&blob, 3..6).await.unwrap_err();
    assert_eq!(err.category(), "invalid_range", "{err}");
    #[allow(clippy::reversed_empty_ranges)]
    let reversed = 4..2;
    assert!(fx.store.get_range(&blob, reversed).await.is_err());
    assert_eq!(&fx.store.get_range(&blob, 1..4).await.unwrap()[..], b"ell");

    let missing_src = fx
        .store
        .put_file("a/c.bin", &fx.dir.path().join("nope"))
        .await;
    assert_eq!(missing_src.unwrap_err().category(), "io");

    fx.store.check().await.unwrap();
    fx.store.delete("a/b.bin").await.unwrap();
    fx.store.delete("a/b.bin").await.unwrap();
    fx.store.delete("never/was.bin").await.unwrap();
    assert!(!fx.stored_path("a/b.bin").exists());
    for err in [
        fx.store.get_range(&blob, 0..1).await.unwrap_err(),
        fx.store.open_reader(&blob).await.unwrap_err(),
        fx.store.get_stream(&blob).await.err().unwrap(),
    ] {
        assert_eq!(err.category(), "not_found", "{err}");
    }
}

#[tokio::test]
async fn range_reads_reuse_the_opener_and_see_new_versions() {
    let fx = Fixture::new();
    let key = "tenants/a/datasets/r/v1.parquet";
    let first = plaintext(2 * SEG + 9);
    let blob = fx.put(key, &first).await.blob_ref();
    let s = SEG as u64;
    assert_eq!(
        &fx.store.get_range(&blob, s..s + 4).await.unwrap()[..],
        &first[SEG..SEG + 4]
    );

    // The header is not read again: a damaged header goes unnoticed by this store's
    // next range read (the segments are still authenticated)…
    let path = fx.stored_path(key);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[0] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    assert_eq!(
        &fx.store.get_range(&blob, 0..4).await.unwrap()[..],
        &first[..4]
    );
    // …while a store without the cached opener reads the header and refuses it.
    let fresh = BlobStore::new(
        BlobBackend::Local {
            dir: fx.dir.path().join("blobs"),
        },
        KekRing::new(Kek::generate("unused").unwrap(), vec![]).unwrap(),
    )
    .unwrap();
    assert!(fresh.get_range(&blob, 0..4).await.is_err());
    // The recorded size is still checked on a cache hit.
    let wrong = BlobRef {
        plain_size: blob.plain_size + 1,
        ..blob.clone()
    };
    assert_eq!(
        fx.store
            .get_range(&wrong, 0..4)
            .await
            .unwrap_err()
            .category(),
        "integrity"
    );

    // Stored again under the same key: a new data key, so a new opener.
    let second = plaintext(3 * SEG)
        .into_iter()
        .map(|b| !b)
        .collect::<Vec<_>>();
    let blob2 = fx.put(key, &second).await.blob_ref();
    assert_ne!(blob2.wrapped_key, blob.wrapped_key);
    assert_eq!(
        &fx.store.get_range(&blob2, s..s + 4).await.unwrap()[..],
        &second[SEG..SEG + 4]
    );
    // The old reference no longer opens (its data key does not match the object).
    assert_eq!(
        fx.store
            .get_range(&blob, s..s + 4)
            .await
            .unwrap_err()
            .category(),
        "integrity"
    );
}

#[test]
fn debug_output_hides_secrets() {
    let backend = BlobBackend::S3 {
        endpoint: "http://127.0.0.1:3900".into(),
        bucket: "b".into(),
        region: "garage".into(),
        access_key_id: "GK123".into(),
        secret_access_key: "very-secret".into(),
    };
    let shown = format!("{backend:?}");
    assert!(!shown.contains("very-secret"), "{shown}");
    let store = BlobStore::new(backend, ring("k")).unwrap();
    assert!(!format!("{store:?}").contains("very-secret"));
}
