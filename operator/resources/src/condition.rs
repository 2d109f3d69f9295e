use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `True`, `False` or `Unknown`, as in every Kubernetes condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

/// A standard status condition (same shape as `metav1.Condition`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Condition type, e.g. `Ready`, `Admitted`, `ExpiringSoon`.
    #[serde(rename = "type")]
    pub type_: String,
    pub status: ConditionStatus,
    /// One CamelCase word a program can switch on.
    pub reason: String,
    /// What happened and what a person can do about it.
    pub message: String,
    pub last_transition_time: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

impl Condition {
    pub fn new(
        type_: &str,
        status: ConditionStatus,
        reason: &str,
        message: impl Into<String>,
        generation: Option<i64>,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            type_: type_.to_owned(),
            status,
            reason: reason.to_owned(),
            message: message.into(),
            last_transition_time: now,
            observed_generation: generation,
        }
    }
}

/// Insert or replace the condition of the same type, keeping `lastTransitionTime`
/// when the status did not change (so an unchanged state writes nothing).
pub fn set_condition(conditions: &mut Vec<Condition>, mut new: Condition) {
    match conditions.iter_mut().find(|c| c.type_ == new.type_) {
        Some(old) => {
            if old.status == new.status {
                new.last_transition_time = old.last_transition_time;
            }
            *old = new;
        }
        None => conditions.push(new),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn transition_time_kept_while_status_unchanged() {
        let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let t1 = Utc.with_ymd_and_hms(2026, 1, 2, 0, 0, 0).unwrap();
        let mut cs = vec![Condition::new(
            "Ready",
            ConditionStatus::False,
            "A",
            "a",
            Some(1),
            t0,
        )];
        set_condition(
            &mut cs,
            Condition::new("Ready", ConditionStatus::False, "B", "b", Some(2), t1),
        );
        assert_eq!(cs.len(), 1);
        assert_eq!(cs[0].last_transition_time, t0);
        assert_eq!(cs[0].reason, "B");
        set_condition(
            &mut cs,
            Condition::new("Ready", ConditionStatus::True, "C", "c", Some(2), t1),
        );
        assert_eq!(cs[0].last_transition_time, t1);
        set_condition(
            &mut cs,
            Condition::new("Other", ConditionStatus::True, "D", "d", None, t1),
        );
        assert_eq!(cs.len(), 2);
    }
}
