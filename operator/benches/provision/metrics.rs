use super::*;

// ---------------------------------------------------------------------------------------
// Metrics
// ---------------------------------------------------------------------------------------

/// Samples of a Prometheus text exposition.
pub(crate) struct Prom(Vec<(String, BTreeMap<String, String>, f64)>);

impl Prom {
    pub(crate) fn parse(text: &str) -> Self {
        Self(
            text.lines()
                .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
                .filter_map(parse_sample)
                .collect(),
        )
    }

    pub(crate) fn samples<'a>(
        &'a self,
        name: &'a str,
        filter: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a (String, BTreeMap<String, String>, f64)> + 'a {
        self.0.iter().filter(move |(n, labels, _)| {
            n == name
                && filter
                    .iter()
                    .all(|(k, v)| labels.get(*k).map(String::as_str) == Some(*v))
        })
    }

    pub(crate) fn sum(&self, name: &str, filter: &[(&str, &str)]) -> f64 {
        self.samples(name, filter).map(|s| s.2).sum()
    }

    /// Sums of `name` grouped by the values of `keys`.
    pub(crate) fn group(&self, name: &str, keys: &[&str]) -> BTreeMap<Vec<String>, f64> {
        let mut out = BTreeMap::new();
        for (_, labels, v) in self.samples(name, &[]) {
            let key = keys
                .iter()
                .map(|k| labels.get(*k).cloned().unwrap_or_default())
                .collect();
            *out.entry(key).or_default() += v;
        }
        out
    }

    /// `self - before`, grouped by `keys`, non-zero groups only.
    pub(crate) fn delta(
        &self,
        before: &Prom,
        name: &str,
        keys: &[&str],
    ) -> BTreeMap<Vec<String>, f64> {
        let old = before.group(name, keys);
        self.group(name, keys)
            .into_iter()
            .map(|(k, v)| {
                let d = v - old.get(&k).copied().unwrap_or(0.0);
                (k, d)
            })
            .filter(|(_, d)| *d != 0.0)
            .collect()
    }
}

/// `name{a="x",b="y"} 1.5` (label values may hold escaped quotes).
pub(crate) fn parse_sample(line: &str) -> Option<(String, BTreeMap<String, String>, f64)> {
    let Some(open) = line.find('{') else {
        let mut it = line.split_whitespace();
        return Some((
            it.next()?.to_owned(),
            BTreeMap::new(),
            it.next()?.parse().ok()?,
        ));
    };
    let mut labels = BTreeMap::new();
    let (mut key, mut value) = (String::new(), String::new());
    let (mut in_value, mut escaped, mut close) = (false, false, None);
    for (i, c) in line[open + 1..].char_indices() {
        if in_value {
            match (escaped, c) {
                (true, c) => {
                    value.push(if c == 'n' { '\n' } else { c });
                    escaped = false;
                }
                (false, '\\') => escaped = true,
                (false, '"') => {
                    in_value = false;
                    labels.insert(std::mem::take(&mut key), std::mem::take(&mut value));
                }
                (false, c) => value.push(c),
            }
        } else {
            match c {
                '"' => in_value = true,
                '}' => {
                    close = Some(open + 1 + i);
                    break;
                }
                '=' | ',' | ' ' => {}
                c => key.push(c),
            }
        }
    }
    let value = line[close? + 1..].split_whitespace().next()?.parse().ok()?;
    Some((line[..open].to_owned(), labels, value))
}

pub(crate) fn scrape(addr: &str) -> Option<Prom> {
    http_get(addr, "/metrics").map(|b| Prom::parse(&b))
}

/// Write requests served between two apiserver scrapes, by (verb, group, resource,
/// subresource), whatever their response code.
pub(crate) fn apiserver_writes(after: &Prom, before: &Prom) -> BTreeMap<Vec<String>, f64> {
    after
        .delta(
            before,
            "apiserver_request_total",
            &["verb", "group", "resource", "subresource"],
        )
        .into_iter()
        .filter(|(k, _)| WRITE_VERBS.contains(&k[0].as_str()))
        .collect()
}

/// Write requests answered with something other than 2xx, by (verb, resource, code).
pub(crate) fn apiserver_write_errors(after: &Prom, before: &Prom) -> BTreeMap<Vec<String>, f64> {
    after
        .delta(
            before,
            "apiserver_request_total",
            &["verb", "resource", "code"],
        )
        .into_iter()
        .filter(|(k, _)| WRITE_VERBS.contains(&k[0].as_str()) && !k[2].starts_with('2'))
        .collect()
}

/// Where the apiserver spent its time between two scrapes: request count, summed
/// request duration and response bytes by (verb, resource, subresource), most time
/// first (long-running WATCH and CONNECT requests left out).
pub(crate) fn apiserver_time(after: &Prom, before: &Prom) -> Vec<Value> {
    let keys = ["verb", "resource", "subresource"];
    let seconds = after.delta(before, "apiserver_request_duration_seconds_sum", &keys);
    let count = after.delta(before, "apiserver_request_duration_seconds_count", &keys);
    let bytes = after.delta(before, "apiserver_response_sizes_sum", &keys);
    let mut rows: Vec<_> = seconds
        .into_iter()
        .filter(|(k, _)| k[0] != "WATCH" && k[0] != "CONNECT")
        .collect();
    rows.sort_by(|a, b| b.1.total_cmp(&a.1));
    rows.into_iter()
        .take(10)
        .map(|(k, s)| {
            json!({
                "request": k.join(" ").trim_end(),
                "count": count.get(&k),
                "seconds": (s * 100.0).round() / 100.0,
                "response_mb": bytes.get(&k).map(|b| (b / 1e4).round() / 100.0),
            })
        })
        .collect()
}

