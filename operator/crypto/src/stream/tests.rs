//! Round trips through the sync and async paths, and every tampering we can think of:
//! each must be an error, and no byte of the bad segment (or after it) may come out.

use std::convert::Infallible;
use std::io::{Read, Write};

use bytes::Bytes;
use futures::StreamExt;
use futures::executor::block_on;

use super::*;

const SEG: usize = SEGMENT_SIZE;
const FULL: usize = SEGMENT_SIZE + TAG_LEN;

fn key(byte: u8) -> DataKey {
    DataKey::from_bytes([byte; KEY_LEN])
}

/// Deterministic, non-repeating-looking plaintext.
fn plaintext(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9 ^ len as u32;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}

/// Encrypt with `EncryptWriter`, in uneven writes to exercise buffering.
fn encrypt_sync(key: &DataKey, data: &[u8]) -> Vec<u8> {
    let mut enc = EncryptWriter::new(Vec::new(), key).expect("writer");
    for chunk in data.chunks(7919) {
        enc.write_all(chunk).expect("write");
    }
    enc.finish().expect("finish")
}

fn encrypt_async(key: &DataKey, data: &[u8]) -> Vec<u8> {
    let chunks: Vec<Result<Bytes, Infallible>> = data
        .chunks(100_003)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let out = encrypt_stream(key, futures::stream::iter(chunks)).expect("stream");
    let parts: Vec<Bytes> = block_on(out.collect::<Vec<_>>())
        .into_iter()
        .collect::<Result<_>>()
        .expect("encrypt");
    parts.concat()
}

/// What a `Read` consumer saw: the bytes released before the outcome.
fn decrypt_sync(key: &DataKey, ct: &[u8]) -> (Vec<u8>, Result<()>) {
    let mut reader = match DecryptReader::new(ct, key) {
        Ok(r) => r,
        Err(e) => return (Vec::new(), Err(e)),
    };
    let mut out = Vec::new();
    let mut buf = vec![0u8; 5003];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => return (out, Ok(())),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) => return (out, Err(e.into())),
        }
    }
}

/// `decrypt_to`: what reached the writer, and the outcome.
fn decrypt_sync_to(key: &DataKey, ct: &[u8]) -> (Vec<u8>, Result<()>) {
    let mut out = Vec::new();
    let res = decrypt_to(key, ct, &mut out).map(|n| assert_eq!(n, out.len() as u64));
    (out, res)
}

/// The async path, fed in chunks that straddle segment boundaries.
fn decrypt_async(key: &DataKey, ct: &[u8]) -> (Vec<u8>, Result<()>) {
    let chunks: Vec<Result<Bytes, Infallible>> = ct
        .chunks(4099)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let items = block_on(decrypt_stream(key, futures::stream::iter(chunks)).collect::<Vec<_>>());
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match item {
            Ok(b) => {
                assert!(!b.is_empty(), "empty chunks are not emitted");
                out.extend_from_slice(b);
            }
            Err(_) => {
                assert_eq!(i, items.len() - 1, "an error is the last item");
            }
        }
    }
    let res = match items.into_iter().last() {
        Some(Err(e)) => Err(e),
        _ => Ok(()),
    };
    (out, res)
}

type Decryptor = fn(&DataKey, &[u8]) -> (Vec<u8>, Result<()>);
const DECRYPTORS: [(&str, Decryptor); 3] = [
    ("read", decrypt_sync),
    ("decrypt_to", decrypt_sync_to),
    ("stream", decrypt_async),
];

/// Every decryptor fails on `ct`, with an error `check` accepts, having released
/// exactly the first `released_segments` segments of `original`.
fn assert_rejected(
    what: &str,
    key: &DataKey,
    ct: &[u8],
    original: &[u8],
    released_segments: usize,
    check: impl Fn(&CryptoError) -> bool,
) {
    for (path, decrypt) in DECRYPTORS {
        let (out, res) = decrypt(key, ct);
        let err = match res {
            Ok(()) => panic!("{what} [{path}]: decrypted without error"),
            Err(e) => e,
        };
        assert!(check(&err), "{what} [{path}]: unexpected error {err:?}");
        let released = (released_segments * SEG).min(original.len());
        assert_eq!(
            out.len(),
            released,
            "{what} [{path}]: released {} bytes, expected {released}",
            out.len()
        );
        assert!(
            out == original[..released],
            "{what} [{path}]: released bytes differ"
        );
    }
}

fn is_auth(segment: u64) -> impl Fn(&CryptoError) -> bool {
    move |e| matches!(e, CryptoError::SegmentAuth { segment: s } if *s == segment)
}

fn is_truncated(e: &CryptoError) -> bool {
    matches!(e, CryptoError::Truncated(_))
}

