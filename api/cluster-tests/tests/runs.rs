//! Trial runs end to end on a real cluster (kube-apiserver + etcd +
//! kube-controller-manager, and a real node: kubelet, containerd) and a real Garage, with
//! the real operator running in-process (object storage on): a vendor starts a run
//! through the gateway, the operator turns it into a Job, the kubelet runs its pod — the
//! init step `serre-api fetch-grants` downloads the granted view from this gateway with
//! the run's token, then Serre's example model fits a per-commune trend on it and sends
//! its results to this gateway with the same token (its pod holds no storage credential),
//! which writes them into the sandbox's bucket — the run ends, its token and its Secret
//! with it, the gateway's accounting closes it with figures, writes them into the
//! TrialRun's status and attaches them to the catalogue solution; a failing model,
//! cancellation and energy budgets.
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
use trial_cluster::{Garage, client, run_body, start_operator_with_storage, tenant_spec};

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
    let garage = Garage::start();
    start_operator_with_storage(&gw.url, &garage);

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
    // The trial container holds no storage credential: only its results endpoint and its
    // run's token (the pod's only Secret).
    let pod_spec = job.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    let trial = &pod_spec.containers[0];
    assert!(trial.env_from.is_none(), "{trial:?}");
    let env: Vec<(&str, &str)> = trial
        .env
        .iter()
        .flatten()
        .map(|e| (e.name.as_str(), e.value.as_deref().unwrap_or_default()))
        .collect();
    assert!(
        env.contains(&(
            "SERRE_RESULTS_URL",
            format!("{}/v1/runs/{name}/results/", gw.url).as_str()
        )),
        "{env:?}"
    );
    assert!(
        env.iter()
            .all(|(n, _)| !n.starts_with("AWS_") && !n.starts_with("SSE_C") && *n != "S3_BUCKET"),
        "{env:?}"
    );
    let pod_secrets: Vec<_> = pod_spec
        .volumes
        .iter()
        .flatten()
        .filter_map(|v| v.secret.as_ref()?.secret_name.clone())
        .collect();
    assert_eq!(pod_secrets, [format!("{name}-token")]);

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
    // What the model did: its log (through the gateway's logs route) says it started and
    // sent its results to its results endpoint; the results, read back through the
    // gateway from the sandbox's bucket, say it read the view the init step fetched (the
    // same bytes as the grant's view) and fitted each commune's trend.
    let log = gw
        .get_text(&format!("{runs}/{name}/logs"), Some(&acme), "text/plain")
        .await;
    assert!(
        log.starts_with("serre-example-model started at ") && log.contains(&name),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "wrote {}/v1/runs/{name}/results/results.json",
            gw.url
        )),
        "{log}"
    );
    let (s, listing) = gw
        .call("GET", &format!("{runs}/{name}/results"), Some(&bob), None)
        .await;
    assert_eq!(s, 200, "{listing}");
    assert_eq!(listing["prefix"], json!(format!("runs/{name}/")));
    let paths: Vec<&str> = listing["objects"]
        .as_array()
        .expect("objects")
        .iter()
        .filter_map(|o| o["path"].as_str())
        .collect();
    assert_eq!(paths, ["results.csv", "results.json"], "{listing}");
    let output: Value = serde_json::from_str(
        &gw.get_text(
            &format!("{runs}/{name}/results/results.json"),
            Some(&acme),
            "application/json",
        )
        .await,
    )
    .expect("results.json");
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
    // Another vendor reads none of the results.
    assert_error(
        &gw.call(
            "GET",
            &format!("{runs}/{name}/results"),
            Some(&globex),
            None,
        )
        .await,
        404,
        "not_found",
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
    // The token stops with the run: no more grants, no more results; and its Secret is
    // deleted.
    let (s, _, _) = gw
        .call_raw(
            "GET",
            &format!("/v1/runs/{name}/grants/{gid}/data"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(s, 403, "the run is over");
    let late = put_result(&gw, &name, "late.json", &token).await;
    assert_error(&late, 403, "forbidden");
    eventually(60, "the run's token Secret to be deleted", || async {
        Api::<Secret>::namespaced(kube.clone(), &ns)
            .get_opt(&format!("{name}-token"))
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;

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
    // The good-practice checklist is declared, apart from the figures; unanswered here,
    // and closed with the run's attached result.
    assert_eq!(report["practices"]["method"], "declared");
    assert_eq!(report["practices"]["items"].as_array().unwrap().len(), 12);
    assert_eq!(report["practices"]["answeredBy"], Value::Null);
    let got = gw
        .call(
            "PUT",
            &format!("{runs}/{name}/practices"),
            Some(&acme),
            Some(json!({"answers": [{"id": "model.smallest", "answer": "yes"}]})),
        )
        .await;
    assert_error(&got, 409, "conflict");
    // The run's phase, with every figure's method and range: declared mode, so energy
    // is modelled from the requests, from 0 up to twice the model's figure.
    let phase = report["phases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["observed"] == true)
        .expect("the run's phase");
    assert_eq!(phase["phase"], "inference");
    let meter = &phase["figures"]["energy"]["meter"];
    assert_eq!(meter["method"], "modelled", "{meter}");
    let kwh = report["figures"]["kwh"].as_f64().unwrap();
    assert!(
        (meter["value"].as_f64().unwrap() - kwh).abs() <= 1e-12,
        "{meter}"
    );
    assert_eq!(meter["low"], 0.0);
    assert!(
        (meter["high"].as_f64().unwrap() - 2.0 * kwh).abs() <= 1e-12,
        "{meter}"
    );
    assert_eq!(phase["figures"]["storageGbHours"]["method"], "unknown");
    assert_eq!(report["sci"]["intensity"]["year"], 2024);
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
    // While it runs, its token writes its own results only: never the first run's.
    let second_token = {
        let secret = Api::<Secret>::namespaced(kube.clone(), &ns)
            .get(&format!("{second}-token"))
            .await
            .expect("second token Secret");
        String::from_utf8(secret.data.expect("data")["token"].0.clone()).expect("utf8")
    };
    let (s, written) = put_result(&gw, &second, "notes/early.json", &second_token).await;
    assert_eq!(s, 201, "{written}");
    assert_eq!(
        (written["path"].as_str(), written["size"].as_u64()),
        (Some("notes/early.json"), Some(2))
    );
    let got = put_result(&gw, &name, "results.json", &second_token).await;
    assert_error(&got, 403, "forbidden");
    let kept = gw
        .get_text(
            &format!("{runs}/{name}/results/results.json"),
            Some(&acme),
            "application/json",
        )
        .await;
    assert_eq!(
        serde_json::from_str::<Value>(&kept).expect("results.json"),
        output
    );
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
    // Cancelled: its token writes nothing more, and its Secret is gone at once.
    let got = put_result(&gw, &second, "results.json", &second_token).await;
    assert_error(&got, 403, "forbidden");
    assert!(
        Api::<Secret>::namespaced(kube.clone(), &ns)
            .get_opt(&format!("{second}-token"))
            .await
            .expect("get")
            .is_none(),
        "the cancelled run's token Secret"
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

/// `PUT /v1/runs/{run}/results/{path}` with a run token, as the model sends its results.
async fn put_result(gw: &Gateway, run: &str, path: &str, token: &str) -> (u16, Value) {
    let r = gw
        .http
        .put(format!("{}/v1/runs/{run}/results/{path}", gw.url))
        .bearer_auth(token)
        .body("{}")
        .send()
        .await
        .expect("PUT");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or_default())
}
