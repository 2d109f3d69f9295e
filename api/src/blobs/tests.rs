//! The blob store on the Local backend, in a temp directory. The same round trip
//! against a real Garage is in `api/tests/gateway/blobs.rs`.

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

// ---- Range streams ------------------------------------------------------------------

/// The chunks of a range stream, or its first error with the chunks before it.
async fn range_chunks(
    store: &BlobStore,
    blob: &BlobRef,
    range: std::ops::Range<u64>,
) -> (Vec<Bytes>, Option<BlobError>) {
    let mut stream = match store.get_range_stream(blob, range).await {
        Ok(s) => s,
        Err(e) => return (vec![], Some(e)),
    };
    let mut chunks = vec![];
    while let Some(item) = stream.next().await {
        match item {
            Ok(c) => chunks.push(c),
            Err(e) => {
                assert!(
                    stream.next().await.is_none(),
                    "the stream goes on after {e}"
                );
                return (chunks, Some(e));
            }
        }
    }
    (chunks, None)
}

#[tokio::test]
async fn range_streams_are_exact_at_segment_boundaries() {
    let fx = Fixture::new();
    let s = SEG as u64;
    // A short final segment, and an empty one (length a multiple of the segment size).
    for len in [5 * SEG + 100, 4 * SEG] {
        let plain = plaintext(len);
        let key = format!("tenants/a/datasets/b{len}/v1.parquet");
        let blob = fx.put(&key, &plain).await.blob_ref();
        let l = len as u64;
        let ranges = [
            10..20,           // inside one segment
            s + 3..s + 9,     // inside one segment, not the first
            100..3 * s + 5,   // spanning many
            s - 1..3 * s + 1, // from a segment's last byte to the next one's first
            3 * s..l,         // from a boundary to the end
            s..2 * s,         // exactly one segment
            s..3 * s,         // boundary to boundary
            0..l,             // the whole blob: `bytes=0-`
            l / 2..l,         // ending exactly at the end
            0..1,             // one byte, first
            s - 1..s,         // one byte, last of a segment
            s..s + 1,         // one byte, first of a segment
            l - 1..l,         // one byte, last
            7..7,             // empty
        ];
        for r in ranges {
            let want = &plain[r.start as usize..r.end as usize];
            let (chunks, err) = range_chunks(&fx.store, &blob, r.clone()).await;
            assert!(err.is_none(), "len {len} {r:?}: {err:?}");
            assert_eq!(chunks.concat(), want, "len {len} {r:?}");
            // One chunk per segment holding bytes of the range, none empty, none longer
            // than a segment.
            let segments = if r.is_empty() {
                0
            } else {
                (r.end - 1) / s - r.start / s + 1
            };
            assert_eq!(chunks.len() as u64, segments, "len {len} {r:?}");
            assert!(chunks.iter().all(|c| !c.is_empty() && c.len() <= SEG));
            assert_eq!(
                &fx.store.get_range(&blob, r.clone()).await.unwrap()[..],
                want
            );
        }
        let past = range_chunks(&fx.store, &blob, l - 1..l + 1)
            .await
            .1
            .unwrap();
        assert_eq!(past.category(), "invalid_range", "{past}");
    }
}

