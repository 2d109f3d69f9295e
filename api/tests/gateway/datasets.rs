//! Datasets and grants over HTTP, against SQLite and PostgreSQL: uploads (good and bad),
//! a personal dataset granted to a vendor only once k-anonymous, the view as Parquet
//! (ranges) and Arrow, revocation, version deletion, and the real PyPI `delta-sharing`
//! client reading exactly the granted view through Delta Sharing; the k-anonymity gate
//! whatever the order (grant, then vendor), grants ending with their sandbox, and sharing
//! tokens ending with their holder's right.

mod support;

use std::io::Write;

use serde_json::{Value, json};
use support::{Backend, Gateway, Setup, assert_error};

use support::groups::{EE_ADMIN, EE_DATA, MGP};

async fn gateway(backend: Backend) -> Gateway {
    let mut setup = Setup::local(support::fresh_database(backend).await);
    setup.extra = vec!["--upload-limit".into(), "200000".into()];
    Gateway::start(setup).await
}

/// 60 residents: id, name, age, postcode, income. Ages 20..80, postcodes in 93 and 94.
fn residents_csv() -> String {
    let mut csv = String::from("id,name,age,postcode,income\n");
    for i in 0..60 {
        let postcode = if i % 2 == 0 { "93100" } else { "94200" };
        csv.push_str(&format!(
            "{i},Person {i},{},{postcode},{}\n",
            20 + i,
            1000 + i * 10
        ));
    }
    csv
}

async fn upload(gw: &Gateway, token: &str, query: &str, body: Vec<u8>, ct: &str) -> (u16, Value) {
    let r = gw
        .http
        .post(format!("{}/v1/datasets?{query}", gw.url))
        .bearer_auth(token)
        .header("content-type", ct)
        .body(body)
        .send()
        .await
        .expect("upload");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn get_bytes(
    gw: &Gateway,
    path: &str,
    token: Option<&str>,
    range: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let url = if path.starts_with("http") {
        path.to_owned()
    } else {
        format!("{}{path}", gw.url)
    };
    let mut req = gw.http.get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(r) = range {
        req = req.header("range", r);
    }
    let r = req.send().await.expect("get");
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    (status, headers, r.bytes().await.expect("body").to_vec())
}

fn parquet_rows(bytes: Vec<u8>) -> Vec<arrow_array::RecordBatch> {
    parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(
        bytes,
    ))
    .expect("parquet")
    .build()
    .expect("reader")
    .collect::<Result<Vec<_>, _>>()
    .expect("batches")
}

both_backends!(
    bad_uploads_get_a_clear_error_and_store_nothing,
    a_personal_dataset_reaches_a_vendor_only_anonymised,
    the_tenant_minimum_k_decides,
    a_vendor_reaches_a_sandbox_grant_only_through_the_k_gate,
    a_sharing_profile_ends_with_its_holders_right,
);

