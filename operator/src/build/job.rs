//! The Job of a TrialRun: an optional init step that fetches the granted datasets from
//! the gateway, then the trial container. Pure; the controller applies it once.
//!
//! The trial container holds no storage credential: no S3 key, no data key, nothing of
//! the Secret `sandbox-storage`. It holds its run's own token (the Secret
//! `spec.tokenSecret`), which opens only this run's granted views and this run's results
//! endpoint on the gateway (`PUT <gateway>/v1/runs/<run>/results/<path>`); the gateway
//! writes what it receives into the sandbox bucket under `runs/<run>/`.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, EmptyDirVolumeSource, EnvVar, KeyToPath, PodSecurityContext, PodSpec,
    PodTemplateSpec, ResourceRequirements, SeccompProfile, SecretVolumeSource, SecurityContext,
    Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Resource;

use crate::resources::{
    LABEL_MANAGED_BY, LABEL_RUN, LABEL_SANDBOX, LABEL_TENANT, MANAGER, TrialRun,
};

/// Name of the init container fetching the granted datasets.
pub const FETCH_CONTAINER: &str = "fetch-grants";
/// Name of the workload container.
pub const TRIAL_CONTAINER: &str = "trial";
/// Where the granted views are, one folder per grant id (read-only for the trial).
pub const GRANTS_DIR: &str = "/data/grants";
/// Folder of the run's gateway token (the Secret `spec.tokenSecret`, key `token`).
pub const TOKEN_DIR: &str = "/var/run/serre";
/// The token file the init step and the trial read.
pub const TOKEN_FILE: &str = "/var/run/serre/token";
/// User every container of a run runs as (not root).
pub const RUN_USER: i64 = 65532;
/// Resources of the init step (requests = limits).
pub const FETCH_CPU: &str = "200m";
pub const FETCH_MEMORY: &str = "256Mi";
/// ServiceAccount of sandbox workloads (no token mounted, no rights).
const WORKLOAD_SERVICE_ACCOUNT: &str = "sandbox-workload";
/// A container that fails without writing a termination message gets the tail of its
/// log as one (the kubelet keeps at most 80 lines, 2 KiB): the run's exit reason then
/// says what the program printed before it failed.
const LOG_TAIL_ON_ERROR: &str = "FallbackToLogsOnError";
const GRANTS_VOLUME: &str = "grants";
const TOKEN_VOLUME: &str = "token";

/// What the Job needs beyond the run itself.
pub struct JobInput<'a> {
    /// Gateway URL as seen from sandbox pods (`--gateway-url`); needed with grants.
    pub gateway_url: Option<&'a str>,
    /// Image of the init step (`--run-fetch-image`); needed with grants.
    pub fetch_image: Option<&'a str>,
    pub run_name: &'a str,
    pub run_uid: &'a str,
    pub namespace: &'a str,
    pub sandbox: &'a str,
    pub tenant: &'a str,
}

/// Object prefix of a run's results in the sandbox bucket (where the gateway writes
/// what the run uploads).
pub fn results_prefix(run: &str) -> String {
    format!("runs/{run}/")
}

/// The gateway's results endpoint of a run: the trial PUTs each file to this URL followed
/// by its path, with its run token.
pub fn results_url(gateway_url: &str, run: &str) -> String {
    format!(
        "{}/v1/runs/{run}/results/",
        gateway_url.trim_end_matches('/')
    )
}

