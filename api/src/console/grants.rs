//! « Partages »: the grants the person may see (and revoke), and the form that creates
//! one, with a k-anonymity preview (« la plus petite classe compte N lignes ») computed by
//! the API's own [`preview_grant`] — the same checks, Cedar decision and counting that
//! creating the grant runs before it materialises the view. No JavaScript: the preview is
//! the form's second button, and the form comes back with everything as typed.

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;

use super::WebState;
use super::datasets::columns;
use super::french;
use super::lang::{Lang, tr, trf};
use super::pages::{Layout, Signed, api_problem, page};
use crate::datasets::view::DatasetView;
use crate::error::ApiError;
use crate::grants::view::GrantView;
use crate::grants::{CreateGrant, Grantee};
use crate::http::datasets::{list_visible as list_datasets, read_one};
use crate::http::grants::{KPreview, create_grant, list_visible, preview_grant, revoke_grant};
use crate::http::sandboxes::{ListQuery, list_sandboxes};
use crate::sandboxes::FieldIssue;

/// What the form says that the API's request cannot hold (rules and numbers are checked
/// beside their fields; see [`GrantForm::request`]).
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FormError {
    #[error("expiry: not a date")]
    Expiry,
}

// ---- The form --------------------------------------------------------------------------

/// One column of the dataset's version, as the form shows it.
struct ColumnChoice {
    index: usize,
    name: String,
    kind: String,
    selected: bool,
    /// keep, drop, pseudonymise, bin, prefix or truncate.
    rule: String,
    param: String,
    quasi: bool,
    error: Option<String>,
}

/// The grant form's values (kept as typed when refused) and its errors.
#[derive(Default)]
struct GrantForm {
    dataset: String,
    version: String,
    grantee_kind: String,
    sandbox: String,
    vendor: String,
    columns: Vec<ColumnChoice>,
    k: String,
    suppress: bool,
    row_filter: String,
    purpose: String,
    expires: String,
    errors: Vec<(String, String)>,
    general: Vec<String>,
}

impl GrantForm {
    fn error(&self, field: &str) -> Option<&str> {
        self.errors
            .iter()
            .find(|(f, _)| f == field)
            .map(|(_, m)| m.as_str())
    }

    fn push(&mut self, field: &str, message: String) {
        if self.error(field).is_none() {
            self.errors.push((field.to_owned(), message));
        }
    }

    /// A fresh form for a dataset: every column selected and kept.
    fn blank(d: &DatasetView, default_sandbox: String) -> Self {
        let mut f = GrantForm {
            dataset: d.id.clone(),
            version: d.latest_version.map(|v| v.to_string()).unwrap_or_default(),
            grantee_kind: "sandbox".into(),
            sandbox: default_sandbox,
            expires: (Utc::now() + chrono::Duration::days(30))
                .format("%Y-%m-%d")
                .to_string(),
            ..GrantForm::default()
        };
        f.columns = schema_of(d, &f.version)
            .into_iter()
            .enumerate()
            .map(|(index, (name, kind, _))| ColumnChoice {
                index,
                name,
                kind,
                selected: true,
                rule: "keep".into(),
                param: String::new(),
                quasi: false,
                error: None,
            })
            .collect();
        f
    }

