//! The console's pages. Each one reads in the API's three sections: validation (CSRF on
//! forms), authorization and business logic — the latter two by calling the same domain
//! functions as the API's handlers, with the person's verified identity.

use askama::Template;
use axum::Form;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use chrono::Utc;
use serde::Deserialize;
use std::fmt::Display;
use tower_http::request_id::RequestId;

use super::WebState;
use super::assets_table::{FILES, SCRIPTS};
use super::french;
use super::lang::{self, Lang, tr, trf};
use super::renewal::{Renewal, renew};
use super::session::{SESSION_COOKIE, Session, clear_cookie, cookie_value, same_token};
use crate::authz::{Action, Caller};
use crate::catalogue::{Criterion, SolutionView};
use crate::error::ApiError;
use crate::http::Ctx;
use crate::http::catalogue::list_solutions;
use crate::http::sandboxes::{ListQuery, create_sandbox, list_sandboxes, load_authorized, render};
use crate::identity::AuthError;
use crate::sandboxes::{CreateSandbox, SandboxView};

// ---- The signed-in person ---------------------------------------------------------------

/// A request from a signed-in person: the session cookie opened, its access token
/// verified by the API's verifier and the person's roles resolved, as for a bearer token.
pub struct Signed {
    pub ctx: Ctx,
    pub csrf: String,
}

impl Signed {
    /// Forms carry the session's CSRF token; anything else is refused (403): the refusal.
    pub fn csrf_refusal(&self, sent: &str) -> Option<Response> {
        if same_token(sent, &self.csrf) {
            None
        } else {
            tracing::info!("console form refused: CSRF token missing or wrong");
            Some(problem(
                StatusCode::FORBIDDEN,
                tr("Requête refusée"),
                tr(
                    "Ce formulaire a expiré ou ne vient pas de la console. Rechargez la page et recommencez.",
                ),
            ))
        }
    }

    /// The person's context as the API's handlers take it by value.
    pub fn ctx(&self) -> Ctx {
        Ctx {
            caller: self.ctx.caller.clone(),
            request_id: self.ctx.request_id.clone(),
        }
    }

    pub(super) fn layout(&self, title: &str, active: &'static str) -> Layout {
        let roles = &self.ctx.caller.roles;
        Layout {
            admin: roles.metropole_admin || !roles.admin_of.is_empty(),
            metropole: roles.metropole_admin,
            ..Layout::new(
                title,
                Some(self.ctx.caller.principal.subject.clone()),
                self.csrf.clone(),
                active,
            )
        }
    }
}

pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|h| cookie_value(h, name))
}

impl FromRequestParts<WebState> for Signed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &WebState) -> Result<Self, Response> {
        let secure = app.console.secure_cookies(&parts.headers);
        let signed_out = || {
            let mut r = Redirect::to("/console").into_response();
            if let Ok(v) = HeaderValue::from_str(&clear_cookie(SESSION_COOKIE, secure)) {
                r.headers_mut().append(header::SET_COOKIE, v);
            }
            r
        };
        let session: Session = cookie(&parts.headers, SESSION_COOKIE)
            .and_then(|c| app.console.sealer.open(SESSION_COOKIE, c))
            .filter(|s: &Session| s.expires > Utc::now().timestamp())
            .ok_or_else(signed_out)?;
        let principal = match app
            .verifier
            .verify_header(Some(&format!("Bearer {}", session.access_token)))
            .await
        {
            Ok(p) => p,
            // A lapsed access token with a refresh token: renewed, and the new cookie
            // goes out with this request's response (`Renewal`).
            Err(AuthError::Expired) if session.refresh_token.is_some() => {
                match renew(app, &session, secure, parts.extensions.get::<Renewal>()).await {
                    Some(p) => p,
                    None => return Err(signed_out()),
                }
            }
            Err(e) => {
                tracing::info!(code = e.code(), "console session refused");
                return Err(signed_out());
            }
        };
        let roles = app.tenants.roles(&principal);
        let request_id = parts
            .extensions
            .get::<RequestId>()
            .and_then(|id| id.header_value().to_str().ok())
            .unwrap_or_default()
            .to_owned();
        Ok(Signed {
            ctx: Ctx {
                caller: Caller { principal, roles },
                request_id,
            },
            csrf: session.csrf,
        })
    }
}

// ---- Templates ---------------------------------------------------------------------------

