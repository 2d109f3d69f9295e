//! The usage ledger and trial-run records on both databases: windows recorded whole with
//! the cursor, replayed windows replacing rather than doubling, filters, monthly sums,
//! the run life cycle (follow, close once), and budget warnings claimed once.

mod support;

use chrono::{TimeZone, Utc};
use serre_api::energy::LedgerRow;
use serre_api::store::{LedgerQuery, RunRow, Store};
use support::Backend;

both_backends!(ledger_windows_and_runs, budget_warnings_are_claimed_once);

async fn budget_warnings_are_claimed_once(backend: Backend) {
    let url = support::fresh_database(backend).await;
    let store = Store::connect(&url, 2).await.expect("connect");
    let november = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
    let december = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap();
    let now = Utc.with_ymd_and_hms(2026, 11, 26, 22, 0, 0).unwrap();
    let claim = |store: &Store, tenant: &'static str, month, level: &'static str| {
        let store = store.clone();
        async move {
            store
                .claim_budget_warning(tenant, month, level, now)
                .await
                .unwrap()
        }
    };
    assert!(claim(&store, "ee", november, "warning").await);
    assert!(!claim(&store, "ee", november, "warning").await);
    // Another level, month or tenant is another warning.
    assert!(claim(&store, "ee", november, "exhausted").await);
    assert!(claim(&store, "ee", december, "warning").await);
    assert!(claim(&store, "pm", november, "warning").await);
    // A second gateway on the same database (another replica, or this one restarted)
    // finds the claims.
    let other = Store::connect(&url, 2).await.expect("connect again");
    assert!(!claim(&other, "ee", november, "warning").await);
    assert!(!claim(&other, "ee", november, "exhausted").await);
}

fn row(start: i64, tenant: &str, ns: &str, run: &str, q: &str, v: f64) -> LedgerRow {
    LedgerRow {
        window_start: Utc.timestamp_opt(start, 0).unwrap(),
        window_end: Utc.timestamp_opt(start + 300, 0).unwrap(),
        tenant: tenant.into(),
        namespace: ns.into(),
        run: run.into(),
        quantity: q.into(),
        value: v,
        unit: "kwh".into(),
        method: "modelled".into(),
        source: "test".into(),
    }
}

