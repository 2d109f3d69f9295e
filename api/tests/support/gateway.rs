//! The gateway under test, started in this process on a free port, and request helpers.

use super::*;

/// A gateway running in this process.
pub struct Gateway {
    pub url: String,
    pub data_dir: PathBuf,
    pub database_url: String,
    pub http: reqwest::Client,
    running: Option<Running>,
}

/// How to start a gateway.
pub struct Setup {
    pub database_url: String,
    /// Trust the development issuer (and run as `development`).
    pub dev_issuer: bool,
    pub oidc_issuer: Option<String>,
    /// Use this kubeconfig (tenants from the cluster unless `tenants_yaml` is set);
    /// without it the gateway runs with `--no-cluster`.
    pub kubeconfig: Option<PathBuf>,
    pub tenants_yaml: Option<String>,
    pub policies_dir: Option<PathBuf>,
    pub extra: Vec<String>,
    /// Listen on this address instead of [`listen_host`] (e.g. loopback for the console,
    /// which derives its URL from the Host header only on loopback).
    pub listen_host: Option<String>,
}

impl Setup {
    /// Dev issuer, tenant file, no cluster.
    pub fn local(database_url: String) -> Self {
        Self {
            database_url,
            dev_issuer: true,
            oidc_issuer: None,
            kubeconfig: None,
            tenants_yaml: Some(TENANTS_YAML.to_owned()),
            policies_dir: None,
            extra: Vec::new(),
            listen_host: None,
        }
    }
}

impl Gateway {
    pub async fn start(setup: Setup) -> Gateway {
        serre_api::install_crypto_provider();
        let data_dir = new_dir("gateway");
        let mut args: Vec<String> = vec![
            "serre-api".into(),
            "--listen".into(),
            format!(
                "{}:0",
                setup.listen_host.clone().unwrap_or_else(listen_host)
            ),
            "--data-dir".into(),
            data_dir.display().to_string(),
            "--database-url".into(),
            setup.database_url.clone(),
            "--policies-dir".into(),
            setup
                .policies_dir
                .unwrap_or_else(|| repo_root().join("policies"))
                .display()
                .to_string(),
            "--push-interval".into(),
            "1s".into(),
        ];
        if setup.dev_issuer {
            args.extend([
                "--dev-issuer".into(),
                "--environment".into(),
                "development".into(),
            ]);
        } else {
            // Production refuses to start without data keys: give it a directory, as an
            // operator would (a mounted Secret).
            let keys = data_dir.join("data-keys");
            serre_api::datasets::DataKeys::load_or_create(&keys).expect("data keys");
            args.extend(["--data-keys-dir".into(), keys.display().to_string()]);
        }
        if let Some(i) = setup.oidc_issuer {
            args.extend(["--oidc-issuer".into(), i]);
        }
        if let Some(yaml) = setup.tenants_yaml {
            let path = data_dir.join("tenants.yaml");
            std::fs::write(&path, yaml).expect("write tenants");
            args.extend(["--tenants-file".into(), path.display().to_string()]);
        }
        match setup.kubeconfig {
            Some(k) => args.extend(["--kubeconfig".into(), k.display().to_string()]),
            None => args.push("--no-cluster".into()),
        }
        args.extend(setup.extra);

        #[derive(Parser)]
        struct Flags {
            #[command(flatten)]
            config: Config,
        }
        let config = Flags::try_parse_from(&args)
            .unwrap_or_else(|e| panic!("gateway flags {args:?}: {e}"))
            .config;
        let running = serre_api::app::start(config, false)
            .await
            .unwrap_or_else(|e| panic!("gateway did not start: {e}"));
        Gateway {
            url: format!("http://{}", running.addr),
            data_dir,
            database_url: setup.database_url,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
            running: Some(running),
        }
    }

    pub fn app(&self) -> &serre_api::http::App {
        &self.running.as_ref().expect("running").app
    }

    /// The console's state (to seal a session cookie as the sign-in flow would).
    pub fn web(&self) -> &serre_api::console::Web {
        &self.running.as_ref().expect("running").web
    }

    /// A development token for `sub` with `groups`.
    pub fn token(&self, sub: &str, groups: &[&str]) -> String {
        DevIssuer::load_or_create(&self.data_dir)
            .expect("dev issuer")
            .mint(
                &DevClaims {
                    subject: sub.into(),
                    groups: groups.iter().map(|g| g.to_string()).collect(),
                    organisation: None,
                    ttl: Duration::from_secs(600),
                },
                "serre-api",
            )
            .expect("mint")
    }

    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let (status, _, body) = self.call_raw(method, path, token, body).await;
        let json = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&body).unwrap_or_else(|_| {
                panic!(
                    "{method} {path}: not JSON: {}",
                    String::from_utf8_lossy(&body)
                )
            })
        };
        (status, json)
    }

    pub async fn call_raw(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.http.request(method, format!("{}{path}", self.url));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.expect("body").to_vec();
        (status, headers, bytes)
    }

    /// `GET path` answered 200 with a content type starting with `content_type`: its text.
    pub async fn get_text(&self, path: &str, token: Option<&str>, content_type: &str) -> String {
        let (status, headers, body) = self.call_raw("GET", path, token, None).await;
        let body = String::from_utf8(body).unwrap_or_else(|e| panic!("GET {path}: not UTF-8: {e}"));
        assert_eq!(status, 200, "GET {path}: {body}");
        let got = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        assert!(
            got.starts_with(content_type),
            "GET {path}: content type {got:?}, expected {content_type}…"
        );
        body
    }

    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await;
        }
    }
}

/// A sandbox request body expiring in `days` days.
pub fn sandbox_body(tenant: &str, name: &str, days: i64) -> Value {
    serde_json::json!({
        "tenant": tenant,
        "name": name,
        "purpose": "Forecast bus ridership for the 2026 network plan",
        "resources": { "cpu": "2", "memory": "4Gi", "storage": "10Gi" },
        "expiresAt": (chrono::Utc::now() + chrono::Duration::days(days)).to_rfc3339(),
    })
}

/// Groups of the tenants in `Setup::local`'s tenants file, as the tests' callers carry them.
pub mod groups {
    pub const EE_ADMIN: &[&str] = &["est-ensemble-admins"];
    pub const EE_DATA: &[&str] = &["est-ensemble-data"];
    pub const MONTREUIL_ADMIN: &[&str] = &["montreuil-admins"];
    pub const MGP: &[&str] = &["mgp-admins"];
}

/// A gateway without a cluster on a fresh database of `backend`.
pub async fn local_gateway(backend: Backend) -> Gateway {
    Gateway::start(Setup::local(fresh_database(backend).await)).await
}