/// The operator setting a run cannot do without, if one is missing: a run with a token
/// (its results endpoint, its grants) needs the gateway URL; a run with grants also the
/// init step's image.
pub fn missing_setting(run: &TrialRun, input: &JobInput<'_>) -> Option<&'static str> {
    let needs_gateway = !run.spec.grants.is_empty() || run.spec.token_secret.is_some();
    if needs_gateway && input.gateway_url.is_none_or(str::is_empty) {
        Some("--gateway-url (SERRE_GATEWAY_URL)")
    } else if !run.spec.grants.is_empty() && input.fetch_image.is_none_or(str::is_empty) {
        Some("--run-fetch-image (SERRE_RUN_FETCH_IMAGE)")
    } else {
        None
    }
}

/// The command of the init step: `serre-api fetch-grants` with one `--grant` per id.
pub fn fetch_command(gateway_url: &str, grants: &[String]) -> Vec<String> {
    let mut command: Vec<String> = [
        "serre-api",
        "fetch-grants",
        "--gateway",
        gateway_url,
        "--token-file",
        TOKEN_FILE,
        "--out",
        GRANTS_DIR,
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    for id in grants {
        command.push("--grant".into());
        command.push(id.clone());
    }
    command
}

/// The Job running a trial. No `ttlSecondsAfterFinished`: the finished Job and its pods
/// stay until the run is deleted (they cascade from it), because the gateway's
/// accounting reads the pods' figures after the run ends.
pub fn trial_run_job(run: &TrialRun, input: &JobInput<'_>) -> Job {
    let spec = &run.spec;
    let labels = BTreeMap::from([
        (LABEL_RUN.to_owned(), input.run_name.to_owned()),
        (LABEL_SANDBOX.to_owned(), input.sandbox.to_owned()),
        (LABEL_TENANT.to_owned(), input.tenant.to_owned()),
        (LABEL_MANAGED_BY.to_owned(), MANAGER.to_owned()),
    ]);
    let q = |s: &str| K8sQuantity(s.to_owned());
    let hardened = || SecurityContext {
        allow_privilege_escalation: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            ..Capabilities::default()
        }),
        ..SecurityContext::default()
    };
    let grants_mount = |read_only: bool| VolumeMount {
        name: GRANTS_VOLUME.into(),
        mount_path: GRANTS_DIR.into(),
        read_only: Some(read_only),
        ..VolumeMount::default()
    };

    let mut volumes = vec![Volume {
        name: GRANTS_VOLUME.into(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Volume::default()
    }];
    let token_mount = || VolumeMount {
        name: TOKEN_VOLUME.into(),
        mount_path: TOKEN_DIR.into(),
        read_only: Some(true),
        ..VolumeMount::default()
    };
    // The run's token: for the init step (its grants) and the trial (its results).
    let token = spec.token_secret.is_some() || !spec.grants.is_empty();
    if token {
        volumes.push(Volume {
            name: TOKEN_VOLUME.into(),
            secret: Some(SecretVolumeSource {
                secret_name: spec.token_secret.clone(),
                items: Some(vec![KeyToPath {
                    key: "token".into(),
                    path: "token".into(),
                    mode: None,
                }]),
                default_mode: Some(0o440),
                optional: Some(false),
            }),
            ..Volume::default()
        });
    }
    let mut init_containers = Vec::new();
    if !spec.grants.is_empty() {
        let fetch = BTreeMap::from([
            ("cpu".to_owned(), q(FETCH_CPU)),
            ("memory".to_owned(), q(FETCH_MEMORY)),
        ]);
        init_containers.push(Container {
            name: FETCH_CONTAINER.into(),
            image: Some(input.fetch_image.unwrap_or_default().to_owned()),
            command: Some(fetch_command(
                input.gateway_url.unwrap_or_default(),
                &spec.grants,
            )),
            // `serre-api fetch-grants` also reads the run from the token; this names it.
            env: Some(vec![EnvVar {
                name: "SERRE_RUN".into(),
                value: Some(input.run_name.to_owned()),
                value_from: None,
            }]),
            resources: Some(ResourceRequirements {
                requests: Some(fetch.clone()),
                limits: Some(fetch),
                ..ResourceRequirements::default()
            }),
            volume_mounts: Some(vec![token_mount(), grants_mount(false)]),
            security_context: Some(hardened()),
            termination_message_policy: Some(LOG_TAIL_ON_ERROR.into()),
            ..Container::default()
        });
    }

    let requests = BTreeMap::from([
        ("cpu".to_owned(), q(&spec.resources.cpu)),
        ("memory".to_owned(), q(&spec.resources.memory)),
    ]);
    let mut limits = requests.clone();
    if let Some(gpu) = spec.resources.gpu.as_ref().filter(|g| g.count > 0) {
        limits.insert(gpu.resource_name.clone(), q(&gpu.count.to_string()));
    }
    let env = |name: &str, value: String| EnvVar {
        name: name.into(),
        value: Some(value),
        value_from: None,
    };
    let mut trial_env = vec![
        env("SERRE_RUN", input.run_name.to_owned()),
        env("SERRE_RUN_KIND", spec.kind.as_str().to_owned()),
        env("SERRE_GRANTS_DIR", GRANTS_DIR.to_owned()),
    ];
    let mut trial_mounts = vec![grants_mount(true)];
    if token {
        // No storage credential: results go through the gateway, with the run's token.
        if let Some(gateway) = input.gateway_url.filter(|u| !u.is_empty()) {
            trial_env.push(env(
                "SERRE_RESULTS_URL",
                results_url(gateway, input.run_name),
            ));
        }
        trial_env.push(env("SERRE_RUN_TOKEN_FILE", TOKEN_FILE.to_owned()));
        trial_mounts.push(token_mount());
    }
    let trial = Container {
        name: TRIAL_CONTAINER.into(),
        image: Some(spec.image.clone()),
        command: (!spec.command.is_empty()).then(|| spec.command.clone()),
        args: (!spec.args.is_empty()).then(|| spec.args.clone()),
        env: Some(trial_env),
        resources: Some(ResourceRequirements {
            requests: Some(requests),
            limits: Some(limits),
            ..ResourceRequirements::default()
        }),
        volume_mounts: Some(trial_mounts),
        security_context: Some(hardened()),
        termination_message_policy: Some(LOG_TAIL_ON_ERROR.into()),
        ..Container::default()
    };

    Job {
        metadata: ObjectMeta {
            name: Some(input.run_name.to_owned()),
            namespace: Some(input.namespace.to_owned()),
            labels: Some(labels.clone()),
            owner_references: Some(vec![OwnerReference {
                api_version: TrialRun::api_version(&()).into_owned(),
                kind: TrialRun::kind(&()).into_owned(),
                name: input.run_name.to_owned(),
                uid: input.run_uid.to_owned(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            ..ObjectMeta::default()
        },
        spec: Some(JobSpec {
            backoff_limit: Some(0),
            active_deadline_seconds: Some(i64::from(spec.timeout_seconds)),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    restart_policy: Some("Never".into()),
                    service_account_name: Some(WORKLOAD_SERVICE_ACCOUNT.into()),
                    automount_service_account_token: Some(false),
                    enable_service_links: Some(false),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(RUN_USER),
                        run_as_group: Some(RUN_USER),
                        fs_group: Some(RUN_USER),
                        seccomp_profile: Some(SeccompProfile {
                            type_: "RuntimeDefault".into(),
                            localhost_profile: None,
                        }),
                        ..PodSecurityContext::default()
                    }),
                    init_containers: (!init_containers.is_empty()).then_some(init_containers),
                    containers: vec![trial],
                    volumes: Some(volumes),
                    ..PodSpec::default()
                }),
            },
            ..JobSpec::default()
        }),
        ..Job::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::{GpuRequest, RunKind, RunResources, TrialRunSpec};

    fn run(grants: &[&str]) -> TrialRun {
        let mut r = TrialRun::new(
            "bus-forecast-1",
            TrialRunSpec {
                sandbox: "traffic-forecast".into(),
                image: "registry.metropolegrandparis.fr/vendor/model:1.2".into(),
                command: vec!["python".into()],
                args: vec!["run.py".into()],
                resources: RunResources {
                    cpu: "2".into(),
                    memory: "8Gi".into(),
                    gpu: None,
                },
                grants: grants.iter().map(|g| g.to_string()).collect(),
                solution: None,
                kind: RunKind::FineTuning,
                timeout_seconds: 5400,
                functional_unit: None,
                token_secret: Some("bus-forecast-1-token".into()),
                requested_by: "alice".into(),
                cancelled: false,
            },
        );
        r.metadata.namespace = Some("serre-traffic-forecast".into());
        r
    }

    fn input() -> JobInput<'static> {
        JobInput {
            gateway_url: Some("http://serre-api.serre-system.svc:8080"),
            fetch_image: Some("registry.metropolegrandparis.fr/serre/serre-api:0.1.0"),
            run_name: "bus-forecast-1",
            run_uid: "7c1d0c52-0000-4000-8000-000000000002",
            namespace: "serre-traffic-forecast",
            sandbox: "traffic-forecast",
            tenant: "est-ensemble",
        }
    }

    fn pod(job: &Job) -> &PodSpec {
        job.spec.as_ref().unwrap().template.spec.as_ref().unwrap()
    }

    #[test]
    fn the_init_step_fetches_every_grant_with_the_run_token() {
        let job = trial_run_job(&run(&["g-1", "g-2"]), &input());
        let init = &pod(&job).init_containers.as_ref().unwrap()[0];
        assert_eq!(init.name, "fetch-grants");
        assert_eq!(
            init.image.as_deref(),
            Some("registry.metropolegrandparis.fr/serre/serre-api:0.1.0")
        );
        assert_eq!(
            init.command.as_ref().unwrap(),
            &[
                "serre-api",
                "fetch-grants",
                "--gateway",
                "http://serre-api.serre-system.svc:8080",
                "--token-file",
                "/var/run/serre/token",
                "--out",
                "/data/grants",
                "--grant",
                "g-1",
                "--grant",
                "g-2",
            ]
        );
        let mounts = init.volume_mounts.as_ref().unwrap();
        assert_eq!(
            (mounts[0].mount_path.as_str(), mounts[0].read_only),
            ("/var/run/serre", Some(true))
        );
        assert_eq!(
            (mounts[1].mount_path.as_str(), mounts[1].read_only),
            ("/data/grants", Some(false))
        );
        let token = pod(&job)
            .volumes
            .as_ref()
            .unwrap()
            .iter()
            .find(|v| v.name == "token")
            .and_then(|v| v.secret.as_ref())
            .unwrap();
        assert_eq!(token.secret_name.as_deref(), Some("bus-forecast-1-token"));
        assert_eq!(token.items.as_ref().unwrap()[0].key, "token");
        let res = init.resources.as_ref().unwrap();
        assert_eq!(res.requests, res.limits);
        let env = &init.env.as_ref().unwrap()[0];
        assert_eq!(
            (env.name.as_str(), env.value.as_deref()),
            ("SERRE_RUN", Some("bus-forecast-1"))
        );
    }

    #[test]
    fn the_trial_reads_grants_read_only_and_sends_results_to_the_gateway() {
        let job = trial_run_job(&run(&["g-1"]), &input());
        let trial = &pod(&job).containers[0];
        assert_eq!(trial.name, "trial");
        assert_eq!(trial.command.as_ref().unwrap(), &["python"]);
        assert_eq!(trial.args.as_ref().unwrap(), &["run.py"]);
        let mounts: Vec<_> = trial
            .volume_mounts
            .iter()
            .flatten()
            .map(|m| (m.name.as_str(), m.mount_path.as_str(), m.read_only))
            .collect();
        assert_eq!(
            mounts,
            [
                ("grants", "/data/grants", Some(true)),
                ("token", "/var/run/serre", Some(true)),
            ]
        );
        let env: BTreeMap<_, _> = trial
            .env
            .as_ref()
            .unwrap()
            .iter()
            .map(|e| (e.name.as_str(), e.value.as_deref().unwrap()))
            .collect();
        assert_eq!(env["SERRE_RUN"], "bus-forecast-1");
        assert_eq!(env["SERRE_RUN_KIND"], "fineTuning");
        assert_eq!(env["SERRE_GRANTS_DIR"], "/data/grants");
        assert_eq!(
            env["SERRE_RESULTS_URL"],
            "http://serre-api.serre-system.svc:8080/v1/runs/bus-forecast-1/results/"
        );
        assert_eq!(env["SERRE_RUN_TOKEN_FILE"], "/var/run/serre/token");
        let res = trial.resources.as_ref().unwrap();
        assert_eq!(res.requests, res.limits);
        assert_eq!(res.limits.as_ref().unwrap()["cpu"].0, "2");
    }

    /// Issue 13: every trial container of a sandbox used to get the sandbox's bucket
    /// credentials and data key (`envFrom` the Secret `sandbox-storage`), so one vendor's
    /// run could read another's results. Now no container of the pod holds any storage
    /// setting; the only Secret in the pod is the run's own token.
    #[test]
    fn no_container_holds_a_storage_credential_only_the_runs_own_token() {
        for grants in [&["g-1"][..], &[]] {
            let job = trial_run_job(&run(grants), &input());
            let p = pod(&job);
            for c in p.init_containers.iter().flatten().chain(&p.containers) {
                assert!(c.env_from.is_none(), "{}: envFrom", c.name);
                for e in c.env.iter().flatten() {
                    assert!(
                        e.value_from.is_none(),
                        "{}: {} from a source",
                        c.name,
                        e.name
                    );
                    for forbidden in ["AWS_", "S3_", "SSE_C_"] {
                        assert!(!e.name.starts_with(forbidden), "{}: {}", c.name, e.name);
                    }
                }
            }
            let secrets: Vec<_> = p
                .volumes
                .iter()
                .flatten()
                .filter_map(|v| v.secret.as_ref())
                .map(|s| s.secret_name.as_deref().unwrap_or_default())
                .collect();
            assert_eq!(secrets, ["bus-forecast-1-token"], "grants {grants:?}");
            let json = serde_json::to_string(&job).unwrap();
            assert!(!json.contains("sandbox-storage"), "{json}");
        }
    }

    #[test]
    fn a_run_without_a_token_gets_no_results_endpoint() {
        let mut r = run(&[]);
        r.spec.token_secret = None;
        let job = trial_run_job(&r, &input());
        let p = pod(&job);
        assert!(p.volumes.iter().flatten().all(|v| v.secret.is_none()));
        let trial = &p.containers[0];
        assert!(
            trial
                .env
                .iter()
                .flatten()
                .all(|e| !e.name.starts_with("SERRE_RESULTS") && e.name != "SERRE_RUN_TOKEN_FILE")
        );
        assert_eq!(trial.volume_mounts.as_ref().map(Vec::len), Some(1));
    }

    #[test]
    fn gpus_are_limits_with_their_resource_name() {
        let mut r = run(&[]);
        r.spec.resources.gpu = Some(GpuRequest {
            count: 1,
            resource_name: "nvidia.com/mig-1g.10gb".into(),
        });
        let job = trial_run_job(&r, &input());
        let res = pod(&job).containers[0].resources.clone().unwrap();
        assert_eq!(res.limits.unwrap()["nvidia.com/mig-1g.10gb"].0, "1");
        assert!(!res.requests.unwrap().contains_key("nvidia.com/mig-1g.10gb"));
    }

    #[test]
    fn the_job_is_hardened_bounded_labelled_and_owned() {
        let job = trial_run_job(&run(&["g-1"]), &input());
        let spec = job.spec.as_ref().unwrap();
        assert_eq!(spec.backoff_limit, Some(0));
        assert_eq!(spec.active_deadline_seconds, Some(5400));
        assert_eq!(spec.ttl_seconds_after_finished, None);
        let p = pod(&job);
        assert_eq!(p.restart_policy.as_deref(), Some("Never"));
        assert_eq!(p.automount_service_account_token, Some(false));
        let sc = p.security_context.as_ref().unwrap();
        assert_eq!(sc.run_as_non_root, Some(true));
        assert_eq!(sc.run_as_user, Some(65532));
        assert_eq!(sc.seccomp_profile.as_ref().unwrap().type_, "RuntimeDefault");
        let all = p.init_containers.iter().flatten().chain(&p.containers);
        for c in all {
            let sc = c.security_context.as_ref().unwrap();
            assert_eq!(sc.allow_privilege_escalation, Some(false), "{}", c.name);
            assert_eq!(
                sc.capabilities.as_ref().unwrap().drop.as_deref(),
                Some(&["ALL".to_owned()][..])
            );
        }
        for labels in [
            job.metadata.labels.as_ref().unwrap(),
            spec.template
                .metadata
                .as_ref()
                .unwrap()
                .labels
                .as_ref()
                .unwrap(),
        ] {
            assert_eq!(labels[LABEL_RUN], "bus-forecast-1");
            assert_eq!(labels[LABEL_SANDBOX], "traffic-forecast");
            assert_eq!(labels[LABEL_TENANT], "est-ensemble");
            assert_eq!(labels[LABEL_MANAGED_BY], "serre-operator");
        }
        assert_eq!(job.metadata.name.as_deref(), Some("bus-forecast-1"));
        let owner = &job.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (
                owner.kind.as_str(),
                owner.controller,
                owner.block_owner_deletion
            ),
            ("TrialRun", Some(true), Some(true))
        );
    }

    #[test]
    fn without_grants_there_is_no_init_step_but_the_token_stays_for_results() {
        let job = trial_run_job(&run(&[]), &input());
        let p = pod(&job);
        assert!(p.init_containers.is_none());
        let volumes: Vec<_> = p
            .volumes
            .iter()
            .flatten()
            .map(|v| v.name.as_str())
            .collect();
        assert_eq!(volumes, ["grants", "token"]);
        let none = JobInput {
            gateway_url: None,
            fetch_image: None,
            ..input()
        };
        let mut tokenless = run(&[]);
        tokenless.spec.token_secret = None;
        assert_eq!(missing_setting(&tokenless, &none), None);
        // A run with a token needs the gateway for its results, with grants the image too.
        assert_eq!(
            missing_setting(&run(&[]), &none),
            Some("--gateway-url (SERRE_GATEWAY_URL)")
        );
        assert_eq!(
            missing_setting(&run(&["g-1"]), &none),
            Some("--gateway-url (SERRE_GATEWAY_URL)")
        );
        let no_image = JobInput {
            fetch_image: None,
            ..input()
        };
        assert_eq!(missing_setting(&run(&[]), &no_image), None);
        assert_eq!(
            missing_setting(&run(&["g-1"]), &no_image),
            Some("--run-fetch-image (SERRE_RUN_FETCH_IMAGE)")
        );
    }
}