#[tokio::test]
async fn range_stream_chunks_never_exceed_a_segment_and_input_is_pulled_lazily() {
    use serre_crypto::stream::{HEADER_LEN, TAG_LEN};
    use std::sync::atomic::{AtomicUsize, Ordering};

    let data_key = DataKey::generate().unwrap();
    let plain = plaintext(6 * SEG + 1234);
    let mut ct = Vec::new();
    serre_crypto::encrypt_to(&data_key, &plain[..], &mut ct).unwrap();
    let layout = EncryptedLayout::new(&ct[..HEADER_LEN], ct.len() as u64).unwrap();
    let opener = Arc::new(SegmentOpener::new(&data_key, &layout).unwrap());
    let l = plain.len() as u64;
    let (_, bytes) = layout.segments_for(0..l).unwrap();
    let body = Bytes::from(ct[bytes.start as usize..bytes.end as usize].to_vec());

    // The whole range arrives as one input chunk: the output is still cut per segment.
    let one = futures::stream::iter([Ok(body.clone())]);
    let chunks: Vec<Bytes> = range::decrypt_segments("k".into(), opener.clone(), 0..l, one)
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(chunks.len(), 7);
    assert!(chunks.iter().all(|c| c.len() <= SEG));
    assert_eq!(chunks.concat(), plain);

    // Small input chunks, counted as they are pulled: each output chunk needs at most
    // one more segment of input (plus the chunk it ends in), never the whole range.
    const IN: usize = 4096;
    let pulled = Arc::new(AtomicUsize::new(0));
    let counter = pulled.clone();
    let pieces: Vec<Bytes> = (0..body.len())
        .step_by(IN)
        .map(|at| body.slice(at..(at + IN).min(body.len())))
        .collect();
    let input = futures::stream::iter(pieces).map(move |c| {
        counter.fetch_add(c.len(), Ordering::SeqCst);
        Ok::<_, object_store::Error>(c)
    });
    let mut stream = range::decrypt_segments("k".into(), opener, 0..l, input).unwrap();
    let mut got = 0;
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        got += 1;
        assert!(
            pulled.load(Ordering::SeqCst) <= got * (SEG + TAG_LEN) + IN,
            "chunk {got}: {} bytes pulled",
            pulled.load(Ordering::SeqCst)
        );
        out.extend_from_slice(&chunk);
    }
    assert_eq!(out, plain);
}

#[tokio::test]
async fn tampering_ends_a_range_stream_at_the_modified_segment() {
    let fx = Fixture::new();
    let plain = plaintext(4 * SEG + 17);
    let blob = fx
        .put("tenants/a/datasets/t/v1.parquet", &plain)
        .await
        .blob_ref();
    let path = fx.stored_path(&blob.key);
    let mut bytes = std::fs::read(&path).unwrap();
    // A byte inside segment 2.
    bytes[44 + 2 * (SEG + 16) + 100] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();

    let s = SEG as u64;
    let l = plain.len() as u64;
    // Segments 0 and 1 go out verified; segment 2 fails and ends the stream.
    let (chunks, err) = range_chunks(&fx.store, &blob, 5..l).await;
    assert_eq!(chunks.concat(), &plain[5..2 * SEG]);
    let err = err.expect("the modified segment is detected");
    assert_eq!(err.category(), "integrity", "{err}");
    assert!(err.to_string().contains("segment 2"), "{err}");
    // Starting at the modified segment: nothing goes out.
    let (chunks, err) = range_chunks(&fx.store, &blob, 2 * s + 1..2 * s + 2).await;
    assert!(chunks.is_empty());
    assert_eq!(err.unwrap().category(), "integrity");
    // Ranges around it still read.
    for r in [0..2 * s, 3 * s..l] {
        let (chunks, err) = range_chunks(&fx.store, &blob, r.clone()).await;
        assert!(err.is_none(), "{r:?}: {err:?}");
        assert_eq!(chunks.concat(), &plain[r.start as usize..r.end as usize]);
    }
}

