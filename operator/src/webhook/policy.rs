//! The sandbox policy on one pod template, pure: every rule the admission webhook
//! enforces, each problem reported with its rule and the path of its field, all at once.
//!
//! The rules:
//! - `allowed-registries`: every container image is from the tenant's
//!   `allowedRegistries` (the shared parser, [`serre_validation::image`]), or is one of
//!   Serre's own platform images (the trial runs' init step);
//! - `service-account-token`: `automountServiceAccountToken: false` on every pod, and no
//!   projected `serviceAccountToken` volume: sandbox pods never hold a Kubernetes token
//!   (the pod must say so itself: the rule never depends on a ServiceAccount's setting);
//! - `platform-secrets` ([`super::secret_refs`]): only Serre and the pod-making
//!   controllers put the namespace's Secrets in a pod;
//! - the Pod Security Standards `restricted` profile as upstream defines it (the
//!   baseline controls plus the restricted ones, as of Kubernetes 1.33), for every
//!   container, init container and ephemeral container: `restricted/host-process`,
//!   `host-namespaces`, `privileged`, `capabilities`, `host-path`, `host-ports`,
//!   `apparmor`, `selinux`, `proc-mount`, `seccomp`, `sysctls`, `volume-types`,
//!   `allow-privilege-escalation`, `run-as-non-root`, `run-as-user`.
//!
//! Stricter than upstream in one respect: Windows pods get no exemption (sandboxes run
//! Linux nodes).

use std::fmt;

use k8s_openapi::api::core::v1::{
    Capabilities, ContainerPort, PodSecurityContext, PodSpec, SELinuxOptions, SecurityContext,
};
use serde_json::Value;
use serre_validation::image::registry_allowed;

use super::secret_refs::secret_refs;

/// One refusal: the rule, the field (a path from the object's root) and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub rule: &'static str,
    pub field: String,
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} [rule {}]", self.field, self.message, self.rule)
    }
}

pub const RULE_REGISTRIES: &str = "allowed-registries";
pub const RULE_TOKEN: &str = "service-account-token";
pub const RULE_HOST_PROCESS: &str = "restricted/host-process";
pub const RULE_HOST_NAMESPACES: &str = "restricted/host-namespaces";
pub const RULE_PRIVILEGED: &str = "restricted/privileged";
pub const RULE_CAPABILITIES: &str = "restricted/capabilities";
pub const RULE_HOST_PATH: &str = "restricted/host-path";
pub const RULE_HOST_PORTS: &str = "restricted/host-ports";
pub const RULE_APPARMOR: &str = "restricted/apparmor";
pub const RULE_SELINUX: &str = "restricted/selinux";
pub const RULE_PROC_MOUNT: &str = "restricted/proc-mount";
pub const RULE_SECCOMP: &str = "restricted/seccomp";
pub const RULE_SYSCTLS: &str = "restricted/sysctls";
pub const RULE_VOLUME_TYPES: &str = "restricted/volume-types";
pub const RULE_PRIVILEGE_ESCALATION: &str = "restricted/allow-privilege-escalation";
pub const RULE_RUN_AS_NON_ROOT: &str = "restricted/run-as-non-root";
pub const RULE_RUN_AS_USER: &str = "restricted/run-as-user";

/// Volume sources `restricted` allows.
pub const ALLOWED_VOLUME_TYPES: [&str; 8] = [
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
];
/// Sysctls upstream's baseline calls safe (namespaced, isolated per pod).
pub const SAFE_SYSCTLS: [&str; 12] = [
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
    "net.ipv4.tcp_rmem",
    "net.ipv4.tcp_wmem",
];
/// SELinux types a container may ask for.
const SELINUX_TYPES: [&str; 5] = [
    "",
    "container_t",
    "container_init_t",
    "container_kvm_t",
    "container_engine_t",
];
const APPARMOR_ANNOTATION: &str = "container.apparmor.security.beta.kubernetes.io/";
const SECCOMP_POD_ANNOTATION: &str = "seccomp.security.alpha.kubernetes.io/pod";
const SECCOMP_CONTAINER_ANNOTATION: &str = "container.seccomp.security.alpha.kubernetes.io/";