/// What every page's frame needs.
pub struct Layout {
    pub title: String,
    pub user: Option<String>,
    pub csrf: String,
    /// `sandboxes`, `datasets`, `grants`, `catalogue` or empty: the navigation entry shown
    /// as current.
    pub active: &'static str,
    /// Whether the navigation offers the admins' pages (what they show is decided per
    /// item by Cedar).
    pub admin: bool,
    /// Whether the navigation offers the Métropole admins' pages (« Libre-service »).
    pub metropole: bool,
    /// Whether the page loads htmx (the pages it enhances only; none depends on it).
    pub htmx: bool,
    /// Whether the page loads the upload progress bar (the upload forms' pages).
    pub upload_progress: bool,
    /// The page's language (`<html lang>`, the messages of `t`).
    pub lang: Lang,
    /// The language switch: (code, name, link to this page in it, whether current).
    pub languages: Vec<(&'static str, &'static str, String, bool)>,
}

impl Layout {
    /// The frame of a page for `user` (none: signed out), in the request's language.
    pub fn new(title: &str, user: Option<String>, csrf: String, active: &'static str) -> Self {
        let lang = Lang::current();
        let here = lang::current_page();
        Layout {
            title: title.to_owned(),
            user,
            csrf,
            active,
            admin: false,
            metropole: false,
            htmx: false,
            upload_progress: false,
            lang,
            languages: Layout::languages(lang, &here),
        }
    }

    /// The language switch of a page in `lang`, its links going to `page`.
    fn languages(lang: Lang, page: &str) -> Vec<(&'static str, &'static str, String, bool)> {
        [Lang::Fr, Lang::En]
            .into_iter()
            .map(|l| (l.code(), l.name(), lang::switch_href(page, l), l == lang))
            .collect()
    }