#[tokio::test]
async fn truncation_ends_or_refuses_a_range_stream() {
    use serre_crypto::stream::HEADER_LEN;

    let fx = Fixture::new();
    let plain = plaintext(3 * SEG + 17);
    let blob = fx
        .put("tenants/a/datasets/t/v1.parquet", &plain)
        .await
        .blob_ref();
    let l = plain.len() as u64;
    // The opener (with the object's length) is now cached.
    assert_eq!(
        &fx.store.get_range(&blob, 0..4).await.unwrap()[..],
        &plain[..4]
    );

    // Cut inside the final segment: the stored length no longer matches the cached
    // layout, so even a range far from the end is refused.
    let path = fx.stored_path(&blob.key);
    let whole = std::fs::read(&path).unwrap();
    std::fs::write(&path, &whole[..whole.len() - 5]).unwrap();
    for r in [0..10, 2 * SEG as u64..l, 0..l] {
        let (chunks, err) = range_chunks(&fx.store, &blob, r.clone()).await;
        assert!(chunks.is_empty(), "{r:?}");
        assert_eq!(err.unwrap().category(), "integrity", "{r:?}");
    }
    // Without the cached opener the new header and length are read: refused too.
    fx.store.inner.openers.lock().unwrap().clear();
    let (_, err) = range_chunks(&fx.store, &blob, 0..l).await;
    assert_eq!(err.unwrap().category(), "integrity");

    // Input that ends early (a cut connection): the segments before go out, then an
    // integrity error; the final segment is required even when it holds no plaintext.
    let data_key = fx.store.data_key(&blob).unwrap();
    let layout = EncryptedLayout::new(&whole[..HEADER_LEN], whole.len() as u64).unwrap();
    let opener = Arc::new(SegmentOpener::new(&data_key, &layout).unwrap());
    let (_, bytes) = layout.segments_for(0..l).unwrap();
    let body = Bytes::from(whole[bytes.start as usize..bytes.end as usize].to_vec());
    for cut in [1, 16, 17 + 16, SEG + 16 + 17 + 16] {
        let short = futures::stream::iter([Ok(body.slice(..body.len() - cut))]);
        let mut stream =
            range::decrypt_segments(blob.key.clone(), opener.clone(), 0..l, short).unwrap();
        let mut out = Vec::new();
        let err = loop {
            match stream.next().await {
                Some(Ok(c)) => out.extend_from_slice(&c),
                Some(Err(e)) => break e,
                None => panic!("cut {cut}: a truncated range read ended cleanly"),
            }
        };
        assert_eq!(err.category(), "integrity", "cut {cut}: {err}");
        assert!(
            out.len() < plain.len() && plain.starts_with(&out),
            "cut {cut}"
        );
        assert!(stream.next().await.is_none());
    }

    // A blob whose final segment is empty: a range to the end still needs its tag.
    let even = plaintext(2 * SEG);
    let blob = fx
        .put("tenants/a/datasets/e/v1.parquet", &even)
        .await
        .blob_ref();
    let whole = std::fs::read(fx.stored_path(&blob.key)).unwrap();
    let layout = EncryptedLayout::new(&whole[..HEADER_LEN], whole.len() as u64).unwrap();
    let opener = Arc::new(SegmentOpener::new(&fx.store.data_key(&blob).unwrap(), &layout).unwrap());
    let e = even.len() as u64;
    let (indices, bytes) = layout.segments_for(SEG as u64..e).unwrap();
    assert_eq!(indices, 1..3);
    let body = Bytes::from(whole[bytes.start as usize..bytes.end as usize - 16].to_vec());
    let short = futures::stream::iter([Ok(body)]);
    let results: Vec<_> = range::decrypt_segments(blob.key.clone(), opener, SEG as u64..e, short)
        .unwrap()
        .collect()
        .await;
    assert_eq!(results.len(), 2);
    assert_eq!(&results[0].as_ref().unwrap()[..], &even[SEG..]);
    assert_eq!(results[1].as_ref().unwrap_err().category(), "integrity");
}

#[tokio::test]
async fn a_store_error_mid_stream_ends_the_range_stream() {
    use serre_crypto::stream::HEADER_LEN;

    let fx = Fixture::new();
    let plain = plaintext(3 * SEG);
    let blob = fx
        .put("tenants/a/datasets/s/v1.parquet", &plain)
        .await
        .blob_ref();
    let whole = std::fs::read(fx.stored_path(&blob.key)).unwrap();
    let layout = EncryptedLayout::new(&whole[..HEADER_LEN], whole.len() as u64).unwrap();
    let opener = Arc::new(SegmentOpener::new(&fx.store.data_key(&blob).unwrap(), &layout).unwrap());
    let first = Bytes::from(whole[HEADER_LEN..HEADER_LEN + SEG + 16].to_vec());
    let input = futures::stream::iter([
        Ok(first),
        Err(object_store::Error::Generic {
            store: "test",
            source: "connection reset".into(),
        }),
    ]);
    let results: Vec<_> =
        range::decrypt_segments(blob.key.clone(), opener, 0..plain.len() as u64, input)
            .unwrap()
            .collect()
            .await;
    assert_eq!(results.len(), 2);
    assert_eq!(&results[0].as_ref().unwrap()[..], &plain[..SEG]);
    assert_eq!(results[1].as_ref().unwrap_err().category(), "store");
}
