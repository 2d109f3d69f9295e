//! Trial runs end to end on a real cluster (kube-apiserver + etcd +
//! kube-controller-manager, and a real node: kubelet, containerd), with the real operator
//! running in-process: a vendor starts a run through the gateway, the operator turns it
//! into a Job, the kubelet runs its pod — the init step `serre-api fetch-grants` downloads
//! the granted view from this gateway with the run's token, then Serre's example model
//! fits a per-commune trend on it — the run ends, the gateway's accounting closes it with
//! figures, writes them into the TrialRun's status and attaches them to the catalogue
//! solution; a failing model, cancellation and energy budgets.
//!
//! No Prometheus here: figures are the declared mode's (requests × time, flagged
//! `modelled`); tests/energy.rs covers the Prometheus path.

mod support;
mod trial_cluster;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::{Value, json};
use serre_resources::{Tenant, TrialRun};
use sha2::{Digest, Sha256};
use support::{Backend, Gateway, Setup, assert_error, eventually, unique_name};
use trial_cluster::{client, run_body, start_operator, tenant_spec};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vendor_trial_run_is_fed_measured_reported_and_catalogued() {
    let kube = client().await;
    serre_operator::manifests::install(&kube, "serre-system")
        .await
        .expect("install CRDs");
    let t = unique_name("ept");
    Api::<Tenant>::all(kube.clone())
        .create(&PostParams::default(), &Tenant::new(&t, tenant_spec(&t)))
        .await
        .expect("tenant");
    let mut setup = Setup {
        kubeconfig: Some(support::kubeconfig().to_path_buf()),
        tenants_yaml: None,
        ..Setup::local(support::fresh_database(Backend::Sqlite).await)
    };
    setup.extra = [
        "--metropole-admin-groups",
        "mgp-admins",
        "--usage-step",
        "2s",
        "--usage-settle",
        "0s",
        "--usage-interval",
        "1s",
    ]
    .map(String::from)
    .to_vec();
    let gw = Gateway::start(setup).await;
    start_operator(&gw.url);

    let bob = gw.token("bob", &[&format!("{t}-data")]);
    let alice = gw.token("alice", &[&format!("{t}-admins")]);
    let acme = gw.token("acme", &[]);
    let globex = gw.token("globex", &[]);
    let mia = gw.token("mia", &["mgp-admins"]);
    eventually(30, "the tenant in the gateway's directory", || async {
        let (_, me) = gw.call("GET", "/v1/me", Some(&bob), None).await;
        (me["memberOf"] == json!([t])).then_some(())
    })
    .await;

    // -- A sandbox (self-service), made Ready by the operator; acme joins it.
    let (s, _) = gw
        .call(
            "POST",
            "/v1/sandboxes",
            Some(&bob),
            Some(support::sandbox_body(&t, "trials", 10)),
        )
        .await;
    assert_eq!(s, 201);
    let sb = format!("{t}--trials");
    let runs = format!("/v1/sandboxes/{sb}/runs");
    eventually(120, "the sandbox to be Ready", || async {
        let (_, v) = gw
            .call("GET", &format!("/v1/sandboxes/{sb}"), Some(&bob), None)
            .await;
        (v["cluster"]["phase"] == "Ready").then_some(())
    })
    .await;
    let (s, v) = gw
        .call(
            "POST",
            &format!("/v1/sandboxes/{sb}/members"),
            Some(&alice),
            Some(json!({"subject": "acme"})),
        )
        .await;
    assert!(s == 200 || s == 201, "{v}");

    // -- An open dataset granted to the sandbox; a catalogue entry for the solution.
    // Exact yearly trends: Montreuil +2, Bagnolet -1, Pantin +3 deliberations a year.
    let csv = "commune,year,deliberations\nMontreuil,2021,10\nMontreuil,2022,12\n\
               Montreuil,2023,14\nBagnolet,2021,7\nBagnolet,2022,6\nBagnolet,2023,5\n\
               Pantin,2021,20\nPantin,2022,23\nPantin,2023,26\n";
    let r = gw
        .http
        .post(format!(
            "{}/v1/datasets?tenant={t}&name=deliberations&classification=open",
            gw.url
        ))
        .bearer_auth(&bob)
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .expect("upload");
    assert_eq!(r.status().as_u16(), 201);
    let ds: Value = r.json().await.expect("dataset");
    let (s, grant) = gw
        .call(
            "POST",
            "/v1/grants",
            Some(&alice),
            Some(json!({
                "datasetId": ds["id"], "grantee": {"sandbox": sb},
                "columns": ["commune", "year", "deliberations"],
                "purpose": "Benchmark deliberation summarisers",
                "expiresAt": (chrono::Utc::now() + chrono::Duration::days(5)).to_rfc3339(),
            })),
        )
        .await;
    assert_eq!(s, 201, "{grant}");
    let gid = grant["id"].as_str().expect("grant id").to_owned();
    let (s, solution) = gw
        .call(
            "POST",
            "/v1/catalogue/solutions",
            Some(&mia),
            Some(json!({
                "vendor": "Acme", "name": "Summariser", "version": "2.1",
                "description": "Summarises council deliberations",
                "licence": {"spdx": "EUPL-1.2"},
                "hosting": {"provider": "Scaleway", "dataLocation": "FR", "extraEuTransfer": false},
                "aiActRiskClass": "minimal", "gdprNotes": "No personal data",
                "criteria": {}
            })),
        )
        .await;
    assert_eq!(s, 201, "{solution}");
    let sol = solution["id"].as_str().expect("solution id").to_owned();

    // -- Refusals name the field: registry not allowed, too much CPU, unknown grant and
    // solution, a bad kind; a principal outside the sandbox does not see it.
    let mut bad = run_body(&[&gid], Some(&sol), 0, &[]);
    bad["image"] = json!("docker.io/library/python:3.12");
    bad["resources"]["cpu"] = json!("64");
    bad["grants"] = json!([gid, "no-such-grant"]);
    bad["solution"] = json!("no-such-solution");
    let got = gw.call("POST", &runs, Some(&acme), Some(bad)).await;
    assert_error(&got, 422, "validation_failed");
    let fields: Vec<&str> = got.1["error"]["details"]
        .as_array()
        .expect("details")
        .iter()
        .filter_map(|d| d["field"].as_str())
        .collect();
    for f in ["image", "resources.cpu", "grants[1]", "solution"] {
        assert!(fields.contains(&f), "{f} not in {fields:?}");
    }
    // A path traversal under the allowed registry is no image of it (issue 13: it was
    // accepted); the operator's admission webhook reads images with the same parser.
    let mut bad = run_body(&[], None, 0, &[]);
    bad["image"] = json!(format!("{}/../x:1", support::test_images()));
    let got = gw.call("POST", &runs, Some(&acme), Some(bad)).await;
    assert_error(&got, 422, "validation_failed");
    let detail = &got.1["error"]["details"][0];
    assert_eq!(detail["field"], "image", "{got:?}");
    assert!(
        detail["message"]
            .as_str()
            .is_some_and(|m| m.contains("not a valid image reference")),
        "{got:?}"
    );
    let mut bad = run_body(&[], None, 0, &[]);
    bad["kind"] = json!("mining");
    assert_error(
        &gw.call("POST", &runs, Some(&acme), Some(bad)).await,
        422,
        "validation_failed",
    );
    assert_error(
        &gw.call(
            "POST",
            &runs,
            Some(&globex),
            Some(run_body(&[], None, 0, &[])),
        )
        .await,
        404,
        "not_found",
    );

    // -- The run: a TrialRun, its token Secret (owned by it), the operator's Job.
    let (s, run) = gw
        .call(
            "POST",
            &runs,
            Some(&acme),
            Some(run_body(&[&gid], Some(&sol), 6, &[])),
        )
        .await;
    assert_eq!(s, 201, "{run}");
    let name = run["name"].as_str().expect("run name").to_owned();
    let ns = run["namespace"].as_str().expect("namespace").to_owned();
    assert_eq!(run["phase"], "Pending");
    let tr = Api::<TrialRun>::namespaced(kube.clone(), &ns)
        .get(&name)
        .await
        .expect("TrialRun");
    assert_eq!(tr.spec.requested_by, "acme");
    assert_eq!(tr.spec.grants, std::slice::from_ref(&gid));
    let secret = Api::<Secret>::namespaced(kube.clone(), &ns)
        .get(&format!("{name}-token"))
        .await
        .expect("token Secret");
    assert_eq!(secret.owner_references()[0].name, name);
    let token = String::from_utf8(secret.data.expect("data")["token"].0.clone()).expect("utf8");
    assert!(token.starts_with("serre-rt1."));
    let job = eventually(60, "the operator's Job", || async {
        Api::<Job>::namespaced(kube.clone(), &ns)
            .get_opt(&name)
            .await
            .ok()?
    })
    .await;
    let init = &job
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .init_containers
        .as_ref()
        .expect("init step")[0];
    assert!(init.command.as_ref().unwrap().contains(&gw.url));

    // -- The run token opens only what the run lists (the pod's init step uses it).
    let (_, _, direct) = gw
        .call_raw("GET", &format!("/v1/grants/{gid}/data"), Some(&bob), None)
        .await;
    let (s, _, _) = gw
        .call_raw(
            "GET",
            &format!("/v1/runs/{name}/grants/no-such-grant/data"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(s, 403, "a grant the run does not list");
    let (s, _, _) = gw
        .call_raw(
            "GET",
            &format!("/v1/runs/{name}/grants/{gid}/data"),
            Some(&acme),
            None,
        )
        .await;
    assert_eq!(s, 401, "an OIDC token is not a run token");

    // -- Who sees the run: acme and the tenant, not another vendor.
    let (s, list) = gw.call("GET", &runs, Some(&bob), None).await;
    assert_eq!((s, list.as_array().map(Vec::len)), (200, Some(1)));
    assert_error(
        &gw.call("GET", &format!("{runs}/{name}"), Some(&globex), None)
            .await,
        404,
        "not_found",
    );

    // -- It runs on the node and succeeds; the gateway follows, the accounting closes it
    // once its last window is recorded.
    eventually(60, "the run to be Running", || async {
        let (_, v) = gw
            .call("GET", &format!("{runs}/{name}"), Some(&acme), None)
            .await;
        (v["phase"] == "Running").then_some(())
    })
    .await;
    // The vendor reports the quality its model reached; only the requester may.
    let quality = format!("{runs}/{name}/quality");
    let (s, v) = gw
        .call(
            "PUT",
            &quality,
            Some(&acme),
            Some(json!({"metric": "rougeL", "value": 0.38})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["quality"], json!({"metric": "rougeL", "value": 0.38}));
    assert_error(
        &gw.call(
            "PUT",
            &quality,
            Some(&bob),
            Some(json!({"metric": "f1", "value": 1.0})),
        )
        .await,
        403,
        "forbidden",
    );
    assert_error(
        &gw.call(
            "PUT",
            &quality,
            Some(&acme),
            Some(json!({"metric": "", "value": 1.0})),
        )
        .await,
        422,
        "validation_failed",
    );
    let done = eventually(240, "the run to be closed with figures", || async {
        let (_, v) = gw
            .call("GET", &format!("{runs}/{name}"), Some(&acme), None)
            .await;
        assert!(
            !["Failed", "TimedOut", "Cancelled"].contains(&v["phase"].as_str().unwrap_or("")),
            "{v}"
        );
        (v["phase"] == "Succeeded" && !v["figures"].is_null()).then_some(v)
    })
    .await;
    // What the model did, from its own output through the gateway's logs route: it read
    // the view the init step fetched (the same bytes as the grant's view) and fitted
    // each commune's trend.
    let log = gw
        .get_text(&format!("{runs}/{name}/logs"), Some(&acme), "text/plain")
        .await;
    assert!(
        log.starts_with("serre-example-model started at ") && log.contains(&name),
        "{log}"
    );
    let output = model_output(&log);
    let input = &output["inputs"][0];
    assert_eq!(input["grant"], json!(gid), "{output}");
    assert_eq!(input["rows"], 9, "{output}");
    assert_eq!(input["sha256"], json!(hex::encode(Sha256::digest(&direct))));
    let slope = |commune: &str| {
        output["groups"]
            .as_array()
            .and_then(|g| g.iter().find(|g| g["group"] == commune))
            .and_then(|g| g["slope"].as_f64())
            .unwrap_or_else(|| panic!("no slope for {commune} in {output}"))
    };
    for (commune, expected) in [("Montreuil", 2.0), ("Bagnolet", -1.0), ("Pantin", 3.0)] {
        assert!(
            (slope(commune) - expected).abs() < 1e-9,
            "{commune}: {output}"
        );
    }
    // The init step's log, the tail only, bounded; another vendor sees none of it.
    let fetch_log = gw
        .get_text(
            &format!("{runs}/{name}/logs?container=fetch-grants&tailLines=5"),
            Some(&bob),
            "text/plain",
        )
        .await;
    assert!(fetch_log.lines().count() <= 5, "{fetch_log}");
    assert_error(
        &gw.call("GET", &format!("{runs}/{name}/logs"), Some(&globex), None)
            .await,
        404,
        "not_found",
    );
    // No object storage in this test's operator: the results route says so.
    assert_error(
        &gw.call("GET", &format!("{runs}/{name}/results"), Some(&acme), None)
            .await,
        409,
        "storage_off",
    );
    let f = &done["figures"];
    assert_eq!(f["energyMethod"], "modelled");
    let duration = f["durationSeconds"].as_f64().expect("duration");
    assert!(duration >= 3.0, "{f}");
    let kwh = f["kwh"].as_f64().expect("kwh");
    assert!(kwh > 0.0, "{f}");
    // Declared mode: 1 core requested for the whole run; the ledger holds every window.
    let cpu = f["figures"]["cpu_requested"]["value"]
        .as_f64()
        .expect("cpu");
    assert!(
        (cpu - duration).abs() <= 2.5,
        "cpu {cpu} vs duration {duration}"
    );
    assert_eq!(f["functionalUnits"], 40);
    assert!((f["kwhPerUnit"].as_f64().unwrap() - kwh / 40.0).abs() < 1e-12);
    // The token stops with the run.
    let (s, _, _) = gw
        .call_raw(
            "GET",
            &format!("/v1/runs/{name}/grants/{gid}/data"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(s, 403, "the run is over");

    // -- Status, catalogue and report carry the same figures.
    let tr = eventually(30, "usage in the TrialRun's status", || async {
        let tr = Api::<TrialRun>::namespaced(kube.clone(), &ns)
            .get(&name)
            .await
            .ok()?;
        tr.status?.usage
    })
    .await;
    assert!((tr.energy_kwh - kwh).abs() < 1e-12);
    assert_eq!(tr.method, "modelled");
    let (_, entry) = gw
        .call(
            "GET",
            &format!("/v1/catalogue/solutions/{sol}"),
            Some(&mia),
            None,
        )
        .await;
    // Attached, flagged estimated (modelled): the environmental criterion counts measured
    // results only, so it stays unscored and says why.
    let env = &entry["criteria"]["environmentalImpact"]["assessment"];
    assert_eq!(env["estimatedResults"], 1, "{entry}");
    assert_eq!(env["results"], 0, "{entry}");
    assert_eq!(env["basis"], "no measured trial run");
    assert_eq!(env["totalKwh"], 0.0);
    let result = &entry["results"][0];
    assert_eq!(result["runId"], json!(name), "{entry}");
    assert_eq!(result["phase"], "inference");
    assert_eq!(
        result["quality"],
        json!({"metric": "rougeL", "value": 0.38})
    );
    assert_eq!(result["method"]["estimated"], true);
    assert!(
        result["resources"]["cpuChargedCoreSeconds"]
            .as_f64()
            .unwrap()
            > 0.0,
        "{result}"
    );
    assert_eq!(result["resources"]["requested"]["cpu"], "1");
    // A result attached from a run is immutable: a quality reported after the run
    // closed is refused, and the attached result keeps the quality it closed with.
    let got = gw
        .call(
            "PUT",
            &quality,
            Some(&acme),
            Some(json!({"metric": "rougeL", "value": 0.41})),
        )
        .await;
    assert_error(&got, 409, "conflict");
    let (_, entry) = gw
        .call(
            "GET",
            &format!("/v1/catalogue/solutions/{sol}"),
            Some(&mia),
            None,
        )
        .await;
    assert_eq!(entry["results"][0]["quality"]["value"], 0.38);
    let (s, report) = gw
        .call("GET", &format!("{runs}/{name}/report"), Some(&acme), None)
        .await;
    assert_eq!(s, 200, "{report}");
    assert_eq!(report["finalFigures"], true);
    assert!(
        report["caveats"][0]
            .as_str()
            .unwrap()
            .contains("No metrics source")
    );
    assert!(report["practices"].to_string().contains("AFNOR SPEC 2314"));
    assert_eq!(report["carbon"]["intensityYear"], 2024);
    let html = gw
        .get_text(
            &format!("{runs}/{name}/report?format=html"),
            Some(&acme),
            "text/html",
        )
        .await;
    assert!(html.contains("<svg") && html.contains(&name));

    // -- A second run of the same solution, cancelled by its requester: the operator
    // stops it, its report compares it with the first.
    let (s, second) = gw
        .call(
            "POST",
            &runs,
            Some(&acme),
            Some(run_body(&[&gid], Some(&sol), 600, &[])),
        )
        .await;
    assert_eq!(s, 201, "{second}");
    let second = second["name"].as_str().unwrap().to_owned();
    assert_error(
        &gw.call("DELETE", &format!("{runs}/{second}"), Some(&globex), None)
            .await,
        404,
        "not_found",
    );
    let (s, v) = gw
        .call("DELETE", &format!("{runs}/{second}"), Some(&acme), None)
        .await;
    assert_eq!((s, v["phase"].as_str()), (202, Some("Cancelled")), "{v}");
    assert_error(
        &gw.call("DELETE", &format!("{runs}/{second}"), Some(&acme), None)
            .await,
        409,
        "conflict",
    );
    eventually(60, "the operator to mark it Cancelled", || async {
        let st = Api::<TrialRun>::namespaced(kube.clone(), &ns)
            .get(&second)
            .await
            .ok()?
            .status?;
        (format!("{:?}", st.phase) == "Cancelled").then_some(())
    })
    .await;
    let (_, report) = gw
        .call("GET", &format!("{runs}/{second}/report"), Some(&bob), None)
        .await;
    assert_eq!(report["comparison"][0]["run"], json!(name), "{report}");

    // -- A model that fails: the gateway shows the run Failed with its exit code and
    // what it printed last.
    let (s, failing) = gw
        .call(
            "POST",
            &runs,
            Some(&acme),
            Some(run_body(&[&gid], None, 0, &["--exit-code", "3"])),
        )
        .await;
    assert_eq!(s, 201, "{failing}");
    let failing = failing["name"].as_str().unwrap().to_owned();
    let failed = eventually(240, "the failing model's run to fail", || async {
        let (_, v) = gw
            .call("GET", &format!("{runs}/{failing}"), Some(&acme), None)
            .await;
        assert_ne!(v["phase"], "Succeeded", "{v}");
        (v["phase"] == "Failed").then_some(v)
    })
    .await;
    let reason = failed["exitReason"].as_str().unwrap_or_default();
    assert!(
        reason.starts_with("the trial exited with code 3 (Error): ")
            && reason.contains("--exit-code"),
        "{failed}"
    );

    // -- The sandbox's report: its namespace's figures and every run; not for vendors.
    let (s, sreport) = gw
        .call(
            "GET",
            &format!("/v1/sandboxes/{sb}/report"),
            Some(&bob),
            None,
        )
        .await;
    assert_eq!(s, 200, "{sreport}");
    assert_eq!(
        sreport["runs"].as_array().map(Vec::len),
        Some(3),
        "{sreport}"
    );
    assert!(
        sreport["figures"]["kwh"].as_f64().unwrap() >= kwh * 0.999,
        "{sreport}"
    );
    assert_error(
        &gw.call(
            "GET",
            &format!("/v1/sandboxes/{sb}/report"),
            Some(&acme),
            None,
        )
        .await,
        403,
        "forbidden",
    );
    let page = gw
        .get_text(
            &format!("/v1/sandboxes/{sb}/report?format=html"),
            Some(&alice),
            "text/html",
        )
        .await;
    assert!(page.contains(&second));

    // -- Usage and budget: the tenant's month so far; a budget below it refuses runs.
    let (s, usage) = gw
        .call("GET", &format!("/v1/tenants/{t}/usage"), Some(&bob), None)
        .await;
    assert_eq!(s, 200, "{usage}");
    let used = usage["budget"]["usedKwh"].as_f64().expect("used");
    assert!(used >= kwh * 0.999, "{usage}");
    assert_eq!(usage["budget"]["level"], "unlimited");
    assert_eq!(usage["bySandbox"][0]["sandbox"], json!(sb));
    assert_error(
        &gw.call("GET", &format!("/v1/tenants/{t}/usage"), Some(&acme), None)
            .await,
        404,
        "not_found",
    );
    let csv = gw
        .get_text(
            &format!("/v1/tenants/{t}/usage/ledger"),
            Some(&alice),
            "text/csv",
        )
        .await;
    assert!(csv.starts_with("window_start,window_end,tenant,namespace,run,"));
    assert!(csv.contains(&name));
    assert_error(
        &gw.call(
            "GET",
            &format!("/v1/tenants/{t}/usage?from=yesterday"),
            Some(&bob),
            None,
        )
        .await,
        422,
        "validation_failed",
    );
    Api::<Tenant>::all(kube.clone())
        .patch(
            &t,
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"energyBudgetKwh": used / 2.0}})),
        )
        .await
        .expect("set budget");
    let refused = eventually(30, "runs to be refused over budget", || async {
        let got = gw
            .call(
                "POST",
                &runs,
                Some(&acme),
                Some(run_body(&[], None, 0, &[])),
            )
            .await;
        (got.0 == 403).then_some(got)
    })
    .await;
    assert_error(&refused, 403, "energy_budget_exhausted");
    assert!(
        refused.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("kWh")
    );
    let (_, usage) = gw
        .call("GET", &format!("/v1/tenants/{t}/usage"), Some(&alice), None)
        .await;
    assert_eq!(usage["budget"]["level"], "exhausted");
    // The Tenant shows it too: the gateway records the figures in its status, the
    // operator turns them into the EnergyBudget condition.
    eventually(60, "the EnergyBudget condition on the Tenant", || async {
        let tenant = Api::<Tenant>::all(kube.clone()).get(&t).await.ok()?;
        let st = tenant.status?;
        let c = st.conditions.iter().find(|c| c.type_ == "EnergyBudget")?;
        (c.reason == "Exhausted" && st.energy?.level == "exhausted").then_some(())
    })
    .await;
    eventually(30, "the budget warning in the audit log", || async {
        let (_, audit) = gw
            .call(
                "GET",
                &format!("/v1/audit?tenant={t}&limit=1000"),
                Some(&alice),
                None,
            )
            .await;
        audit.to_string().contains("usage.budget").then_some(())
    })
    .await;
    gw.stop().await;
}

/// The results the model printed in its log (no sandbox bucket here: it prints
/// results.json after a line saying so).
fn model_output(log: &str) -> Value {
    let marker = "results.json follows";
    let at = log
        .find(marker)
        .unwrap_or_else(|| panic!("no results in {log}"))
        + marker.len();
    let json = &log[at..];
    let json = &json[json.find('{').unwrap_or_else(|| panic!("no JSON in {log}"))..];
    serde_json::Deserializer::from_str(json)
        .into_iter::<Value>()
        .next()
        .and_then(Result::ok)
        .unwrap_or_else(|| panic!("results.json does not parse in {log}"))
}
