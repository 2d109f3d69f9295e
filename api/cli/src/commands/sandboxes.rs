//! `serre sandboxes …`: `/v1/sandboxes` (docs/gateway.md, *Sandbox requests*).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::{Ctx, after, duration};
use crate::error::Failure;
use crate::output::{self, Table, field, pairs};

#[derive(Subcommand)]
pub enum Sandboxes {
    /// The sandboxes you may see (your tenants', those you were added to as a vendor).
    #[command(
        after_help = "Example:\n  serre sandboxes list --tenant est-ensemble --state PendingApproval"
    )]
    List {
        #[arg(long)]
        tenant: Option<String>,
        /// PendingApproval, Approved, Rejected or Deleting.
        #[arg(long)]
        state: Option<String>,
    },
    /// One sandbox: its request, the cluster's status, its members.
    #[command(after_help = "Example:\n  serre sandboxes show est-ensemble--traffic")]
    Show { name: String },
    /// Ask for a sandbox; within the tenant's self-service policy it is approved at once.
    #[command(
        after_help = "Example:\n  serre sandboxes request --tenant est-ensemble --name traffic \\\n    --purpose 'Forecast bus ridership' --cpu 2 --memory 4Gi --storage 10Gi --expires-in 30d"
    )]
    Request(Request),
    /// Approve a pending request (tenant admins, not its author).
    #[command(
        after_help = "Example:\n  serre sandboxes approve est-ensemble--traffic --reason 'budget agreed'"
    )]
    Approve {
        name: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Reject a pending request (tenant admins).
    #[command(
        after_help = "Example:\n  serre sandboxes reject est-ensemble--traffic --reason 'use the shared sandbox'"
    )]
    Reject {
        name: String,
        #[arg(long)]
        reason: String,
    },
    /// Vendor members of a sandbox (tenant admins).
    #[command(subcommand)]
    Members(Members),
    /// Withdraw a request, or delete an applied sandbox (its storage is destroyed).
    #[command(after_help = "Example:\n  serre sandboxes delete est-ensemble--traffic")]
    Delete { name: String },
}

#[derive(Subcommand)]
pub enum Members {
    /// Add a vendor principal (the `sub` of its tokens).
    #[command(after_help = "Example:\n  serre sandboxes members add est-ensemble--traffic vendor")]
    Add { sandbox: String, subject: String },
    /// Remove a vendor principal.
    #[command(
        after_help = "Example:\n  serre sandboxes members remove est-ensemble--traffic vendor"
    )]
    Remove { sandbox: String, subject: String },
}

#[derive(Args, Debug)]
pub struct Request {
    #[arg(long)]
    tenant: String,
    /// Short name (DNS label); the sandbox is named `<tenant>--<name>`.
    #[arg(long)]
    name: String,
    /// What the sandbox is for (GDPR purpose limitation).
    #[arg(long)]
    purpose: String,
    /// CPU cores, e.g. 2 or 500m.
    #[arg(long)]
    cpu: String,
    /// Memory, e.g. 4Gi.
    #[arg(long)]
    memory: String,
    /// Object storage, e.g. 10Gi.
    #[arg(long)]
    storage: String,
    /// Number of GPUs.
    #[arg(long)]
    gpu: Option<u32>,
    /// The GPUs' resource name (default nvidia.com/gpu).
    #[arg(long, requires = "gpu")]
    gpu_resource: Option<String>,
    #[arg(long)]
    max_pods: Option<u32>,
    /// Lifetime from now, e.g. 30d.
    #[arg(long, value_parser = duration, conflicts_with = "expires_at", required_unless_present = "expires_at")]
    expires_in: Option<Duration>,
    /// Expiry as RFC 3339, e.g. 2026-06-30T00:00:00Z.
    #[arg(long)]
    expires_at: Option<String>,
    /// An extra egress CIDR (repeat for several).
    #[arg(long = "egress")]
    egress: Vec<String>,
}

impl Request {
    /// The body of `POST /v1/sandboxes`.
    pub fn body(&self) -> Result<Value> {
        let expires_at = match (&self.expires_at, self.expires_in) {
            (Some(at), _) => at.clone(),
            (None, Some(d)) => after(d)?,
            (None, None) => {
                return Err(Failure::Usage("say --expires-in or --expires-at".into()).into());
            }
        };
        let mut resources =
            json!({"cpu": self.cpu, "memory": self.memory, "storage": self.storage});
        if let Some(count) = self.gpu {
            let mut gpu = json!({ "count": count });
            if let Some(r) = &self.gpu_resource {
                gpu["resourceName"] = json!(r);
            }
            resources["gpu"] = gpu;
        }
        if let Some(p) = self.max_pods {
            resources["maxPods"] = json!(p);
        }
        let mut body = json!({
            "tenant": self.tenant, "name": self.name, "purpose": self.purpose,
            "resources": resources, "expiresAt": expires_at,
        });
        if !self.egress.is_empty() {
            body["extraEgressCidrs"] = json!(self.egress);
        }
        Ok(body)
    }
}

fn list_table(v: &Value) -> String {
    let mut t = Table::new(&[
        "NAME", "TENANT", "REQUEST", "CLUSTER", "PHASE", "CPU", "MEMORY", "STORAGE", "EXPIRES",
    ]);
    for s in v["items"].as_array().into_iter().flatten() {
        t.row(vec![
            field(s, "/name"),
            field(s, "/tenant"),
            field(s, "/request/state"),
            field(s, "/cluster/state"),
            field(s, "/cluster/phase"),
            field(s, "/resources/cpu"),
            field(s, "/resources/memory"),
            field(s, "/resources/storage"),
            field(s, "/expiresAt"),
        ]);
    }
    t.render()
}

