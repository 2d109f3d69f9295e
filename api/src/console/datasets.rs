//! « Jeux de données »: the datasets the person may see, one dataset's versions, schema
//! and classification, and the upload forms (multipart, CSRF first, the file streamed to
//! the API's own upload functions in `crate::http::datasets`: same validation, Cedar
//! decision, limits and audit as `POST /v1/datasets`).

use askama::Template;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::WebState;
use super::french;
use super::lang::{Lang, tr, trf};
use super::pages::{Layout, Signed, api_problem, page, problem};
use crate::datasets::CLASSIFICATIONS;
use crate::datasets::upload::UploadError;
use crate::datasets::view::{DatasetView, VersionView};
use crate::error::ApiError;
use crate::http::datasets::{
    UploadParams, drain, list_visible, read_one, upload_new, upload_version,
};
use crate::sandboxes::FieldIssue;

/// What can be wrong with an upload form before the API sees it.
#[derive(Debug, thiserror::Error)]
pub enum FormError {
    #[error("the form is not multipart/form-data")]
    NotMultipart,
    #[error("the form could not be read: {0}")]
    Malformed(#[from] multer::Error),
}

/// The file input's name; it comes last in the form (after the CSRF token).
const FILE: &str = "fichier";

/// An upload form's values, as sent (kept when the upload is refused) and its errors.
#[derive(Default)]
pub(super) struct UploadForm {
    csrf: String,
    tenant: String,
    name: String,
    classification: String,
    description: String,
    /// `auto`, `csv` or `parquet`.
    format: String,
    delimiter: String,
    header: bool,
    types: String,
    file_name: String,
    errors: Vec<(String, String)>,
    general: Vec<String>,
}

impl UploadForm {
    pub(super) fn blank(tenant: String) -> Self {
        Self {
            tenant,
            classification: "internal".into(),
            format: "auto".into(),
            delimiter: ",".into(),
            header: true,
            ..Self::default()
        }
    }

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

    /// The API's parameters; form-only issues (a separator that is not one character) are
    /// recorded on the form.
    fn params(&mut self, new_dataset: bool) -> UploadParams {
        let format = match self.format.as_str() {
            "csv" | "parquet" => Some(self.format.clone()),
            _ => {
                let lower = self.file_name.to_ascii_lowercase();
                if lower.ends_with(".csv") {
                    Some("csv".into())
                } else if lower.ends_with(".parquet") {
                    Some("parquet".into())
                } else {
                    None
                }
            }
        };
        let mut delimiter = self.delimiter.chars();
        let delimiter = match (delimiter.next(), delimiter.next()) {
            (None, _) => None,
            (Some(c), None) => Some(c),
            _ => {
                self.push(
                    "delimiter",
                    tr("Le séparateur doit être un seul caractère (ex. « , » ou « ; »).").into(),
                );
                None
            }
        };
        let some = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_owned());
        UploadParams {
            tenant: new_dataset.then(|| self.tenant.trim().to_owned()),
            name: new_dataset.then(|| self.name.trim().to_owned()),
            description: if new_dataset {
                some(&self.description)
            } else {
                None
            },
            classification: new_dataset.then(|| self.classification.clone()),
            format,
            header: Some(self.header),
            delimiter,
            types: some(&self.types),
        }
    }