/// Byte range of segment `i` inside a ciphertext.
fn segment_range(i: usize, ct_len: usize) -> std::ops::Range<usize> {
    let start = HEADER_LEN + i * FULL;
    start..(start + FULL).min(ct_len)
}

#[test]
fn round_trips_sync_and_async() {
    let key = key(1);
    let sizes = [0, 1, SEG - 1, SEG, SEG + 1, 2 * SEG, 5 * 1024 * 1024 + 13];
    for len in sizes {
        let data = plaintext(len);
        for (enc_path, ct) in [
            ("writer", encrypt_sync(&key, &data)),
            ("stream", encrypt_async(&key, &data)),
        ] {
            assert_eq!(ct.len() as u64, ciphertext_len(len as u64), "len {len}");
            assert_eq!(plaintext_len(ct.len() as u64).expect("valid"), len as u64);
            for (dec_path, decrypt) in DECRYPTORS {
                let (out, res) = decrypt(&key, &ct);
                assert!(res.is_ok(), "{enc_path}->{dec_path} len {len}: {res:?}");
                assert!(
                    out == data,
                    "{enc_path}->{dec_path} len {len}: plaintext differs"
                );
            }
        }
        // encrypt_to reads straight into the segment buffer: same format.
        let mut ct = Vec::new();
        let n = encrypt_to(&key, data.as_slice(), &mut ct).expect("encrypt_to");
        assert_eq!(n, len as u64);
        assert_eq!(decrypt_sync(&key, &ct).0, data);
    }
}

#[test]
fn empty_object_is_header_plus_one_empty_final_segment() {
    let ct = encrypt_sync(&key(1), b"");
    assert_eq!(ct.len(), HEADER_LEN + TAG_LEN);
    assert_eq!(&ct[..6], b"SERREC");
    assert_eq!(ct[6], FORMAT_VERSION);
    assert_eq!(&ct[8..12], &(SEG as u32).to_be_bytes());
}

#[test]
fn same_plaintext_encrypts_differently_each_time() {
    let key = key(1);
    let data = plaintext(1000);
    let a = encrypt_sync(&key, &data);
    let b = encrypt_sync(&key, &data);
    assert_ne!(a[12..HEADER_LEN], b[12..HEADER_LEN], "fresh salt");
    assert_ne!(a[HEADER_LEN..], b[HEADER_LEN..]);
}

#[test]
fn length_helpers() {
    assert_eq!(ciphertext_len(0), (HEADER_LEN + TAG_LEN) as u64);
    assert_eq!(
        ciphertext_len(SEG as u64),
        (HEADER_LEN + FULL + TAG_LEN) as u64
    );
    for bad in [0, HEADER_LEN as u64, (HEADER_LEN + TAG_LEN - 1) as u64] {
        assert!(matches!(
            plaintext_len(bad),
            Err(CryptoError::InvalidLength(_))
        ));
    }
    // One full segment and a final segment shorter than a tag: impossible.
    assert!(plaintext_len((HEADER_LEN + FULL + 5) as u64).is_err());
    for n in [0u64, 1, 65_535, 65_536, 65_537, 1 << 30, 1 << 40] {
        assert_eq!(plaintext_len(ciphertext_len(n)).expect("valid"), n);
    }
    assert_eq!(ciphertext_len(u64::MAX), u64::MAX);
}

#[test]
fn flipped_bit_in_header() {
    let key = key(1);
    let data = plaintext(2 * SEG + 100);
    let ct = encrypt_sync(&key, &data);
    for i in 0..HEADER_LEN {
        let mut bad = ct.clone();
        bad[i] ^= 0x04;
        assert_rejected(&format!("header byte {i}"), &key, &bad, &data, 0, |e| {
            matches!(
                e,
                CryptoError::BadMagic
                    | CryptoError::UnsupportedVersion(_)
                    | CryptoError::UnsupportedAlgorithm(_)
                    | CryptoError::InvalidSegmentSize(_)
                    | CryptoError::SegmentAuth { segment: 0 }
            )
        });
    }
}

#[test]
fn header_segment_size_change_is_detected() {
    // A valid-looking, different segment size still changes the derived key.
    let key = key(1);
    let data = plaintext(3 * SEG);
    let mut ct = encrypt_sync(&key, &data);
    ct[8..12].copy_from_slice(&((SEG / 2) as u32).to_be_bytes());
    assert_rejected("segment size", &key, &ct, &data, 0, is_auth(0));
}

