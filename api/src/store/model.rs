//! Rows as stored. Times are RFC 3339 UTC strings with microseconds, JSON as text, so
//! both backends store exactly the same bytes (the audit hash depends on it).

use chrono::{DateTime, SecondsFormat, Utc};

use super::rows::row;

/// Request states.
pub const PENDING_APPROVAL: &str = "PendingApproval";
pub const APPROVED: &str = "Approved";
pub const REJECTED: &str = "Rejected";
pub const DELETING: &str = "Deleting";

row! {
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct SandboxRow {
        pub name: String,
        pub tenant: String,
        /// The `SandboxSpec` to apply, as JSON.
        pub spec: String,
        pub state: String,
        pub self_service: bool,
        pub created_by: String,
        pub created_at: String,
        pub decided_by: Option<String>,
        pub decided_at: Option<String>,
        pub decision_reason: Option<String>,
        /// JSON array of reasons the request needed approval.
        pub approval_reasons: String,
        /// Bumped on every change; the cluster is in sync when `applied_version == version`.
        pub version: i64,
        pub applied_version: Option<i64>,
        pub applied_at: Option<String>,
        pub push_error: Option<String>,
        pub push_failed_version: Option<i64>,
    }
}

row! {
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct MemberRow {
        pub sandbox: String,
        pub subject: String,
        pub added_by: String,
        pub added_at: String,
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SandboxRecord {
    pub row: SandboxRow,
    pub members: Vec<MemberRow>,
}

impl SandboxRecord {
    pub fn vendor_subjects(&self) -> Vec<String> {
        self.members.iter().map(|m| m.subject.clone()).collect()
    }
}

row! {
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct TenantPolicyRow {
        pub tenant: String,
        pub max_days: i64,
        pub allow_gpu: bool,
        pub max_cpu: Option<String>,
        pub max_memory: Option<String>,
        pub max_storage: Option<String>,
        pub updated_by: String,
        pub updated_at: String,
    }
}

row! {
    #[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
    pub struct AuditRow {
        pub seq: i64,
        pub time: String,
        pub principal: String,
        pub tenant: Option<String>,
        pub action: String,
        pub resource: String,
        pub decision: String,
        /// JSON array of policy ids.
        pub policies: String,
        pub request_id: String,
        /// JSON object.
        pub details: String,
        pub prev_hash: String,
        pub hash: String,
    }
}

/// The stored form of a time.
pub fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

pub fn parse_timestamp(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}
