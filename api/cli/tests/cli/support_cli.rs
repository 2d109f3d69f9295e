//! Running the `serre` binary, and approving a device sign-in the way a browser would.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// What one `serre` invocation left.
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.stdout))
    }

    #[track_caller]
    pub fn ok(&self) -> &Self {
        assert_eq!(
            self.code, 0,
            "stdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }
}

/// `serre` with its own configuration directory, talking to one gateway.
pub struct Serre {
    pub config_home: PathBuf,
    pub gateway: String,
    pub token: Option<String>,
}

impl Serre {
    pub fn new(config_home: &Path, gateway: &str) -> Self {
        Serre {
            config_home: config_home.to_path_buf(),
            gateway: gateway.to_owned(),
            token: None,
        }
    }

    pub fn with_token(mut self, token: String) -> Self {
        self.token = Some(token);
        self
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_serre"));
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("XDG_CONFIG_HOME", &self.config_home)
            .env("HOME", &self.config_home)
            .env("SERRE_GATEWAY", &self.gateway)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(t) = &self.token {
            cmd.env("SERRE_TOKEN", t);
        }
        cmd
    }

    pub async fn run(&self, args: &[&str]) -> Out {
        let out = self
            .command(args)
            .output()
            .await
            .unwrap_or_else(|e| panic!("run serre {args:?}: {e}"));
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// Start `serre login …` and return it with the verification URI it printed (with the code).
pub async fn start_login(serre: &Serre, args: &[&str]) -> (Child, String) {
    let mut child = serre.command(args).spawn().expect("spawn serre login");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let uri = loop {
        let line = tokio::time::timeout(std::time::Duration::from_secs(20), lines.next_line())
            .await
            .expect("serre login printed nothing")
            .expect("read stderr")
            .expect("serre login exited before printing the URI");
        if let Some(rest) = line.strip_prefix("To sign in, open ") {
            break rest.split_whitespace().next().expect("a URI").to_owned();
        }
    };
    // Keep draining stderr so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, uri)
}

/// A browser's cookie jar, reduced to what the provider's pages need.
#[derive(Default)]
struct Jar(BTreeMap<String, String>);

impl Jar {
    fn take(&mut self, resp: &reqwest::Response) {
        for h in resp.headers().get_all(reqwest::header::SET_COOKIE) {
            let h = h.to_str().unwrap_or_default();
            let first = h.split(';').next().unwrap_or_default();
            let Some((name, value)) = first.split_once('=') else {
                continue;
            };
            let expired = h.to_ascii_lowercase().contains("expires=thu, 01 jan 1970");
            if value.is_empty() || expired {
                self.0.remove(name);
            } else {
                self.0.insert(name.to_owned(), value.to_owned());
            }
        }
    }

    fn header(&self) -> String {
        self.0
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

fn xsrf(html: &str) -> String {
    let at = html.find("name=\"xsrf\" value=\"").expect("an xsrf field") + 19;
    html[at..].split('"').next().expect("xsrf value").to_owned()
}

/// Do in HTTP what a person does in a browser with the verification URI: confirm the code,
/// sign in as `account` with `password` (or abort, with `abort`), and follow the provider
/// to its last page; its HTML.
pub async fn approve(uri_complete: &str, account: &str, password: &str, abort: bool) -> String {
    serre_api::install_crypto_provider();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let url = reqwest::Url::parse(uri_complete).expect("URI");
    let origin = format!("{}://{}", url.scheme(), url.host_str().unwrap_or_default())
        + &url.port().map(|p| format!(":{p}")).unwrap_or_default();
    let user_code = url
        .query_pairs()
        .find(|(k, _)| k == "user_code")
        .map(|(_, v)| v.into_owned())
        .expect("user_code in the URI");
    let mut jar = Jar::default();
    let send = |req: reqwest::RequestBuilder, jar: &Jar| req.header("cookie", jar.header()).send();

    // The verification page posts the code back with its xsrf token…
    let r = send(http.get(uri_complete), &jar)
        .await
        .expect("GET device");
    jar.take(&r);
    let page = r.text().await.unwrap();
    let form = [("xsrf", xsrf(&page)), ("user_code", user_code.clone())];
    let r = send(http.post(format!("{origin}/device")).form(&form), &jar)
        .await
        .expect("POST code");
    jar.take(&r);
    let page = r.text().await.unwrap();
    // …then the person confirms (or aborts).
    let choice = if abort { "abort" } else { "confirm" };
    let form = [
        ("xsrf", xsrf(&page)),
        ("user_code", user_code),
        (choice, "yes".to_owned()),
    ];
    let mut r = send(http.post(format!("{origin}/device")).form(&form), &jar)
        .await
        .expect("POST confirm");
    jar.take(&r);
    let mut signed_in = false;
    for _ in 0..10 {
        if let Some(loc) = r.headers().get("location") {
            let loc = loc.to_str().unwrap().to_owned();
            let next = if loc.starts_with('/') {
                format!("{origin}{loc}")
            } else {
                loc
            };
            r = send(http.get(&next), &jar).await.expect("follow");
            jar.take(&r);
            continue;
        }
        let path = r.url().path().to_owned();
        let page = r.text().await.unwrap();
        if !signed_in && path.starts_with("/interaction/") && page.contains("name=\"password\"") {
            let form = [("login", account), ("password", password)];
            r = send(http.post(format!("{origin}{path}/login")).form(&form), &jar)
                .await
                .expect("POST login");
            jar.take(&r);
            signed_in = true;
            continue;
        }
        return page;
    }
    panic!("the provider kept redirecting");
}
