use super::*;

// ---------------------------------------------------------------------------------------
// Objects
// ---------------------------------------------------------------------------------------

pub(crate) async fn create_tenant(client: &Client, name: &str, sandboxes: usize) -> Result<()> {
    let n = sandboxes as u64;
    let spec = TenantSpec {
        display_name: format!("Benchmark tenant {name}"),
        kind: TenantKind::Commune,
        members: vec![MemberGroup {
            group: format!("{name}-admins"),
            role: MemberRole::Admin,
        }],
        // Room for every sandbox of the run (1 CPU, 4Gi, 10Gi each) and then some.
        allowance: Allowance {
            cpu: (2 * n).to_string(),
            memory: format!("{}Gi", 8 * n),
            gpus: 0,
            storage: format!("{}Gi", 20 * n),
            sandboxes: u32::try_from(2 * n)?,
        },
        allowed_registries: vec![],
        suspended: false,
        energy_budget_kwh: None,
    };
    let api = Api::<Tenant>::all(client.clone());
    // The CRDs were just created: retry while they are being established.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match api
            .create(&PostParams::default(), &Tenant::new(name, spec.clone()))
            .await
        {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() < deadline => {
                eprintln!("provision: tenant {name} not created yet ({e}); retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e).context(format!("create tenant {name}")),
        }
    }
}

/// Create every sandbox, `in_flight` at a time; returns when each create was answered.
pub(crate) async fn create_sandboxes(
    client: &Client,
    p: &Params,
    tenants: &[String],
) -> Result<Vec<(String, Instant)>> {
    let api = Api::<Sandbox>::all(client.clone());
    let expires_at = chrono::Utc::now() + chrono::Duration::days(30);
    let results: Vec<Result<(String, Instant)>> = futures::stream::iter(0..p.sandboxes)
        .map(|i| {
            let api = api.clone();
            // Round robin, so every tenant is provisioning at the same time.
            let tenant = tenants[i % tenants.len()].clone();
            async move {
                let name = format!("{PREFIX}-{i:04}");
                let spec = SandboxSpec {
                    tenant,
                    purpose: "Provisioning benchmark (issue 2)".into(),
                    owners: vec!["bench@serre.invalid".into()],
                    resources: SandboxResources {
                        cpu: "1".into(),
                        memory: "4Gi".into(),
                        gpu: None,
                        storage: "10Gi".into(),
                        max_pods: 4,
                    },
                    expires_at,
                    extra_egress_cidrs: vec![],
                };
                api.create(&PostParams::default(), &Sandbox::new(&name, spec))
                    .await
                    .with_context(|| format!("create sandbox {name}"))?;
                Ok((name, Instant::now()))
            }
        })
        .buffer_unordered(p.in_flight)
        .collect()
        .await;
    results.into_iter().collect()
}

#[derive(Default)]
pub(crate) struct Progress {
    /// When each sandbox was first seen Ready.
    pub(crate) ready: HashMap<String, Instant>,
    /// When each sandbox was first seen admitted (out of Pending).
    pub(crate) admitted: HashMap<String, Instant>,
    pub(crate) phases: HashMap<String, SandboxPhase>,
    /// Last status seen, and the `phase/Ready reason` steps each sandbox went through.
    pub(crate) last_status: HashMap<String, Value>,
    pub(crate) steps: HashMap<String, Vec<String>>,
    /// Status changes seen (a write that changes nothing makes no watch event).
    pub(crate) status_changes: usize,
    /// How often each status field changed: top-level keys, conditions by type.
    pub(crate) changed_fields: BTreeMap<String, usize>,
}

impl Progress {
    pub(crate) fn observe(&mut self, s: &Sandbox) {
        let name = s.name_any();
        let phase = s.status.as_ref().map(|st| st.phase).unwrap_or_default();
        if phase == SandboxPhase::Ready && !self.ready.contains_key(&name) {
            self.ready.insert(name.clone(), Instant::now());
        }
        let admitted = s.status.as_ref().is_some_and(|st| st.admitted.is_some());
        if admitted && !self.admitted.contains_key(&name) {
            self.admitted.insert(name.clone(), Instant::now());
        }
        self.phases.insert(name.clone(), phase);
        let status = serde_json::to_value(&s.status).unwrap_or_default();
        let before = self.last_status.get(&name).cloned().unwrap_or(Value::Null);
        if status == before {
            return;
        }
        self.status_changes += 1;
        for field in changed_fields(&before, &status) {
            *self.changed_fields.entry(field).or_default() += 1;
        }
        let reason = s
            .status
            .as_ref()
            .and_then(|st| st.conditions.iter().find(|c| c.type_ == "Ready"))
            .map_or("-".to_owned(), |c| c.reason.clone());
        let step = format!("{phase:?}/{reason}");
        let steps = self.steps.entry(name.clone()).or_default();
        if steps.last() != Some(&step) {
            steps.push(step);
        }
        self.last_status.insert(name, status);
    }

    /// The distinct step sequences, most frequent first.
    pub(crate) fn sequences(&self) -> Vec<(String, usize)> {
        let mut counts: HashMap<String, usize> = HashMap::new();
        for steps in self.steps.values() {
            *counts.entry(steps.join(" → ")).or_default() += 1;
        }
        let mut v: Vec<_> = counts.into_iter().collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v
    }
}

/// Top-level status fields that differ; conditions are compared by type, ignoring
/// nothing (a new `lastTransitionTime` counts as a change).
pub(crate) fn changed_fields(before: &Value, after: &Value) -> Vec<String> {
    let empty = serde_json::Map::new();
    let (b, a) = (
        before.as_object().unwrap_or(&empty),
        after.as_object().unwrap_or(&empty),
    );
    let mut keys: Vec<&String> = b.keys().chain(a.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut out = Vec::new();
    for k in keys {
        if b.get(k) == a.get(k) {
            continue;
        }
        if k != "conditions" {
            out.push(k.clone());
            continue;
        }
        let by_type = |v: Option<&Value>| -> BTreeMap<String, Value> {
            v.and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|c| (c["type"].as_str().unwrap_or("").to_owned(), c.clone()))
                .collect()
        };
        let (cb, ca) = (by_type(b.get(k)), by_type(a.get(k)));
        let mut types: Vec<&String> = cb.keys().chain(ca.keys()).collect();
        types.sort();
        types.dedup();
        for t in types {
            if cb.get(t) != ca.get(t) {
                out.push(format!("conditions[{t}]"));
            }
        }
    }
    out
}

/// Watch sandboxes: when each one first shows `Ready`, and how its status changed.
pub(crate) async fn track_ready(client: Client, progress: Arc<Mutex<Progress>>) {
    let stream = watcher(Api::<Sandbox>::all(client), watcher::Config::default())
        .default_backoff()
        .applied_objects();
    futures::pin_mut!(stream);
    while let Some(item) = stream.next().await {
        let Ok(s) = item else { continue };
        progress
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .observe(&s);
    }
}

/// Wait until every sandbox is Ready (or the timeout); returns the time from `t0` and
/// a one-second timeline of readiness and the operator's counters.
pub(crate) async fn wait_all_ready(
    p: &Params,
    progress: &Mutex<Progress>,
    op: &str,
    t0: Instant,
) -> (Option<Duration>, Vec<Value>) {
    let mut timeline = Vec::new();
    let mut next_sample = Duration::ZERO;
    loop {
        let (ready, last, phases) = {
            let pr = progress.lock().unwrap_or_else(|e| e.into_inner());
            let mut phases: BTreeMap<String, usize> = BTreeMap::new();
            for ph in pr.phases.values() {
                *phases.entry(format!("{ph:?}")).or_default() += 1;
            }
            (pr.ready.len(), pr.ready.values().max().copied(), phases)
        };
        let elapsed = t0.elapsed();
        if elapsed >= next_sample || ready >= p.sandboxes {
            next_sample += Duration::from_secs(1);
            let m = scrape(op);
            let get = |name: &str, filter: &[(&str, &str)]| m.as_ref().map(|m| m.sum(name, filter));
            let sample = json!({
                "t_s": (elapsed.as_secs_f64() * 10.0).round() / 10.0,
                "ready": ready,
                "phases": phases,
                "sandbox_reconciles": get("serre_operator_reconciliations_total", &[("controller", "sandbox")]),
                "tenant_reconciles": get("serre_operator_reconciliations_total", &[("controller", "tenant")]),
                "writes": get("serre_operator_api_writes_total", &[]),
            });
            if timeline.len() % 5 == 0 || ready >= p.sandboxes {
                eprintln!("provision: {sample}");
            }
            timeline.push(sample);
        }
        if ready >= p.sandboxes {
            return (last.map(|l| l.saturating_duration_since(t0)), timeline);
        }
        if elapsed > p.ready_timeout {
            eprintln!(
                "provision: only {ready} of {} sandboxes Ready after {:?}",
                p.sandboxes, p.ready_timeout
            );
            return (None, timeline);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Children the operator created, by kind (found by its managed-by label).
pub(crate) async fn count_children(client: &Client) -> Result<BTreeMap<&'static str, usize>> {
    async fn count<K>(client: &Client) -> Result<usize>
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
    {
        let lp = ListParams::default().labels(&format!("{LABEL_MANAGED_BY}={MANAGER}"));
        Ok(Api::<K>::all(client.clone())
            .list_metadata(&lp)
            .await?
            .items
            .len())
    }
    Ok(BTreeMap::from([
        ("Namespace", count::<Namespace>(client).await?),
        ("ResourceQuota", count::<ResourceQuota>(client).await?),
        ("LimitRange", count::<LimitRange>(client).await?),
        ("ServiceAccount", count::<ServiceAccount>(client).await?),
        ("RoleBinding", count::<RoleBinding>(client).await?),
        ("NetworkPolicy", count::<NetworkPolicy>(client).await?),
    ]))
}
