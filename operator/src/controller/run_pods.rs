//! What a run's pod says: why a run failed, and why a run whose Job has not failed cannot
//! go on (an image that cannot be pulled, a pod the sandbox refused). The diagnosis is
//! pure, over the pods and Job Events that [`observe`] reads.

use k8s_openapi::api::core::v1::{ContainerStatus, Event, Pod};
use kube::api::ListParams;
use kube::{Api, Client};

use super::error::Result;
use crate::build::job::{FETCH_CONTAINER, TRIAL_CONTAINER};
use crate::resources::LABEL_RUN;

/// Waiting reasons after which a container never starts without a change of image: the
/// kubelet already failed to pull once (`ImagePullBackOff` follows `ErrImagePull`), or the
/// reference cannot be pulled at all.
const PULL_FAILURES: [&str; 3] = ["ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"];

/// A run that cannot go on although its Job has not failed: the operator ends it.
#[derive(Clone, Debug, PartialEq)]
pub struct Blocked {
    /// `ImagePullFailed` or `PodRefused`.
    pub reason: &'static str,
    pub message: String,
}

/// The run's pods and, when it has none, the Events of its Job (where the Job controller
/// says why it could not create the pod).
pub struct Observed {
    pub pods: Vec<Pod>,
    pub job_events: Vec<Event>,
}

/// Read what [`blocked`] and [`failure`] look at.
pub async fn observe(client: &Client, ns: &str, run: &str, job_uid: &str) -> Result<Observed> {
    let pods = Api::<Pod>::namespaced(client.clone(), ns)
        .list(&ListParams::default().labels(&format!("{LABEL_RUN}={run}")))
        .await?
        .items;
    let job_events = if pods.is_empty() && !job_uid.is_empty() {
        Api::<Event>::namespaced(client.clone(), ns)
            .list(&ListParams::default().fields(&format!("involvedObject.uid={job_uid}")))
            .await?
            .items
    } else {
        Vec::new()
    };
    Ok(Observed { pods, job_events })
}

/// Why a run whose Job is still active cannot go on, if it cannot.
pub fn blocked(seen: &Observed) -> Option<Blocked> {
    for pod in &seen.pods {
        let Some(s) = &pod.status else { continue };
        let containers = s.init_container_statuses.iter().flatten();
        for c in containers.chain(s.container_statuses.iter().flatten()) {
            let Some(waiting) = c.state.as_ref().and_then(|st| st.waiting.as_ref()) else {
                continue;
            };
            let reason = waiting.reason.as_deref().unwrap_or_default();
            if PULL_FAILURES.contains(&reason) {
                return Some(Blocked {
                    reason: "ImagePullFailed",
                    message: format!(
                        "the image {:?} of container {} could not be pulled ({reason}{})",
                        c.image,
                        c.name,
                        waiting
                            .message
                            .as_deref()
                            .map(|m| format!(": {}", m.trim()))
                            .unwrap_or_default()
                    ),
                });
            }
        }
    }
    if seen.pods.is_empty() {
        // Quota, LimitRange or Pod Security refused the pod: the Job controller retries
        // forever, recording FailedCreate on the Job. The latest one says why.
        let refusal = seen
            .job_events
            .iter()
            .filter(|e| e.reason.as_deref() == Some("FailedCreate"))
            .max_by_key(|e| e.last_timestamp.as_ref().map(|t| t.0));
        if let Some(e) = refusal {
            let message = e.message.as_deref().unwrap_or("no message").trim();
            return Some(Blocked {
                reason: "PodRefused",
                message: format!("the sandbox refused the run's pod: {message}"),
            });
        }
    }
    None
}