    /// The API's refusal on the form, in French next to its field; `None` when it is not
    /// about the form (the caller shows the API's page).
    fn refused(&mut self, e: ApiError) -> Result<(), ApiError> {
        match e {
            ApiError::Validation(issues) => {
                for i in &issues {
                    match form_field(&i.field) {
                        Some(f) => self.push(f, issue(i)),
                        None => self.general.push(issue(i)),
                    }
                }
            }
            ApiError::Conflict(_) => self.push(
                "name",
                tr("Ce nom est déjà pris par un jeu de données de cette collectivité.").into(),
            ),
            ApiError::NotFound(_) if !self.tenant.is_empty() => self.push(
                "tenant",
                tr("Collectivité inconnue, ou dont vous n'êtes pas membre.").into(),
            ),
            ApiError::Upload(UploadError::TooLarge { limit }) => self.push(
                FILE,
                trf(
                    "Le fichier dépasse la taille maximale ({}).",
                    &[&french::bytes(i64::try_from(limit).unwrap_or(i64::MAX))],
                ),
            ),
            ApiError::Upload(UploadError::Empty) => self.push(
                FILE,
                tr("Choisissez un fichier (il est vide ou absent).").into(),
            ),
            ApiError::Upload(UploadError::Busy { retry_after, .. }) => self.general.push(trf(
                "Le service reçoit déjà beaucoup de fichiers : renvoyez le vôtre dans {} secondes.",
                &[&retry_after.as_secs()],
            )),
            ApiError::Upload(UploadError::Body(m)) => self.push(
                FILE,
                trf("L'envoi du fichier a été interrompu ({}).", &[&m]),
            ),
            e if matches!(
                e.code(),
                "invalid_csv" | "invalid_parquet" | "invalid_schema" | "too_large"
            ) =>
            {
                self.push(FILE, trf("Le fichier n'a pas pu être lu : {}", &[&e]))
            }
            other => return Err(other),
        }
        // A browser never sends the same file twice: say so beside the file input.
        if self.error(FILE).is_none() {
            self.push(
                FILE,
                tr("Le fichier n'a pas été enregistré : choisissez-le de nouveau.").into(),
            );
        }
        Ok(())
    }
}

/// The form input an upload issue belongs to.
fn form_field(field: &str) -> Option<&'static str> {
    Some(match field {
        "tenant" => "tenant",
        "name" => "name",
        "classification" => "classification",
        "description" => "description",
        "format" => "format",
        "types" => "types",
        "delimiter" => "delimiter",
        _ => return None,
    })
}

/// One upload issue in French (the sandbox form's words for the rules they share).
fn issue(i: &FieldIssue) -> String {
    if Lang::current() == Lang::En {
        return i.message.clone();
    }
    match (i.field.as_str(), i.rule.as_str()) {
        ("name", "name_syntax") => "Le nom ne peut contenir que des lettres minuscules, des \
             chiffres, « - » et « _ », doit commencer par une lettre ou un chiffre et compter \
             au plus 63 caractères."
            .into(),
        ("name", "no_path_separators") => {
            "Le nom ne peut contenir ni « / », ni « \\ », ni « .. ».".into()
        }
        ("classification", "one_of") => {
            "Choisissez une classification : ouvertes, internes, personnelles ou anonymisées."
                .into()
        }
        ("description", "max_length") => "La description doit tenir en 2 000 caractères.".into(),
        ("types", "column_type") => format!(
            "Écrivez COLONNE:TYPE, séparés par des virgules, avec un type parmi string, int64, \
             float64, boolean, date, timestamp (refusé : {}).",
            i.message
        ),
        ("format", "required") => "Indiquez le format du fichier (CSV ou Parquet) : son nom ne \
             finit ni par .csv ni par .parquet."
            .into(),
        ("format", "one_of") => "Le format doit être CSV ou Parquet.".into(),
        _ => french::issue(i),
    }
}

/// Read the form's fields up to the file, which is handed back unread (streamed to the
/// API's upload function afterwards).
async fn read_form(
    headers: &HeaderMap,
    body: Body,
) -> Result<(UploadForm, Option<multer::Field<'static>>), FormError> {
    let boundary = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| multer::parse_boundary(v).ok())
        .ok_or(FormError::NotMultipart)?;
    let limits = multer::Constraints::new().size_limit(
        multer::SizeLimit::new()
            .per_field(64 * 1024)
            .for_field(FILE, u64::MAX),
    );
    let mut parts = multer::Multipart::with_constraints(body.into_data_stream(), boundary, limits);
    let mut form = UploadForm::default();
    while let Some(field) = parts.next_field().await? {
        let name = field.name().unwrap_or_default().to_owned();
        if name == FILE {
            form.file_name = field.file_name().unwrap_or_default().to_owned();
            return Ok((form, Some(field)));
        }
        let value = field.text().await?;
        match name.as_str() {
            "csrf" => form.csrf = value,
            "tenant" => form.tenant = value,
            "name" => form.name = value,
            "classification" => form.classification = value,
            "description" => form.description = value,
            "format" => form.format = value,
            "delimiter" => form.delimiter = value,
            "header" => form.header = value == "oui",
            "types" => form.types = value,
            _ => {}
        }
    }
    Ok((form, None))
}