async fn bad_uploads_get_a_clear_error_and_store_nothing(backend: Backend) {
    let gw = gateway(backend).await;
    let bob = gw.token("bob", EE_DATA);
    let q = "tenant=est-ensemble&name=residents&classification=personal&format=csv";
    let cases: Vec<(&str, Vec<u8>, u16, &str, &str)> = vec![
        (q, b"a,b\n1,2\n3\n".to_vec(), 422, "invalid_csv", "line 3"),
        (q, b"a,b\n1,\"x\n".to_vec(), 422, "invalid_csv", "line"),
        (
            "tenant=est-ensemble&name=residents&classification=personal&format=csv&types=a:int64",
            b"a,b\n1,2\nzz,3\n".to_vec(),
            422,
            "invalid_csv",
            "line 3",
        ),
        (q, Vec::new(), 400, "empty_upload", "empty"),
        (
            "tenant=est-ensemble&name=ok&classification=open&format=csv&header=maybe",
            b"a\n1\n".to_vec(),
            400,
            "invalid_query",
            "header",
        ),
        (
            "tenant=est-ensemble&name=residents&classification=personal&format=parquet",
            b"PAR1garbagePAR1".to_vec(),
            422,
            "invalid_parquet",
            "Parquet",
        ),
        (q, vec![b'a'; 300_000], 413, "payload_too_large", "limit"),
        (
            "tenant=est-ensemble&name=../etc&classification=personal&format=csv",
            b"a\n1\n".to_vec(),
            422,
            "validation_failed",
            "not a valid name",
        ),
        (
            "tenant=est-ensemble&name=ok&classification=secret&format=csv",
            b"a\n1\n".to_vec(),
            422,
            "validation_failed",
            "classification",
        ),
        (
            "tenant=montreuil&name=ok&classification=open&format=csv",
            b"a\n1\n".to_vec(),
            404,
            "not_found",
            "montreuil",
        ),
    ];
    for (query, body, status, code, needle) in cases {
        let got = upload(&gw, &bob, query, body, "text/csv").await;
        assert_error(&got, status, code);
        let text = got.1.to_string();
        assert!(
            text.contains(needle),
            "{query}: expected {needle:?} in {text}"
        );
    }
    // Nothing stored, and the service still answers.
    let (status, list) = gw.call("GET", "/v1/datasets", Some(&bob), None).await;
    assert_eq!(status, 200);
    assert_eq!(list, json!([]));
    let stored: Vec<_> = walk(&gw.data_dir.join("datasets"));
    assert!(stored.is_empty(), "objects left behind: {stored:?}");
    let tmp: Vec<_> = walk(&gw.data_dir.join("tmp"));
    assert!(tmp.is_empty(), "temporary files left behind: {tmp:?}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.path().is_dir() {
                out.extend(walk(&e.path()));
            } else {
                out.push(e.path());
            }
        }
    }
    out
}