    /// The form as posted (`col.<name>`, `rule.<name>`, `param.<name>`, `qi.<name>` per
    /// column of the chosen version's schema).
    fn from_posted(d: &DatasetView, posted: &[(String, String)]) -> Self {
        let get = |k: &str| {
            posted
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let version = get("version");
        let columns = schema_of(d, &version)
            .into_iter()
            .enumerate()
            .map(|(index, (name, kind, _))| ColumnChoice {
                index,
                selected: get(&format!("col.{name}")) == "oui",
                rule: match get(&format!("rule.{name}")) {
                    r if r.is_empty() => "keep".into(),
                    r => r,
                },
                param: get(&format!("param.{name}")),
                quasi: get(&format!("qi.{name}")) == "oui",
                error: None,
                name,
                kind,
            })
            .collect();
        GrantForm {
            dataset: d.id.clone(),
            version,
            grantee_kind: get("grantee_kind"),
            sandbox: get("sandbox"),
            vendor: get("vendor"),
            columns,
            k: get("k"),
            suppress: get("suppress") == "oui",
            row_filter: get("row_filter"),
            purpose: get("purpose"),
            expires: get("expires"),
            ..GrantForm::default()
        }
    }

    /// The API's request; what the form alone can tell is wrong is put beside its field.
    fn request(&mut self) -> Option<CreateGrant> {
        let mut recipe = crate::grants::Recipe::default();
        let mut columns = Vec::new();
        for c in &mut self.columns {
            if !c.selected {
                continue;
            }
            columns.push(c.name.clone());
            match rule(&c.rule, &c.param) {
                Ok(Some(r)) => {
                    recipe.columns.insert(c.name.clone(), r);
                }
                Ok(None) => {}
                Err(m) => c.error = Some(m),
            }
            if c.quasi {
                recipe.quasi_identifiers.push(c.name.clone());
            }
        }
        let mut ok = self.columns.iter().all(|c| c.error.is_none());
        match self.k.trim() {
            "" => {}
            k => match k.parse::<u32>() {
                Ok(k) if k >= 1 => recipe.k = Some(k),
                _ => {
                    self.push("k", tr("k doit être un nombre entier d'au moins 1.").into());
                    ok = false;
                }
            },
        }
        recipe.suppress = self.suppress;
        let expires_at = match expiry(&self.expires) {
            Ok(t) => t,
            Err(_) => {
                self.push(
                    "expires",
                    tr("Indiquez une date d'expiration valide.").into(),
                );
                ok = false;
                Utc::now()
            }
        };
        let version = match self.version.trim() {
            "" => None,
            v => match v.parse::<i64>() {
                Ok(n) => Some(n),
                Err(_) => {
                    self.push("version", tr("Choisissez une version.").into());
                    ok = false;
                    None
                }
            },
        };
        let grantee = if self.grantee_kind == "vendor" {
            Grantee::Vendor(self.vendor.trim().to_owned())
        } else {
            Grantee::Sandbox(self.sandbox.trim().to_owned())
        };
        let row_filter = self.row_filter.trim();
        ok.then(|| CreateGrant {
            dataset_id: self.dataset.clone(),
            version,
            grantee,
            columns,
            recipe,
            row_filter: (!row_filter.is_empty()).then(|| row_filter.to_owned()),
            purpose: self.purpose.trim().to_owned(),
            expires_at,
        })
    }

    /// The API's refusal beside its field, in French; `Err` when it is not about the form.
    fn refused(&mut self, e: ApiError) -> Result<(), ApiError> {
        match e {
            ApiError::Validation(issues) => {
                for i in &issues {
                    match form_field(&i.field, self.grantee_kind == "vendor") {
                        Some(f) => self.push(f, issue(i)),
                        None => self.general.push(issue(i)),
                    }
                }
                Ok(())
            }
            e => match e.code() {
                "invalid_filter" => {
                    self.push(
                        "row_filter",
                        trf(
                            "Filtre refusé : {}. Ex. commune = 'Montreuil' AND age >= 18",
                            &[&e],
                        ),
                    );
                    Ok(())
                }
                "invalid_recipe" => {
                    self.general
                        .push(trf("Règles d'anonymisation refusées : {}", &[&e]));
                    Ok(())
                }
                "k_anonymity" => {
                    self.general.push(trf(
                        "Le seuil de k-anonymat n'est pas atteint : {}. Généralisez ou \
                         supprimez des lignes, puis prévisualisez de nouveau.",
                        &[&e],
                    ));
                    Ok(())
                }
                _ => Err(e),
            },
        }
    }
}

fn schema_of(d: &DatasetView, version: &str) -> Vec<(String, String, bool)> {
    let n = version.trim().parse::<i64>().ok().or(d.latest_version);
    d.versions
        .iter()
        .find(|v| Some(v.version) == n && v.deleted_at.is_none())
        .map(|v| columns(&v.schema))
        .unwrap_or_default()
}

/// A column's rule from the form: `None` for keep.
fn rule(kind: &str, param: &str) -> Result<Option<crate::grants::ColumnRule>, String> {
    use crate::grants::{ColumnRule, DateUnit, Generalisation};
    let param = param.trim();
    Ok(Some(match kind {
        "keep" => return Ok(None),
        "drop" => ColumnRule::Drop,
        "pseudonymise" => ColumnRule::Pseudonymise,
        "bin" => match param.replace(',', ".").parse::<f64>() {
            Ok(w) if w > 0.0 && w.is_finite() => ColumnRule::Generalise(Generalisation::Bin(w)),
            _ => {
                return Err(
                    tr("Indiquez la largeur des tranches, un nombre positif (ex. 10).").into(),
                );
            }
        },
        "prefix" => match param.parse::<u32>() {
            Ok(n) => ColumnRule::Generalise(Generalisation::Prefix(n)),
            _ => {
                return Err(
                    tr("Indiquez le nombre de caractères gardés, un entier (ex. 2).").into(),
                );
            }
        },
        "truncate" => ColumnRule::Generalise(Generalisation::Truncate(match param {
            "jour" | "day" => DateUnit::Day,
            "mois" | "month" => DateUnit::Month,
            "annee" | "année" | "year" | "" => DateUnit::Year,
            _ => return Err(tr("Indiquez jour, mois ou année.").into()),
        })),
        _ => return Err(tr("Choisissez une règle de la liste.").into()),
    }))
}

/// A date from the form: noon UTC that day (an RFC 3339 time is taken as is).
fn expiry(text: &str) -> Result<DateTime<Utc>, FormError> {
    let text = text.trim();
    if let Ok(d) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return d
            .and_hms_opt(12, 0, 0)
            .map(|t| t.and_utc())
            .ok_or(FormError::Expiry);
    }
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| FormError::Expiry)
}

