use super::*;

/// Per-sandbox spans, each in seconds.
pub(crate) struct Latencies {
    pub(crate) ready: Vec<f64>,
    pub(crate) admitted: Vec<f64>,
    pub(crate) admitted_to_ready: Vec<f64>,
}

/// Seconds from `from` to `to` for each sandbox found in both, sorted.
pub(crate) fn spans(from: &HashMap<String, Instant>, to: &HashMap<String, Instant>) -> Vec<f64> {
    let mut v: Vec<f64> = from
        .iter()
        .filter_map(|(name, a)| Some(to.get(name)?.saturating_duration_since(*a).as_secs_f64()))
        .collect();
    v.sort_by(f64::total_cmp);
    v
}

pub(crate) fn percentiles(sorted: &[f64]) -> Value {
    let at = |q: f64| {
        (!sorted.is_empty()).then(|| sorted[((sorted.len() - 1) as f64 * q).round() as usize])
    };
    json!({"p50": at(0.5), "p90": at(0.9), "p99": at(0.99), "max": at(1.0)})
}

// ---------------------------------------------------------------------------------------
// Summary
// ---------------------------------------------------------------------------------------

pub(crate) struct SummaryInput<'a> {
    pub(crate) p: &'a Params,
    pub(crate) ready_s: Option<f64>,
    pub(crate) all_created: Duration,
    pub(crate) latencies: &'a Latencies,
    pub(crate) status_history: &'a Value,
    pub(crate) api_time: &'a [Value],
    pub(crate) api_requests: &'a [Value],
    pub(crate) garage_calls: &'a Value,
    pub(crate) op_writes: &'a BTreeMap<Vec<String>, f64>,
    pub(crate) op_writes_total: f64,
    pub(crate) attributed: &'a BTreeMap<&'static str, f64>,
    pub(crate) kcm_write_total: Option<f64>,
    pub(crate) api_errors: &'a BTreeMap<Vec<String>, f64>,
    pub(crate) objects: &'a BTreeMap<&'static str, usize>,
    pub(crate) objects_per_sandbox: f64,
    pub(crate) reconciles: &'a BTreeMap<Vec<String>, f64>,
    pub(crate) failures: &'a BTreeMap<Vec<String>, f64>,
    pub(crate) cpu: &'a Value,
    pub(crate) resync: &'a Resync,
    pub(crate) rss: Option<(u64, u64)>,
    pub(crate) loads: [[f64; 3]; 3],
}

