use super::*;

// ---------------------------------------------------------------------------------------
// Resync
// ---------------------------------------------------------------------------------------

pub(crate) struct Resync {
    /// Seconds from the start of the wait until the first resync reconcile.
    pub(crate) started_after_s: Option<f64>,
    /// Seconds from the first to the last of the N reconciles.
    pub(crate) duration_s: Option<f64>,
    pub(crate) reconciles: f64,
    pub(crate) operator_writes: BTreeMap<Vec<String>, f64>,
    pub(crate) apiserver_writes: BTreeMap<Vec<String>, f64>,
    pub(crate) lease_writes: f64,
    pub(crate) completed: bool,
}

impl Resync {
    pub(crate) fn operator_total(&self) -> f64 {
        total(&self.operator_writes)
    }

    pub(crate) fn apiserver_total(&self) -> f64 {
        total(&self.apiserver_writes)
    }

    /// The apiserver's count of the writes only the operator sends (see [`attribute`]).
    pub(crate) fn apiserver_operator(&self) -> f64 {
        attribute(&self.apiserver_writes, 0.0)
            .get("operator")
            .copied()
            .unwrap_or(0.0)
    }

    pub(crate) fn json(&self) -> Value {
        json!({
            "completed": self.completed,
            "started_after_s": self.started_after_s,
            "duration_s": self.duration_s,
            "sandbox_reconciles": self.reconciles,
            "operator_writes": self.operator_total(),
            "operator_writes_by_kind_verb": to_json(&self.operator_writes),
            "apiserver_writes_without_leases": self.apiserver_total(),
            "apiserver_writes_attributed_to_operator": self.apiserver_operator(),
            "apiserver_writes_by_verb_resource": to_json(&self.apiserver_writes),
            "lease_writes": self.lease_writes,
            "target_writes": 0,
        })
    }
}

/// After provisioning has settled: wait for a full resync (≥ N sandbox reconciles) and
/// count what it wrote.
pub(crate) async fn measure_resync(p: &Params, op: &str, cp: &ControlPlane) -> Result<Resync> {
    let reconciles = |m: &Prom| {
        m.sum(
            "serre_operator_reconciliations_total",
            &[("controller", "sandbox")],
        )
    };
    let op0 = scrape(op).context("operator metrics")?;
    let api0 = cp.apiserver_metrics()?;
    let r0 = reconciles(&op0);
    let target = r0 + p.sandboxes as f64;
    let start = Instant::now();
    let deadline = start + p.resync_period + Duration::from_secs(180);
    let (mut first, mut last) = (None, None);
    eprintln!(
        "provision: waiting for a full resync ({} sandbox reconciles)",
        p.sandboxes
    );
    let completed = loop {
        let now = scrape(op).map(|m| reconciles(&m)).unwrap_or(r0);
        if now > r0 && first.is_none() {
            first = Some(start.elapsed());
        }
        if now >= target {
            last = Some(start.elapsed());
            break true;
        }
        if Instant::now() > deadline {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    settle(op, Duration::from_secs(3), Duration::from_secs(60)).await;
    let op1 = scrape(op).context("operator metrics")?;
    let api1 = cp.apiserver_metrics()?;
    let mut apiserver_writes = apiserver_writes(&api1, &api0);
    let leases: Vec<_> = apiserver_writes
        .keys()
        .filter(|k| k[2] == "leases")
        .cloned()
        .collect();
    let lease_writes = leases
        .iter()
        .filter_map(|k| apiserver_writes.remove(k))
        .sum();
    Ok(Resync {
        started_after_s: first.map(|d| d.as_secs_f64()),
        duration_s: first.zip(last).map(|(f, l)| (l - f).as_secs_f64()),
        reconciles: reconciles(&op1) - r0,
        operator_writes: op1.delta(&op0, "serre_operator_api_writes_total", &["kind", "verb"]),
        apiserver_writes,
        lease_writes,
        completed,
    })
}