/// What the rules read beyond the pod: the tenant's registries and Serre's own images.
pub struct Policy<'a> {
    /// `Tenant.spec.allowedRegistries` of the namespace's tenant.
    pub allowed_registries: &'a [String],
    /// Images Serre itself runs in sandboxes (exact references), allowed whatever the
    /// tenant's registries.
    pub platform_images: &'a [String],
    /// Whether the request's author may name the namespace's Secrets (the operator, a
    /// pod-making controller): [`super::secret_refs::may_name_secrets`].
    pub may_name_secrets: bool,
}

/// Where a pod template sits in its object: `spec` and `metadata` for a Pod,
/// `spec.template.spec` and `spec.template.metadata` for a Deployment, …
#[derive(Clone, Copy, Debug)]
pub struct Paths<'a> {
    pub spec: &'a str,
    pub metadata: &'a str,
}

/// Check one pod template: its metadata (annotations) and its spec, both as sent.
pub fn check_pod(
    metadata: &Value,
    spec: &Value,
    paths: Paths<'_>,
    policy: &Policy<'_>,
) -> Vec<Violation> {
    let pod: PodSpec = match serde_json::from_value(spec.clone()) {
        Ok(p) => p,
        Err(e) => {
            return vec![Violation {
                rule: "pod-spec",
                field: paths.spec.to_owned(),
                message: format!("could not be read: {e}"),
            }];
        }
    };
    let mut out = Out {
        list: Vec::new(),
        spec: paths.spec,
    };
    let containers = containers(&pod, paths.spec);
    let pod_sc = pod.security_context.clone().unwrap_or_default();

    images(&containers, policy, &mut out);
    token(&pod, spec, &mut out);
    host_process(&pod_sc, &containers, &mut out);
    host_namespaces(&pod, &mut out);
    for c in &containers {
        let sc = c.security_context;
        if sc.and_then(|s| s.privileged) == Some(true) {
            out.push(
                RULE_PRIVILEGED,
                &c.field("securityContext.privileged"),
                "must not be true",
            );
        }
        capabilities(c, &mut out);
        for (j, port) in c.ports.iter().enumerate() {
            if port.host_port.is_some_and(|p| p != 0) {
                out.push(
                    RULE_HOST_PORTS,
                    &c.field(&format!("ports[{j}].hostPort")),
                    "must be unset or 0: sandbox pods do not take node ports",
                );
            }
        }
        if let Some(p) = sc.and_then(|s| s.proc_mount.as_deref())
            && p != "Default"
        {
            out.push(
                RULE_PROC_MOUNT,
                &c.field("securityContext.procMount"),
                format!("must be unset or Default, not {p:?}"),
            );
        }
        if sc.and_then(|s| s.allow_privilege_escalation) != Some(false) {
            out.push(
                RULE_PRIVILEGE_ESCALATION,
                &c.field("securityContext.allowPrivilegeEscalation"),
                "must be false",
            );
        }
    }
    volumes(spec, &mut out);
    if !policy.may_name_secrets {
        out.list.extend(secret_refs(spec, paths.spec));
    }
    apparmor(metadata, &pod_sc, &containers, paths, &mut out);
    selinux(&pod_sc, &containers, &mut out);
    seccomp(metadata, &pod_sc, &containers, paths, &mut out);
    sysctls(&pod_sc, &mut out);
    run_as_non_root(&pod_sc, &containers, &mut out);
    run_as_user(&pod_sc, &containers, &mut out);
    out.list
}

/// Join violations into the one message a refusal carries.
pub fn describe(violations: &[Violation]) -> String {
    violations
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

struct Out<'a> {
    list: Vec<Violation>,
    spec: &'a str,
}

impl Out<'_> {
    fn push(&mut self, rule: &'static str, field: &str, message: impl Into<String>) {
        self.list.push(Violation {
            rule,
            field: field.to_owned(),
            message: message.into(),
        });
    }

    /// A field of the pod spec.
    fn pod(&self, field: &str) -> String {
        format!("{}.{field}", self.spec)
    }
}

/// What the rules read of any kind of container.
struct ContainerView<'a> {
    /// `spec.containers[0]`, `spec.initContainers[1]`, …
    path: String,
    name: &'a str,
    image: Option<&'a str>,
    security_context: Option<&'a SecurityContext>,
    ports: &'a [ContainerPort],
}

