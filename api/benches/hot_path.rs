//! Where the time of `GET /v1/sandboxes/{name}` goes: each step of the authenticated read
//! path timed alone, in process, without HTTP (release build):
//!
//!     cargo bench -p serre-api --bench hot_path [-- sqlite|postgres://…]
//!
//! Steps: RS256 token verification, role derivation, Cedar decision, database read, audit
//! append (sequential: latency; 32 concurrent appenders: group-commit throughput), view
//! rendering. Needs `openssl` (to make an RSA key). The end-to-end HTTP figures come from
//! `deploy/dev/bench-gateway.sh`.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, EncodingKey, Header};
use serde_json::json;
use serre_api::audit::{AuditLog, Draft, Outcome};
use serre_api::authz::{Action, Authorizer, Caller, Resource};
use serre_api::identity::{Keys, TrustedIssuer, Verifier, VerifyingKey};
use serre_api::metrics::Metrics;
use serre_api::store::{SandboxRecord, SandboxRow, Store, timestamp};
use serre_api::tenants::Directory;

const TENANTS: &str = "kind: Tenant\nmetadata: {name: est-ensemble}\nspec:\n  displayName: EE\n  kind: EPT\n  members: [{group: ee-admins, role: admin}, {group: ee-data, role: member}]\n  allowance: {cpu: '16', memory: 64Gi, storage: 500Gi, sandboxes: 5}\n";

fn time<F: FnMut()>(what: &str, n: u32, mut f: F) -> f64 {
    for _ in 0..n / 10 {
        f();
    }
    let start = Instant::now();
    for _ in 0..n {
        f();
    }
    let us = start.elapsed().as_secs_f64() * 1e6 / f64::from(n);
    println!("{what:<44} {us:>9.1} µs");
    us
}

async fn time_async<F, Fut>(what: &str, n: u32, mut f: F) -> f64
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for _ in 0..n / 10 {
        f().await;
    }
    let start = Instant::now();
    for _ in 0..n {
        f().await;
    }
    let us = start.elapsed().as_secs_f64() * 1e6 / f64::from(n);
    println!("{what:<44} {us:>9.1} µs");
    us
}

