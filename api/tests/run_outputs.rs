//! A run's logs and results over HTTP, without a cluster (SQLite, tenants from a file):
//! the query and path checks name their parameter (422), only those who may read the run
//! get further than 404, and a gateway without a cluster says so (409). The real reads (pod
//! logs, the SSE-C bucket) are exercised against a cluster by `tests/runs.rs`.

mod support;

use serde_json::json;
use serre_api::store::RunRow;
use support::groups::{EE_ADMIN, EE_DATA, MONTREUIL_ADMIN};
use support::local_gateway as gateway;
use support::{Backend, assert_error, issues, sandbox_body};

const SANDBOX: &str = "est-ensemble--traffic";
const RUN: &str = "run-0123456789ab";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_and_results_check_their_input_and_who_asks() {
    let gw = gateway(Backend::Sqlite).await;
    let alice = gw.token("alice", EE_ADMIN);
    let bob = gw.token("bob", EE_DATA);
    let vera = gw.token("vera", &[]);
    let victor = gw.token("victor", &[]);
    let mallory = gw.token("mallory", MONTREUIL_ADMIN);
    let (status, body) = gw
        .call(
            "POST",
            "/v1/sandboxes",
            Some(&bob),
            Some(sandbox_body("est-ensemble", "traffic", 5)),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    for vendor in ["vera", "victor"] {
        let (status, body) = gw
            .call(
                "POST",
                &format!("/v1/sandboxes/{SANDBOX}/members"),
                Some(&alice),
                Some(json!({ "subject": vendor })),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    gw.app()
        .store
        .insert_run(&RunRow {
            name: RUN.into(),
            namespace: "serre-est-ensemble--traffic".into(),
            sandbox: SANDBOX.into(),
            tenant: "est-ensemble".into(),
            solution: None,
            kind: "inference".into(),
            requested_by: "vera".into(),
            spec_json: "{}".into(),
            created_at: "2026-09-21T00:00:00.000000Z".into(),
            phase: "Pending".into(),
            started_at: None,
            finished_at: None,
            exit_reason: None,
            summary_json: None,
            closed_at: None,
            quality_metric: None,
            quality_value: None,
        })
        .await
        .unwrap();
    let base = format!("/v1/sandboxes/{SANDBOX}/runs/{RUN}");

    // Bad parameters: 422, each naming its parameter.
    let bad = gw
        .call(
            "GET",
            &format!(
                "{base}/logs?container=sidecar&tailLines=0&limitBytes=99999999&follow=yes&since=1h"
            ),
            Some(&vera),
            None,
        )
        .await;
    assert_error(&bad, 422, "validation_failed");
    let mut got = issues(&bad);
    got.sort();
    assert_eq!(
        got,
        [
            ("container".to_owned(), "one_of".to_owned()),
            ("follow".into(), "boolean".into()),
            ("limitBytes".into(), "range".into()),
            ("since".into(), "unknown_parameter".into()),
            ("tailLines".into(), "range".into()),
        ]
    );
    for path in ["a%2F..%2Fb", "a%2F%2Fb", "%2Fetc"] {
        let bad = gw
            .call("GET", &format!("{base}/results/{path}"), Some(&vera), None)
            .await;
        assert_eq!(
            issues(&bad),
            [("path".to_owned(), "result_path".to_owned())],
            "{path}"
        );
    }

    // Who: another vendor of the sandbox and another tenant get 404, as for no run at all.
    for (who, token) in [("victor", &victor), ("mallory", &mallory)] {
        for suffix in ["/logs", "/results", "/results/metrics.json"] {
            let got = gw
                .call("GET", &format!("{base}{suffix}"), Some(token), None)
                .await;
            assert_error(&got, 404, "not_found");
            let missing = gw
                .call(
                    "GET",
                    &format!("/v1/sandboxes/{SANDBOX}/runs/run-ffffffffffff{suffix}"),
                    Some(token),
                    None,
                )
                .await;
            assert_eq!(got.0, missing.0, "{who} {suffix}");
        }
    }
    assert_eq!(
        gw.call("GET", &format!("{base}/logs"), None, None).await.0,
        401
    );

    // The requester and the tenant's members get through to the cluster, which this
    // gateway lacks: 409 saying so.
    for token in [&vera, &bob, &alice] {
        for suffix in [
            "/logs?tailLines=10&follow=true",
            "/results",
            "/results/preds/part-0.csv",
        ] {
            let got = gw
                .call("GET", &format!("{base}{suffix}"), Some(token), None)
                .await;
            assert_error(&got, 409, "conflict");
            assert!(
                got.1["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("without a cluster"),
                "{}",
                got.1
            );
        }
    }

    // The OpenAPI document lists the three routes.
    let (_, doc) = gw.call("GET", "/openapi.json", None, None).await;
    for path in [
        "/v1/sandboxes/{name}/runs/{id}/logs",
        "/v1/sandboxes/{name}/runs/{id}/results",
        "/v1/sandboxes/{name}/runs/{id}/results/{path}",
    ] {
        assert!(doc["paths"][path]["get"].is_object(), "{path}");
    }
    gw.stop().await;
}