/// One sandbox for people.
pub fn detail(s: &Value) -> String {
    let mut out = pairs(&[
        ("name", field(s, "/name")),
        ("tenant", field(s, "/tenant")),
        ("purpose", field(s, "/purpose")),
        ("request", field(s, "/request/state")),
        ("approval reasons", field(s, "/request/approvalReasons")),
        ("decided by", field(s, "/request/decidedBy")),
        ("cluster", field(s, "/cluster/state")),
        ("cluster message", field(s, "/cluster/message")),
        ("phase", field(s, "/cluster/phase")),
        ("namespace", field(s, "/cluster/namespace")),
        (
            "resources",
            format!(
                "cpu {}, memory {}, storage {}, gpu {}, max pods {}",
                field(s, "/resources/cpu"),
                field(s, "/resources/memory"),
                field(s, "/resources/storage"),
                field(s, "/resources/gpu/count"),
                field(s, "/resources/maxPods"),
            ),
        ),
        ("expires", field(s, "/expiresAt")),
        ("created by", field(s, "/createdBy")),
        ("created", field(s, "/createdAt")),
    ]);
    if let Some(conds) = s["cluster"]["conditions"]
        .as_array()
        .filter(|c| !c.is_empty())
    {
        let mut t = Table::new(&["CONDITION", "STATUS", "REASON", "MESSAGE"]);
        for c in conds {
            t.row(vec![
                field(c, "/type"),
                field(c, "/status"),
                field(c, "/reason"),
                field(c, "/message"),
            ]);
        }
        out.push('\n');
        out.push_str(&t.render());
    }
    if let Some(members) = s["members"].as_array().filter(|m| !m.is_empty()) {
        let mut t = Table::new(&["MEMBER", "ADDED BY", "ADDED"]);
        for m in members {
            t.row(vec![
                field(m, "/subject"),
                field(m, "/addedBy"),
                field(m, "/addedAt"),
            ]);
        }
        out.push('\n');
        out.push_str(&t.render());
    }
    out
}

impl Sandboxes {
    pub async fn run(self, ctx: &Ctx) -> Result<ExitCode> {
        let c = ctx.client().await?;
        let fmt = ctx.global.output;
        match self {
            Sandboxes::List { tenant, state } => {
                let mut q = Vec::new();
                if let Some(t) = tenant {
                    q.push(("tenant", t));
                }
                if let Some(s) = state {
                    q.push(("state", s));
                }
                let v = c.get(&["sandboxes"], &q).await?;
                output::emit(fmt, &v, list_table);
            }
            Sandboxes::Show { name } => {
                let v = c.get(&["sandboxes", &name], &[]).await?;
                output::emit(fmt, &v, detail);
            }
            Sandboxes::Request(r) => {
                let v = c.post(&["sandboxes"], &r.body()?).await?;
                output::emit(fmt, &v, detail);
            }
            Sandboxes::Approve { name, reason } => {
                let v = c
                    .post(
                        &["sandboxes", &name, "approve"],
                        &json!({ "reason": reason }),
                    )
                    .await?;
                output::emit(fmt, &v, detail);
            }
            Sandboxes::Reject { name, reason } => {
                let v = c
                    .post(
                        &["sandboxes", &name, "reject"],
                        &json!({ "reason": reason }),
                    )
                    .await?;
                output::emit(fmt, &v, detail);
            }
            Sandboxes::Members(Members::Add { sandbox, subject }) => {
                let v = c
                    .post(
                        &["sandboxes", &sandbox, "members"],
                        &json!({ "subject": subject }),
                    )
                    .await?;
                output::emit(fmt, &v, detail);
            }
            Sandboxes::Members(Members::Remove { sandbox, subject }) => {
                c.delete(&["sandboxes", &sandbox, "members", &subject])
                    .await?;
                eprintln!("Removed {subject} from {sandbox}.");
            }
            Sandboxes::Delete { name } => {
                let v = c.delete(&["sandboxes", &name]).await?;
                if v.is_null() {
                    eprintln!("Deleted {name}.");
                } else {
                    output::emit(fmt, &v, detail);
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        r: Request,
    }

    #[test]
    fn request_body_has_the_gateway_shape() {
        let t = T::parse_from([
            "t",
            "--tenant",
            "est-ensemble",
            "--name",
            "traffic",
            "--purpose",
            "Forecast",
            "--cpu",
            "2",
            "--memory",
            "4Gi",
            "--storage",
            "10Gi",
            "--gpu",
            "1",
            "--expires-at",
            "2026-06-30T00:00:00Z",
            "--egress",
            "10.0.0.0/8",
        ]);
        assert_eq!(
            t.r.body().unwrap(),
            json!({"tenant": "est-ensemble", "name": "traffic", "purpose": "Forecast",
                   "resources": {"cpu": "2", "memory": "4Gi", "storage": "10Gi", "gpu": {"count": 1}},
                   "expiresAt": "2026-06-30T00:00:00Z", "extraEgressCidrs": ["10.0.0.0/8"]})
        );
    }

    #[test]
    fn expires_in_is_counted_from_now() {
        let t = T::parse_from([
            "t",
            "--tenant",
            "x",
            "--name",
            "y",
            "--purpose",
            "p",
            "--cpu",
            "1",
            "--memory",
            "1Gi",
            "--storage",
            "1Gi",
            "--expires-in",
            "30d",
        ]);
        let body = t.r.body().unwrap();
        let at = chrono::DateTime::parse_from_rfc3339(body["expiresAt"].as_str().unwrap()).unwrap();
        let days = (at.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_hours();
        assert!((719..=720).contains(&days), "{days}");
    }
}
