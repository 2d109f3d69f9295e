//! The audit log: every authorization decision and every state change, hash-chained.
//!
//! Entry *n* stores `prev_hash` = hash of entry *n-1* (64 zeros for the first) and
//! `hash` = SHA-256 of the JSON array of all its stored fields, `prev_hash` included.
//! Changing, inserting or deleting any entry breaks the chain from that entry on;
//! [`verify`] recomputes it and names the first broken entry.
//!
//! Appends go through one writer that numbers and chains entries and commits them in
//! batches (group commit): each caller waits until its entries are durable. On a SQLite
//! file the writer is a blocking thread that owns the audit file
//! ([`crate::store::sqlite_audit`]) and reads the head under the write lock. Elsewhere
//! (PostgreSQL, in-memory SQLite) it is a task that goes through the pool; if another
//! replica took a sequence number first (PostgreSQL), it re-reads the head and chains
//! again.

pub mod chain;
pub mod checkpoint;

use std::sync::Arc;

use chrono::Utc;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};

use crate::metrics::Metrics;
use crate::store::sqlite_audit::AuditFile;
pub use chain::{Broken, ChainChecker, ExportScope, VerifyReport, verify};

use crate::store::{AuditRow, Store, StoreError, timestamp};

pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
const MAX_BATCH: usize = 256;

#[derive(Debug, Clone, thiserror::Error)]
pub enum AuditError {
    #[error("the audit log is unavailable: {0}")]
    Unavailable(String),
    #[error("the audit log writer has stopped")]
    Stopped,
}

/// Outcome recorded for an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Allow,
    Deny,
    /// The resource does not exist (nothing to authorize).
    NotFound,
    /// A state change.
    Change,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Allow => "allow",
            Outcome::Deny => "deny",
            Outcome::NotFound => "not_found",
            Outcome::Change => "change",
        }
    }
}

/// An entry before it is numbered and chained.
#[derive(Clone, Debug)]
pub struct Draft {
    pub time: String,
    pub principal: String,
    pub tenant: Option<String>,
    pub action: String,
    pub resource: String,
    pub outcome: Outcome,
    pub policies: Vec<String>,
    pub request_id: String,
    pub details: Value,
}

impl Draft {
    pub fn new(principal: &str, action: &str, resource: String, outcome: Outcome) -> Self {
        Self {
            time: timestamp(Utc::now()),
            principal: principal.to_owned(),
            tenant: None,
            action: action.to_owned(),
            resource,
            outcome,
            policies: Vec::new(),
            request_id: String::new(),
            details: Value::Object(Default::default()),
        }
    }
}

/// SHA-256 (hex) of an entry's stored fields and its predecessor's hash.
pub fn entry_hash(e: &AuditRow) -> String {
    let canonical = serde_json::json!([
        e.seq,
        e.time,
        e.principal,
        e.tenant,
        e.action,
        e.resource,
        e.decision,
        e.policies,
        e.request_id,
        e.details,
        e.prev_hash,
    ]);
    hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
}

fn seal(d: Draft, seq: i64, prev_hash: &str) -> AuditRow {
    let mut row = AuditRow {
        seq,
        time: d.time,
        principal: d.principal,
        tenant: d.tenant,
        action: d.action,
        resource: d.resource,
        decision: d.outcome.as_str().to_owned(),
        policies: serde_json::to_string(&d.policies).unwrap_or_else(|_| "[]".into()),
        request_id: d.request_id,
        details: d.details.to_string(),
        prev_hash: prev_hash.to_owned(),
        hash: String::new(),
    };
    row.hash = entry_hash(&row);
    row
}

struct Job {
    drafts: Vec<Draft>,
    done: oneshot::Sender<Result<(), AuditError>>,
}

/// Handle to the writer task.
#[derive(Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<Job>,
}