/// Every apiserver request between two scrapes (long-running WATCH and CONNECT left
/// out) by (verb, resource, subresource), per sandbox, most frequent first.
pub(crate) fn apiserver_requests(after: &Prom, before: &Prom, n: f64) -> Vec<Value> {
    let keys = ["verb", "resource", "subresource"];
    let count = after.delta(before, "apiserver_request_duration_seconds_count", &keys);
    let mut rows: Vec<_> = count
        .into_iter()
        .filter(|(k, _)| k[0] != "WATCH" && k[0] != "CONNECT")
        .collect();
    rows.sort_by(|a, b| b.1.total_cmp(&a.1));
    rows.into_iter()
        .take(16)
        .map(|(k, c)| {
            json!({
                "request": k.join(" ").trim_end(),
                "count": c,
                "per_sandbox": (c / n * 100.0).round() / 100.0,
            })
        })
        .collect()
}

/// Garage's requests between two scrapes of its `/metrics`, by API and endpoint
/// (admin calls: what the operator asks of Garage per sandbox).
pub(crate) fn garage_requests(after: &Prom, before: &Prom, n: f64) -> Value {
    let mut out = serde_json::Map::new();
    for name in ["api_admin_request_counter", "api_s3_request_counter"] {
        for (k, c) in after.delta(before, name, &["api_endpoint"]) {
            out.insert(
                format!("{} {}", name.trim_end_matches("_request_counter"), k[0]),
                json!({"count": c, "per_sandbox": (c / n * 100.0).round() / 100.0}),
            );
        }
    }
    out.into()
}

/// Who sent each apiserver write. The metric has no client label, so writes are
/// attributed by what only one party does here:
/// - the benchmark client: `POST sandboxes` (exactly N);
/// - the operator: every server-side apply (`APPLY`), every `PATCH` but those of core/v1
///   Events (the finalizer helper's JSON patch), and `events.k8s.io` Events (kube-rs'
///   Recorder). Core/v1 Events, created or PATCHed when they repeat, are the
///   controller-manager's and, in the cluster, the kubelet's: the operator never sends
///   them;
/// - its leader Lease: `coordination.k8s.io` leases;
/// - the controller-manager: the rest (default ServiceAccounts, token Secrets,
///   `kube-root-ca.crt` ConfigMaps, quota status `PUT`s, core Events, and the
///   TokenReviews/SubjectAccessReviews of the benchmark's scrapes of its /metrics).
///
/// The controller-manager's own `rest_client_requests_total` checks the last group.
pub(crate) fn attribute(
    writes: &BTreeMap<Vec<String>, f64>,
    client_creates: f64,
) -> BTreeMap<&'static str, f64> {
    let mut out: BTreeMap<&'static str, f64> = BTreeMap::new();
    for (k, v) in writes {
        let (verb, group, resource) = (k[0].as_str(), k[1].as_str(), k[2].as_str());
        let who = if resource == "leases" {
            "operator lease"
        } else if verb == "POST" && resource == "sandboxes" {
            let client = v.min(client_creates);
            *out.entry("benchmark client").or_default() += client;
            if v - client > 0.0 {
                *out.entry("unattributed").or_default() += v - client;
            }
            continue;
        } else if verb == "APPLY"
            || (verb == "PATCH" && !(group.is_empty() && resource == "events"))
            || group == "events.k8s.io"
        {
            "operator"
        } else {
            "controller-manager"
        };
        *out.entry(who).or_default() += v;
    }
    out
}

pub(crate) fn attribute_json(a: &BTreeMap<&'static str, f64>, n: f64) -> Value {
    a.iter()
        .map(|(k, v)| ((*k).to_owned(), json!({"total": v, "per_sandbox": v / n})))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

pub(crate) fn mean_reconcile(after: &Prom, before: &Prom) -> Value {
    let sum = after.delta(
        before,
        "serre_operator_reconcile_duration_seconds_sum",
        &["controller"],
    );
    let count = after.delta(
        before,
        "serre_operator_reconcile_duration_seconds_count",
        &["controller"],
    );
    sum.iter()
        .filter_map(|(k, s)| Some((k[0].clone(), json!(s / count.get(k)?))))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// Sum of a group (0, not the empty sum's -0, when empty).
pub(crate) fn total(m: &BTreeMap<Vec<String>, f64>) -> f64 {
    m.values().fold(0.0, |a, v| a + v)
}

pub(crate) fn to_json(m: &BTreeMap<Vec<String>, f64>) -> Value {
    m.iter()
        .map(|(k, v)| (k.join(" "), json!(v)))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// Wait until the operator's writes and reconciles have not moved for `quiet`.
pub(crate) async fn settle(op: &str, quiet: Duration, max: Duration) {
    let read = || {
        scrape(op).map(|m| {
            (
                m.sum("serre_operator_api_writes_total", &[]),
                m.sum("serre_operator_reconciliations_total", &[]),
            )
        })
    };
    let start = Instant::now();
    let mut last = read();
    let mut since = Instant::now();
    while start.elapsed() < max {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = read();
        if now != last {
            last = now;
            since = Instant::now();
        } else if since.elapsed() >= quiet {
            return;
        }
    }
    eprintln!("provision: the operator's counters still moved after {max:?}");
}

pub(crate) async fn wait_for(
    max: Duration,
    what: &str,
    mut check: impl FnMut() -> bool,
) -> Result<()> {
    let deadline = Instant::now() + max;
    while !check() {
        if Instant::now() > deadline {
            bail!("timed out after {max:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

/// Minimal HTTP GET on loopback (status 200 only; the body is read to the close).
pub(crate) fn http_get(addr: &str, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let (head, body) = out.split_once("\r\n\r\n")?;
    (head.split(' ').nth(1) == Some("200")).then(|| body.to_owned())
}
