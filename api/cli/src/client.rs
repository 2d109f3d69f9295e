//! The gateway's HTTP API: requests with the bearer token, answers as JSON, refusals as
//! [`GatewayError`] (exit 1), 401 as a sign-in problem (exit 3), transport failures as
//! network errors (exit 4).

use anyhow::Result;
use reqwest::{Method, RequestBuilder, Response, Url};
use serde_json::Value;

use crate::auth::SIGN_IN_HINT;
use crate::error::{Failure, GatewayError};

/// A transport error talking to `what` (exit 4).
pub fn network(what: &str, e: reqwest::Error) -> anyhow::Error {
    let mut msg = format!("could not reach {what}: {e}");
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        msg.push_str(&format!(": {s}"));
        source = s.source();
    }
    Failure::Network(msg).into()
}

pub struct Client {
    http: reqwest::Client,
    base: Url,
    token: String,
}

impl Client {
    pub fn new(http: reqwest::Client, gateway: &str, token: String) -> Result<Client> {
        let base = Url::parse(gateway.trim_end_matches('/'))
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && !u.cannot_be_a_base())
            .ok_or_else(|| {
                Failure::Usage(format!(
                    "{gateway:?} is not a gateway URL such as https://serre.example.fr"
                ))
            })?;
        Ok(Client { http, base, token })
    }

    /// `<gateway>/v1/<segments…>`, each segment percent-encoded.
    pub fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        {
            let mut path = url.path_segments_mut().expect("a base URL");
            path.pop_if_empty().push("v1");
            for s in segments {
                path.push(s);
            }
        }
        url
    }

    pub fn request(&self, method: Method, url: Url) -> RequestBuilder {
        self.http.request(method, url).bearer_auth(&self.token)
    }

    /// Send, and turn anything but 2xx into the gateway's error.
    pub async fn send(&self, req: RequestBuilder) -> Result<Response> {
        let req = req.build().map_err(|e| network("the gateway", e))?;
        let what = format!("{} {}", req.method(), req.url());
        let resp = self
            .http
            .execute(req)
            .await
            .map_err(|e| network(&what, e))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let body = resp.bytes().await.map_err(|e| network(&what, e))?;
        let err = GatewayError::from_body(status.as_u16(), &body);
        if status == reqwest::StatusCode::UNAUTHORIZED {
            return Err(Failure::Auth(format!(
                "the gateway did not accept the token ({}: {}): {SIGN_IN_HINT}",
                err.code, err.message
            ))
            .into());
        }
        Err(Failure::Gateway(err).into())
    }

    /// The JSON body of a successful answer (`null` when empty).
    pub async fn json(&self, req: RequestBuilder) -> Result<Value> {
        let resp = self.send(req).await?;
        let url = resp.url().to_string();
        let bytes = resp.bytes().await.map_err(|e| network(&url, e))?;
        if bytes.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| anyhow::anyhow!("{url}: the gateway's answer is not JSON: {e}"))
    }

    pub async fn get(&self, segments: &[&str], query: &[(&str, String)]) -> Result<Value> {
        let req = self.request(Method::GET, self.url(segments)).query(query);
        self.json(req).await
    }

    pub async fn post(&self, segments: &[&str], body: &Value) -> Result<Value> {
        let req = self.request(Method::POST, self.url(segments)).json(body);
        self.json(req).await
    }

    pub async fn delete(&self, segments: &[&str]) -> Result<Value> {
        let req = self.request(Method::DELETE, self.url(segments));
        self.json(req).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(base: &str) -> Client {
        let _ = rustls::crypto::ring::default_provider().install_default();
        Client::new(reqwest::Client::new(), base, "t".into()).unwrap()
    }

    #[test]
    fn urls_encode_each_segment() {
        let c = client("https://serre.example.fr/");
        assert_eq!(
            c.url(&["sandboxes", "a b", "members", "vendor/x"]).as_str(),
            "https://serre.example.fr/v1/sandboxes/a%20b/members/vendor%2Fx"
        );
        let c = client("http://127.0.0.1:15480/prefix");
        assert_eq!(
            c.url(&["me"]).as_str(),
            "http://127.0.0.1:15480/prefix/v1/me"
        );
    }

    #[test]
    fn refuses_what_is_not_a_url() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        for bad in ["serre.example.fr", "ftp://x", ""] {
            let e = Client::new(reqwest::Client::new(), bad, "t".into())
                .err()
                .unwrap();
            assert_eq!(
                crate::error::exit_code(&e),
                crate::error::EXIT_USAGE,
                "{bad}"
            );
        }
    }
}