fn unreadable_form(e: FormError) -> Response {
    tracing::info!(error = %e, "console upload form refused");
    problem(
        StatusCode::BAD_REQUEST,
        tr("Formulaire illisible"),
        tr("Le formulaire d'envoi n'a pas pu être lu. Rechargez la page et recommencez."),
    )
}

// ---- Pages ---------------------------------------------------------------------------------

struct DatasetRow {
    id: String,
    name: String,
    tenant: String,
    classification: &'static str,
    badge: &'static str,
    latest: String,
    rows: String,
    size: String,
    created: String,
}

impl DatasetRow {
    fn new(d: &DatasetView) -> Self {
        let latest = d
            .latest_version
            .and_then(|n| d.versions.iter().find(|v| v.version == n));
        Self {
            id: d.id.clone(),
            name: d.name.clone(),
            tenant: d.tenant.clone(),
            classification: french::classification(&d.classification),
            badge: french::classification_badge(&d.classification),
            latest: d
                .latest_version
                .map_or_else(|| "aucune".to_owned(), |n| n.to_string()),
            rows: latest.map_or_else(String::new, |v| french::number(v.rows)),
            size: latest.map_or_else(String::new, |v| french::bytes(v.size)),
            created: french::when(&d.created_at),
        }
    }
}

struct VersionRow {
    version: i64,
    format: String,
    rows: String,
    size: String,
    sha256: String,
    created: String,
    created_by: String,
    deleted: Option<String>,
    /// Its schema is the one shown on the page.
    shown: bool,
}

impl VersionRow {
    fn new(v: &VersionView, shown: Option<i64>) -> Self {
        Self {
            version: v.version,
            format: v.source_format.to_uppercase(),
            rows: french::number(v.rows),
            size: french::bytes(v.size),
            sha256: v.sha256.clone(),
            created: french::when(&v.created_at),
            created_by: v.created_by.clone(),
            deleted: v.deleted_at.as_deref().map(french::when),
            shown: shown == Some(v.version),
        }
    }
}

struct Column {
    name: String,
    kind: String,
    nullable: bool,
}

