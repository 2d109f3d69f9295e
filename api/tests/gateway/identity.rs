//! Identity against a real OpenID provider (npm `oidc-provider`, started by the tests):
//! its tokens are accepted, and every token of the attack set, sent over HTTP to the
//! running gateway, is a 401 with a clear JSON error. Also: the JWKS refresh on an
//! unknown `kid` is rate-limited and picks up rotated keys.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use support::{Backend, Gateway, Setup, TENANTS_YAML};

async fn gateway_for(issuer: &str, extra: &[&str]) -> Gateway {
    Gateway::start(Setup {
        database_url: support::fresh_database(Backend::Sqlite).await,
        dev_issuer: false,
        oidc_issuer: Some(issuer.to_owned()),
        kubeconfig: None,
        tenants_yaml: Some(TENANTS_YAML.to_owned()),
        policies_dir: None,
        extra: extra.iter().map(|s| s.to_string()).collect(),
        listen_host: None,
    })
    .await
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_tokens_are_accepted_and_every_attack_is_refused() {
    let idp = support::oidc();
    let gw = gateway_for(&idp.issuer, &[]).await;

    // A real token from the provider.
    let real = idp.token("est-ensemble-admin", "urn:serre:api").await;
    let (status, me) = gw.call("GET", "/v1/me", Some(&real), None).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["subject"], "est-ensemble-admin");
    assert_eq!(me["issuer"], idp.issuer.as_str());
    assert_eq!(me["groups"], json!(["est-ensemble-admins"]));
    assert_eq!(me["organisation"], "Est Ensemble");
    assert_eq!(me["adminOf"], json!(["est-ensemble"]));
    assert_eq!(me["metropoleAdmin"], false);
    let mgp = idp.token("metropole-admin", "urn:serre:api").await;
    assert_eq!(
        gw.call("GET", "/v1/me", Some(&mgp), None).await.1["metropoleAdmin"],
        true
    );
    // Real tokens work on the API itself.
    let (status, sb) = gw
        .call(
            "POST",
            "/v1/sandboxes",
            Some(&real),
            Some(support::sandbox_body("est-ensemble", "traffic", 5)),
        )
        .await;
    assert_eq!(status, 201, "{sb}");

    // Tokens forged with the provider's own signing key (as a thief of it could),
    // varying one claim at a time.
    let key = EncodingKey::from_rsa_pem(&idp.signing_key_pem()).expect("provider key");
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(idp.kid());
    let claims = |patch: Value| {
        let mut c = json!({
            "iss": idp.issuer, "aud": "serre-api", "sub": "est-ensemble-admin",
            "groups": ["est-ensemble-admins"], "iat": now(), "exp": now() + 300,
        });
        for (k, v) in patch.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    };
    let forge = |patch: Value| jsonwebtoken::encode(&header, &claims(patch), &key).unwrap();
    // Sanity: the forging itself is right (a well-formed forged token is accepted).
    let (status, _) = gw
        .call("GET", "/v1/me", Some(&forge(json!({}))), None)
        .await;
    assert_eq!(status, 200, "the forged baseline token must verify");

    // Unknown key: a fresh key pair the provider never published.
    let pkcs8 =
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
            .unwrap();
    let mut other_header = Header::new(Algorithm::ES256);
    other_header.kid = Some("attacker-key".into());
    let unknown_kid = jsonwebtoken::encode(
        &other_header,
        &claims(json!({})),
        &EncodingKey::from_ec_der(pkcs8.as_ref()),
    )
    .unwrap();

    // alg: none, no signature.
    let alg_none = format!(
        "{}.{}.",
        b64(&json!({ "alg": "none", "typ": "JWT" })),
        b64(&claims(json!({ "groups": ["mgp-admins"] })))
    );

    // The provider's RSA public key reused as an HMAC secret (the classic confusion).
    let public_pem = {
        let out = std::process::Command::new("openssl")
            .args(["pkey", "-pubout", "-in"])
            .arg(idp.dir.join("signing-key.pem"))
            .output()
            .expect("openssl");
        assert!(out.status.success());
        out.stdout
    };
    let mut hs = Header::new(Algorithm::HS256);
    hs.kid = Some(idp.kid());
    let hmac_confusion = jsonwebtoken::encode(
        &hs,
        &claims(json!({ "groups": ["mgp-admins"] })),
        &EncodingKey::from_secret(&public_pem),
    )
    .unwrap();

    // A real token whose payload was changed (promoted to Métropole admin).
    let tampered = {
        let parts: Vec<&str> = real.split('.').collect();
        let mut payload: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        payload["groups"] = json!(["mgp-admins"]);
        format!("{}.{}.{}", parts[0], b64(&payload), parts[2])
    };

    // A real token for another resource (audience).
    let other_audience = idp.token("est-ensemble-admin", "urn:serre:other").await;

    let attacks: Vec<(&str, String, &str)> = vec![
        (
            "expired",
            forge(json!({ "iat": now() - 3600, "exp": now() - 600 })),
            "token_expired",
        ),
        (
            "not yet valid",
            forge(json!({ "nbf": now() + 600 })),
            "token_not_yet_valid",
        ),
        (
            "wrong issuer",
            forge(json!({ "iss": "https://idp.evil.example" })),
            "invalid_issuer",
        ),
        ("wrong audience", other_audience, "invalid_audience"),
        ("unknown kid", unknown_kid, "unknown_key"),
        ("alg none", alg_none, "unsupported_algorithm"),
        (
            "RS256 key as HMAC secret",
            hmac_confusion,
            "unsupported_algorithm",
        ),
        ("tampered payload", tampered, "invalid_signature"),
        ("garbage", "not-a-token".into(), "malformed_token"),
        ("garbage with dots", "a.b.c".into(), "malformed_token"),
        (
            "truncated",
            real[..real.rfind('.').unwrap()].to_owned(),
            "malformed_token",
        ),
        (
            "no expiry",
            {
                let mut c = claims(json!({}));
                c.as_object_mut().unwrap().remove("exp");
                jsonwebtoken::encode(&header, &c, &key).unwrap()
            },
            "missing_claim",
        ),
    ];
    for (what, token, code) in &attacks {
        let (status, headers, body) = gw.call_raw("GET", "/v1/sandboxes", Some(token), None).await;
        let body: Value =
            serde_json::from_slice(&body).unwrap_or_else(|_| panic!("{what}: body is not JSON"));
        assert_eq!(status, 401, "{what}: {body}");
        assert_eq!(body["error"]["code"], *code, "{what}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.len() > 10),
            "{what}: {body}"
        );
        let www = headers["www-authenticate"].to_str().unwrap();
        assert!(
            www.starts_with("Bearer") && www.contains("invalid_token"),
            "{what}: {www}"
        );
    }
    // No token, or another scheme.
    let none = gw.call_raw("GET", "/v1/sandboxes", None, None).await;
    assert_eq!(none.0, 401);
    assert_eq!(
        serde_json::from_slice::<Value>(&none.2).unwrap()["error"]["code"],
        "missing_token"
    );
    let r = gw
        .http
        .get(format!("{}/v1/sandboxes", gw.url))
        .header("authorization", "Basic YWxpY2U6c2VjcmV0")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "not_bearer"
    );

    // Refusals are counted by reason; no attack left an audit entry or a sandbox.
    let (_, _, metrics) = gw.call_raw("GET", "/metrics", None, None).await;
    let metrics = String::from_utf8(metrics).unwrap();
    for code in [
        "token_expired",
        "unknown_key",
        "invalid_signature",
        "unsupported_algorithm",
    ] {
        assert!(
            metrics.contains(&format!(
                "serre_api_authn_failures_total{{code=\"{code}\"}}"
            )),
            "{code} not counted:\n{metrics}"
        );
    }
    let (_, list) = gw.call("GET", "/v1/sandboxes", Some(&mgp), None).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    gw.stop().await;
}