    /// The SRI hash of the upload progress script (`integrity` of its `<script>`).
    pub fn upload_progress_integrity(&self) -> &'static str {
        super::scripts::integrity(super::scripts::UPLOAD_PROGRESS)
    }

    /// A number from the API, in the page's language (« 1,58 », « 1.58 »).
    pub fn num(&self, v: impl std::borrow::Borrow<f64>) -> String {
        self.lang.plain(*v.borrow())
    }

    /// A message in the page's language (templates: `{{ layout.t("…") }}`; the French
    /// text is the key, see `lang.rs`).
    pub fn t(&self, fr: &'static str) -> &'static str {
        self.lang.t(fr)
    }

    /// [`Layout::t`] with one `{}` filled.
    pub fn t1(&self, fr: &'static str, a: impl Display) -> String {
        self.lang.tf(fr, &[&a])
    }

    /// [`Layout::t`] with two `{}` filled, in order.
    pub fn t2(&self, fr: &'static str, a: impl Display, b: impl Display) -> String {
        self.lang.tf(fr, &[&a, &b])
    }

    /// [`Layout::t`] with three `{}` filled, in order.
    pub fn t3(
        &self,
        fr: &'static str,
        a: impl Display,
        b: impl Display,
        c: impl Display,
    ) -> String {
        self.lang.tf(fr, &[&a, &b, &c])
    }

    /// [`Layout::t`] with five `{}` filled, in order.
    pub fn t5<A, B, C, D, E>(&self, fr: &'static str, args: &(A, B, C, D, E)) -> String
    where
        A: Display,
        B: Display,
        C: Display,
        D: Display,
        E: Display,
    {
        let (a, b, c, d, e) = args;
        self.lang.tf(fr, &[a, b, c, d, e])
    }
}

#[derive(Template)]
#[template(path = "console/home.html")]
struct HomePage {
    layout: Layout,
    signed_out: bool,
    can_sign_in: bool,
}

#[derive(Template)]
#[template(path = "console/problem.html")]
struct ProblemPage {
    layout: Layout,
    status: u16,
    message: String,
}

struct SandboxRow {
    name: String,
    tenant: String,
    purpose: String,
    state: &'static str,
    badge: &'static str,
    cluster: &'static str,
    expires: String,
    countdown: String,
}

impl SandboxRow {
    fn new(v: &SandboxView) -> Self {
        let days = (v.expires_at - Utc::now()).num_days();
        Self {
            name: v.name.clone(),
            tenant: v.tenant.clone(),
            purpose: v.purpose.clone(),
            state: french::request_state(&v.request.state),
            badge: french::request_badge(&v.request.state),
            cluster: french::cluster_state(&v.cluster.state),
            expires: french::day(v.expires_at),
            countdown: french::countdown(days),
        }
    }
}

/// The request form's values and its errors, by input id.
#[derive(Default)]
struct RequestForm {
    tenant: String,
    name: String,
    purpose: String,
    cpu: String,
    memory: String,
    storage: String,
    expires: String,
    errors: Vec<(String, String)>,
    /// Issues not tied to a field of the form.
    general: Vec<String>,
}

impl RequestForm {
    fn error(&self, field: &str) -> Option<&str> {
        self.errors
            .iter()
            .find(|(f, _)| f == field)
            .map(|(_, m)| m.as_str())
    }
}

/// A text input of a form: its id (and name), label, hint, value as typed and refusal.
pub(super) struct TextField {
    pub id: &'static str,
    pub label: &'static str,
    pub hint: &'static str,
    pub value: String,
    pub error: Option<String>,
}

impl TextField {
    /// The fields `(id, label, hint, value)` with the refusals `error` finds by id.
    pub fn all<'a>(
        specs: &[(&'static str, &'static str, &'static str, &str)],
        error: impl Fn(&str) -> Option<&'a str>,
    ) -> Vec<TextField> {
        specs
            .iter()
            .map(|(id, label, hint, value)| TextField {
                id,
                label,
                hint,
                value: (*value).to_owned(),
                error: error(id).map(str::to_owned),
            })
            .collect()
    }
}

impl RequestForm {
    fn text_fields(&self) -> Vec<TextField> {
        [
            (
                "name",
                tr("Nom court"),
                tr("Lettres minuscules, chiffres et tirets (ex. prevision-bus)"),
                &self.name,
            ),
            (
                "cpu",
                tr("Processeurs (CPU)"),
                tr("Ex. 2 ou 500m"),
                &self.cpu,
            ),
            ("memory", tr("Mémoire"), tr("Ex. 4Gi"), &self.memory),
            ("storage", tr("Stockage"), tr("Ex. 10Gi"), &self.storage),
        ]
        .into_iter()
        .map(|(id, label, hint, value)| TextField {
            id,
            label,
            hint,
            value: value.clone(),
            error: self.error(id).map(str::to_owned),
        })
        .collect()
    }
}

#[derive(Template)]
#[template(path = "console/sandboxes.html")]
struct SandboxesPage {
    layout: Layout,
    rows: Vec<SandboxRow>,
    tenants: Vec<(String, String)>,
    text_fields: Vec<TextField>,
    form: RequestForm,
    created: Option<String>,
    policies: Vec<super::policy::PolicyBox>,
}

#[derive(Template)]
#[template(path = "console/sandbox.html")]
struct SandboxPage {
    layout: Layout,
    row: SandboxRow,
    view: SandboxView,
}

struct CriterionRow {
    label: &'static str,
    score: String,
}

struct SolutionCard {
    name: String,
    version: String,
    vendor: String,
    description: String,
    licence: String,
    criteria: Vec<CriterionRow>,
}

impl SolutionCard {
    fn new(s: &SolutionView) -> Self {
        let score =
            |c: Option<i64>| c.map_or_else(|| tr("non évalué").to_owned(), |v| format!("{v} / 5"));
        let c: &crate::catalogue::CriteriaView = &s.criteria;
        let plain = |label, c: &Criterion| CriterionRow {
            label,
            score: score(c.score),
        };
        Self {
            name: s.name.clone(),
            version: s.version.clone(),
            vendor: s.vendor.clone(),
            description: s.description.clone(),
            licence: s.licence.spdx.clone(),
            criteria: vec![
                plain(
                    tr("Valeur ajoutée technologique"),
                    &c.technological_added_value,
                ),
                plain(tr("Innovation"), &c.innovation),
                plain(tr("Adéquation aux besoins"), &c.fit_to_needs),
                plain(tr("Souveraineté des données"), &c.data_sovereignty),
                plain(tr("Cadre juridique"), &c.legal_framework),
                CriterionRow {
                    label: tr("Impact environnemental (mesuré)"),
                    score: score(c.environmental_impact.score),
                },
            ],
        }
    }
}

#[derive(Template)]
#[template(path = "console/catalogue.html")]
struct CataloguePage {
    layout: Layout,
    solutions: Vec<SolutionCard>,
}

pub(super) fn page(status: StatusCode, t: &impl Template) -> Response {
    match t.render() {
        Ok(html) => {
            let mut r = (status, Html(html)).into_response();
            let h = r.headers_mut();
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            h.insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(
                    "default-src 'self'; img-src 'self' data:; base-uri 'none'; \
                     form-action 'self'; frame-ancestors 'none'",
                ),
            );
            h.insert(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            );
            h.insert(
                header::REFERRER_POLICY,
                HeaderValue::from_static("same-origin"),
            );
            r
        }
        Err(e) => {
            tracing::error!(error = %e, "console template");
            (StatusCode::INTERNAL_SERVER_ERROR, "erreur de rendu").into_response()
        }
    }
}

/// A DSFR error page.
pub fn problem(status: StatusCode, title: &str, message: &str) -> Response {
    page(
        status,
        &ProblemPage {
            layout: {
                // An error page does not echo the address asked for: its language
                // switch goes to the console's home.
                let mut layout = Layout::new(title, None, String::new(), "");
                layout.languages = Layout::languages(layout.lang, "/console");
                layout
            },
            status: status.as_u16(),
            message: message.to_owned(),
        },
    )
}

/// The API's answer as a page: same status, French words. A lapsed token signs out.
pub(super) fn api_problem(e: ApiError) -> Response {
    let status = e.status();
    match status {
        StatusCode::UNAUTHORIZED => Redirect::to("/console").into_response(),
        StatusCode::NOT_FOUND => problem(
            status,
            tr("Page introuvable"),
            tr("La page demandée n'existe pas, ou vous n'avez pas accès à ce qu'elle montre."),
        ),
        StatusCode::FORBIDDEN => problem(
            status,
            tr("Accès refusé"),
            tr("Vous n'avez pas le droit de faire cette action."),
        ),
        s if s.is_server_error() => problem(
            status,
            tr("Erreur du service"),
            tr("Le service a rencontré une erreur. Réessayez plus tard."),
        ),
        _ => problem(status, tr("Requête refusée"), &e.to_string()),
    }
}

// ---- Handlers ----------------------------------------------------------------------------

#[derive(Deserialize)]
pub struct HomeQuery {
    deconnecte: Option<String>,
}

/// `GET /console`: the sign-in page, or the person's sandboxes when signed in.
pub async fn home(
    State(app): State<WebState>,
    signed: Result<Signed, Response>,
    Query(q): Query<HomeQuery>,
) -> Response {
    if signed.is_ok() {
        return Redirect::to("/console/bacs-a-sable").into_response();
    }
    page(
        StatusCode::OK,
        &HomePage {
            layout: Layout::new(tr("Connexion"), None, String::new(), ""),
            signed_out: q.deconnecte.is_some(),
            can_sign_in: app.console.signin.is_some(),
        },
    )
}

#[derive(Deserialize)]
pub struct CreatedQuery {
    cree: Option<String>,
}

/// `GET /console/bacs-a-sable`: « Mes bacs à sable » and the request form.
pub async fn sandboxes(
    State(app): State<WebState>,
    signed: Signed,
    Query(q): Query<CreatedQuery>,
) -> Response {
    let form = RequestForm {
        cpu: "2".into(),
        memory: "4Gi".into(),
        storage: "10Gi".into(),
        expires: (Utc::now() + chrono::Duration::days(14))
            .format("%Y-%m-%d")
            .to_string(),
        tenant: signed
            .ctx
            .caller
            .roles
            .member_of
            .iter()
            .next()
            .cloned()
            .unwrap_or_default(),
        ..RequestForm::default()
    };
    sandboxes_page(&app, &signed, form, q.cree, StatusCode::OK).await
}

async fn sandboxes_page(
    app: &WebState,
    signed: &Signed,
    form: RequestForm,
    created: Option<String>,
    status: StatusCode,
) -> Response {
    let list = match list_sandboxes(
        &app.app,
        &signed.ctx,
        ListQuery {
            tenant: None,
            state: None,
        },
    )
    .await
    {
        Ok(l) => l,
        Err(e) => return api_problem(e),
    };
    let tenants = signed
        .ctx
        .caller
        .roles
        .member_of
        .iter()
        .map(|t| {
            let label = app
                .tenants
                .get(t)
                .map_or_else(|| t.clone(), |x| x.spec.display_name.clone());
            (t.clone(), label)
        })
        .collect();
    page(
        status,
        &SandboxesPage {
            layout: signed.layout(tr("Mes bacs à sable"), "sandboxes"),
            rows: list.items.iter().map(SandboxRow::new).collect(),
            tenants,
            text_fields: form.text_fields(),
            form,
            created,
            policies: super::policy::boxes(app, signed).await,
        },
    )
}

#[derive(Deserialize)]
pub struct SandboxForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    tenant: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    purpose: String,
    #[serde(default)]
    cpu: String,
    #[serde(default)]
    memory: String,
    #[serde(default)]
    storage: String,
    #[serde(default)]
    expires: String,
}