fn form_field(field: &str, vendor: bool) -> Option<&'static str> {
    Some(match field {
        "purpose" => "purpose",
        "expiresAt" => "expires",
        "grantee" if vendor => "vendor",
        "grantee" | "grantee.sandbox" => "sandbox",
        "columns" => "columns",
        "version" => "version",
        _ => return None,
    })
}

fn issue(i: &FieldIssue) -> String {
    if Lang::current() == Lang::En {
        return i.message.clone();
    }
    match (i.field.as_str(), i.rule.as_str()) {
        ("purpose", "required") => "Indiquez la finalité du partage.".into(),
        ("purpose", "max_length") => "La finalité doit tenir en 1 000 caractères.".into(),
        ("expiresAt", "future") => "La date d'expiration doit être dans le futur.".into(),
        ("expiresAt", "max_lifetime") => {
            format!("Le partage dure trop longtemps ({}).", i.message)
        }
        ("grantee", "required") => "Choisissez un bac à sable ou nommez un prestataire.".into(),
        ("grantee.sandbox", "exists") => {
            "Ce bac à sable n'existe pas dans la collectivité du jeu de données.".into()
        }
        ("grantee.sandbox", "not_deleting") => "Ce bac à sable est en cours de suppression.".into(),
        ("columns", "required") => "Choisissez au moins une colonne.".into(),
        ("columns", "unique") => "Une colonne est choisie deux fois.".into(),
        ("version", "exists") => "Cette version n'existe pas ou a été supprimée.".into(),
        _ => french::issue(i),
    }
}

// ---- Pages -------------------------------------------------------------------------------

struct GrantRow {
    id: String,
    dataset: String,
    dataset_id: String,
    version: i64,
    grantee: String,
    columns: String,
    purpose: String,
    state: &'static str,
    badge: &'static str,
    expires: String,
    rows: String,
    smallest: String,
    may_revoke: bool,
    /// Cedar allows `grant.data`: the row offers the Delta Sharing profile.
    may_profile: bool,
}

impl GrantRow {
    fn new(g: &GrantView, may_revoke: bool, names: &[DatasetView]) -> Self {
        let (state, badge) = match g.state.as_str() {
            "active" => (tr("Actif"), "fr-badge--success"),
            "revoked" => (tr("Révoqué"), "fr-badge--error"),
            _ => (tr("Expiré"), "fr-badge--info"),
        };
        let smallest = g.k_anonymity["smallestClassOut"]
            .as_u64()
            .filter(|_| {
                g.k_anonymity["quasiIdentifiers"]
                    .as_array()
                    .is_some_and(|q| !q.is_empty())
            })
            .map_or_else(|| "—".to_owned(), french::lines);
        Self {
            id: g.id.clone(),
            dataset: names
                .iter()
                .find(|d| d.id == g.dataset_id)
                .map_or_else(|| g.dataset_id.clone(), |d| d.name.clone()),
            dataset_id: g.dataset_id.clone(),
            version: g.version,
            grantee: if g.grantee_kind == "vendor" {
                format!("prestataire {}", g.grantee)
            } else {
                trf("bac à sable {}", &[&g.grantee])
            },
            columns: g.columns.join(", "),
            purpose: g.purpose.clone(),
            state,
            badge,
            expires: french::when(&g.expires_at),
            rows: french::number(g.view.rows),
            smallest,
            may_revoke: may_revoke && g.state == "active",
            may_profile: false,
        }
    }
}

#[derive(Template)]
#[template(path = "console/grants.html")]
struct GrantsPage {
    layout: Layout,
    rows: Vec<GrantRow>,
    datasets: Vec<(String, String)>,
    notice: Option<String>,
}