/// A minimal discovery + JWKS endpoint whose keys can be rotated, counting JWKS fetches.
struct KeyServer {
    issuer: String,
    keys: Arc<std::sync::Mutex<Vec<Value>>>,
    fetches: Arc<AtomicUsize>,
}

async fn key_server() -> KeyServer {
    use axum::routing::get;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let keys = Arc::new(std::sync::Mutex::new(Vec::new()));
    let fetches = Arc::new(AtomicUsize::new(0));
    let (k, f, i) = (keys.clone(), fetches.clone(), issuer.clone());
    let app = axum::Router::new()
        .route(
            "/.well-known/openid-configuration",
            get(move || {
                let i = i.clone();
                async move { axum::Json(json!({ "issuer": i, "jwks_uri": format!("{i}/jwks") })) }
            }),
        )
        .route(
            "/jwks",
            get(move || {
                f.fetch_add(1, Ordering::SeqCst);
                let keys = k.lock().unwrap().clone();
                async move { axum::Json(json!({ "keys": keys })) }
            }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await });
    KeyServer {
        issuer,
        keys,
        fetches,
    }
}

struct EcKey {
    kid: String,
    pkcs8: Vec<u8>,
    jwk: Value,
}

fn ec_key(kid: &str) -> EcKey {
    let pkcs8 =
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
            .unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
    let point = pair.public_key().as_ref().to_vec();
    EcKey {
        kid: kid.into(),
        pkcs8: pkcs8.as_ref().to_vec(),
        jwk: json!({
            "kty": "EC", "crv": "P-256", "kid": kid, "use": "sig", "alg": "ES256",
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        }),
    }
}

