use super::*;
use crate::audit::{AuditLog, Draft, Outcome};
use crate::metrics::Metrics;
use chrono::TimeZone;
use serre_crypto::KekRing;

const HASH: &str = "5f1c0c4b2e0a7d35c1f0b8e2a3d4c5b6a7f8e9d0c1b2a3f4e5d6c7b8a9f0e1d2";

fn t() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 7, 2, 0, 0).unwrap()
}

#[test]
fn a_checkpoint_is_signed_as_documented_and_any_change_is_refused() {
    let signer = CertificateSigner::generate().unwrap();
    let signed = sign(&signer, 42, HASH, t() + chrono::Duration::milliseconds(700)).unwrap();
    // Signed bytes: the compact object, fields in order, time in whole seconds.
    assert_eq!(
        String::from_utf8(signed.checkpoint.canonical_bytes().unwrap()).unwrap(),
        format!(
            r#"{{"version":1,"issuer":"serre-api","seq":42,"hash":"{HASH}","time":"2026-12-07T02:00:00Z"}}"#
        )
    );
    let verifier = signer.verifier();
    assert_eq!(verify(&verifier, &signed).unwrap().seq, 42);
    // A rollback to an earlier head, or another hash, breaks the signature.
    let mut earlier = signed.clone();
    earlier.checkpoint.seq = 41;
    assert!(verify(&verifier, &earlier).is_err());
    let mut other = signed.clone();
    other.checkpoint.hash = HASH.replace('5', "6");
    assert!(verify(&verifier, &other).is_err());
    // Another key's checkpoint is refused by its key id.
    let stranger = CertificateSigner::generate().unwrap();
    let forged = sign(&stranger, 42, HASH, t()).unwrap();
    let err = verify(&verifier, &forged).unwrap_err().to_string();
    assert!(err.contains("key"), "{err}");
    // What cannot be reproduced byte for byte is never signed.
    assert!(sign(&signer, 0, HASH, t()).is_err());
    assert!(sign(&signer, 1, "ABC", t()).is_err());
    // The stored JSON reads back.
    let json = serde_json::to_string_pretty(&signed).unwrap();
    let back: SignedCheckpoint = serde_json::from_str(&json).unwrap();
    assert_eq!(back, signed);
}

fn local_store(dir: &std::path::Path) -> BlobStore {
    let kek = serre_crypto::Kek::from_base64("k1", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
        .unwrap();
    BlobStore::new(
        crate::blobs::BlobBackend::Local {
            dir: dir.to_path_buf(),
        },
        KekRing::new(kek, Vec::new()).unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn the_latest_checkpoint_is_the_highest_entry_published() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = local_store(dir.path());
    assert_eq!(latest(&blobs).await.unwrap(), None);
    let signer = CertificateSigner::generate().unwrap();
    for seq in [9, 120, 11] {
        publish(&blobs, &sign(&signer, seq, HASH, t()).unwrap())
            .await
            .unwrap();
    }
    let got = latest(&blobs).await.unwrap().expect("a checkpoint");
    assert_eq!(got.checkpoint.seq, 120);
    assert!(
        dir.path()
            .join("audit-checkpoints/00000000000000000120.json")
            .exists()
    );
}

#[tokio::test]
async fn a_truncated_or_rewritten_log_fails_against_its_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = local_store(&dir.path().join("blobs"));
    let url = format!("sqlite://{}", dir.path().join("db.sqlite").display());
    let store = Store::connect(&url, 2).await.unwrap();
    let (log, _task) = AuditLog::start(store.clone(), std::sync::Arc::new(Metrics::default()));
    let signer = CertificateSigner::generate().unwrap();
    // Nothing to sign in an empty log.
    assert_eq!(
        publish_head(&store, &blobs, &signer, None).await.unwrap(),
        None
    );
    let drafts = |n: usize| {
        (0..n)
            .map(|i| Draft::new("bob", "sandbox.read", format!("S::\"{i}\""), Outcome::Allow))
            .collect::<Vec<_>>()
    };
    log.append(drafts(5)).await.unwrap();
    assert_eq!(
        publish_head(&store, &blobs, &signer, None).await.unwrap(),
        Some(5)
    );
    // Unchanged head: nothing new.
    assert_eq!(
        publish_head(&store, &blobs, &signer, Some(5))
            .await
            .unwrap(),
        None
    );
    log.append(drafts(2)).await.unwrap();
    let anchors =
        |cp: &SignedCheckpoint| vec![(cp.checkpoint.seq as i64, cp.checkpoint.hash.clone())];
    let cp = latest(&blobs).await.unwrap().unwrap();
    verify(&signer.verifier(), &cp).unwrap();
    let ok = crate::audit::verify(&store, &anchors(&cp)).await.unwrap();
    assert_eq!((ok.entries, ok.broken), (7, None));

    // The tail is deleted, back past the checkpoint: the chain alone still verifies.
    store
        .execute_raw("DELETE FROM audit_log WHERE seq > 3")
        .await
        .unwrap();
    let alone = crate::audit::verify(&store, &[]).await.unwrap();
    assert_eq!(alone.broken, None);
    let r = crate::audit::verify(&store, &anchors(&cp)).await.unwrap();
    let broken = r.broken.expect("truncation detected");
    assert_eq!(broken.seq, 5);
    assert!(broken.reason.contains("log truncated"), "{}", broken.reason);
}