/// The columns of a version's schema (`[{name, type, nullable}]`).
pub(super) fn columns(schema: &serde_json::Value) -> Vec<(String, String, bool)> {
    schema
        .as_array()
        .map(|cols| {
            cols.iter()
                .map(|c| {
                    (
                        c["name"].as_str().unwrap_or_default().to_owned(),
                        c["type"].as_str().unwrap_or_default().to_owned(),
                        c["nullable"].as_bool().unwrap_or(true),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[derive(Template)]
#[template(path = "console/datasets.html")]
struct DatasetsPage {
    layout: Layout,
    rows: Vec<DatasetRow>,
    tenants: Vec<(String, String)>,
    classifications: Vec<(&'static str, &'static str)>,
    form: UploadForm,
    limit: String,
}

#[derive(Template)]
#[template(path = "console/dataset.html")]
struct DatasetPage {
    layout: Layout,
    row: DatasetRow,
    description: String,
    created_by: String,
    versions: Vec<VersionRow>,
    shown: Option<i64>,
    schema: Vec<Column>,
    form: UploadForm,
    limit: String,
    notes: Notes,
    /// Cedar allows `dataset.version.delete` (the tenant's admins).
    may_delete: bool,
}

/// What a dataset page says above its content: just uploaded, a version just deleted,
/// why a deletion was refused.
#[derive(Default)]
pub(super) struct Notes {
    pub created: bool,
    pub deleted: Option<i64>,
    pub refusal: Option<String>,
}

fn tenants(app: &WebState, signed: &Signed) -> Vec<(String, String)> {
    signed
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
        .collect()
}

fn limit(app: &WebState) -> String {
    french::bytes(i64::try_from(app.data.config.upload_limit).unwrap_or(i64::MAX))
}

async fn list_page(
    app: &WebState,
    signed: &Signed,
    form: UploadForm,
    status: StatusCode,
) -> Response {
    let list = match list_visible(&app.app, &signed.ctx).await {
        Ok(l) => l,
        Err(e) => return api_problem(e),
    };
    page(
        status,
        &DatasetsPage {
            layout: Layout {
                upload_progress: true,
                ..signed.layout(tr("Jeux de données"), "datasets")
            },
            rows: list.iter().map(DatasetRow::new).collect(),
            tenants: tenants(app, signed),
            classifications: CLASSIFICATIONS
                .iter()
                .map(|c| (*c, french::classification(c)))
                .collect(),
            form,
            limit: limit(app),
        },
    )
}

/// `GET /console/donnees`: the datasets the person may see and the upload form.
pub async fn list(State(app): State<WebState>, signed: Signed) -> Response {
    let tenant = signed
        .ctx
        .caller
        .roles
        .member_of
        .iter()
        .next()
        .cloned()
        .unwrap_or_default();
    list_page(&app, &signed, UploadForm::blank(tenant), StatusCode::OK).await
}

#[derive(Deserialize)]
pub struct DatasetQuery {
    version: Option<i64>,
    cree: Option<String>,
    supprimee: Option<i64>,
}

pub(super) async fn dataset_page(
    app: &WebState,
    signed: &Signed,
    id: &str,
    version: Option<i64>,
    form: UploadForm,
    notes: Notes,
    status: StatusCode,
) -> Response {
    let d = match read_one(&app.app, &signed.ctx, id).await {
        Ok(d) => d,
        Err(e) => return api_problem(e),
    };
    let resource = crate::authz::Resource::Dataset {
        id: &d.id,
        tenant: &d.tenant,
        classification: &d.classification,
    };
    let may_delete = app
        .authz
        .decide(
            &signed.ctx.caller,
            crate::authz::Action::DatasetVersionDelete,
            &resource,
        )
        .is_ok_and(|x| x.allowed);
    let shown = version.or(d.latest_version);
    let schema = d
        .versions
        .iter()
        .find(|v| Some(v.version) == shown)
        .map(|v| columns(&v.schema))
        .unwrap_or_default()
        .into_iter()
        .map(|(name, kind, nullable)| Column {
            name,
            kind,
            nullable,
        })
        .collect();
    page(
        status,
        &DatasetPage {
            layout: Layout {
                upload_progress: true,
                ..signed.layout(&trf("Jeu de données {}", &[&d.name]), "datasets")
            },
            row: DatasetRow::new(&d),
            description: d.description.clone(),
            created_by: d.created_by.clone(),
            versions: d
                .versions
                .iter()
                .rev()
                .map(|v| VersionRow::new(v, shown))
                .collect(),
            shown,
            schema,
            form,
            limit: limit(app),
            notes,
            may_delete,
        },
    )
}

/// `GET /console/donnees/{id}`: one dataset — classification, versions, schema of the
/// latest version (or `?version=N`) — and the form for a new version. Another tenant's
/// dataset answers 404, as the API does.
pub async fn show(
    State(app): State<WebState>,
    signed: Signed,
    Path(id): Path<String>,
    Query(q): Query<DatasetQuery>,
) -> Response {
    let form = UploadForm::blank(String::new());
    dataset_page(
        &app,
        &signed,
        &id,
        q.version,
        form,
        Notes {
            created: q.cree.is_some(),
            deleted: q.supprimee,
            refusal: None,
        },
        StatusCode::OK,
    )
    .await
}

/// Read the form, check its CSRF token: the form and the unread file, or the answer.
async fn checked_form(
    signed: &Signed,
    headers: &HeaderMap,
    body: Body,
) -> Result<(UploadForm, Option<Body>), Response> {
    let (form, file) = read_form(headers, body).await.map_err(unreadable_form)?;
    let file = file.map(Body::from_stream);
    if let Some(r) = signed.csrf_refusal(&form.csrf) {
        if let Some(f) = file {
            drain(f).await;
        }
        return Err(r);
    }
    Ok((form, Some(file.unwrap_or_else(Body::empty))))
}

/// `POST /console/donnees`: a new dataset, through the API's `upload_new`.
pub async fn create(
    State(app): State<WebState>,
    signed: Signed,
    headers: HeaderMap,
    body: Body,
) -> Response {
    // -- Validation: CSRF first; the rest is the API's.
    let (mut form, mut file) = match checked_form(&signed, &headers, body).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let params = form.params(true);
    let result = if form.errors.is_empty() {
        // -- Authorization and business logic: the API's (no Content-Type: the format is
        // named; no Content-Length: the upload limit is applied while the file streams).
        upload_new(&app.app, &signed.ctx, params, &HeaderMap::new(), &mut file).await
    } else {
        Err(ApiError::Validation(Vec::new()))
    };
    if let Some(unread) = file.take() {
        drain(unread).await;
    }
    match result {
        Ok(view) => Redirect::to(&format!("/console/donnees/{}?cree=1", view.id)).into_response(),
        Err(e) => match form.refused(e) {
            Ok(()) => list_page(&app, &signed, form, StatusCode::UNPROCESSABLE_ENTITY).await,
            Err(e) => api_problem(e),
        },
    }
}

/// `POST /console/donnees/{id}/versions`: a new version, through the API's
/// `upload_version`.
pub async fn create_version(
    State(app): State<WebState>,
    signed: Signed,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (mut form, mut file) = match checked_form(&signed, &headers, body).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    form.tenant.clear();
    let params = form.params(false);
    let result = match (form.errors.is_empty(), file.take()) {
        (true, Some(body)) => {
            upload_version(&app.app, &signed.ctx, &id, params, &HeaderMap::new(), body).await
        }
        (_, unread) => {
            if let Some(b) = unread {
                drain(b).await;
            }
            Err(ApiError::Validation(Vec::new()))
        }
    };
    match result {
        Ok(view) => {
            let n = view.latest_version.unwrap_or_default();
            Redirect::to(&format!("/console/donnees/{id}?version={n}&cree=1")).into_response()
        }
        Err(e) => match form.refused(e) {
            Ok(()) => {
                dataset_page(
                    &app,
                    &signed,
                    &id,
                    None,
                    form,
                    Notes::default(),
                    StatusCode::UNPROCESSABLE_ENTITY,
                )
                .await
            }
            Err(e) => api_problem(e),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_format_comes_from_the_file_name_unless_chosen_and_the_separator_is_one_character() {
        let mut f = UploadForm::blank("est-ensemble".into());
        f.file_name = "Bus.CSV".into();
        assert_eq!(f.params(true).format.as_deref(), Some("csv"));
        f.file_name = "bus.parquet".into();
        assert_eq!(f.params(true).format.as_deref(), Some("parquet"));
        f.file_name = "bus.txt".into();
        assert_eq!(f.params(true).format, None);
        f.format = "csv".into();
        assert_eq!(f.params(true).format.as_deref(), Some("csv"));
        assert!(f.errors.is_empty());
        f.delimiter = ";;".into();
        let p = f.params(false);
        assert_eq!((p.delimiter, p.tenant, p.name), (None, None, None));
        assert!(f.error("delimiter").is_some());
    }

    #[test]
    fn refusals_land_beside_their_field_and_ask_for_the_file_again() {
        let mut f = UploadForm::blank("est-ensemble".into());
        let e = ApiError::Validation(vec![
            FieldIssue::new("name", "name_syntax", "bad"),
            FieldIssue::new("mystery", "rule", "the API's words"),
        ]);
        assert!(f.refused(e).is_ok());
        assert!(f.error("name").is_some_and(|m| m.starts_with("Le nom")));
        assert_eq!(
            f.general,
            vec!["Valeur refusée : the API's words".to_owned()]
        );
        assert!(
            f.error(FILE)
                .is_some_and(|m| m.contains("choisissez-le de nouveau"))
        );
        let mut f = UploadForm::blank(String::new());
        assert!(f.refused(ApiError::Forbidden("no".into())).is_err());
    }

    #[test]
    fn schema_columns_are_read_from_the_api_shape() {
        let s = serde_json::json!([{"name": "age", "type": "int64", "nullable": false}]);
        assert_eq!(columns(&s), vec![("age".into(), "int64".into(), false)]);
        assert!(columns(&serde_json::Value::Null).is_empty());
    }
}
