use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::TimeZone;

use super::*;

fn certificate() -> DeletionCertificate {
    DeletionCertificate {
        version: CERTIFICATE_VERSION,
        sandbox: "sbx-42".into(),
        tenant: "acme".into(),
        // Characters JSON tools could escape differently, to prove they don't.
        bucket: r#"serre-acme/"quoted"\back<>&'"#.into(),
        objects_removed: 1234,
        bytes_removed: MAX_COUNT,
        key_id_destroyed: "wk-0123456789abcdef".into(),
        started_at: Utc
            .with_ymd_and_hms(2025, 3, 1, 9, 0, 0)
            .single()
            .expect("date"),
        completed_at: Utc
            .with_ymd_and_hms(2025, 3, 1, 9, 0, 7)
            .single()
            .expect("date"),
        issuer: "serre-operator/test".into(),
    }
}

fn signer() -> CertificateSigner {
    CertificateSigner::from_bytes(&[7u8; 32])
}

#[test]
fn canonical_bytes_are_fixed() {
    let bytes = certificate().canonical_bytes().expect("valid");
    let expected = concat!(
        r#"{"version":1,"sandbox":"sbx-42","tenant":"acme","#,
        r#""bucket":"serre-acme/\"quoted\"\\back<>&'","objectsRemoved":1234,"#,
        r#""bytesRemoved":9007199254740991,"keyIdDestroyed":"wk-0123456789abcdef","#,
        r#""startedAt":"2025-03-01T09:00:00Z","completedAt":"2025-03-01T09:00:07Z","#,
        r#""issuer":"serre-operator/test"}"#
    );
    assert_eq!(String::from_utf8(bytes).expect("utf8"), expected);
}

#[test]
fn sign_and_verify_round_trip() {
    let signer = signer();
    let signed = signer.sign(&certificate()).expect("sign");
    assert_eq!(signed.key_id, signer.key_id());
    assert!(signer.key_id().starts_with("ed25519:") && signer.key_id().len() == 24);
    let json = signed.to_json_pretty().expect("json");
    let verifier = CertificateVerifier::from_public_key_pem(&signer.public_key_pem().expect("pem"))
        .expect("load pem");
    assert_eq!(
        verifier.verify_json(&json).expect("verifies"),
        certificate()
    );
    // Compact form verifies too.
    let compact = serde_json::to_string(&signed).expect("json");
    verifier.verify_json(&compact).expect("compact verifies");
}

#[test]
fn sub_seconds_are_dropped_before_signing() {
    let mut cert = certificate();
    cert.completed_at += chrono::Duration::milliseconds(250);
    let signed = signer().sign(&cert).expect("sign");
    assert_eq!(signed.certificate, certificate());
    signer().verifier().verify(&signed).expect("verifies");
}

/// Every single-byte change of the stored document, certificate or signature or key
/// id, makes verification fail.
#[test]
fn any_changed_byte_fails() {
    let signer = signer();
    let verifier = signer.verifier();
    let json = serde_json::to_string(&signer.sign(&certificate()).expect("sign")).expect("json");
    verifier.verify_json(&json).expect("original verifies");
    let bytes = json.as_bytes();
    for i in 0..bytes.len() {
        for mask in [0x01u8, 0x20] {
            let mut bad = bytes.to_vec();
            bad[i] ^= mask;
            let Ok(text) = String::from_utf8(bad) else {
                continue;
            };
            assert!(
                verifier.verify_json(&text).is_err(),
                "byte {i} ({:?}) ^ {mask:#x} still verifies",
                bytes[i] as char
            );
        }
    }
}

#[test]
fn changed_certificate_or_signature_fails_with_the_right_error() {
    let signer = signer();
    let verifier = signer.verifier();
    let signed = signer.sign(&certificate()).expect("sign");

    let mut more = signed.clone();
    more.certificate.objects_removed += 1;
    assert!(matches!(
        verifier.verify(&more),
        Err(CryptoError::BadSignature)
    ));

    let mut sig = B64.decode(&signed.signature).expect("b64");
    sig[10] ^= 1;
    let mut bad_sig = signed.clone();
    bad_sig.signature = B64.encode(&sig);
    assert!(matches!(
        verifier.verify(&bad_sig),
        Err(CryptoError::BadSignature)
    ));

    let other = CertificateSigner::from_bytes(&[8u8; 32]).verifier();
    assert!(matches!(
        other.verify(&signed),
        Err(CryptoError::KeyIdMismatch { .. })
    ));
    let mut relabelled = signed.clone();
    relabelled.key_id = other.key_id().to_owned();
    assert!(matches!(
        other.verify(&relabelled),
        Err(CryptoError::BadSignature)
    ));
}