/// `POST /console/bacs-a-sable`: the request form, through the API's own request logic.
pub async fn request_sandbox(
    State(app): State<WebState>,
    signed: Signed,
    Form(f): Form<SandboxForm>,
) -> Response {
    // -- Validation: CSRF first; the rest is the API's.
    if let Some(r) = signed.csrf_refusal(&f.csrf) {
        return r;
    }
    // A date from the form: noon UTC that day (the API checks it like any other).
    let expires_at = match chrono::NaiveDate::parse_from_str(f.expires.trim(), "%Y-%m-%d") {
        Ok(d) => format!("{d}T12:00:00Z"),
        Err(_) => f.expires.trim().to_owned(),
    };
    let body = CreateSandbox {
        tenant: f.tenant.trim().to_owned(),
        name: f.name.trim().to_owned(),
        purpose: f.purpose.trim().to_owned(),
        resources: crate::sandboxes::ResourcesBody {
            cpu: f.cpu.trim().to_owned(),
            memory: f.memory.trim().to_owned(),
            storage: f.storage.trim().to_owned(),
            gpu: None,
            max_pods: None,
        },
        expires_at,
        extra_egress_cidrs: Vec::new(),
    };
    // -- Authorization and business logic: the API's.
    let issues = match create_sandbox(&app.app, &signed.ctx, body).await {
        Ok(view) => {
            let to = format!("/console/bacs-a-sable?cree={}", view.name);
            return Redirect::to(&to).into_response();
        }
        Err(ApiError::Validation(issues)) => issues,
        Err(ApiError::Conflict(_)) => vec![crate::sandboxes::FieldIssue::new(
            "name", "conflict", "taken",
        )],
        Err(e) => return api_problem(e),
    };
    let mut form = RequestForm {
        tenant: f.tenant,
        name: f.name,
        purpose: f.purpose,
        cpu: f.cpu,
        memory: f.memory,
        storage: f.storage,
        expires: f.expires,
        ..RequestForm::default()
    };
    for i in &issues {
        match french::form_field(&i.field) {
            Some(id) if form.error(id).is_none() => {
                form.errors.push((id.to_owned(), french::issue(i)))
            }
            Some(_) => {}
            None => form.general.push(french::issue(i)),
        }
    }
    sandboxes_page(&app, &signed, form, None, StatusCode::UNPROCESSABLE_ENTITY).await
}