pub(crate) fn print_summary(s: &SummaryInput<'_>) {
    let n = s.p.sandboxes as f64;
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    let pct = |v: &[f64], q: f64| {
        (!v.is_empty())
            .then(|| v[((v.len() - 1) as f64 * q).round() as usize])
            .map_or("-".into(), |x| format!("{x:.1}"))
    };
    println!();
    println!(
        "Operator provisioning ({}): {} sandboxes, {} tenants, {} creates in flight, {} CPUs",
        if s.p.in_cluster {
            "in cluster, installed with Helm, storage on Garage"
        } else {
            "operator process, storage off"
        },
        s.p.sandboxes,
        s.p.tenants,
        s.p.in_flight,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "load average (1/5/15 min): start {:?}, all Ready {:?}, end {:?}",
        s.loads[0], s.loads[1], s.loads[2]
    );
    println!();
    println!("| figure | value | target | |");
    println!("|---|---|---|---|");
    println!(
        "| time to all Ready (first create → last Ready) | {} | < {TARGET_READY_S:.0} s | {} |",
        s.ready_s
            .map_or("not reached".into(), |v| format!("{v:.1} s")),
        verdict(s.ready_s.is_some_and(|v| v < TARGET_READY_S))
    );
    println!(
        "| writes per sandbox (operator counter) | {:.2} ({:.2} × {} objects) | — | |",
        s.op_writes_total / n,
        s.op_writes_total / n / s.objects_per_sandbox,
        s.objects_per_sandbox
    );
    let operator_api = s.attributed.get("operator").copied().unwrap_or(0.0);
    println!(
        "| writes per sandbox (apiserver, attributed to the operator) | {:.2} ({:.2} × {} objects) | — | |",
        operator_api / n,
        operator_api / n / s.objects_per_sandbox,
        s.objects_per_sandbox
    );
    println!(
        "| writes during a full resync, nothing changed | {} (apiserver: {} operator, {} in all, + {} Lease) | 0 | {} |",
        s.resync.operator_total(),
        s.resync.apiserver_operator(),
        s.resync.apiserver_total(),
        s.resync.lease_writes,
        verdict(
            s.resync.completed
                && s.resync.operator_total() == 0.0
                && s.resync.apiserver_operator() == 0.0
        )
    );
    let mb = s.rss.map(|(hwm, _)| hwm as f64 * 1024.0 / 1e6);
    println!(
        "| operator peak RSS (VmHWM) | {} | < {TARGET_RSS_MB:.0} MB | {} |",
        mb.map_or("-".into(), |v| format!("{v:.1} MB")),
        verdict(mb.is_some_and(|v| v < TARGET_RSS_MB))
    );
    println!();
    println!(
        "creates answered after {:.1} s; per sandbox, p50 / p90 / max in seconds:",
        s.all_created.as_secs_f64()
    );
    for (what, v) in [
        ("create → Ready", &s.latencies.ready),
        ("create → admitted", &s.latencies.admitted),
        ("admitted → Ready", &s.latencies.admitted_to_ready),
    ] {
        println!(
            "  {what:<18} {} / {} / {}",
            pct(v, 0.5),
            pct(v, 0.9),
            pct(v, 1.0)
        );
    }
    println!(
        "objects per sandbox: {} ({})",
        s.objects_per_sandbox,
        s.objects
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("operator writes by kind/verb (per sandbox):");
    for (k, v) in s.op_writes {
        println!("  {:<28} {:>7} {:>7.2}", k.join(" "), v, v / n);
    }
    println!("apiserver writes by sender (per sandbox):");
    for (k, v) in s.attributed {
        println!("  {k:<28} {v:>7} {:>7.2}", v / n);
    }
    if let Some(k) = s.kcm_write_total {
        println!("  (controller-manager's own rest_client count of its writes: {k})");
    }
    if !s.api_errors.is_empty() {
        println!(
            "apiserver writes answered with an error: {}",
            to_json(s.api_errors)
        );
    }
    println!(
        "reconciles until all Ready: {} (sandbox reconciles per sandbox {:.2}); failures: {}",
        to_json(s.reconciles),
        s.reconciles
            .get(&vec!["sandbox".to_owned()])
            .copied()
            .unwrap_or(0.0)
            / n,
        to_json(s.failures)
    );
    println!(
        "status changes seen per sandbox: {} (fields changed: {}); step sequences:",
        s.status_history["status_changes_per_sandbox"], s.status_history["changed_fields"]
    );
    for seq in s.status_history["sequences"]
        .as_array()
        .into_iter()
        .flatten()
    {
        println!(
            "  {:>5} × {}",
            seq["sandboxes"],
            seq["steps"].as_str().unwrap_or("")
        );
    }
    print_cpu(s.cpu);
    println!("apiserver time until all Ready, by request (count, summed duration, response size):");
    for r in s.api_time {
        let num = |v: &Value| v.as_f64().map_or("-".into(), |x| format!("{x}"));
        println!(
            "  {:<36} {:>6} {:>8} s {:>8} MB",
            r["request"].as_str().unwrap_or(""),
            num(&r["count"]),
            num(&r["seconds"]),
            num(&r["response_mb"])
        );
    }
    println!("apiserver requests until settled, per sandbox (WATCH left out):");
    for r in s.api_requests {
        println!(
            "  {:<36} {:>7} {:>7}",
            r["request"].as_str().unwrap_or(""),
            r["count"],
            r["per_sandbox"]
        );
    }
    if let Some(g) = s.garage_calls.as_object() {
        println!("Garage requests until settled (count, per sandbox):");
        for (k, v) in g {
            println!("  {k:<36} {:>7} {:>7}", v["count"], v["per_sandbox"]);
        }
    }
    println!(
        "resync: {} sandbox reconciles in {} s, operator writes {}, apiserver writes {} (+ {} Lease)",
        s.resync.reconciles,
        s.resync
            .duration_s
            .map_or("-".into(), |d| format!("{d:.1}")),
        to_json(&s.resync.operator_writes),
        to_json(&s.resync.apiserver_writes),
        s.resync.lease_writes
    );
}

/// CPU seconds by component, largest first, then the totals.
fn print_cpu(cpu: &Value) {
    let Some(map) = cpu.as_object() else {
        return;
    };
    let totals = [
        "stack_total",
        "outside_the_bench",
        "machine_busy",
        "machine_capacity",
        "wall",
    ];
    let mut parts: Vec<(&String, f64)> = map
        .iter()
        .filter(|(k, _)| !totals.contains(&k.as_str()))
        .filter_map(|(k, v)| Some((k, v.as_f64()?)))
        .collect();
    parts.sort_by(|a, b| b.1.total_cmp(&a.1));
    println!("CPU seconds until all Ready, by component:");
    for (k, v) in parts {
        println!("  {k:<28} {v:>8.1}");
    }
    let num = |k: &str| map.get(k).and_then(Value::as_f64).unwrap_or(f64::NAN);
    println!(
        "  = the bench's stack {:.1}; outside it (other sessions, system) {:.1}; machine busy {:.1} of {:.1} CPU-s in {:.1} s",
        num("stack_total"),
        num("outside_the_bench"),
        num("machine_busy"),
        num("machine_capacity"),
        num("wall")
    );
}