/// Exit code and reason of a failed run, from its pod: the init step first.
pub fn failure(pods: &[Pod]) -> Option<(Option<i32>, String)> {
    let terminated = |statuses: Option<&Vec<ContainerStatus>>, name: &str| {
        statuses?
            .iter()
            .find(|c| c.name == name)?
            .state
            .as_ref()?
            .terminated
            .clone()
    };
    let detail = |reason: Option<String>, message: Option<String>| {
        let mut text = String::new();
        if let Some(r) = reason.filter(|r| !r.is_empty()) {
            text.push_str(&format!(" ({r})"));
        }
        if let Some(m) = message.as_deref().map(last_lines).filter(|m| !m.is_empty()) {
            text.push_str(&format!(": {m}"));
        }
        text
    };
    for pod in pods {
        let Some(s) = &pod.status else { continue };
        if let Some(t) = terminated(s.init_container_statuses.as_ref(), FETCH_CONTAINER)
            && t.exit_code != 0
        {
            let code = t.exit_code;
            return Some((
                Some(code),
                format!(
                    "fetching the granted datasets failed: exit code {code}{}",
                    detail(t.reason, t.message)
                ),
            ));
        }
        if let Some(t) = terminated(s.container_statuses.as_ref(), TRIAL_CONTAINER)
            && t.exit_code != 0
        {
            let code = t.exit_code;
            if t.reason.as_deref() == Some("OOMKilled") {
                let limit = memory_limit(pod, TRIAL_CONTAINER)
                    .map(|l| format!(" of {l}"))
                    .unwrap_or_default();
                return Some((
                    Some(code),
                    format!(
                        "the trial was killed for using more memory than its limit{limit} \
                         (OOMKilled, exit code {code})"
                    ),
                ));
            }
            return Some((
                Some(code),
                format!(
                    "the trial exited with code {code}{}",
                    detail(t.reason, t.message)
                ),
            ));
        }
        if s.phase.as_deref() == Some("Failed") {
            let why = [s.reason.clone(), s.message.clone()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(": ");
            if !why.is_empty() {
                return Some((None, format!("the pod failed: {why}")));
            }
        }
    }
    None
}

/// The end of a termination message (with `FallbackToLogsOnError`, the log's tail): its
/// last three lines with a letter or digit (a closing `}` says nothing), at most 400
/// characters, joined with " | ".
fn last_lines(message: &str) -> String {
    let lines: Vec<&str> = message
        .lines()
        .map(str::trim)
        .filter(|l| l.chars().any(char::is_alphanumeric))
        .collect();
    let text = lines[lines.len().saturating_sub(3)..].join(" | ");
    match text.char_indices().rev().nth(399) {
        Some((at, _)) => format!("…{}", &text[at..]),
        None => text,
    }
}

fn memory_limit(pod: &Pod, container: &str) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    let c = spec.containers.iter().find(|c| c.name == container)?;
    Some(
        c.resources
            .as_ref()?
            .limits
            .as_ref()?
            .get("memory")?
            .0
            .clone(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(value: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "status": value
        }))
        .unwrap()
    }

    fn terminated(name: &str, code: i32, reason: &str) -> serde_json::Value {
        json!({
            "name": name, "image": "x", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": code, "reason": reason}}
        })
    }

    fn waiting(name: &str, reason: &str, message: &str) -> serde_json::Value {
        json!({
            "name": name, "image": "reg.example/m:1", "imageID": "", "ready": false,
            "restartCount": 0, "state": {"waiting": {"reason": reason, "message": message}}
        })
    }

    fn seen(pods: Vec<Pod>, events: Vec<serde_json::Value>) -> Observed {
        Observed {
            pods,
            job_events: events
                .into_iter()
                .map(|e| serde_json::from_value(e).unwrap())
                .collect(),
        }
    }

    fn event(reason: &str, message: &str, at: &str) -> serde_json::Value {
        json!({
            "metadata": {"name": format!("e-{at}")}, "involvedObject": {"kind": "Job"},
            "reason": reason, "message": message, "lastTimestamp": at
        })
    }

    #[test]
    fn a_failed_trial_reports_its_exit_code() {
        let p = pod(json!({
            "phase": "Failed",
            "initContainerStatuses": [terminated("fetch-grants", 0, "Completed")],
            "containerStatuses": [terminated("trial", 3, "Error")]
        }));
        assert_eq!(
            failure(&[p]),
            Some((Some(3), "the trial exited with code 3 (Error)".into()))
        );
    }

    #[test]
    fn an_oom_kill_names_the_memory_limit() {
        let mut p = pod(json!({
            "phase": "Failed",
            "containerStatuses": [terminated("trial", 137, "OOMKilled")]
        }));
        p.spec = serde_json::from_value(json!({"containers": [{
            "name": "trial", "resources": {"limits": {"memory": "64Mi"}}
        }]}))
        .unwrap();
        assert_eq!(
            failure(&[p]),
            Some((
                Some(137),
                "the trial was killed for using more memory than its limit of 64Mi \
                 (OOMKilled, exit code 137)"
                    .into()
            ))
        );
    }

    #[test]
    fn a_failed_init_step_says_the_datasets_could_not_be_fetched() {
        let p = pod(json!({
            "phase": "Failed",
            "initContainerStatuses": [terminated("fetch-grants", 2, "Error")],
        }));
        let (code, reason) = failure(&[p]).unwrap();
        assert_eq!(code, Some(2));
        assert!(
            reason.starts_with("fetching the granted datasets failed: exit code 2"),
            "{reason}"
        );
    }

    #[test]
    fn a_log_tail_message_keeps_its_last_lines() {
        assert_eq!(last_lines("a\n\n b \nc\n  ]\n}\nd\n"), "b | c | d");
        assert_eq!(last_lines("one line"), "one line");
        let long = "x".repeat(1000);
        let cut = last_lines(&long);
        assert_eq!(cut.chars().count(), 401);
        assert!(cut.starts_with('…'));
    }

    #[test]
    fn an_evicted_pod_says_why() {
        let p = pod(json!({"phase": "Failed", "reason": "Evicted", "message": "low on disk"}));
        assert_eq!(
            failure(&[p]),
            Some((None, "the pod failed: Evicted: low on disk".into()))
        );
        assert_eq!(failure(&[]), None);
    }

    #[test]
    fn an_image_in_pull_back_off_blocks_the_run() {
        let p = pod(json!({
            "phase": "Pending",
            "containerStatuses": [waiting("trial", "ImagePullBackOff", "Back-off pulling image")]
        }));
        let b = blocked(&seen(vec![p], vec![])).unwrap();
        assert_eq!(b.reason, "ImagePullFailed");
        assert_eq!(
            b.message,
            "the image \"reg.example/m:1\" of container trial could not be pulled \
             (ImagePullBackOff: Back-off pulling image)"
        );
    }

    #[test]
    fn a_first_pull_error_and_a_creating_container_do_not_block_yet() {
        let p = pod(json!({
            "phase": "Pending",
            "initContainerStatuses": [waiting("fetch-grants", "ErrImagePull", "not found")],
            "containerStatuses": [waiting("trial", "PodInitializing", "")]
        }));
        assert_eq!(blocked(&seen(vec![p], vec![])), None);
    }

    #[test]
    fn a_refused_pod_is_named_by_the_latest_failed_create() {
        let events = vec![
            event("FailedCreate", "old refusal", "2026-01-01T00:00:00Z"),
            event(
                "FailedCreate",
                "Error creating: pods \"r-x\" is forbidden: exceeded quota: sandbox",
                "2026-01-01T00:00:05Z",
            ),
            event("SuccessfulCreate", "Created pod", "2026-01-01T00:00:09Z"),
        ];
        let b = blocked(&seen(vec![], events.clone())).unwrap();
        assert_eq!(b.reason, "PodRefused");
        assert_eq!(
            b.message,
            "the sandbox refused the run's pod: Error creating: pods \"r-x\" is forbidden: \
             exceeded quota: sandbox"
        );
        // Once a pod exists, old refusals no longer matter.
        let running = pod(json!({"phase": "Running"}));
        assert_eq!(blocked(&seen(vec![running], events)), None);
    }
}
