use super::*;
use futures::TryStreamExt;
use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateWaiting, PodSpec, PodStatus,
};

fn q(s: &[(&str, &str)]) -> Vec<(String, String)> {
    s.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn fields(r: Result<LogOptions, Vec<FieldIssue>>) -> Vec<(String, String)> {
    r.unwrap_err()
        .into_iter()
        .map(|i| (i.field, i.rule))
        .collect()
}

#[test]
fn the_log_query_has_defaults_and_bounds_naming_each_parameter() {
    assert_eq!(parse_log_query(&[]).unwrap(), LogOptions::default());
    let o = parse_log_query(&q(&[
        ("container", "fetch-grants"),
        ("tailLines", "100000"),
        ("limitBytes", "10485760"),
        ("follow", "true"),
        ("timestamps", "true"),
    ]))
    .unwrap();
    assert_eq!(o.container, "fetch-grants");
    assert_eq!(o.tail_lines, Some(100_000));
    assert_eq!(o.limit_bytes, MAX_LIMIT_BYTES);
    assert!(o.follow && o.timestamps);
    let bad = fields(parse_log_query(&q(&[
        ("container", "sidecar"),
        ("tailLines", "0"),
        ("limitBytes", "10485761"),
        ("follow", "yes"),
        ("timestamps", "1"),
        ("since", "5m"),
    ])));
    for (f, rule) in [
        ("container", "one_of"),
        ("tailLines", "range"),
        ("limitBytes", "range"),
        ("follow", "boolean"),
        ("timestamps", "boolean"),
        ("since", "unknown_parameter"),
    ] {
        assert!(
            bad.contains(&(f.to_owned(), rule.to_owned())),
            "{f}/{rule} in {bad:?}"
        );
    }
    assert_eq!(
        fields(parse_log_query(&q(&[("tailLines", "-3")]))),
        [("tailLines".to_owned(), "range".to_owned())]
    );
    assert_eq!(
        fields(parse_log_query(&q(&[("tailLines", "100001")]))),
        [("tailLines".to_owned(), "range".to_owned())]
    );
    assert_eq!(
        fields(parse_log_query(&q(&[("limitBytes", "1023")]))),
        [("limitBytes".to_owned(), "range".to_owned())]
    );
    assert_eq!(
        fields(parse_log_query(&q(&[
            ("follow", "true"),
            ("follow", "true")
        ]))),
        [("follow".to_owned(), "unique".to_owned())]
    );
}

async fn collect(chunks: &[&[u8]], limit: u64) -> Vec<u8> {
    let items: Vec<io::Result<Bytes>> = chunks
        .iter()
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let out: Vec<Bytes> = bounded(futures::stream::iter(items), limit, None)
        .try_collect()
        .await
        .unwrap();
    out.concat()
}

#[tokio::test]
async fn a_log_body_never_exceeds_its_limit_and_says_when_it_was_cut() {
    let limit = 1024u64;
    let line = vec![b'a'; 100];
    // Shorter than the limit: everything, nothing added.
    let body = collect(&[&line, &line], limit).await;
    assert_eq!(body.len(), 200);
    // Exactly the limit, in odd chunks: everything, nothing added.
    let full = vec![b'x'; 1024];
    let body = collect(&[&full[..1000], &full[1000..], b""], limit).await;
    assert_eq!(body, full);
    // One byte more: cut, with the trailing line, within the limit.
    let over = vec![b'y'; 1025];
    let body = collect(&[&over[..7], &over[7..]], limit).await;
    assert!(body.len() <= 1024, "{}", body.len());
    let text = String::from_utf8(body).unwrap();
    assert!(text.ends_with(
        "[serre: log truncated at limitBytes=1024; ask with tailLines or a larger limitBytes]\n"
    ));
    assert!(text.starts_with(&"y".repeat(1024 - MARKER_ROOM)));
    // Far more, in many chunks: the same bound, and the stream stops reading.
    let chunks: Vec<&[u8]> = std::iter::repeat_n(&line[..], 1000).collect();
    let body = collect(&chunks, limit).await;
    assert!(body.len() <= 1024);
    assert!(String::from_utf8(body).unwrap().contains("truncated"));
    for cut in [
        Cut::Limit(MAX_LIMIT_BYTES),
        Cut::Follow(FOLLOW_MAX),
        Cut::Broken,
    ] {
        assert!(cut.marker().len() <= MARKER_ROOM);
    }
    // A broken stream ends with a line saying so.
    let items = vec![Ok(Bytes::from_static(b"hello")), Err(io::Error::other("x"))];
    let out: Vec<Bytes> = bounded(futures::stream::iter(items), limit, None)
        .try_collect()
        .await
        .unwrap();
    let text = String::from_utf8(out.concat()).unwrap();
    assert!(text.starts_with("hello\n[serre: the log stream"), "{text}");
}

#[tokio::test]
async fn following_stops_after_its_time_with_a_line_saying_so() {
    let first = futures::stream::iter(vec![Ok(Bytes::from_static(b"line 1\n"))]);
    let stream = first.chain(futures::stream::pending());
    let out: Vec<Bytes> = bounded(stream, 4096, Some(Duration::from_millis(30)))
        .try_collect()
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8(out.concat()).unwrap(),
        "line 1\n\n[serre: stopped following after 0 s; ask again to go on]\n"
    );
}