#[test]
fn flipped_bit_in_segment_body_and_tag() {
    let key = key(1);
    let data = plaintext(3 * SEG + 500);
    let ct = encrypt_sync(&key, &data);
    for seg in 0..4 {
        let range = segment_range(seg, ct.len());
        for (what, offset) in [
            ("first body byte", range.start),
            ("last body byte", range.end - TAG_LEN - 1),
            ("first tag byte", range.end - TAG_LEN),
            ("last tag byte", range.end - 1),
        ] {
            let mut bad = ct.clone();
            bad[offset] ^= 0x01;
            let label = format!("segment {seg} {what}");
            assert_rejected(&label, &key, &bad, &data, seg, is_auth(seg as u64));
        }
    }
}

#[test]
fn truncation_mid_segment() {
    let key = key(1);
    let data = plaintext(3 * SEG + 500);
    let ct = encrypt_sync(&key, &data);
    // Inside segment 1: read as a short "final" segment, which fails its tag.
    let cut = HEADER_LEN + FULL + 1000;
    assert_rejected("cut in segment 1", &key, &ct[..cut], &data, 1, is_auth(1));
    // Last byte of the final tag missing.
    assert_rejected(
        "cut last byte",
        &key,
        &ct[..ct.len() - 1],
        &data,
        3,
        is_auth(3),
    );
    // Fewer bytes than a tag after a boundary.
    let cut = HEADER_LEN + FULL + 5;
    assert_rejected(
        "cut after boundary",
        &key,
        &ct[..cut],
        &data,
        1,
        is_truncated,
    );
    // Inside the header, and nothing at all.
    assert_rejected("cut in header", &key, &ct[..20], &data, 0, is_truncated);
    assert_rejected("empty input", &key, &[], &data, 0, is_truncated);
    // Header only: the final segment is missing.
    assert_rejected(
        "header only",
        &key,
        &ct[..HEADER_LEN],
        &data,
        0,
        is_truncated,
    );
}

#[test]
fn truncation_at_segment_boundary() {
    let key = key(1);
    // Final segment with data: drop it.
    let data = plaintext(2 * SEG + 7);
    let ct = encrypt_sync(&key, &data);
    let cut = HEADER_LEN + 2 * FULL;
    assert_eq!(ct.len(), cut + 7 + TAG_LEN);
    // Segments 0 and 1 are genuine and come out; the end is never reported.
    assert_rejected(
        "final segment removed",
        &key,
        &ct[..cut],
        &data,
        2,
        is_truncated,
    );
    let cut = HEADER_LEN + FULL;
    assert_rejected(
        "two segments removed",
        &key,
        &ct[..cut],
        &data,
        1,
        is_truncated,
    );

    // Multiple of the segment size: the final segment is empty; drop it.
    let data = plaintext(2 * SEG);
    let ct = encrypt_sync(&key, &data);
    assert_eq!(ct.len(), HEADER_LEN + 2 * FULL + TAG_LEN);
    let cut = ct.len() - TAG_LEN;
    assert_rejected(
        "empty final removed",
        &key,
        &ct[..cut],
        &data,
        2,
        is_truncated,
    );
}

#[test]
fn unfinished_writer_leaves_a_truncated_object() {
    let key = key(1);
    let data = plaintext(SEG + 10);
    let mut enc = EncryptWriter::new(Vec::new(), &key).expect("writer");
    enc.write_all(&data).expect("write");
    let ct = enc.inner.clone(); // what reached storage before a crash
    assert_rejected("no finish", &key, &ct, &data, 1, is_truncated);
}

#[test]
fn trailing_data_is_rejected() {
    let key = key(1);
    let data = plaintext(SEG + 10);
    let ct = encrypt_sync(&key, &data);
    let mut longer = ct.clone();
    longer.extend_from_slice(&[0u8; TAG_LEN]);
    assert_rejected("16 bytes appended", &key, &longer, &data, 1, is_auth(1));
    // A whole copy of the object appended.
    let mut doubled = ct.clone();
    doubled.extend_from_slice(&ct);
    assert_rejected("object appended", &key, &doubled, &data, 1, is_auth(1));
}

#[test]
fn swapped_segments() {
    let key = key(1);
    let data = plaintext(3 * SEG + 500);
    let ct = encrypt_sync(&key, &data);
    let (s0, s1) = (segment_range(0, ct.len()), segment_range(1, ct.len()));
    let mut bad = ct.clone();
    bad[s0.clone()].copy_from_slice(&ct[s1.clone()]);
    bad[s1].copy_from_slice(&ct[s0]);
    assert_rejected("0<->1", &key, &bad, &data, 0, is_auth(0));

    // Final segment moved before the last full one (same total length).
    let mut reordered = ct[..HEADER_LEN + FULL].to_vec();
    reordered.extend_from_slice(&ct[segment_range(3, ct.len())]);
    reordered.extend_from_slice(&ct[segment_range(1, ct.len())]);
    reordered.extend_from_slice(&ct[segment_range(2, ct.len())]);
    assert_rejected("final moved up", &key, &reordered, &data, 1, is_auth(1));
}

