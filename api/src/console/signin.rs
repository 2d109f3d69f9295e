//! Sign-in: the OpenID Connect authorization code flow with PKCE (`S256`), and sign-out.
//!
//! `/console/connexion` seals a fresh `state` and code verifier into a short-lived cookie
//! and sends the browser to the provider; `/console/auth/callback` checks `state` against
//! that cookie, redeems the code with the verifier, verifies the access token with the
//! API's verifier (issuer, signature, audience) and opens the session.

use std::time::Duration;

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::OnceCell;

use super::WebState;
use super::lang::{tr, trf};
use super::pages::{self, Signed};
use super::session::{
    self, LOGIN_COOKIE, Login, SESSION_COOKIE, Session, clear_cookie, set_cookie,
};
use crate::audit::{Draft, Outcome};

/// A sign-in attempt must come back within this time.
const LOGIN_TTL_S: i64 = 600;
pub const CALLBACK_PATH: &str = "/console/auth/callback";

/// The console's client at the provider.
pub struct SignIn {
    issuer: String,
    client_id: String,
    client_secret: Option<String>,
    http: reqwest::Client,
    endpoints: OnceCell<Endpoints>,
}

#[derive(Clone, Deserialize)]
struct Endpoints {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    /// RP-Initiated Logout 1.0: where signing out also ends the provider's session
    /// (absent: the console signs out locally only).
    #[serde(default)]
    end_session_endpoint: Option<String>,
}

impl SignIn {
    pub fn new(
        issuer: String,
        client_id: String,
        client_secret: Option<String>,
        timeout: Duration,
    ) -> Result<Self, String> {
        crate::install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        Ok(Self {
            issuer,
            client_id,
            client_secret,
            http,
            endpoints: OnceCell::new(),
        })
    }

    /// Discovery, once (retried on the next sign-in if the provider was down).
    async fn endpoints(&self) -> Result<&Endpoints, String> {
        self.endpoints
            .get_or_try_init(|| async {
                let url = format!("{}/.well-known/openid-configuration", self.issuer);
                let e: Endpoints = self
                    .http
                    .get(&url)
                    .send()
                    .await
                    .and_then(|r| r.error_for_status())
                    .map_err(|e| format!("discovery {url}: {e}"))?
                    .json()
                    .await
                    .map_err(|e| format!("discovery {url}: {e}"))?;
                if e.issuer.trim_end_matches('/') != self.issuer {
                    return Err(format!(
                        "discovery: issuer {:?} is not {:?}",
                        e.issuer, self.issuer
                    ));
                }
                Ok(e)
            })
            .await
    }

    /// Redeem an authorization code (with the PKCE verifier) for tokens.
    async fn redeem(
        &self,
        code: &str,
        verifier: &str,
        redirect_uri: &str,
    ) -> Result<Tokens, String> {
        self.token_request(vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", verifier),
        ])
        .await
    }

    /// A fresh access token (and, where the provider rotates them, a new refresh token)
    /// for a refresh token.
    pub(crate) async fn refresh(&self, refresh_token: &str) -> Result<Tokens, String> {
        self.token_request(vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ])
        .await
    }

    async fn token_request(&self, mut form: Vec<(&str, &str)>) -> Result<Tokens, String> {
        let endpoints = self.endpoints().await?;
        form.push(("client_id", self.client_id.as_str()));
        if let Some(s) = &self.client_secret {
            form.push(("client_secret", s.as_str()));
        }
        let resp = self
            .http
            .post(&endpoints.token_endpoint)
            .form(&form)
            .send()
            .await
            .map_err(|e| format!("token endpoint: {e}"))?;
        let status = resp.status();
        let body: serde_json::Value = resp
            .json()
            .await
            .map_err(|e| format!("token endpoint: {e}"))?;
        if !status.is_success() {
            return Err(format!(
                "token endpoint answered {status}: {}",
                body["error"].as_str().unwrap_or("?")
            ));
        }
        let access_token = body["access_token"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| "the token response has no access_token".to_owned())?;
        Ok(Tokens {
            access_token,
            refresh_token: body["refresh_token"].as_str().map(str::to_owned),
            id_token: body["id_token"].as_str().map(str::to_owned),
        })
    }
}

/// What the token endpoint gives.
pub(crate) struct Tokens {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub id_token: Option<String>,
}