impl AuditLog {
    /// Start the writer. It stops once every handle is dropped and the queue is drained.
    pub fn start(store: Store, metrics: Arc<Metrics>) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(4096);
        let task = match store.audit_file() {
            Some(file) => {
                let file = file.to_owned();
                tokio::task::spawn_blocking(move || file_writer(&file, &metrics, rx))
            }
            None => tokio::spawn(writer(store, metrics, rx)),
        };
        (Self { tx }, task)
    }

    /// Append entries; returns once they are committed.
    pub async fn append(&self, drafts: Vec<Draft>) -> Result<(), AuditError> {
        if drafts.is_empty() {
            return Ok(());
        }
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Job { drafts, done })
            .await
            .map_err(|_| AuditError::Stopped)?;
        wait.await.map_err(|_| AuditError::Stopped)?
    }
}

async fn load_head(store: &Store) -> Result<(i64, String), StoreError> {
    Ok(store
        .audit_head()
        .await?
        .unwrap_or_else(|| (0, GENESIS.to_owned())))
}

async fn writer(store: Store, metrics: Arc<Metrics>, mut rx: mpsc::Receiver<Job>) {
    let mut head: Option<(i64, String)> = None;
    let mut jobs = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut jobs, MAX_BATCH).await > 0 {
        let mut outcome = Err(AuditError::Unavailable("not attempted".into()));
        for _attempt in 0..5 {
            let (seq0, prev0) = match &head {
                Some(h) => h.clone(),
                None => match load_head(&store).await {
                    Ok(h) => h,
                    Err(e) => {
                        outcome = Err(AuditError::Unavailable(e.to_string()));
                        break;
                    }
                },
            };
            let (mut seq, mut prev) = (seq0, prev0);
            let mut rows = Vec::new();
            for job in &jobs {
                for d in &job.drafts {
                    seq += 1;
                    let row = seal(d.clone(), seq, &prev);
                    prev = row.hash.clone();
                    rows.push(row);
                }
            }
            match store.audit_insert(&rows).await {
                Ok(()) => {
                    metrics.audit_entries.inc_by(rows.len() as u64);
                    metrics.audit_batches.inc();
                    head = Some((seq, prev));
                    outcome = Ok(());
                    break;
                }
                Err(StoreError::Conflict(_)) => {
                    // Another writer appended first: chain after its entries.
                    head = None;
                    outcome = Err(AuditError::Unavailable(
                        "contention on the audit log".into(),
                    ));
                }
                Err(e) => {
                    tracing::error!(error = %e, "audit append failed");
                    head = None;
                    outcome = Err(AuditError::Unavailable(e.to_string()));
                    break;
                }
            }
        }
        for job in jobs.drain(..) {
            let _ = job.done.send(outcome.clone());
        }
    }
}