#[test]
fn segment_spliced_from_another_object_with_the_same_key() {
    let key = key(1);
    let data_a = plaintext(3 * SEG + 500);
    let data_b = plaintext(3 * SEG + 501);
    let a = encrypt_sync(&key, &data_a);
    let b = encrypt_sync(&key, &data_b);
    let s1 = segment_range(1, a.len());
    let mut spliced = a.clone();
    spliced[s1.clone()].copy_from_slice(&b[s1]);
    assert_rejected("b's segment 1 in a", &key, &spliced, &data_a, 1, is_auth(1));

    // b's header on a's segments.
    let mut rehead = a.clone();
    rehead[..HEADER_LEN].copy_from_slice(&b[..HEADER_LEN]);
    assert_rejected("b's header on a", &key, &rehead, &data_a, 0, is_auth(0));

    // a's final segment replaced by b's final segment of the same length.
    let data_c = plaintext(3 * SEG + 500);
    let c = encrypt_sync(&key, &data_c);
    let last = segment_range(3, a.len());
    let mut spliced = a.clone();
    spliced[last.clone()].copy_from_slice(&c[last]);
    assert_rejected("c's final in a", &key, &spliced, &data_a, 3, is_auth(3));
}

#[test]
fn wrong_data_key() {
    let data = plaintext(SEG + 1);
    let ct = encrypt_sync(&key(1), &data);
    assert_rejected("wrong key", &key(2), &ct, &data, 0, is_auth(0));
    let ct = encrypt_sync(&key(1), b"");
    assert_rejected("wrong key, empty", &key(2), &ct, b"", 0, is_auth(0));
}

#[test]
fn reader_stays_failed_and_writer_poisons() {
    let key = key(1);
    let data = plaintext(10);
    let mut ct = encrypt_sync(&key, &data);
    let last = ct.len() - 1;
    ct[last] ^= 1;
    let mut reader = DecryptReader::new(ct.as_slice(), &key).expect("header ok");
    let mut buf = [0u8; 64];
    assert!(reader.read(&mut buf).is_err());
    assert!(
        buf.iter().all(|&b| b == 0),
        "nothing written into the caller's buffer"
    );
    let again = reader.read(&mut buf).map_err(CryptoError::from);
    assert!(matches!(again, Err(CryptoError::Poisoned)), "{again:?}");
}

#[test]
fn upstream_errors_end_the_streams() {
    let key = key(1);
    let input = futures::stream::iter(vec![
        Ok(Bytes::from(plaintext(SEG + 3))),
        Err(std::io::Error::other("disk on fire")),
    ]);
    let items = block_on(
        encrypt_stream(&key, input)
            .expect("stream")
            .collect::<Vec<_>>(),
    );
    // header, segment 0, then the error; never a final segment.
    assert_eq!(items.len(), 3);
    assert!(matches!(items.last(), Some(Err(CryptoError::Upstream(_)))));

    let ct = encrypt_sync(&key, &plaintext(10));
    let input = futures::stream::iter(vec![
        Ok(Bytes::copy_from_slice(&ct[..HEADER_LEN + 4])),
        Err(std::io::Error::other("connection reset")),
    ]);
    let items = block_on(decrypt_stream(&key, input).collect::<Vec<_>>());
    assert_eq!(items.len(), 1);
    assert!(matches!(items[0], Err(CryptoError::Upstream(_))));
}

#[test]
fn memory_is_one_segment() {
    let key = key(1);
    let data = plaintext(4 * SEG + 3);
    let mut enc = EncryptWriter::new(Vec::new(), &key).expect("writer");
    enc.write_all(&data).expect("write");
    assert!(enc.buf.capacity() <= FULL);
    let ct = enc.finish().expect("finish");
    let mut reader = DecryptReader::new(ct.as_slice(), &key).expect("reader");
    std::io::copy(&mut reader, &mut std::io::sink()).expect("copy");
    assert!(reader.buf.capacity() <= FULL);
}

#[test]
fn header_rejects_out_of_range_segment_sizes() {
    let mut header = Header::random().expect("rng").encode();
    for size in [0u32, 1023, (1 << 20) + 1, u32::MAX] {
        header[8..12].copy_from_slice(&size.to_be_bytes());
        assert!(matches!(
            Header::decode(&header),
            Err(CryptoError::InvalidSegmentSize(s)) if s == size
        ));
    }
    assert!(matches!(
        Header::decode(b"hello"),
        Err(CryptoError::BadMagic)
    ));
    assert!(matches!(
        Header::decode(b"SERR"),
        Err(CryptoError::Truncated(_))
    ));
}
