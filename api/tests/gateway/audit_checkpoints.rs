//! Signed audit checkpoints, end to end: the gateway publishes its chain's head to the
//! object store; `serre-api audit verify` checks the database against the latest one, so
//! a truncated tail or a log rewritten from scratch fails; a third party checks a
//! checkpoint with jq and openssl alone; `--after` and `--tenant` exports verify.

mod support;

use std::path::Path;
use std::process::Command;

use serre_api::audit::entry_hash;
use serre_api::store::Store;
use support::{Backend, Gateway, Setup, sandbox_body};

const EE_DATA: &[&str] = &["est-ensemble-data"];
const MONTREUIL_DATA: &[&str] = &["montreuil-data"];

fn serre_api(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_serre-api"))
        .args(args)
        .output()
        .expect("run serre-api");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn sh(dir: &Path, script: &str) -> (bool, String) {
    let out = Command::new("sh")
        .args(["-c", script])
        .current_dir(dir)
        .output()
        .expect("run sh");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

both_backends!(checkpoints_detect_truncation_and_rewriting);

async fn checkpoints_detect_truncation_and_rewriting(backend: Backend) {
    let mut setup = Setup::local(support::fresh_database(backend).await);
    setup.extra = vec!["--audit-checkpoint-interval".into(), "1s".into()];
    let gw = Gateway::start(setup).await;
    let bob = gw.token("bob", EE_DATA);
    let paula = gw.token("paula", MONTREUIL_DATA);
    for (token, tenant, name) in [
        (&bob, "est-ensemble", "a"),
        (&paula, "montreuil", "b"),
        (&bob, "est-ensemble", "c"),
    ] {
        let (s, v) = gw
            .call(
                "POST",
                "/v1/sandboxes",
                Some(token),
                Some(sandbox_body(tenant, name, 10)),
            )
            .await;
        assert_eq!(s, 201, "{v}");
    }
    let checkpoints = gw.data_dir.join("datasets/audit-checkpoints");
    // The gateway publishes while it runs, not only when it stops.
    support::eventually(
        30,
        "a checkpoint published by the running gateway",
        || async {
            std::fs::read_dir(&checkpoints)
                .ok()?
                .next()
                .is_some()
                .then_some(())
        },
    )
    .await;
    let url = gw.database_url.clone();
    let dir = gw.data_dir.display().to_string();
    gw.stop().await;
    let db = ["--data-dir", dir.as_str(), "--database-url", url.as_str()];
    let verify = |extra: &[&str]| {
        let mut args = vec!["audit", "verify"];
        args.extend(db);
        args.extend(extra);
        serre_api(&args)
    };

    // The stopped gateway checkpointed its last entry: the whole log is covered.
    let store = Store::connect(&url, 1).await.unwrap();
    let (head, head_hash) = store.audit_head().await.unwrap().expect("entries");
    let (ok, out) = verify(&[]);
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!("checkpoint of entry {head} signed at"))
            && out.contains("signature valid")
            && out.contains(&format!("audit chain intact: {head} entries")),
        "{out}"
    );

    // A third party checks the checkpoint with jq, base64 and openssl alone, with the
    // public key the Métropole recorded (`audit public-key`).
    let (ok, pem) = serre_api(&["audit", "public-key", "--data-dir", &dir]);
    assert!(ok && pem.starts_with("-----BEGIN PUBLIC KEY-----"), "{pem}");
    let work = support::new_dir("checkpoint-openssl");
    std::fs::write(work.join("audit.pub.pem"), &pem).unwrap();
    let latest = checkpoints.join(format!("{head:020}.json"));
    std::fs::copy(&latest, work.join("cp.json")).unwrap();
    let (ok, out) = sh(
        &work,
        "jq -cj .checkpoint cp.json > payload.json && jq -r .signature cp.json | base64 -d > sig.bin \
         && openssl pkeyutl -verify -pubin -inkey audit.pub.pem -rawin -in payload.json -sigfile sig.bin",
    );
    assert!(
        ok && out.contains("Signature Verified Successfully"),
        "{out}"
    );
    let (_, payload) = sh(&work, "cat payload.json");
    assert!(
        payload.contains(&format!("\"seq\":{head},\"hash\":\"{head_hash}\"")),
        "{payload}"
    );

    // Exports: after an entry, and one tenant's, verify with the flags that describe them.
    let export = |args: &[&str], name: &str| {
        let mut all = vec!["audit", "export", "--database-url", url.as_str()];
        all.extend(args);
        let (ok, out) = serre_api(&all);
        assert!(ok, "{out}");
        let path = work.join(name);
        std::fs::write(&path, out).unwrap();
        path.display().to_string()
    };
    let tail = export(&["--after", "2"], "tail.jsonl");
    let (ok, out) = verify(&["--file", &tail]);
    assert!(!ok, "a tail is not a whole log: {out}");
    let cp = latest.display().to_string();
    let (ok, out) = verify(&["--file", &tail, "--after", "2", "--checkpoint", &cp]);
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!("intact: {} entries", head - 2)),
        "{out}"
    );
    let ee = export(&["--tenant", "est-ensemble"], "ee.jsonl");
    let (ok, out) = verify(&["--file", &ee, "--tenant", "est-ensemble"]);
    assert!(ok, "{out}");
    let (ok, out) = verify(&["--file", &ee, "--tenant", "montreuil"]);
    assert!(!ok && out.contains("in an export of tenant"), "{out}");

    // Someone with write access to the database rewrites it from scratch: entry 2 says
    // another principal, and every later hash is recomputed. The chain alone holds...
    store
        .execute_raw("UPDATE audit_log SET principal = 'mallory' WHERE seq = 2")
        .await
        .unwrap();
    let mut prev = store.audit_page(None, 0, 1).await.unwrap()[0].hash.clone();
    for row in store.audit_page(None, 1, 1000).await.unwrap() {
        let mut row = row;
        row.prev_hash = prev.clone();
        row.hash = entry_hash(&row);
        store
            .execute_raw(&format!(
                "UPDATE audit_log SET prev_hash = '{}', hash = '{}' WHERE seq = {}",
                row.prev_hash, row.hash, row.seq
            ))
            .await
            .unwrap();
        prev = row.hash;
    }
    let (ok, out) = verify(&["--no-checkpoint"]);
    assert!(ok, "the rewritten chain is consistent on its own: {out}");
    // ...but not against the signed checkpoint.
    let (ok, out) = verify(&[]);
    assert!(!ok, "{out}");
    assert!(
        out.contains(&format!(
            "BROKEN at entry {head}: hash differs from the anchor"
        )) && out.contains("log rewritten"),
        "{out}"
    );

    // The tail is deleted: found as a truncation.
    store
        .execute_raw(&format!("DELETE FROM audit_log WHERE seq > {}", head - 2))
        .await
        .unwrap();
    let (ok, out) = verify(&[]);
    assert!(!ok, "{out}");
    assert!(
        out.contains(&format!("anchored entry {head} is missing (log truncated)")),
        "{out}"
    );

    // A forged checkpoint (another key) is refused before any entry is read.
    let forged = serre_crypto::CertificateSigner::generate().unwrap();
    let signed =
        serre_api::audit::checkpoint::sign(&forged, 1, &head_hash, chrono::Utc::now()).unwrap();
    let path = work.join("forged.json");
    std::fs::write(&path, serde_json::to_vec(&signed).unwrap()).unwrap();
    let (ok, out) = verify(&["--checkpoint", path.to_str().unwrap()]);
    assert!(!ok, "{out}");
    assert!(out.contains("key"), "{out}");
    store.close().await;
}