/// The writer of a SQLite audit file: one thread, one connection, one transaction per
/// batch. Stops once every handle is dropped and the queue is drained.
fn file_writer(path: &std::path::Path, metrics: &Metrics, mut rx: mpsc::Receiver<Job>) {
    let mut file: Option<AuditFile> = None;
    let mut jobs = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.blocking_recv() {
        jobs.push(first);
        while jobs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let opened = match file.take() {
            Some(f) => Ok(f),
            None => AuditFile::open(path),
        };
        let outcome = opened.and_then(|mut f| {
            let appended = f.append(|head| {
                let (mut seq, mut prev) = head.unwrap_or_else(|| (0, GENESIS.to_owned()));
                let mut rows = Vec::new();
                for d in jobs.iter_mut().flat_map(|j| j.drafts.drain(..)) {
                    seq += 1;
                    let row = seal(d, seq, &prev);
                    prev.clone_from(&row.hash);
                    rows.push(row);
                }
                rows
            });
            file = Some(f);
            appended
        });
        let outcome = match outcome {
            Ok(n) => {
                metrics.audit_entries.inc_by(n as u64);
                metrics.audit_batches.inc();
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = %e, "audit append failed");
                // Reopen on the next batch.
                file = None;
                Err(AuditError::Unavailable(e.to_string()))
            }
        };
        for job in jobs.drain(..) {
            let _ = job.done.send(outcome.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft(n: u32) -> Draft {
        let mut d = Draft::new(
            "alice",
            "sandbox.read",
            format!("Sandbox::\"s{n}\""),
            Outcome::Allow,
        );
        d.policies = vec!["member-read-sandbox".into()];
        d.tenant = Some("est-ensemble".into());
        d
    }

    #[test]
    fn the_hash_covers_every_field() {
        let row = seal(draft(1), 1, GENESIS);
        assert_eq!(row.hash, entry_hash(&row));
        let mut changed = row.clone();
        for mutate in [
            |r: &mut AuditRow| r.seq = 2,
            |r: &mut AuditRow| r.time.push('0'),
            |r: &mut AuditRow| r.principal = "mallory".into(),
            |r: &mut AuditRow| r.tenant = None,
            |r: &mut AuditRow| r.action = "sandbox.delete".into(),
            |r: &mut AuditRow| r.resource.push('x'),
            |r: &mut AuditRow| r.decision = "deny".into(),
            |r: &mut AuditRow| r.policies = "[]".into(),
            |r: &mut AuditRow| r.request_id = "other".into(),
            |r: &mut AuditRow| r.details = "{\"a\":1}".into(),
            |r: &mut AuditRow| r.prev_hash = "1".repeat(64),
        ] {
            changed.clone_from(&row);
            mutate(&mut changed);
            assert_ne!(entry_hash(&changed), row.hash, "{changed:?}");
        }
    }

    #[test]
    fn the_checker_names_the_first_broken_entry() {
        let mut rows = Vec::new();
        let mut prev = GENESIS.to_owned();
        for n in 1..=5 {
            let r = seal(draft(n), i64::from(n), &prev);
            prev = r.hash.clone();
            rows.push(r);
        }
        let check = |rows: &[AuditRow], anchor: Option<(i64, &str)>| {
            let anchors: Vec<(i64, String)> =
                anchor.map(|(s, h)| (s, h.to_owned())).into_iter().collect();
            let mut c = ChainChecker::new(ExportScope::Whole, anchors);
            for r in rows {
                if !c.push(r) {
                    break;
                }
            }
            c.finish()
        };
        let ok = check(&rows, Some((2, &rows[1].hash.clone())));
        assert_eq!(ok.entries, 5);
        assert_eq!(ok.broken, None);
        assert_eq!(ok.head, Some((5, rows[4].hash.clone())));

        let mut modified = rows.clone();
        modified[2].principal = "mallory".into();
        let r = check(&modified, None);
        assert_eq!(r.broken.as_ref().map(|b| b.seq), Some(3));
        assert!(r.broken.unwrap().reason.contains("entry modified"));

        // Re-hashing the modified entry moves the break to the next one.
        modified[2].hash = entry_hash(&modified[2]);
        let r = check(&modified, None);
        assert_eq!(r.broken.map(|b| b.seq), Some(4));

        let mut deleted = rows.clone();
        deleted.remove(1);
        assert_eq!(check(&deleted, None).broken.map(|b| b.seq), Some(3));

        // A log rewritten from scratch verifies on its own, but not against an anchor.
        let mut rewritten = Vec::new();
        let mut prev = GENESIS.to_owned();
        for n in 1..=5 {
            let mut d = draft(n);
            d.principal = "mallory".into();
            let r = seal(d, i64::from(n), &prev);
            prev = r.hash.clone();
            rewritten.push(r);
        }
        assert_eq!(check(&rewritten, None).broken, None);
        let anchor = rows[3].hash.clone();
        assert_eq!(
            check(&rewritten, Some((4, &anchor))).broken.map(|b| b.seq),
            Some(4)
        );
        assert_eq!(
            check(&rows[..2], Some((4, &anchor))).broken.map(|b| b.seq),
            Some(4)
        );
    }

    #[test]
    fn sealed_entries_chain() {
        let a = seal(draft(1), 1, GENESIS);
        let b = seal(draft(2), 2, &a.hash);
        assert_eq!(b.prev_hash, a.hash);
        assert_eq!(a.decision, "allow");
        assert_eq!(a.policies, "[\"member-read-sandbox\"]");
    }
}