async fn ledger_windows_and_runs(backend: Backend) {
    let store = Store::connect(&support::fresh_database(backend).await, 2)
        .await
        .expect("connect");
    assert_eq!(store.usage_cursor().await.unwrap(), None);
    let t0 = 1_790_000_000; // 2026-09-21
    let w1 = vec![
        row(t0, "ee", "serre-a", "", "meter_energy", 0.5),
        row(t0, "ee", "serre-a", "run-1", "meter_energy", 0.25),
        row(t0, "pm", "serre-b", "", "meter_energy", 2.0),
    ];
    store
        .record_usage_window(Utc.timestamp_opt(t0 + 300, 0).unwrap(), &w1)
        .await
        .unwrap();
    assert_eq!(
        store.usage_cursor().await.unwrap(),
        Some(Utc.timestamp_opt(t0 + 300, 0).unwrap())
    );
    // Replaying the same window (a crash after writing, before the next plan) replaces.
    let mut replay = w1.clone();
    replay[0].value = 0.75;
    store
        .record_usage_window(Utc.timestamp_opt(t0 + 300, 0).unwrap(), &replay)
        .await
        .unwrap();
    let w2 = vec![row(t0 + 300, "ee", "serre-a", "", "meter_energy", 1.0)];
    store
        .record_usage_window(Utc.timestamp_opt(t0 + 600, 0).unwrap(), &w2)
        .await
        .unwrap();

    let all = store.ledger_rows(&LedgerQuery::default()).await.unwrap();
    assert_eq!(all.len(), 4);
    assert_eq!(all[0].window_start, Utc.timestamp_opt(t0, 0).unwrap());
    let ee_totals = store
        .ledger_rows(&LedgerQuery {
            tenant: Some("ee"),
            run: Some(""),
            ..LedgerQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(
        ee_totals.iter().map(|r| r.value).collect::<Vec<_>>(),
        [0.75, 1.0]
    );
    let run = store
        .ledger_rows(&LedgerQuery {
            run: Some("run-1"),
            ..LedgerQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(run.len(), 1);
    assert_eq!(run[0].namespace, "serre-a");
    // A run's rows replaced whole (cAdvisor never sampled it): its two windows become one
    // row spanning the run; the namespaces' totals stay.
    store
        .record_usage_window(
            Utc.timestamp_opt(t0 + 600, 0).unwrap(),
            &[row(t0 + 300, "ee", "serre-a", "run-1", "meter_energy", 0.5)],
        )
        .await
        .unwrap();
    let mut spanning = row(t0 + 60, "ee", "serre-a", "run-1", "meter_energy", 0.125);
    spanning.window_end = Utc.timestamp_opt(t0 + 420, 0).unwrap();
    store
        .replace_run_rows("run-1", std::slice::from_ref(&spanning))
        .await
        .unwrap();
    let run = store
        .ledger_rows(&LedgerQuery {
            run: Some("run-1"),
            ..LedgerQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(run, vec![spanning]);
    let later = store
        .ledger_rows(&LedgerQuery {
            from: Some(Utc.timestamp_opt(t0 + 300, 0).unwrap()),
            ..LedgerQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(later.len(), 1);
    // Monthly sum: namespace totals only (the run row is inside them already).
    let (from, to) = (
        Utc.timestamp_opt(t0 - 86400, 0).unwrap(),
        Utc.timestamp_opt(t0 + 86400, 0).unwrap(),
    );
    assert_eq!(store.tenant_meter_kwh("ee", from, to).await.unwrap(), 1.75);
    assert_eq!(
        store.tenant_meter_kwh("nobody", from, to).await.unwrap(),
        0.0
    );

    // Runs: recorded, followed, closed exactly once.
    let r = RunRow {
        name: "run-1".into(),
        namespace: "serre-a".into(),
        sandbox: "ee--a".into(),
        tenant: "ee".into(),
        solution: Some("sol-1".into()),
        kind: "inference".into(),
        requested_by: "acme".into(),
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
    };
    store.insert_run(&r).await.unwrap();
    assert!(store.insert_run(&r).await.is_err(), "names are unique");
    store
        .update_run_state(
            "run-1",
            "Succeeded",
            Some("2026-09-21T00:01:00.000000Z"),
            Some("2026-09-21T00:03:00.000000Z"),
            Some("exit code 0"),
        )
        .await
        .unwrap();
    assert_eq!(store.open_runs().await.unwrap().len(), 1);
    assert!(
        store
            .close_run("run-1", "{\"kwh\":0.25}", "2026-09-21T00:10:00.000000Z")
            .await
            .unwrap()
    );
    assert!(
        !store
            .close_run("run-1", "{}", "2026-09-21T00:11:00.000000Z")
            .await
            .unwrap()
    );
    assert!(store.open_runs().await.unwrap().is_empty());
    let closed = store.get_run("run-1").await.unwrap().unwrap();
    assert_eq!(closed.summary_json.as_deref(), Some("{\"kwh\":0.25}"));
    assert_eq!(closed.phase, "Succeeded");
    // A closed run no longer follows the cluster.
    store
        .update_run_state("run-1", "Failed", None, None, None)
        .await
        .unwrap();
    assert_eq!(
        store.get_run("run-1").await.unwrap().unwrap().phase,
        "Succeeded"
    );
    assert_eq!(
        store.closed_runs_of_solution("sol-1").await.unwrap().len(),
        1
    );
    assert_eq!(store.list_runs("ee--a").await.unwrap().len(), 1);
    store.delete_run("run-1").await.unwrap();
    assert!(store.get_run("run-1").await.unwrap().is_none());
}
