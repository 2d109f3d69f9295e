//! The cluster side of runs: create the `TrialRun` (and the Secret holding its token,
//! owned by it so both go together), cancel it, read it, delete its token Secret once it
//! is over, and record the measured usage summary in its status (field manager
//! `serre-api`, the `usage` field only).

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;
use serre_resources::{
    LABEL_RUN, LABEL_SANDBOX, LABEL_TENANT, RunUsageSummary, TrialRun, TrialRunSpec,
};

use crate::cluster::{ClusterError, FIELD_MANAGER, LABEL_CREATED_BY};

fn labels(run: &str, sandbox: &str, tenant: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_RUN.to_owned(), run.to_owned()),
        (LABEL_SANDBOX.to_owned(), sandbox.to_owned()),
        (LABEL_TENANT.to_owned(), tenant.to_owned()),
        (LABEL_CREATED_BY.to_owned(), FIELD_MANAGER.to_owned()),
    ])
}

/// Create the run, then its token Secret owned by it. If the Secret cannot be created,
/// the run is deleted again (nothing half-made stays).
pub async fn create(
    client: &Client,
    namespace: &str,
    name: &str,
    tenant: &str,
    spec: &TrialRunSpec,
    token: &str,
) -> Result<TrialRun, ClusterError> {
    let runs: Api<TrialRun> = Api::namespaced(client.clone(), namespace);
    let mut run = TrialRun::new(name, spec.clone());
    run.metadata.labels = Some(labels(name, &spec.sandbox, tenant));
    let params = PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PostParams::default()
    };
    let created = runs
        .create(&params, &run)
        .await
        .map_err(ClusterError::from_kube)?;
    let Some(secret_name) = spec.token_secret.as_deref() else {
        return Ok(created);
    };
    let owner = OwnerReference {
        api_version: TrialRun::api_version(&()).into_owned(),
        kind: TrialRun::kind(&()).into_owned(),
        name: name.to_owned(),
        uid: created.uid().unwrap_or_default(),
        controller: Some(false),
        block_owner_deletion: Some(true),
    };
    let secret = Secret {
        metadata: kube::core::ObjectMeta {
            name: Some(secret_name.to_owned()),
            namespace: Some(namespace.to_owned()),
            labels: Some(labels(name, &spec.sandbox, tenant)),
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            "token".to_owned(),
            ByteString(token.as_bytes().to_vec()),
        )])),
        type_: Some("Opaque".into()),
        ..Default::default()
    };
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    if let Err(e) = secrets.create(&params, &secret).await {
        let _ = runs.delete(name, &Default::default()).await;
        return Err(ClusterError::from_kube(e));
    }
    Ok(created)
}

/// Delete the Secret holding the run's token (`spec.tokenSecret`, `<run>-token`, which
/// the gateway made with the run): once the run is over nobody needs it, and the gateway
/// refuses the token anyway. By name only (the gateway may not read token Secrets); a
/// missing one is not an error.
pub async fn delete_token(client: &Client, namespace: &str, run: &str) -> Result<(), ClusterError> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    match secrets
        .delete(
            &crate::runs::token_secret_name(run),
            &DeleteParams::background(),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(ClusterError::from_kube(e)),
    }
}

/// The run as the cluster has it; None when it does not exist (any more).
pub async fn get(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<Option<TrialRun>, ClusterError> {
    Api::<TrialRun>::namespaced(client.clone(), namespace)
        .get_opt(name)
        .await
        .map_err(ClusterError::from_kube)
}

/// Ask the operator to stop the run; false when the run does not exist.
pub async fn cancel(client: &Client, namespace: &str, name: &str) -> Result<bool, ClusterError> {
    let patch = json!({"spec": {"cancelled": true}});
    match Api::<TrialRun>::namespaced(client.clone(), namespace)
        .patch(
            name,
            &PatchParams {
                field_manager: Some(FIELD_MANAGER.into()),
                ..PatchParams::default()
            },
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
        Err(e) => Err(ClusterError::from_kube(e)),
    }
}

/// Record the usage summary in the run's status (only that field).
pub async fn set_usage(
    client: &Client,
    namespace: &str,
    name: &str,
    usage: &RunUsageSummary,
) -> Result<(), ClusterError> {
    let patch = json!({"status": {"usage": usage}});
    match Api::<TrialRun>::namespaced(client.clone(), namespace)
        .patch_status(
            name,
            &PatchParams {
                field_manager: Some(FIELD_MANAGER.into()),
                ..PatchParams::default()
            },
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(ClusterError::from_kube(e)),
    }
}