async fn a_personal_dataset_reaches_a_vendor_only_anonymised(backend: Backend) {
    let gw = gateway(backend).await;
    let bob = gw.token("bob", EE_DATA);
    let alice = gw.token("alice", EE_ADMIN);
    let acme = gw.token("acme", &[]);
    let other_vendor = gw.token("globex", &[]);
    let mgp = gw.token("mia", MGP);

    // -- Upload: CSV with inferred types, stored encrypted.
    let q = "tenant=est-ensemble&name=residents&classification=personal&description=Test&types=postcode:string";
    let (status, ds) = upload(&gw, &bob, q, residents_csv().into_bytes(), "text/csv").await;
    assert_eq!(status, 201, "{ds}");
    let id = ds["id"].as_str().expect("id").to_owned();
    assert_eq!(ds["versions"][0]["rows"], 60);
    assert_eq!(
        ds["versions"][0]["schema"][2],
        json!({"name": "age", "type": "int64", "nullable": true})
    );
    for file in walk(&gw.data_dir.join("datasets")) {
        let bytes = std::fs::read(&file).expect("read object");
        assert!(
            bytes.starts_with(b"SERREC"),
            "object {file:?} is not encrypted"
        );
        assert!(
            !bytes.windows(8).any(|w| w == b"Person 1"),
            "plaintext in {file:?}"
        );
    }

    // -- A grant that is not k-anonymous is refused with the reason.
    let expires = (chrono::Utc::now() + chrono::Duration::days(7)).to_rfc3339();
    let exact = json!({
        "datasetId": id, "grantee": {"vendor": "acme"},
        "columns": ["id", "age", "postcode", "income"],
        "recipe": {"columns": {"id": "pseudonymise"}, "quasiIdentifiers": ["age", "postcode"], "k": 5},
        "purpose": "Trial of a mobility model", "expiresAt": expires,
    });
    let got = gw
        .call("POST", "/v1/grants", Some(&alice), Some(exact.clone()))
        .await;
    assert_error(&got, 422, "k_anonymity");
    assert!(
        got.1.to_string().contains("smallest class is 1"),
        "{}",
        got.1
    );
    // Members are not tenant admins; vendors do not see the dataset.
    assert_error(
        &gw.call("POST", "/v1/grants", Some(&bob), Some(exact.clone()))
            .await,
        403,
        "forbidden",
    );
    assert_error(
        &gw.call("POST", "/v1/grants", Some(&acme), Some(exact.clone()))
            .await,
        404,
        "not_found",
    );
    // A filter naming an unknown column, or not a predicate.
    for filter in ["salary > 3", "1=1; DROP TABLE grants", "(SELECT 1)"] {
        let mut bad = exact.clone();
        bad["rowFilter"] = json!(filter);
        assert_error(
            &gw.call("POST", "/v1/grants", Some(&alice), Some(bad)).await,
            422,
            "invalid_filter",
        );
    }

    // -- Generalised: ages in bins of 20, postcodes to the département, adults under 70.
    let mut good = exact.clone();
    good["recipe"] = json!({
        "columns": {"id": "pseudonymise", "age": {"generalise": {"bin": 20.0}}, "postcode": {"generalise": {"prefix": 2}}},
        "quasiIdentifiers": ["age", "postcode"], "k": 5, "suppress": true,
    });
    good["rowFilter"] = json!("age < 70");
    let (status, grant) = gw
        .call("POST", "/v1/grants", Some(&alice), Some(good.clone()))
        .await;
    assert_eq!(status, 201, "{grant}");
    let gid = grant["id"].as_str().expect("grant id").to_owned();
    assert_eq!(grant["state"], "active");
    assert!(
        grant["kAnonymity"]["smallestClassOut"].as_u64().expect("k") >= 5,
        "{grant}"
    );
    let rows_out = grant["view"]["rows"].as_i64().expect("rows");
    assert!(rows_out > 0 && rows_out <= 50, "{grant}");

    // -- The vendor reads the view as Parquet: masked column absent, pseudonyms, filter.
    let (status, headers, bytes) =
        get_bytes(&gw, &format!("/v1/grants/{gid}/data"), Some(&acme), None).await;
    assert_eq!(status, 200);
    assert_eq!(headers["accept-ranges"], "bytes");
    let full = bytes.clone();
    let batches = parquet_rows(bytes);
    let schema = batches[0].schema();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, ["id", "age", "postcode", "income"]);
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows as i64, rows_out);
    let ids = arrow_cast::display::array_value_to_string(batches[0].column(0), 0).expect("id");
    assert!(
        ids.len() >= 16 && ids.parse::<i64>().is_err(),
        "id {ids:?} is not a pseudonym"
    );
    for b in &batches {
        for r in 0..b.num_rows() {
            let age: i64 = arrow_cast::display::array_value_to_string(b.column(1), r)
                .expect("age")
                .parse()
                .expect("int");
            assert!(
                age < 70 && age % 20 == 0,
                "age {age} not generalised/filtered"
            );
            let pc = arrow_cast::display::array_value_to_string(b.column(2), r).expect("pc");
            assert!(pc == "93" || pc == "94", "postcode {pc}");
        }
    }
    // A byte range, and the Arrow stream.
    let (status, headers, part) = get_bytes(
        &gw,
        &format!("/v1/grants/{gid}/data"),
        Some(&acme),
        Some("bytes=4-99"),
    )
    .await;
    assert_eq!(status, 206);
    assert_eq!(
        headers["content-range"],
        format!("bytes 4-99/{}", full.len())
    );
    assert_eq!(part, full[4..100]);
    assert_eq!(headers["content-length"], "96");
    // `bytes=0-` (what Delta Sharing clients send): the whole view as a 206, streamed.
    let (status, headers, part) = get_bytes(
        &gw,
        &format!("/v1/grants/{gid}/data"),
        Some(&acme),
        Some("bytes=0-"),
    )
    .await;
    assert_eq!(status, 206);
    let n = full.len();
    assert_eq!(headers["content-range"], format!("bytes 0-{}/{n}", n - 1));
    assert_eq!(headers["content-length"], n.to_string().as_str());
    assert_eq!(part, full);
    let (status, headers, part) = get_bytes(
        &gw,
        &format!("/v1/grants/{gid}/data"),
        Some(&acme),
        Some("bytes=-8"),
    )
    .await;
    assert_eq!(status, 206);
    assert_eq!(
        headers["content-range"],
        format!("bytes {}-{}/{n}", n - 8, n - 1)
    );
    assert_eq!(part, full[n - 8..]);
    let (status, _, _) = get_bytes(
        &gw,
        &format!("/v1/grants/{gid}/data"),
        Some(&acme),
        Some(&format!("bytes={}-", full.len() + 5)),
    )
    .await;
    assert_eq!(status, 416);
    let (status, _, arrow) = get_bytes(
        &gw,
        &format!("/v1/grants/{gid}/data?format=arrow"),
        Some(&acme),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let reader =
        arrow_ipc::reader::StreamReader::try_new(std::io::Cursor::new(arrow), None).expect("ipc");
    let arrow_rows: usize = reader.map(|b| b.expect("batch").num_rows()).sum();
    assert_eq!(arrow_rows as i64, rows_out);

    // -- Others: another vendor does not learn the grant exists; a Métropole admin sees
    //    it but may not read the data.
    assert_error(
        &gw.call(
            "GET",
            &format!("/v1/grants/{gid}/data"),
            Some(&other_vendor),
            None,
        )
        .await,
        404,
        "not_found",
    );
    assert_eq!(
        gw.call("GET", &format!("/v1/grants/{gid}"), Some(&mgp), None)
            .await
            .0,
        200
    );
    assert_error(
        &gw.call("GET", &format!("/v1/grants/{gid}/data"), Some(&mgp), None)
            .await,
        403,
        "forbidden",
    );

    // -- Two grants of the same data to two vendors: their pseudonyms never match.
    let mut second = good.clone();
    second["grantee"] = json!({"vendor": "globex"});
    let (status, g2) = gw
        .call("POST", "/v1/grants", Some(&alice), Some(second))
        .await;
    assert_eq!(status, 201, "{g2}");
    let g2id = g2["id"].as_str().expect("id");
    let (_, _, other) = get_bytes(
        &gw,
        &format!("/v1/grants/{g2id}/data"),
        Some(&other_vendor),
        None,
    )
    .await;
    let ids_a = column_strings(&parquet_rows(full.clone()), 0);
    let ids_b = column_strings(&parquet_rows(other), 0);
    assert_eq!(ids_a.len(), ids_b.len());
    assert!(
        ids_a.iter().all(|a| !ids_b.contains(a)),
        "pseudonyms linkable across grants"
    );

    // -- Delta Sharing with the real Python client.
    let (status, profile) = gw
        .call(
            "GET",
            &format!("/v1/grants/{gid}/profile"),
            Some(&acme),
            None,
        )
        .await;
    assert_eq!(status, 200, "{profile}");
    assert_eq!(profile["shareCredentialsVersion"], 1);
    let dir = support::new_dir("sharing");
    let profile_path = dir.join("profile.share");
    std::fs::File::create(&profile_path)
        .and_then(|mut f| f.write_all(profile.to_string().as_bytes()))
        .expect("profile");
    let table = format!("est-ensemble.residents.{gid}");
    let client = python_client(&profile_path, &table);
    assert_eq!(client["tables"], json!([table]), "{client}");
    assert_eq!(
        client["columns"],
        json!(["id", "age", "postcode", "income"]),
        "{client}"
    );
    assert_eq!(client["rows"].as_i64(), Some(rows_out), "{client}");
    let mut py_ids: Vec<String> = serde_json::from_value(client["ids"].clone()).expect("ids");
    let mut want = ids_a.clone();
    py_ids.sort();
    want.sort();
    assert_eq!(py_ids, want, "the client read something else than the view");
    assert!(client["maxAge"].as_i64().expect("age") < 70);

    // -- A live grant blocks deletion of its version.
    let got = gw
        .call(
            "DELETE",
            &format!("/v1/datasets/{id}/versions/1"),
            Some(&alice),
            None,
        )
        .await;
    assert_error(&got, 409, "conflict");
    assert!(got.1.to_string().contains(&gid));

    // -- Revocation: API, sharing endpoints and already issued file links all refuse.
    let link = client["fileUrl"].as_str().expect("file url").to_owned();
    let (status, _, _) = get_bytes(&gw, &link, None, Some("bytes=0-3")).await;
    assert_eq!(status, 206, "the file link works before revocation");
    let (status, revoked) = gw
        .call("DELETE", &format!("/v1/grants/{gid}"), Some(&alice), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(revoked["state"], "revoked");
    assert_error(
        &gw.call("GET", &format!("/v1/grants/{gid}/data"), Some(&acme), None)
            .await,
        403,
        "forbidden",
    );
    let (status, _, body) = get_bytes(&gw, &link, None, None).await;
    assert_eq!(status, 403);
    assert!(String::from_utf8_lossy(&body).contains("PERMISSION_DENIED"));
    let token = profile["bearerToken"].as_str().expect("token");
    let (status, _, body) = get_bytes(&gw, "/delta-sharing/shares", Some(token), None).await;
    assert_eq!(status, 403, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("\"errorCode\":\"PERMISSION_DENIED\""));

    // -- Every data access is in the audit log, with bytes.
    let (status, _, audit) = get_bytes(&gw, "/v1/audit?format=jsonl", Some(&mgp), None).await;
    assert_eq!(status, 200);
    let text = String::from_utf8_lossy(&audit);
    let reads: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("\"grant.data.read\""))
        .collect();
    assert!(reads.len() >= 5, "{text}");
    assert!(
        reads
            .iter()
            .all(|l| l.contains("bytes") || l.contains("rows")),
        "{reads:?}"
    );
    assert!(
        text.contains("delta-sharing") || text.contains("parquet-range"),
        "{text}"
    );
}