/// `GET /console/bacs-a-sable/{name}`: one sandbox, if the person may see it (else 404,
/// as the API answers).
pub async fn sandbox(
    State(app): State<WebState>,
    signed: Signed,
    Path(name): Path<String>,
) -> Response {
    let record = match load_authorized(&app.app, &signed.ctx, Action::SandboxRead, &name).await {
        Ok(r) => r,
        Err(e) => return api_problem(e),
    };
    let view = match render(&app.app, &record) {
        Ok(v) => v,
        Err(e) => return api_problem(e),
    };
    page(
        StatusCode::OK,
        &SandboxPage {
            layout: signed.layout(&trf("Bac à sable {}", &[&view.name]), "sandboxes"),
            row: SandboxRow::new(&view),
            view,
        },
    )
}

/// `GET /console/catalogue`: the published solutions with the six criteria.
pub async fn catalogue(State(app): State<WebState>, signed: Signed) -> Response {
    let solutions = match list_solutions(&app.app, &signed.ctx, Some("published".into())).await {
        Ok(s) => s,
        Err(e) => return api_problem(e),
    };
    page(
        StatusCode::OK,
        &CataloguePage {
            layout: signed.layout(tr("Catalogue des solutions"), "catalogue"),
            solutions: solutions.iter().map(SolutionCard::new).collect(),
        },
    )
}

/// `GET /console/dsfr/{path}`: the DSFR files, embedded in the binary.
pub async fn asset(Path(path): Path<String>) -> Response {
    match FILES.iter().find(|(p, _, _)| *p == path) {
        Some((_, content_type, bytes)) => (
            [
                (header::CONTENT_TYPE, *content_type),
                (header::CACHE_CONTROL, "public, max-age=86400"),
            ],
            *bytes,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "introuvable").into_response(),
    }
}

/// `GET /console/js/{path}`: htmx and our own scripts, embedded in the binary
/// (progressive enhancement: every page works without them).
pub async fn script(Path(path): Path<String>) -> Response {
    match SCRIPTS
        .iter()
        .chain(super::scripts::SCRIPTS)
        .find(|(p, _, _)| *p == path)
    {
        Some((_, content_type, bytes)) => (
            [
                (header::CONTENT_TYPE, *content_type),
                (header::CACHE_CONTROL, "public, max-age=86400"),
            ],
            *bytes,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "introuvable").into_response(),
    }
}

/// Anything else under `/console`.
pub async fn not_found() -> Response {
    problem(
        StatusCode::NOT_FOUND,
        tr("Page introuvable"),
        tr("La page demandée n'existe pas, ou vous n'avez pas accès à ce qu'elle montre."),
    )
}