/// The preview, in words.
struct PreviewBox {
    smallest: String,
    smallest_out: String,
    classes: String,
    below: String,
    suppressed: String,
    rows_out: String,
    quasi: String,
    min_k: Option<u32>,
    refusal: Option<String>,
}

impl PreviewBox {
    fn new(p: &KPreview) -> Self {
        let n = |v: u64| french::number(i64::try_from(v).unwrap_or(i64::MAX));
        Self {
            smallest: french::lines(p.smallest_class),
            smallest_out: french::lines(p.smallest_class_out),
            classes: n(p.classes),
            below: n(p.classes_below_k),
            suppressed: french::lines(p.rows_suppressed),
            rows_out: french::lines(p.rows_out),
            quasi: p.quasi_identifiers.join(", "),
            min_k: p.min_k,
            refusal: p.refusal.clone(),
        }
    }
}

#[derive(Template)]
#[template(path = "console/grant_form.html")]
struct GrantFormPage {
    layout: Layout,
    classification: String,
    dataset: DatasetView,
    versions: Vec<i64>,
    sandboxes: Vec<String>,
    form: GrantForm,
    preview: Option<PreviewBox>,
    /// An htmx request of the live preview (`HX-Request`): the preview zone also lists
    /// the fields' refusals, as only that zone is swapped into the page.
    live: bool,
}

#[derive(Deserialize)]
pub struct ListNotice {
    revoque: Option<String>,
    cree: Option<String>,
}

/// `GET /console/partages`: the grants the person may see, with « Révoquer » where the
/// policy lets them; a dataset to start a new grant from.
pub async fn list(
    State(app): State<WebState>,
    signed: Signed,
    Query(q): Query<ListNotice>,
) -> Response {
    let grants = match list_visible(&app.app, &signed.ctx).await {
        Ok(g) => g,
        Err(e) => return api_problem(e),
    };
    let datasets = match list_datasets(&app.app, &signed.ctx).await {
        Ok(d) => d,
        Err(e) => return api_problem(e),
    };
    let notice = match (q.cree, q.revoque) {
        (Some(id), _) => Some(trf("Le partage {} est créé.", &[&id])),
        (None, Some(id)) => Some(trf("Le partage {} est révoqué.", &[&id])),
        (None, None) => None,
    };
    let mut rows = Vec::with_capacity(grants.len());
    for (g, may) in &grants {
        let mut row = GrantRow::new(g, *may, &datasets);
        row.may_profile = super::grant_profile::may_take(&app, &signed, g).await;
        rows.push(row);
    }
    page(
        StatusCode::OK,
        &GrantsPage {
            layout: signed.layout(tr("Partages"), "grants"),
            rows,
            datasets: datasets
                .iter()
                .filter(|d| {
                    signed.ctx.caller.roles.metropole_admin
                        || signed.ctx.caller.roles.admin_of.contains(&d.tenant)
                })
                .map(|d| (d.id.clone(), format!("{} ({})", d.name, d.tenant)))
                .collect(),
            notice,
        },
    )
}

#[derive(Deserialize)]
pub struct NewQuery {
    #[serde(default)]
    jeu: String,
}

async fn form_page(
    app: &WebState,
    signed: &Signed,
    dataset: DatasetView,
    form: GrantForm,
    preview: Option<PreviewBox>,
    status: StatusCode,
    live: bool,
) -> Response {
    let sandboxes = match list_sandboxes(
        &app.app,
        &signed.ctx,
        ListQuery {
            tenant: None,
            state: None,
        },
    )
    .await
    {
        Ok(l) => l
            .items
            .into_iter()
            .filter(|s| s.tenant == dataset.tenant)
            .map(|s| s.name)
            .collect(),
        Err(e) => return api_problem(e),
    };
    page(
        status,
        &GrantFormPage {
            layout: Layout {
                htmx: true,
                ..signed.layout(&format!("Partager {}", dataset.name), "grants")
            },
            classification: french::classification(&dataset.classification).to_lowercase(),
            versions: dataset
                .versions
                .iter()
                .filter(|v| v.deleted_at.is_none())
                .map(|v| v.version)
                .rev()
                .collect(),
            dataset,
            sandboxes,
            form,
            preview,
            live,
        },
    )
}