fn column_strings(batches: &[arrow_array::RecordBatch], column: usize) -> Vec<String> {
    batches
        .iter()
        .flat_map(|b| {
            (0..b.num_rows()).map(move |r| {
                arrow_cast::display::array_value_to_string(b.column(column), r).expect("value")
            })
        })
        .collect()
}

/// Run the PyPI `delta-sharing` client (installed by deploy/dev/test.sh) on the profile.
fn python_client(profile: &std::path::Path, table: &str) -> Value {
    let script = support::repo_root().join("api/tests/delta_sharing_client.py");
    let out = std::process::Command::new("python3")
        .arg(&script)
        .arg(profile)
        .arg(table)
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "delta-sharing client failed (pip install delta-sharing==1.4.2):\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("client output is JSON")
}

async fn the_tenant_minimum_k_decides(backend: Backend) {
    let gw = gateway(backend).await;
    let bob = gw.token("bob", EE_DATA);
    let alice = gw.token("alice", EE_ADMIN);
    let mgp = gw.token("mia", MGP);
    let q = "tenant=est-ensemble&name=residents&classification=personal&types=postcode:string";
    let (status, ds) = upload(&gw, &bob, q, residents_csv().into_bytes(), "text/csv").await;
    assert_eq!(status, 201, "{ds}");
    let policy = "/v1/tenants/est-ensemble/data-policy";
    // The gateway's default until the tenant has its own.
    let (status, got) = gw.call("GET", policy, Some(&alice), None).await;
    assert_eq!((status, got), (200, json!({"minK": 5})));
    let got = gw
        .call("PUT", policy, Some(&alice), Some(json!({"minK": 10})))
        .await;
    assert_error(&got, 403, "forbidden");
    let got = gw
        .call("PUT", policy, Some(&mgp), Some(json!({"minK": 1})))
        .await;
    assert_error(&got, 422, "validation_failed");
    let (status, _) = gw
        .call("PUT", policy, Some(&mgp), Some(json!({"minK": 10})))
        .await;
    assert_eq!(status, 200);

    // Classes of about 8 rows: enough for k = 5, not for this tenant's 10.
    let grant = json!({
        "datasetId": ds["id"], "grantee": {"vendor": "acme"},
        "columns": ["id", "age", "postcode"],
        "recipe": {"columns": {"id": "pseudonymise", "age": {"generalise": {"bin": 20.0}},
                               "postcode": {"generalise": {"prefix": 2}}},
                   "quasiIdentifiers": ["age", "postcode"], "k": 5, "suppress": true},
        "rowFilter": "age < 70",
        "purpose": "Trial", "expiresAt": (chrono::Utc::now() + chrono::Duration::days(3)).to_rfc3339(),
    });
    let got = gw
        .call("POST", "/v1/grants", Some(&alice), Some(grant.clone()))
        .await;
    assert_error(&got, 422, "k_anonymity");
    assert!(got.1.to_string().contains("minimum k is 10"), "{}", got.1);
    // Not personal data leaving towards a vendor: a sandbox without vendors is the
    // tenant's own team, and the gate does not apply.
    let mut own = grant.clone();
    let (status, sb) = gw
        .call(
            "POST",
            "/v1/sandboxes",
            Some(&bob),
            Some(support::sandbox_body("est-ensemble", "study", 10)),
        )
        .await;
    assert_eq!(status, 201, "{sb}");
    own["grantee"] = json!({"sandbox": "est-ensemble--study"});
    let (status, g) = gw.call("POST", "/v1/grants", Some(&alice), Some(own)).await;
    assert_eq!(status, 201, "{g}");
}

