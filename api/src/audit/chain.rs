//! Checking the hash chain: the whole log (database or full export), the tail after an
//! entry (`--after` export), or one tenant's entries (`--tenant` export), against
//! anchors recorded elsewhere (a `--anchor` noted earlier, a signed checkpoint).

use super::{GENESIS, entry_hash};
use crate::store::{AuditRow, Store, StoreError};

/// Where the chain breaks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Broken {
    pub seq: i64,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyReport {
    pub entries: u64,
    /// Sequence number and hash of the last entry.
    pub head: Option<(i64, String)>,
    pub broken: Option<Broken>,
}

/// What a set of entries is meant to be, as the person verifying it knows (never read
/// from the file, which an attacker could edit).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExportScope {
    /// The whole log from entry 1.
    Whole,
    /// Every entry after this sequence number: the first one's `prev_hash` is taken as
    /// given (its predecessor is not in the set), every later link is checked.
    After(i64),
    /// One tenant's entries (`--tenant` export): each entry's hash is recomputed, each
    /// belongs to that tenant, sequence numbers rise, and consecutive entries link. The
    /// links through other tenants' entries cannot be checked without them, so entries
    /// deleted between two of this tenant's are not detected here: the full log's check
    /// against the signed checkpoints is what detects them.
    Tenant(String),
}

/// Checks a chain one entry at a time, in sequence order.
pub struct ChainChecker {
    scope: ExportScope,
    /// The sequence number the next entry must have (Whole, After), or must exceed
    /// (Tenant: the last one seen).
    expected_seq: i64,
    prev: Option<String>,
    /// (seq, hash) recorded elsewhere earlier, and whether each was seen.
    anchors: Vec<(i64, String, bool)>,
    report: VerifyReport,
}

impl ChainChecker {
    /// `anchors`: entries recorded elsewhere earlier (seq, hash) that must still be there
    /// with that hash: this detects a log rewritten from scratch with fresh hashes, and
    /// one truncated before an anchored entry. In a tenant's export, an anchor of
    /// another tenant's entry cannot be checked and is refused as missing.
    pub fn new(scope: ExportScope, anchors: Vec<(i64, String)>) -> Self {
        let (expected_seq, prev) = match &scope {
            ExportScope::Whole => (1, Some(GENESIS.to_owned())),
            ExportScope::After(n) => (n + 1, None),
            ExportScope::Tenant(_) => (0, None),
        };
        Self {
            scope,
            expected_seq,
            prev,
            anchors: anchors.into_iter().map(|(s, h)| (s, h, false)).collect(),
            report: VerifyReport {
                entries: 0,
                head: None,
                broken: None,
            },
        }
    }

    /// Check the next entry; false once the chain is broken.
    pub fn push(&mut self, row: &AuditRow) -> bool {
        if self.report.broken.is_some() {
            return false;
        }
        if let Some(reason) = self.problem(row) {
            self.report.broken = Some(Broken {
                seq: row.seq,
                reason,
            });
            return false;
        }
        self.report.entries += 1;
        self.report.head = Some((row.seq, row.hash.clone()));
        self.prev = Some(row.hash.clone());
        self.expected_seq = match self.scope {
            ExportScope::Tenant(_) => row.seq,
            _ => row.seq + 1,
        };
        true
    }

    fn problem(&mut self, row: &AuditRow) -> Option<String> {
        match &self.scope {
            ExportScope::Tenant(t) => {
                if row.tenant.as_deref() != Some(t.as_str()) {
                    return Some(format!(
                        "entry of tenant {:?} in an export of tenant {t:?}",
                        row.tenant
                    ));
                }
                if row.seq <= self.expected_seq {
                    return Some(format!(
                        "sequence goes from {} to {} (entries reordered or repeated)",
                        self.expected_seq, row.seq
                    ));
                }
                // Consecutive entries of the tenant link directly.
                if row.seq == self.expected_seq + 1
                    && self.prev.as_ref().is_some_and(|p| *p != row.prev_hash)
                {
                    return Some(
                        "prev_hash does not match the previous entry's hash (an entry was inserted or removed, or the previous one was changed)".into(),
                    );
                }
            }
            _ => {
                if row.seq != self.expected_seq {
                    return Some(format!(
                        "sequence jumps from {} to {} (entries deleted or reordered)",
                        self.expected_seq - 1,
                        row.seq
                    ));
                }
                if self.prev.as_ref().is_some_and(|p| *p != row.prev_hash) {
                    return Some(
                        "prev_hash does not match the previous entry's hash (an entry was inserted or removed, or the previous one was changed)".into(),
                    );
                }
            }
        }
        if entry_hash(row) != row.hash {
            return Some("hash does not match the entry's content (entry modified)".into());
        }
        for (aseq, ahash, seen) in &mut self.anchors {
            if *aseq == row.seq {
                *seen = true;
                if row.hash != *ahash {
                    return Some(format!(
                        "hash differs from the anchor recorded for entry {aseq} (log rewritten)"
                    ));
                }
            }
        }
        None
    }