fn rsa_key(dir: &std::path::Path) -> (Vec<u8>, Vec<u8>) {
    let private = dir.join("k.pem");
    let public = dir.join("k.pub.pem");
    let ok = Command::new("openssl")
        .args(["genrsa", "-out"])
        .arg(&private)
        .arg("2048")
        .output()
        .expect("openssl")
        .status
        .success()
        && Command::new("openssl")
            .args(["rsa", "-pubout", "-in"])
            .arg(&private)
            .arg("-out")
            .arg(&public)
            .output()
            .expect("openssl")
            .status
            .success();
    assert!(ok, "openssl failed");
    (
        std::fs::read(private).unwrap(),
        std::fs::read(public).unwrap(),
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    serre_api::install_crypto_provider();
    let arg = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let dir = tempfile::tempdir().unwrap();
    let url = match arg.as_deref() {
        None | Some("sqlite") => format!("sqlite://{}", dir.path().join("bench.db").display()),
        Some(u) => u.to_owned(),
    };
    println!(
        "database: {}",
        if url.starts_with("sqlite") {
            "sqlite"
        } else {
            "postgres"
        }
    );

    // Identity.
    let (private, public) = rsa_key(dir.path());
    let oidc = {
        use clap::Parser;
        #[derive(Parser)]
        struct P {
            #[command(flatten)]
            o: serre_api::config::OidcConfig,
        }
        P::parse_from(["bench"]).o
    };
    let issuer = "https://idp.example.fr";
    let verifier = Verifier::new(
        vec![TrustedIssuer {
            issuer: issuer.into(),
            keys: Keys::Static {
                kid: "k".into(),
                key: Arc::new(VerifyingKey {
                    key: DecodingKey::from_rsa_pem(&public).unwrap(),
                    family: AlgorithmFamily::Rsa,
                    alg: Some(Algorithm::RS256),
                }),
            },
        }],
        &oidc,
    )
    .unwrap();
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("k".into());
    let now = chrono::Utc::now().timestamp();
    let token = jsonwebtoken::encode(
        &header,
        &json!({ "iss": issuer, "aud": "serre-api", "sub": "bob", "groups": ["ee-data"], "iat": now, "exp": now + 3600 }),
        &EncodingKey::from_rsa_pem(&private).unwrap(),
    )
    .unwrap();

    let tenants =
        Directory::from_tenants(serre_api::tenants::parse_manifests(TENANTS).unwrap(), &[]);
    let authz =
        Authorizer::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies"))
            .unwrap();
    let store = Store::connect(&url, 8).await.unwrap();
    let spec = json!({
        "tenant": "est-ensemble", "purpose": "bench", "owners": ["bob"],
        "resources": { "cpu": "2", "memory": "4Gi", "storage": "10Gi", "maxPods": 10 },
        "expiresAt": "2030-01-01T00:00:00Z", "extraEgressCidrs": []
    });
    let name = format!("est-ensemble--bench-{}", std::process::id());
    store
        .insert_sandbox(&SandboxRow {
            name: name.clone(),
            tenant: "est-ensemble".into(),
            spec: spec.to_string(),
            state: "Approved".into(),
            self_service: true,
            created_by: "bob".into(),
            created_at: timestamp(chrono::Utc::now()),
            decided_by: None,
            decided_at: None,
            decision_reason: None,
            approval_reasons: "[]".into(),
            version: 1,
            applied_version: None,
            applied_at: None,
            push_error: None,
            push_failed_version: None,
        })
        .await
        .unwrap();
    let metrics = Arc::new(Metrics::default());
    let (audit, _writer) = AuditLog::start(store.clone(), metrics);

    println!("step                                          per call");
    let mut total = 0.0;
    let rt = tokio::runtime::Handle::current();
    total += time("verify RS256 bearer token", 5000, || {
        let p = tokio::task::block_in_place(|| rt.block_on(verifier.verify(&token))).unwrap();
        std::hint::black_box(p);
    });
    let principal = verifier.verify(&token).await.unwrap();
    total += time("roles from groups", 20000, || {
        std::hint::black_box(tenants.roles(&principal));
    });
    let caller = Caller {
        roles: tenants.roles(&principal),
        principal,
    };
    let record: SandboxRecord = store.get_sandbox(&name).await.unwrap().unwrap();
    let vendors = record.vendor_subjects();
    let resource = Resource::Sandbox {
        name: &record.row.name,
        tenant: &record.row.tenant,
        created_by: &record.row.created_by,
        vendors: &vendors,
    };
    total += time("Cedar decision (sandbox.read)", 20000, || {
        let d = authz
            .decide(&caller, Action::SandboxRead, &resource)
            .unwrap();
        assert!(d.allowed);
    });
    total += time_async("database read (sandbox + members)", 5000, || async {
        std::hint::black_box(store.get_sandbox(&name).await.unwrap());
    })
    .await;
    total += time_async(
        "audit append, one at a time (commit latency)",
        2000,
        || async {
            let d = Draft::new(
                "bob",
                "sandbox.read",
                format!("Sandbox::{name:?}"),
                Outcome::Allow,
            );
            audit.append(vec![d]).await.unwrap();
        },
    )
    .await;
    let spec_parsed = serre_api::sandboxes::spec_of(&record).unwrap();
    total += time("render the view as JSON", 20000, || {
        let v = serre_api::sandboxes::view(
            &record,
            &spec_parsed,
            serre_api::sandboxes::ClusterKnowledge::Disabled,
        );
        std::hint::black_box(serde_json::to_vec(&v).unwrap());
    });
    println!("{:<44} {total:>9.1} µs", "sum (sequential, one core)");

    // Group commit: 32 concurrent appenders, as under load.
    let n = 20_000u32;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let audit = audit.clone();
        let name = name.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..n / 32 {
                let d = Draft::new(
                    "bob",
                    "sandbox.read",
                    format!("Sandbox::{name:?}"),
                    Outcome::Allow,
                );
                audit.append(vec![d]).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "audit append, 32 concurrent appenders: {:.0} entries/s ({:.1} µs each)",
        f64::from(n) / secs,
        secs * 1e6 / f64::from(n)
    );
    let report = serre_api::audit::verify(&store, &[]).await.unwrap();
    assert_eq!(report.broken, None);
    let _ = Duration::ZERO;
}