/// Issue 13 §2, first leak: a personal dataset granted raw to a sandbox without vendors,
/// then a vendor added to the sandbox, used to let the vendor read the raw view.
async fn a_vendor_reaches_a_sandbox_grant_only_through_the_k_gate(backend: Backend) {
    let gw = gateway(backend).await;
    let bob = gw.token("bob", EE_DATA);
    let alice = gw.token("alice", EE_ADMIN);
    let acme = gw.token("acme", &[]);
    let mgp = gw.token("mia", MGP);
    let q = "tenant=est-ensemble&name=residents&classification=personal&types=postcode:string";
    let (status, ds) = upload(&gw, &bob, q, residents_csv().into_bytes(), "text/csv").await;
    assert_eq!(status, 201, "{ds}");
    for name in ["study", "study2"] {
        let (status, sb) = gw
            .call(
                "POST",
                "/v1/sandboxes",
                Some(&bob),
                Some(support::sandbox_body("est-ensemble", name, 10)),
            )
            .await;
        assert_eq!(status, 201, "{sb}");
    }
    let expires = (chrono::Utc::now() + chrono::Duration::days(3)).to_rfc3339();
    // The raw personal view, for the tenant's own team (no vendor yet: no gate).
    let raw = json!({
        "datasetId": ds["id"], "grantee": {"sandbox": "est-ensemble--study"},
        "columns": ["id", "name", "age", "postcode", "income"],
        "purpose": "In-house study", "expiresAt": expires,
    });
    let (status, g) = gw.call("POST", "/v1/grants", Some(&alice), Some(raw)).await;
    assert_eq!(status, 201, "{g}");
    let raw_id = g["id"].as_str().expect("id").to_owned();

    // -- Adding a vendor re-runs the gate on every live grant: refused, naming the grant
    //    and the rule; the vendor reads nothing.
    let members = "/v1/sandboxes/est-ensemble--study/members";
    let got = gw
        .call(
            "POST",
            members,
            Some(&alice),
            Some(json!({"subject": "acme"})),
        )
        .await;
    assert_error(&got, 409, "conflict");
    let message = got.1["error"]["message"].as_str().expect("message");
    assert!(message.contains(&raw_id), "{message}");
    assert!(message.contains("k-anonymity"), "{message}");
    assert!(message.contains("quasi-identifiers"), "{message}");
    let got = gw
        .call(
            "GET",
            &format!("/v1/grants/{raw_id}/data"),
            Some(&acme),
            None,
        )
        .await;
    assert_error(&got, 404, "not_found");
    let (_, sandbox) = gw
        .call(
            "GET",
            "/v1/sandboxes/est-ensemble--study",
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(sandbox["members"], json!([]), "{sandbox}");

    // -- A k-anonymous sandbox grant lets a vendor in; so does revoking the raw one.
    let anonymised = json!({
        "datasetId": ds["id"], "grantee": {"sandbox": "est-ensemble--study2"},
        "columns": ["id", "age", "postcode"],
        "recipe": {"columns": {"id": "pseudonymise", "age": {"generalise": {"bin": 20.0}},
                               "postcode": {"generalise": {"prefix": 2}}},
                   "quasiIdentifiers": ["age", "postcode"], "k": 5, "suppress": true},
        // Classes of 10 and 5 rows: enough for k = 5, not for a minimum of 10.
        "rowFilter": "age < 70",
        "purpose": "Trial", "expiresAt": expires,
    });
    let (status, g2) = gw
        .call("POST", "/v1/grants", Some(&alice), Some(anonymised))
        .await;
    assert_eq!(status, 201, "{g2}");
    let anon_id = g2["id"].as_str().expect("id").to_owned();
    let (status, got) = gw
        .call(
            "POST",
            "/v1/sandboxes/est-ensemble--study2/members",
            Some(&alice),
            Some(json!({"subject": "acme"})),
        )
        .await;
    assert_eq!(status, 201, "{got}");
    let (status, _, _) = get_bytes(
        &gw,
        &format!("/v1/grants/{anon_id}/data"),
        Some(&acme),
        None,
    )
    .await;
    assert_eq!(status, 200);
    // A tenant minimum raised since the grant counts when the next vendor comes.
    let (status, _) = gw
        .call(
            "PUT",
            "/v1/tenants/est-ensemble/data-policy",
            Some(&mgp),
            Some(json!({"minK": 10})),
        )
        .await;
    assert_eq!(status, 200);
    let got = gw
        .call(
            "POST",
            "/v1/sandboxes/est-ensemble--study2/members",
            Some(&alice),
            Some(json!({"subject": "globex"})),
        )
        .await;
    assert_error(&got, 409, "conflict");
    assert!(got.1.to_string().contains("minimum k is 10"), "{}", got.1);
    let (status, _) = gw
        .call(
            "DELETE",
            &format!("/v1/grants/{raw_id}"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let (status, got) = gw
        .call(
            "POST",
            members,
            Some(&alice),
            Some(json!({"subject": "acme"})),
        )
        .await;
    assert_eq!(status, 201, "{got}");

    // -- Deleting a sandbox revokes its grants; a sandbox of the same name later does not
    //    inherit them.
    let (status, _) = gw
        .call(
            "DELETE",
            "/v1/sandboxes/est-ensemble--study2",
            Some(&bob),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (_, g2) = gw
        .call("GET", &format!("/v1/grants/{anon_id}"), Some(&alice), None)
        .await;
    assert_eq!(g2["state"], "revoked", "{g2}");
    let (status, _) = gw
        .call(
            "POST",
            "/v1/sandboxes",
            Some(&bob),
            Some(support::sandbox_body("est-ensemble", "study2", 10)),
        )
        .await;
    assert_eq!(status, 201);
    let (status, _) = gw
        .call(
            "POST",
            "/v1/sandboxes/est-ensemble--study2/members",
            Some(&alice),
            Some(json!({"subject": "acme"})),
        )
        .await;
    assert_eq!(status, 201);
    assert_error(
        &gw.call(
            "GET",
            &format!("/v1/grants/{anon_id}/data"),
            Some(&acme),
            None,
        )
        .await,
        403,
        "forbidden",
    );

    // -- The decisions are in the audit log: the refusal with the rule and the grants,
    //    the revocation with its reason.
    let (status, _, audit) = get_bytes(&gw, "/v1/audit?format=jsonl", Some(&mgp), None).await;
    assert_eq!(status, 200);
    let entries: Vec<Value> = String::from_utf8_lossy(&audit)
        .lines()
        .map(|l| serde_json::from_str(l).expect("entry"))
        .collect();
    let details = details_of;
    assert!(
        entries.iter().any(|e| e["action"] == "sandbox.members.add"
            && e["decision"] == "deny"
            && details(e)["rule"] == "k-anonymity"
            && details(e)["grants"][0]["grant"] == raw_id.as_str()),
        "no audited refusal"
    );
    assert!(
        entries.iter().any(|e| e["action"] == "grant.revoked"
            && e["resource"] == format!("Grant::{anon_id:?}")
            && details(e)["reason"]
                .as_str()
                .is_some_and(|r| r.contains("was deleted"))),
        "no audited revocation"
    );
}

/// Issue 13 §2, second leak: a Delta Sharing profile token (and the file links it mints)
/// kept working after its holder was removed from the sandbox.
async fn a_sharing_profile_ends_with_its_holders_right(backend: Backend) {
    let gw = gateway(backend).await;
    let bob = gw.token("bob", EE_DATA);
    let alice = gw.token("alice", EE_ADMIN);
    let acme = gw.token("acme", &[]);
    let mgp = gw.token("mia", MGP);
    let q = "tenant=est-ensemble&name=stops&classification=open";
    let (status, ds) = upload(&gw, &bob, q, residents_csv().into_bytes(), "text/csv").await;
    assert_eq!(status, 201, "{ds}");
    let (status, _) = gw
        .call(
            "POST",
            "/v1/sandboxes",
            Some(&bob),
            Some(support::sandbox_body("est-ensemble", "study", 10)),
        )
        .await;
    assert_eq!(status, 201);
    let members = "/v1/sandboxes/est-ensemble--study/members";
    let (status, _) = gw
        .call(
            "POST",
            members,
            Some(&alice),
            Some(json!({"subject": "acme"})),
        )
        .await;
    assert_eq!(status, 201);
    let grant = json!({
        "datasetId": ds["id"], "grantee": {"sandbox": "est-ensemble--study"},
        "columns": ["id", "age"], "purpose": "Trial",
        "expiresAt": (chrono::Utc::now() + chrono::Duration::days(3)).to_rfc3339(),
    });
    let (status, g) = gw
        .call("POST", "/v1/grants", Some(&alice), Some(grant))
        .await;
    assert_eq!(status, 201, "{g}");
    let gid = g["id"].as_str().expect("id").to_owned();

    let profile_of = |token: String| {
        let gw = &gw;
        let gid = gid.clone();
        async move {
            let (status, p) = gw
                .call(
                    "GET",
                    &format!("/v1/grants/{gid}/profile"),
                    Some(&token),
                    None,
                )
                .await;
            assert_eq!(status, 200, "{p}");
            p["bearerToken"].as_str().expect("token").to_owned()
        }
    };
    let query = |token: String| {
        let gw = &gw;
        let url = format!(
            "{}/delta-sharing/shares/est-ensemble/schemas/stops/tables/{gid}/query",
            gw.url
        );
        async move {
            let r = gw
                .http
                .post(url)
                .bearer_auth(token)
                .json(&json!({}))
                .send()
                .await
                .expect("query");
            (r.status().as_u16(), r.text().await.expect("body"))
        }
    };
    let vendor = profile_of(acme.clone()).await;
    let member = profile_of(bob.clone()).await;
    let (status, _, _) = get_bytes(&gw, "/delta-sharing/shares", Some(&vendor), None).await;
    assert_eq!(status, 200);
    let (status, body) = query(vendor.clone()).await;
    assert_eq!(status, 200, "{body}");
    let file: Value = body
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l.get("file").is_some())
        .expect("a file line");
    let link = file["file"]["url"].as_str().expect("url").to_owned();
    let (status, _, _) = get_bytes(&gw, &link, None, Some("bytes=0-3")).await;
    assert_eq!(status, 206);

    // -- The vendor leaves the sandbox: its profile, new file links and the link it
    //    already holds are all refused, with the reason.
    let (status, _) = gw
        .call("DELETE", &format!("{members}/acme"), Some(&alice), None)
        .await;
    assert_eq!(status, 204);
    let (status, _, body) = get_bytes(&gw, "/delta-sharing/shares", Some(&vendor), None).await;
    let body = String::from_utf8_lossy(&body).into_owned();
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("PERMISSION_DENIED"), "{body}");
    assert!(
        body.contains("acme") && body.contains("est-ensemble--study"),
        "{body}"
    );
    let (status, body) = query(vendor.clone()).await;
    assert_eq!(status, 403, "{body}");
    let (status, _, body) = get_bytes(&gw, &link, None, None).await;
    assert_eq!(status, 403, "{}", String::from_utf8_lossy(&body));
    // The tenant's member keeps reading through their own profile.
    let (status, body) = query(member).await;
    assert_eq!(status, 200, "{body}");

    // -- The refusals are audited with the reason.
    let (status, _, audit) = get_bytes(&gw, "/v1/audit?format=jsonl", Some(&mgp), None).await;
    assert_eq!(status, 200);
    let refusals: Vec<Value> = String::from_utf8_lossy(&audit)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("entry"))
        .filter(|e| {
            e["action"] == "grant.data" && e["decision"] == "deny" && e["principal"] == "acme"
        })
        .collect();
    assert!(refusals.len() >= 3, "{refusals:?}");
    assert!(
        refusals
            .iter()
            .all(|e| details_of(e)["reason"].is_string() && details_of(e)["via"].is_string()),
        "{refusals:?}"
    );
}

/// An audit entry's details (JSON lines carry them as stored: a JSON string).
fn details_of(e: &Value) -> Value {
    match &e["details"] {
        Value::String(s) => serde_json::from_str(s).unwrap_or(Value::Null),
        other => other.clone(),
    }
}