/// `GET /console/connexion`: off to the provider.
pub async fn start(State(app): State<WebState>, headers: HeaderMap) -> Response {
    let console = &app.console;
    let Some(signin) = &console.signin else {
        return pages::problem(
            StatusCode::SERVICE_UNAVAILABLE,
            tr("Connexion indisponible"),
            tr(
                "La passerelle n'a pas de fournisseur d'identité OpenID Connect configuré \
             (--oidc-issuer) : la console ne peut pas vous connecter.",
            ),
        );
    };
    let Some(base) = console.base_url(&headers) else {
        return pages::problem(
            StatusCode::SERVICE_UNAVAILABLE,
            tr("Connexion indisponible"),
            tr("L'adresse publique de la console n'est pas configurée (--console-url)."),
        );
    };
    let endpoints = match signin.endpoints().await {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!(error = %e, "console sign-in: provider unavailable");
            return pages::problem(
                StatusCode::SERVICE_UNAVAILABLE,
                tr("Fournisseur d'identité injoignable"),
                tr("Le fournisseur d'identité ne répond pas. Réessayez dans quelques instants."),
            );
        }
    };
    let login = Login {
        state: session::random_token(),
        verifier: session::pkce_verifier(),
        expires: Utc::now().timestamp() + LOGIN_TTL_S,
    };
    let redirect_uri = format!("{base}{CALLBACK_PATH}");
    let query = [
        ("response_type", "code"),
        ("client_id", signin.client_id.as_str()),
        ("redirect_uri", redirect_uri.as_str()),
        // `offline_access`: a refresh token, so that a session outlives its first access
        // token (OpenID Connect Core §11 asks for prompt=consent with it).
        ("scope", "openid offline_access"),
        ("prompt", "consent"),
        ("state", login.state.as_str()),
        ("code_challenge", &session::pkce_challenge(&login.verifier)),
        ("code_challenge_method", "S256"),
    ];
    let location = match reqwest::Url::parse_with_params(&endpoints.authorization_endpoint, query) {
        Ok(u) => u.to_string(),
        Err(e) => {
            return pages::problem(
                StatusCode::BAD_GATEWAY,
                tr("Fournisseur d'identité mal configuré"),
                &trf("Adresse d'autorisation invalide : {}", &[&e]),
            );
        }
    };
    let cookie = set_cookie(
        LOGIN_COOKIE,
        &console.sealer.seal(LOGIN_COOKIE, &login),
        LOGIN_TTL_S,
        console.secure_cookies(&headers),
    );
    with_cookies(Redirect::to(&location).into_response(), &[cookie])
}

#[derive(Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// `GET /console/auth/callback`: check `state`, redeem the code, open the session.
pub async fn callback(
    State(app): State<WebState>,
    headers: HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> Response {
    let console = &app.console;
    let secure = console.secure_cookies(&headers);
    let failed = |message: &str| {
        with_cookies(
            pages::problem(
                StatusCode::BAD_REQUEST,
                tr("La connexion a échoué"),
                message,
            ),
            &[clear_cookie(LOGIN_COOKIE, secure)],
        )
    };
    let (Some(signin), Some(base)) = (&console.signin, console.base_url(&headers)) else {
        return failed(tr(
            "La connexion n'est pas configurée sur cette passerelle.",
        ));
    };
    let login: Option<Login> = pages::cookie(&headers, LOGIN_COOKIE)
        .and_then(|c| console.sealer.open(LOGIN_COOKIE, c))
        .filter(|l: &Login| l.expires > Utc::now().timestamp());
    let Some(login) = login else {
        return failed(tr(
            "Votre tentative de connexion a expiré ou n'a pas été commencée ici. Recommencez.",
        ));
    };
    if q.state
        .as_deref()
        .is_none_or(|s| !session::same_token(s, &login.state))
    {
        tracing::info!("console sign-in refused: state mismatch");
        return failed(tr(
            "La réponse du fournisseur d'identité ne correspond pas à votre tentative de connexion (paramètre state).",
        ));
    }
    if let Some(e) = &q.error {
        return failed(&trf(
            "Le fournisseur d'identité a refusé la connexion ({}).",
            &[&e],
        ));
    }
    let Some(code) = &q.code else {
        return failed(tr(
            "La réponse du fournisseur d'identité ne contient pas de code.",
        ));
    };
    let redirect_uri = format!("{base}{CALLBACK_PATH}");
    let tokens = match signin.redeem(code, &login.verifier, &redirect_uri).await {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(error = %e, "console sign-in: code redemption failed");
            return failed(tr(
                "Le code de connexion n'a pas pu être échangé auprès du fournisseur d'identité.",
            ));
        }
    };
    // The same verification as a bearer token on the API.
    let principal = match app
        .verifier
        .verify_header(Some(&format!("Bearer {}", tokens.access_token)))
        .await
    {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(code = e.code(), "console sign-in: access token refused");
            return failed(tr(
                "Le jeton délivré par le fournisseur d'identité a été refusé.",
            ));
        }
    };
    let mut draft = Draft::new(
        &principal.subject,
        "console.signin",
        format!("User::{:?}", principal.subject),
        Outcome::Change,
    );
    draft.details = json!({ "issuer": principal.issuer });
    if let Err(e) = app.audit.append(vec![draft]).await {
        tracing::error!(error = %e, "console sign-in: audit");
        return pages::problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            tr("Erreur interne"),
            tr("Réessayez plus tard."),
        );
    }
    let ttl = console.session_ttl.as_secs() as i64;
    let s = Session {
        access_token: tokens.access_token,
        csrf: session::random_token(),
        expires: Utc::now().timestamp() + ttl,
        refresh_token: tokens.refresh_token,
        id_token: tokens.id_token,
    };
    with_cookies(
        Redirect::to("/console/bacs-a-sable").into_response(),
        &[
            clear_cookie(LOGIN_COOKIE, secure),
            set_cookie(
                SESSION_COOKIE,
                &console.sealer.seal(SESSION_COOKIE, &s),
                ttl,
                secure,
            ),
        ],
    )
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// Where the browser lands after signing out (`?deconnecte=1`: « Vous êtes déconnecté »).
pub const SIGNED_OUT_PATH: &str = "/console?deconnecte=1";