impl ContainerView<'_> {
    fn field(&self, rest: &str) -> String {
        format!("{}.{rest}", self.path)
    }
}

fn containers<'a>(pod: &'a PodSpec, spec: &str) -> Vec<ContainerView<'a>> {
    let mut out = Vec::new();
    for (list, key) in [
        (Some(&pod.containers), "containers"),
        (pod.init_containers.as_ref(), "initContainers"),
    ] {
        for (i, c) in list.into_iter().flatten().enumerate() {
            out.push(ContainerView {
                path: format!("{spec}.{key}[{i}]"),
                name: &c.name,
                image: c.image.as_deref(),
                security_context: c.security_context.as_ref(),
                ports: c.ports.as_deref().unwrap_or_default(),
            });
        }
    }
    for (i, c) in pod.ephemeral_containers.iter().flatten().enumerate() {
        out.push(ContainerView {
            path: format!("{spec}.ephemeralContainers[{i}]"),
            name: &c.name,
            image: c.image.as_deref(),
            security_context: c.security_context.as_ref(),
            ports: c.ports.as_deref().unwrap_or_default(),
        });
    }
    out
}

fn images(containers: &[ContainerView<'_>], policy: &Policy<'_>, out: &mut Out<'_>) {
    for c in containers {
        let image = c.image.unwrap_or_default();
        if policy.platform_images.iter().any(|p| p == image) {
            continue;
        }
        if let Err(message) = registry_allowed(image, policy.allowed_registries) {
            out.push(RULE_REGISTRIES, &c.field("image"), message);
        }
    }
}

fn token(pod: &PodSpec, raw: &Value, out: &mut Out<'_>) {
    if pod.automount_service_account_token != Some(false) {
        let field = out.pod("automountServiceAccountToken");
        out.push(
            RULE_TOKEN,
            &field,
            "must be false: sandbox pods hold no Kubernetes ServiceAccount token",
        );
    }
    for (i, v) in raw_volumes(raw).iter().enumerate() {
        let sources = v.pointer("/projected/sources").and_then(Value::as_array);
        for (j, s) in sources.into_iter().flatten().enumerate() {
            if s.get("serviceAccountToken").is_some() {
                let field = out.pod(&format!(
                    "volumes[{i}].projected.sources[{j}].serviceAccountToken"
                ));
                out.push(
                    RULE_TOKEN,
                    &field,
                    "is not allowed: sandbox pods hold no Kubernetes ServiceAccount token",
                );
            }
        }
    }
}

fn host_process(pod_sc: &PodSecurityContext, containers: &[ContainerView<'_>], out: &mut Out<'_>) {
    let on = |w: Option<&k8s_openapi::api::core::v1::WindowsSecurityContextOptions>| {
        w.and_then(|w| w.host_process) == Some(true)
    };
    if on(pod_sc.windows_options.as_ref()) {
        let f = out.pod("securityContext.windowsOptions.hostProcess");
        out.push(RULE_HOST_PROCESS, &f, "must not be true");
    }
    for c in containers {
        if on(c.security_context.and_then(|s| s.windows_options.as_ref())) {
            out.push(
                RULE_HOST_PROCESS,
                &c.field("securityContext.windowsOptions.hostProcess"),
                "must not be true",
            );
        }
    }
}

fn host_namespaces(pod: &PodSpec, out: &mut Out<'_>) {
    for (value, name) in [
        (pod.host_network, "hostNetwork"),
        (pod.host_pid, "hostPID"),
        (pod.host_ipc, "hostIPC"),
    ] {
        if value == Some(true) {
            let f = out.pod(name);
            out.push(
                RULE_HOST_NAMESPACES,
                &f,
                "must not be true: sandbox pods do not share the node's namespaces",
            );
        }
    }
}

fn capabilities(c: &ContainerView<'_>, out: &mut Out<'_>) {
    let caps: Option<&Capabilities> = c.security_context.and_then(|s| s.capabilities.as_ref());
    let drop = caps.and_then(|k| k.drop.as_deref()).unwrap_or_default();
    if !drop.iter().any(|d| d == "ALL") {
        out.push(
            RULE_CAPABILITIES,
            &c.field("securityContext.capabilities.drop"),
            "must include ALL",
        );
    }
    for (j, add) in caps
        .and_then(|k| k.add.as_deref())
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        if add != "NET_BIND_SERVICE" {
            out.push(
                RULE_CAPABILITIES,
                &c.field(&format!("securityContext.capabilities.add[{j}]")),
                format!("{add:?} is not allowed (only NET_BIND_SERVICE may be added)"),
            );
        }
    }
}

fn raw_volumes(spec: &Value) -> &[Value] {
    spec.get("volumes")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// Volume types are read from the object as sent (not from a typed copy), so a source
/// this build does not know is seen, and refused, too.
fn volumes(spec: &Value, out: &mut Out<'_>) {
    for (i, v) in raw_volumes(spec).iter().enumerate() {
        let Some(fields) = v.as_object() else {
            continue;
        };
        for key in fields.keys().filter(|k| *k != "name") {
            if key == "hostPath" {
                let f = out.pod(&format!("volumes[{i}].hostPath"));
                out.push(
                    RULE_HOST_PATH,
                    &f,
                    "is not allowed: sandbox pods do not mount the node's files",
                );
            } else if !ALLOWED_VOLUME_TYPES.contains(&key.as_str()) {
                let f = out.pod(&format!("volumes[{i}].{key}"));
                out.push(
                    RULE_VOLUME_TYPES,
                    &f,
                    format!(
                        "volume type {key:?} is not allowed (allowed: {})",
                        ALLOWED_VOLUME_TYPES.join(", ")
                    ),
                );
            }
        }
    }
}

fn annotations(metadata: &Value) -> impl Iterator<Item = (&str, &str)> {
    metadata
        .get("annotations")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.as_str(), v.as_str()?)))
}