    pub fn finish(mut self) -> VerifyReport {
        if self.report.broken.is_none()
            && let Some((aseq, _, _)) = self.anchors.iter().find(|(_, _, seen)| !seen)
        {
            self.report.broken = Some(Broken {
                seq: *aseq,
                reason: format!("anchored entry {aseq} is missing (log truncated)"),
            });
        }
        self.report
    }
}

/// Recompute the whole chain stored in the database, against `anchors`.
pub async fn verify(store: &Store, anchors: &[(i64, String)]) -> Result<VerifyReport, StoreError> {
    let mut checker = ChainChecker::new(ExportScope::Whole, anchors.to_vec());
    let mut after = 0i64;
    loop {
        let page = store.audit_page(None, after, 1000).await?;
        if page.is_empty() {
            break;
        }
        for row in &page {
            after = row.seq;
            if !checker.push(row) {
                return Ok(checker.finish());
            }
        }
    }
    Ok(checker.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{Draft, Outcome, seal};

    fn chain(tenants: &[&str]) -> Vec<AuditRow> {
        let mut prev = GENESIS.to_owned();
        let mut rows = Vec::new();
        for (n, t) in tenants.iter().enumerate() {
            let mut d = Draft::new(
                "alice",
                "sandbox.read",
                format!("S::\"{n}\""),
                Outcome::Allow,
            );
            d.tenant = Some((*t).to_owned());
            let r = seal(d, n as i64 + 1, &prev);
            prev = r.hash.clone();
            rows.push(r);
        }
        rows
    }

    fn check(scope: ExportScope, rows: &[&AuditRow], anchors: &[(i64, String)]) -> VerifyReport {
        let mut c = ChainChecker::new(scope, anchors.to_vec());
        for r in rows {
            if !c.push(r) {
                break;
            }
        }
        c.finish()
    }

    #[test]
    fn an_export_after_an_entry_verifies_and_reaches_the_checkpoint() {
        let rows = chain(&["a", "b", "a", "b", "a"]);
        let tail: Vec<_> = rows[2..].iter().collect();
        let head = (5, rows[4].hash.clone());
        let ok = check(ExportScope::After(2), &tail, std::slice::from_ref(&head));
        assert_eq!((ok.entries, ok.broken), (3, None));
        // As a whole log it is refused: entries 1–2 are missing.
        let whole = check(ExportScope::Whole, &tail, &[]);
        assert_eq!(whole.broken.map(|b| b.seq), Some(3));
        // A tail cut short of the checkpoint is refused.
        let cut = check(ExportScope::After(2), &tail[..2], &[head]);
        assert!(cut.broken.unwrap().reason.contains("log truncated"));
        // A changed entry in the tail is found.
        let mut changed = rows[3].clone();
        changed.principal = "mallory".into();
        let with_change = [&rows[2], &changed, &rows[4]];
        let r = check(ExportScope::After(2), &with_change, &[]);
        assert_eq!(r.broken.map(|b| b.seq), Some(4));
    }

    #[test]
    fn a_tenants_export_checks_its_own_entries() {
        let rows = chain(&["a", "b", "a", "a", "b"]);
        let mine: Vec<_> = rows
            .iter()
            .filter(|r| r.tenant.as_deref() == Some("a"))
            .collect();
        let ok = check(ExportScope::Tenant("a".into()), &mine, &[]);
        assert_eq!((ok.entries, ok.broken), (3, None));
        // Another tenant's entry slipped in.
        let all: Vec<_> = rows.iter().collect();
        let r = check(ExportScope::Tenant("a".into()), &all, &[]);
        assert_eq!(r.broken.map(|b| b.seq), Some(2));
        // A modified entry.
        let mut changed = rows[2].clone();
        changed.action = "sandbox.delete".into();
        let r = check(
            ExportScope::Tenant("a".into()),
            &[&rows[0], &changed, &rows[3]],
            &[],
        );
        assert_eq!(r.broken.map(|b| b.seq), Some(3));
        // A re-hashed modified entry breaks its consecutive successor's link.
        changed.hash = entry_hash(&changed);
        let r = check(
            ExportScope::Tenant("a".into()),
            &[&rows[0], &changed, &rows[3]],
            &[],
        );
        assert_eq!(r.broken.map(|b| b.seq), Some(4));
        // Reordered.
        let r = check(ExportScope::Tenant("a".into()), &[&rows[2], &rows[0]], &[]);
        assert_eq!(r.broken.map(|b| b.seq), Some(1));
    }
}