/// `POST /console/deconnexion`: the session cookie is removed and, where the provider
/// publishes an `end_session_endpoint` (RP-Initiated Logout 1.0), the browser is sent
/// there with `id_token_hint` and a `post_logout_redirect_uri` back to the console, so
/// the provider's own session ends too. Without one (or without an ID token, or when
/// discovery fails) the console signs out locally only.
pub async fn logout(
    State(app): State<WebState>,
    headers: HeaderMap,
    signed: Signed,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Some(r) = signed.csrf_refusal(&form.csrf) {
        return r;
    }
    let console = &app.console;
    let secure = console.secure_cookies(&headers);
    let session: Option<Session> = pages::cookie(&headers, SESSION_COOKIE)
        .and_then(|c| console.sealer.open(SESSION_COOKIE, c));
    let id_token = session.and_then(|s| s.id_token);
    let location = match (&console.signin, console.base_url(&headers), id_token) {
        (Some(signin), Some(base), Some(id_token)) => {
            match end_session_url(signin, &base, &id_token).await {
                Ok(Some(u)) => u,
                Ok(None) => SIGNED_OUT_PATH.to_owned(),
                Err(e) => {
                    tracing::warn!(error = %e, "console sign-out: provider session not ended");
                    SIGNED_OUT_PATH.to_owned()
                }
            }
        }
        _ => SIGNED_OUT_PATH.to_owned(),
    };
    let mut draft = Draft::new(
        &signed.ctx.caller.principal.subject,
        "console.signout",
        format!("User::{:?}", signed.ctx.caller.principal.subject),
        Outcome::Change,
    );
    draft.details = json!({ "providerLogout": location != SIGNED_OUT_PATH });
    if let Err(e) = app.audit.append(vec![draft]).await {
        tracing::error!(error = %e, "console sign-out: audit");
    }
    with_cookies(
        Redirect::to(&location).into_response(),
        &[clear_cookie(SESSION_COOKIE, secure)],
    )
}

/// The provider's `end_session_endpoint` with `id_token_hint`, `client_id` and the
/// console's `post_logout_redirect_uri`; `None` when the provider has none.
async fn end_session_url(
    signin: &SignIn,
    base: &str,
    id_token: &str,
) -> Result<Option<String>, String> {
    let endpoints = signin.endpoints().await?;
    let Some(end) = &endpoints.end_session_endpoint else {
        return Ok(None);
    };
    let back = format!("{base}{SIGNED_OUT_PATH}");
    let query = [
        ("id_token_hint", id_token),
        ("client_id", signin.client_id.as_str()),
        ("post_logout_redirect_uri", back.as_str()),
    ];
    reqwest::Url::parse_with_params(end, query)
        .map(|u| Some(u.to_string()))
        .map_err(|e| format!("end_session_endpoint {end:?}: {e}"))
}

fn with_cookies(mut response: Response, cookies: &[String]) -> Response {
    for c in cookies {
        if let Ok(v) = HeaderValue::from_str(c) {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    response
}