#[test]
fn invalid_certificates_are_refused() {
    let signer = signer();
    type Change = Box<dyn Fn(&mut DeletionCertificate)>;
    let cases: Vec<(&str, Change)> = vec![
        ("version", Box::new(|c| c.version = 2)),
        ("empty sandbox", Box::new(|c| c.sandbox.clear())),
        ("non-ASCII", Box::new(|c| c.tenant = "acmé".into())),
        ("control char", Box::new(|c| c.issuer = "a\nb".into())),
        ("DEL", Box::new(|c| c.bucket = "a\u{7f}".into())),
        ("count", Box::new(|c| c.objects_removed = MAX_COUNT + 1)),
        (
            "order",
            Box::new(|c| c.completed_at = c.started_at - chrono::Duration::seconds(1)),
        ),
    ];
    for (what, change) in cases {
        let mut cert = certificate();
        change(&mut cert);
        assert!(
            matches!(signer.sign(&cert), Err(CryptoError::InvalidCertificate(_))),
            "{what}"
        );
    }
    // Unknown fields and non-canonical timestamps do not parse.
    let json = signer.sign(&certificate()).expect("sign");
    let json = serde_json::to_string(&json).expect("json");
    for (from, to) in [
        (r#""issuer""#, r#""extra":1,"issuer""#),
        ("09:00:07Z", "09:00:07.000Z"),
        ("2025-03-01T09:00:07Z", "2025-03-01T09:00:07+00:00"),
        ("2025-03-01T09:00:00Z", "2025-3-01T09:00:00Z"),
    ] {
        let bad = json.replacen(from, to, 1);
        assert_ne!(bad, json);
        assert!(signer.verifier().verify_json(&bad).is_err(), "{to}");
    }
}

#[test]
fn key_loading() {
    let signer = signer();
    let pem = signer.to_pkcs8_pem().expect("pem");
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
    assert_eq!(
        CertificateSigner::load(&pem).expect("pem").key_id(),
        signer.key_id()
    );
    let b64 = B64.encode([7u8; 32]);
    assert_eq!(
        CertificateSigner::load(&format!("{b64}\n"))
            .expect("b64")
            .key_id(),
        signer.key_id()
    );
    assert!(CertificateSigner::from_base64(&B64.encode([7u8; 31])).is_err());
    assert!(
        CertificateSigner::from_pkcs8_pem(
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"
        )
        .is_err()
    );
    assert!(!format!("{signer:?}").contains(&b64));
    let public = signer.public_key_pem().expect("spki");
    assert!(public.starts_with("-----BEGIN PUBLIC KEY-----"));
    let raw = *signer.verifier().key.as_bytes();
    assert_eq!(
        CertificateVerifier::from_bytes(&raw).expect("raw").key_id(),
        signer.key_id()
    );
}

fn have(tool: &str) -> bool {
    Command::new(tool).arg("--version").output().is_ok()
        || Command::new(tool).arg("version").output().is_ok()
}

fn scratch_dir() -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!("serre-cert-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn sh(dir: &Path, script: &str) -> std::process::Output {
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .output()
        .expect("run sh")
}

/// The documented verification, run as documented: `jq` + `base64` + `openssl`, no
/// Serre. Also the other way round: a key made by openssl loads here, and a
/// signature made by openssl over the extracted payload verifies here.
#[test]
fn openssl_verifies_without_serre() {
    // A check that cannot run fails: deploy/dev/test.sh installs openssl (and jq).
    assert!(
        have("openssl"),
        "no `openssl` binary on PATH: install Debian's openssl (deploy/dev/test.sh does)"
    );
    let dir = scratch_dir();
    let out = sh(
        &dir,
        "openssl genpkey -algorithm ed25519 -out serre-signing.pem && openssl pkey -in serre-signing.pem -pubout -out serre-signing.pub.pem",
    );
    assert!(
        out.status.success(),
        "openssl genpkey: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).expect("read");
    let signer = CertificateSigner::load(&read("serre-signing.pem")).expect("openssl PKCS#8 key");
    assert_eq!(
        signer.public_key_pem().expect("spki"),
        read("serre-signing.pub.pem")
    );

    let signed = signer.sign(&certificate()).expect("sign");
    std::fs::write(
        dir.join("deletion-certificate.json"),
        signed.to_json_pretty().expect("json"),
    )
    .expect("write");

    // Extract payload and signature with jq, as documented (a check that cannot run fails).
    assert!(
        have("jq"),
        "no `jq` binary on PATH: install Debian's jq (deploy/dev/test.sh does)"
    );
    let out = sh(
        &dir,
        "jq -cj .certificate deletion-certificate.json > payload.json && jq -r .signature deletion-certificate.json | base64 -d > sig.bin",
    );
    assert!(
        out.status.success(),
        "jq/base64: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let payload = std::fs::read(dir.join("payload.json")).expect("payload");
    assert_eq!(
        String::from_utf8_lossy(&payload),
        String::from_utf8_lossy(&certificate().canonical_bytes().expect("canonical")),
        "jq reproduces the signed bytes"
    );
    let verify = "openssl pkeyutl -verify -pubin -inkey serre-signing.pub.pem -rawin -in payload.json -sigfile sig.bin";
    let out = sh(&dir, verify);
    assert!(
        out.status.success(),
        "openssl verify: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("Signature Verified Successfully"));

    // One changed byte in the payload: openssl refuses too.
    let mut payload = std::fs::read(dir.join("payload.json")).expect("payload");
    let pos = payload.len() / 2;
    payload[pos] ^= 0x01;
    std::fs::write(dir.join("payload.json"), &payload).expect("write");
    assert!(
        !sh(&dir, verify).status.success(),
        "tampered payload must not verify"
    );

    // openssl signs the canonical bytes; Serre verifies.
    std::fs::write(
        dir.join("payload.json"),
        certificate().canonical_bytes().expect("c"),
    )
    .expect("write");
    let out = sh(
        &dir,
        "openssl pkeyutl -sign -inkey serre-signing.pem -rawin -in payload.json -out openssl-sig.bin",
    );
    assert!(
        out.status.success(),
        "openssl sign: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sig = std::fs::read(dir.join("openssl-sig.bin")).expect("sig");
    let by_openssl = SignedCertificate {
        certificate: certificate(),
        signature: B64.encode(sig),
        key_id: signer.key_id().to_owned(),
    };
    signer
        .verifier()
        .verify(&by_openssl)
        .expect("openssl signature verifies in Serre");
    assert_eq!(
        by_openssl.signature, signed.signature,
        "Ed25519 is deterministic"
    );

    let _ = std::fs::remove_dir_all(&dir);
}

/// The example in docs/storage-crypto.md verifies (made with openssl alone).
#[test]
fn documented_example_verifies() {
    let public = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAm6r5gNfcFogVJGzGPzPHUSsFdby4lkwi7K4pPqTHHaQ=\n-----END PUBLIC KEY-----\n";
    let document = r#"{
  "certificate": {
    "version": 1,
    "sandbox": "sbx-42",
    "tenant": "acme",
    "bucket": "serre-acme",
    "objectsRemoved": 1234,
    "bytesRemoved": 5368709120,
    "keyIdDestroyed": "wk-5b0c3e9d2a7f4168",
    "startedAt": "2025-03-01T09:00:00Z",
    "completedAt": "2025-03-01T09:00:07Z",
    "issuer": "serre-operator/paris-1"
  },
  "signature": "SQwBwLQLrDfKnMI8y3K5aQI3z+3v1xprDZS6FaHTTHbdyGj78Uu6r68So5ibjnMO50YUcfYSn7UP3CGt9VqdAg==",
  "keyId": "ed25519:166a17a746045da9"
}"#;
    let verifier = CertificateVerifier::from_public_key_pem(public).expect("pem");
    assert_eq!(verifier.key_id(), "ed25519:166a17a746045da9");
    let cert = verifier
        .verify_json(document)
        .expect("documented example verifies");
    assert_eq!(cert.bytes_removed, 5_368_709_120);
    let forged = document.replace("\"objectsRemoved\": 1234", "\"objectsRemoved\": 1235");
    assert!(matches!(
        verifier.verify_json(&forged),
        Err(CryptoError::BadSignature)
    ));
}