fn sign(key: &EcKey, issuer: &str) -> String {
    let mut h = Header::new(Algorithm::ES256);
    h.kid = Some(key.kid.clone());
    let claims = json!({ "iss": issuer, "aud": "serre-api", "sub": "bob", "groups": ["est-ensemble-data"], "exp": now() + 300 });
    jsonwebtoken::encode(&h, &claims, &EncodingKey::from_ec_der(&key.pkcs8)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_kids_refresh_the_key_set_at_most_once_per_interval() {
    let server = key_server().await;
    let a = ec_key("key-a");
    let b = ec_key("key-b");
    server.keys.lock().unwrap().push(a.jwk.clone());
    let gw = gateway_for(&server.issuer, &["--oidc-jwks-min-refresh", "2s"]).await;
    assert_eq!(
        server.fetches.load(Ordering::SeqCst),
        1,
        "fetched once at start"
    );
    let (status, _) = gw
        .call("GET", "/v1/me", Some(&sign(&a, &server.issuer)), None)
        .await;
    assert_eq!(status, 200);

    // The provider rotates to key B. The first token with kid B within the interval
    // cannot trigger a fetch…
    server.keys.lock().unwrap().push(b.jwk.clone());
    let token_b = sign(&b, &server.issuer);
    let (status, body) = gw.call("GET", "/v1/me", Some(&token_b), None).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "unknown_key");
    assert_eq!(server.fetches.load(Ordering::SeqCst), 1);
    // …after it, one fetch picks the new key up.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (status, _) = gw.call("GET", "/v1/me", Some(&token_b), None).await;
    assert_eq!(status, 200);
    assert_eq!(server.fetches.load(Ordering::SeqCst), 2);

    // A burst of tokens with unknown kids causes at most one fetch per interval.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let mut tasks = Vec::new();
    for i in 0..40 {
        let forged = sign(&ec_key(&format!("unknown-{i}")), &server.issuer);
        let http = gw.http.clone();
        let url = format!("{}/v1/me", gw.url);
        tasks.push(tokio::spawn(async move {
            http.get(url)
                .bearer_auth(forged)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 401);
    }
    assert_eq!(server.fetches.load(Ordering::SeqCst), 3);
    // Known keys keep working meanwhile.
    let (status, _) = gw
        .call("GET", "/v1/me", Some(&sign(&a, &server.issuer)), None)
        .await;
    assert_eq!(status, 200);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_provider_is_not_ready_and_answers_503() {
    // A port nothing listens on.
    let port = support::free_ports(1);
    let gw = gateway_for(
        &format!("http://127.0.0.1:{port}"),
        &["--oidc-jwks-min-refresh", "1s"],
    )
    .await;
    let (status, ready) = gw.call("GET", "/readyz", None, None).await;
    assert_eq!(status, 503, "{ready}");
    assert_eq!(
        ready["checks"]["identity"],
        "identity provider keys not fetched yet"
    );
    assert_eq!(ready["checks"]["database"], "ok");
    let key = ec_key("k");
    let (status, body) = gw
        .call(
            "GET",
            "/v1/me",
            Some(&sign(&key, &format!("http://127.0.0.1:{port}"))),
            None,
        )
        .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "identity_provider_unavailable");
    gw.stop().await;
}

#[test]
fn production_refuses_to_start_with_the_dev_issuer() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_serre-api"))
        .args([
            "serve",
            "--dev-issuer",
            "--no-cluster",
            "--tenants-file",
            "/dev/null",
        ])
        .env_remove("SERRE_API_ENVIRONMENT")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--dev-issuer: the development issuer is refused in production"),
        "{err}"
    );
}