/// `GET /console/partages/nouveau?jeu=<dataset id>`: the grant form for a dataset the
/// person may read (creating it is the API's decision, on submit).
pub async fn new(
    State(app): State<WebState>,
    signed: Signed,
    Query(q): Query<NewQuery>,
) -> Response {
    let d = match read_one(&app.app, &signed.ctx, &q.jeu).await {
        Ok(d) => d,
        Err(e) => return api_problem(e),
    };
    let form = GrantForm::blank(&d, String::new());
    form_page(&app, &signed, d, form, None, StatusCode::OK, false).await
}

/// `POST /console/partages`: « Prévisualiser » (the API's preview) or « Créer le
/// partage » (the API's creation), the form coming back as typed when refused.
///
/// The live preview (htmx, as the form changes) posts the same form with
/// `action=apercu` and `HX-Request`, and swaps in the preview zone only.
pub async fn create(
    State(app): State<WebState>,
    signed: Signed,
    headers: HeaderMap,
    Form(posted): Form<Vec<(String, String)>>,
) -> Response {
    let live = headers.contains_key("hx-request");
    let field = |k: &str| {
        posted
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
            .unwrap_or_default()
    };
    // -- Validation: CSRF first.
    if let Some(r) = signed.csrf_refusal(field("csrf")) {
        return r;
    }
    let d = match read_one(&app.app, &signed.ctx, field("dataset")).await {
        Ok(d) => d,
        Err(e) => return api_problem(e),
    };
    let mut form = GrantForm::from_posted(&d, &posted);
    let Some(req) = form.request() else {
        return form_page(
            &app,
            &signed,
            d,
            form,
            None,
            StatusCode::UNPROCESSABLE_ENTITY,
            live,
        )
        .await;
    };
    // -- Authorization and business logic: the API's.
    if field("action") == "apercu" {
        let preview = match preview_grant(&app.app, &signed.ctx, &req).await {
            Ok(p) => p,
            Err(e) => {
                return match form.refused(e) {
                    Ok(()) => {
                        form_page(
                            &app,
                            &signed,
                            d,
                            form,
                            None,
                            StatusCode::UNPROCESSABLE_ENTITY,
                            live,
                        )
                        .await
                    }
                    Err(e) => api_problem(e),
                };
            }
        };
        let status = StatusCode::OK;
        return form_page(
            &app,
            &signed,
            d,
            form,
            Some(PreviewBox::new(&preview)),
            status,
            live,
        )
        .await;
    }
    match create_grant(&app.app, &signed.ctx, req).await {
        Ok(g) => Redirect::to(&format!("/console/partages?cree={}", g.id)).into_response(),
        Err(e) => match form.refused(e) {
            Ok(()) => {
                form_page(
                    &app,
                    &signed,
                    d,
                    form,
                    None,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    live,
                )
                .await
            }
            Err(e) => api_problem(e),
        },
    }
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /console/partages/{id}/revoquer`: the API's revocation.
pub async fn revoke(
    State(app): State<WebState>,
    signed: Signed,
    Path(id): Path<String>,
    Form(f): Form<CsrfForm>,
) -> Response {
    if let Some(r) = signed.csrf_refusal(&f.csrf) {
        return r;
    }
    match revoke_grant(&app.app, &signed.ctx, &id).await {
        Ok(g) => Redirect::to(&format!("/console/partages?revoque={}", g.id)).into_response(),
        Err(e) => api_problem(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grants::{ColumnRule, DateUnit, Generalisation};

    #[test]
    fn column_rules_are_read_from_the_form_with_french_errors() {
        assert_eq!(rule("keep", "x"), Ok(None));
        assert_eq!(rule("drop", ""), Ok(Some(ColumnRule::Drop)));
        assert_eq!(
            rule("bin", "10"),
            Ok(Some(ColumnRule::Generalise(Generalisation::Bin(10.0))))
        );
        assert_eq!(
            rule("bin", "2,5"),
            Ok(Some(ColumnRule::Generalise(Generalisation::Bin(2.5))))
        );
        assert_eq!(
            rule("truncate", "mois"),
            Ok(Some(ColumnRule::Generalise(Generalisation::Truncate(
                DateUnit::Month
            ))))
        );
        assert!(rule("bin", "-1").is_err_and(|m| m.contains("largeur")));
        assert!(rule("prefix", "deux").is_err());
        assert!(rule("mystery", "").is_err());
    }

    #[test]
    fn expiry_is_noon_utc_that_day() {
        let t = expiry("2030-01-02").unwrap_or_default();
        assert_eq!(t.to_rfc3339(), "2030-01-02T12:00:00+00:00");
        assert_eq!(expiry("demain"), Err(FormError::Expiry));
    }
}