fn pod(name: &str, created: i64, init: bool, trial: Option<ContainerState>) -> Pod {
    let c = |n: &str| Container {
        name: n.into(),
        ..Default::default()
    };
    Pod {
        metadata: kube::core::ObjectMeta {
            name: Some(name.into()),
            creation_timestamp: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::from_second(created).unwrap(),
            )),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers: vec![c("trial")],
            init_containers: init.then(|| vec![c("fetch-grants")]),
            ..Default::default()
        }),
        status: Some(PodStatus {
            phase: Some("Pending".into()),
            container_statuses: trial.map(|state| {
                vec![ContainerStatus {
                    name: "trial".into(),
                    state: Some(state),
                    ..Default::default()
                }]
            }),
            ..Default::default()
        }),
    }
}

fn run(phase: &str) -> RunRow {
    RunRow {
        name: "run-0123456789ab".into(),
        namespace: "serre-lab".into(),
        sandbox: "lab".into(),
        tenant: "est".into(),
        solution: None,
        kind: "inference".into(),
        requested_by: "vendor-a".into(),
        spec_json: "{}".into(),
        created_at: String::new(),
        phase: phase.into(),
        started_at: None,
        finished_at: None,
        exit_reason: None,
        summary_json: None,
        closed_at: None,
        quality_metric: None,
        quality_value: None,
    }
}

#[test]
fn the_newest_pod_is_read_and_its_container_must_have_started() {
    let running = ContainerState {
        running: Some(ContainerStateRunning::default()),
        ..Default::default()
    };
    let waiting = ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: Some("PodInitializing".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let pods = vec![
        pod("old", 10, false, Some(running.clone())),
        pod("new", 20, true, Some(waiting)),
    ];
    let p = pick_pod(&pods).unwrap();
    assert_eq!(p.metadata.name.as_deref(), Some("new"));
    match check_container(p, "trial", "run-x") {
        Err(OutputsError::NotStarted(m)) => assert!(m.contains("PodInitializing"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(check_container(&pods[0], "trial", "run-x").is_ok());
    match check_container(&pods[0], "fetch-grants", "run-x") {
        Err(OutputsError::NoSuchContainer(m)) => assert!(m.contains("no grants"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(pick_pod(&[]).is_none());
    assert!(
        matches!(no_pod(&run("Pending")), OutputsError::NotStarted(m)
        if m == "the run has no pod yet: it is Pending")
    );
    assert!(matches!(no_pod(&run("Cancelled")), OutputsError::Gone(m)
        if m.contains("Cancelled") && m.contains("gone")));
}