fn apparmor(
    metadata: &Value,
    pod_sc: &PodSecurityContext,
    containers: &[ContainerView<'_>],
    paths: Paths<'_>,
    out: &mut Out<'_>,
) {
    for (key, value) in annotations(metadata) {
        if key.starts_with(APPARMOR_ANNOTATION)
            && value != "runtime/default"
            && !value.starts_with("localhost/")
        {
            out.push(
                RULE_APPARMOR,
                &format!("{}.annotations[{key}]", paths.metadata),
                format!("must be runtime/default or localhost/<profile>, not {value:?}"),
            );
        }
    }
    let ok = |t: &str| t == "RuntimeDefault" || t == "Localhost";
    if let Some(p) = &pod_sc.app_armor_profile
        && !ok(&p.type_)
    {
        let f = out.pod("securityContext.appArmorProfile.type");
        out.push(
            RULE_APPARMOR,
            &f,
            format!("must be RuntimeDefault or Localhost, not {:?}", p.type_),
        );
    }
    for c in containers {
        if let Some(p) = c
            .security_context
            .and_then(|s| s.app_armor_profile.as_ref())
            && !ok(&p.type_)
        {
            out.push(
                RULE_APPARMOR,
                &c.field("securityContext.appArmorProfile.type"),
                format!("must be RuntimeDefault or Localhost, not {:?}", p.type_),
            );
        }
    }
}

fn selinux(pod_sc: &PodSecurityContext, containers: &[ContainerView<'_>], out: &mut Out<'_>) {
    let check = |o: &SELinuxOptions, base: &str, out: &mut Out<'_>| {
        let t = o.type_.as_deref().unwrap_or_default();
        if !SELINUX_TYPES.contains(&t) {
            out.push(
                RULE_SELINUX,
                &format!("{base}.seLinuxOptions.type"),
                format!("{t:?} is not allowed (container_t, container_init_t, container_kvm_t or container_engine_t)"),
            );
        }
        for (value, name) in [(&o.user, "user"), (&o.role, "role")] {
            if value.as_deref().is_some_and(|v| !v.is_empty()) {
                out.push(
                    RULE_SELINUX,
                    &format!("{base}.seLinuxOptions.{name}"),
                    "must be unset",
                );
            }
        }
    };
    if let Some(o) = &pod_sc.se_linux_options {
        let base = out.pod("securityContext");
        check(o, &base, out);
    }
    for c in containers {
        if let Some(o) = c.security_context.and_then(|s| s.se_linux_options.as_ref()) {
            check(o, &c.field("securityContext"), out);
        }
    }
}

fn seccomp(
    metadata: &Value,
    pod_sc: &PodSecurityContext,
    containers: &[ContainerView<'_>],
    paths: Paths<'_>,
    out: &mut Out<'_>,
) {
    // The annotations of Kubernetes before 1.19 (still honoured by 1.20's kubelet).
    for (key, value) in annotations(metadata) {
        if (key == SECCOMP_POD_ANNOTATION || key.starts_with(SECCOMP_CONTAINER_ANNOTATION))
            && value == "unconfined"
        {
            out.push(
                RULE_SECCOMP,
                &format!("{}.annotations[{key}]", paths.metadata),
                "must not be unconfined",
            );
        }
    }
    let ok = |t: &str| t == "RuntimeDefault" || t == "Localhost";
    let pod_type = pod_sc.seccomp_profile.as_ref().map(|p| p.type_.as_str());
    if let Some(t) = pod_type
        && !ok(t)
    {
        let f = out.pod("securityContext.seccompProfile.type");
        out.push(
            RULE_SECCOMP,
            &f,
            format!("must be RuntimeDefault or Localhost, not {t:?}"),
        );
    }
    for c in containers {
        match c.security_context.and_then(|s| s.seccomp_profile.as_ref()) {
            Some(p) if !ok(&p.type_) => out.push(
                RULE_SECCOMP,
                &c.field("securityContext.seccompProfile.type"),
                format!("must be RuntimeDefault or Localhost, not {:?}", p.type_),
            ),
            Some(_) => {}
            None if pod_type.is_none() => out.push(
                RULE_SECCOMP,
                &c.field("securityContext.seccompProfile.type"),
                format!(
                    "must be RuntimeDefault or Localhost (or set {}.securityContext.seccompProfile.type for the whole pod)",
                    out.spec
                ),
            ),
            None => {}
        }
    }
}

fn sysctls(pod_sc: &PodSecurityContext, out: &mut Out<'_>) {
    for (i, s) in pod_sc.sysctls.iter().flatten().enumerate() {
        if !SAFE_SYSCTLS.contains(&s.name.as_str()) {
            let f = out.pod(&format!("securityContext.sysctls[{i}].name"));
            out.push(
                RULE_SYSCTLS,
                &f,
                format!("{:?} is not a safe sysctl", s.name),
            );
        }
    }
}

fn run_as_non_root(
    pod_sc: &PodSecurityContext,
    containers: &[ContainerView<'_>],
    out: &mut Out<'_>,
) {
    let mut unset = Vec::new();
    for c in containers {
        match c.security_context.and_then(|s| s.run_as_non_root) {
            Some(false) => out.push(
                RULE_RUN_AS_NON_ROOT,
                &c.field("securityContext.runAsNonRoot"),
                "must not be false",
            ),
            Some(true) => {}
            None => unset.push(c.name),
        }
    }
    let field = out.pod("securityContext.runAsNonRoot");
    if pod_sc.run_as_non_root != Some(true) && !unset.is_empty() {
        out.push(
            RULE_RUN_AS_NON_ROOT,
            &field,
            format!(
                "must be true (or set to true on each container; containers {} do not)",
                unset
                    .iter()
                    .map(|n| format!("{n:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
    } else if pod_sc.run_as_non_root == Some(false) {
        out.push(RULE_RUN_AS_NON_ROOT, &field, "must not be false");
    }
}

fn run_as_user(pod_sc: &PodSecurityContext, containers: &[ContainerView<'_>], out: &mut Out<'_>) {
    if pod_sc.run_as_user == Some(0) {
        let f = out.pod("securityContext.runAsUser");
        out.push(RULE_RUN_AS_USER, &f, "must not be 0 (root)");
    }
    for c in containers {
        if c.security_context.and_then(|s| s.run_as_user) == Some(0) {
            out.push(
                RULE_RUN_AS_USER,
                &c.field("securityContext.runAsUser"),
                "must not be 0 (root)",
            );
        }
    }
}

#[cfg(test)]
mod tests;
