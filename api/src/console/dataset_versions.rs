//! Deleting a dataset version from the console: « Supprimer » beside each live version,
//! where Cedar allows `dataset.version.delete` (the tenant's admins), through the API's
//! own `delete_version` (`DELETE /v1/datasets/{id}/versions/{n}`: the same decision, the
//! refusal while live grants use the version, the encrypted object removed, the audit).

use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};

use super::WebState;
use super::datasets::{Notes, UploadForm, dataset_page};
use super::lang::trf;
use super::pages::{Signed, api_problem};
use crate::http::datasets::delete_version;

#[derive(serde::Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /console/donnees/{id}/versions/{version}/supprimer`.
pub async fn delete(
    State(app): State<WebState>,
    signed: Signed,
    Path((id, version)): Path<(String, i64)>,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Some(r) = signed.csrf_refusal(&form.csrf) {
        return r;
    }
    match delete_version(
        State(app.app.clone()),
        signed.ctx(),
        Path((id.clone(), version)),
    )
    .await
    {
        Ok(_) => {
            Redirect::to(&format!("/console/donnees/{id}?supprimee={version}")).into_response()
        }
        Err(e) if e.status() == StatusCode::CONFLICT => {
            let notes = Notes {
                refusal: Some(trf(
                    "La version {} n'est pas supprimée : des partages actifs la lisent \
                     ({}). Révoquez-les d'abord.",
                    &[&version, &e],
                )),
                ..Notes::default()
            };
            dataset_page(
                &app,
                &signed,
                &id,
                None,
                UploadForm::blank(String::new()),
                notes,
                StatusCode::CONFLICT,
            )
            .await
        }
        Err(e) => api_problem(e),
    }
}
