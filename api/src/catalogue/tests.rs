//! Unit tests of the catalogue's validation, derived facts and views.
use super::*;
use crate::sandboxes::FieldIssue;

fn create(body: serde_json::Value) -> (Draft, Vec<FieldIssue>) {
    let req: CreateSolution = serde_json::from_value(body).expect("parses");
    let mut issues = Vec::new();
    let d = Draft::from_create(&req, PUBLISHED, &mut issues);
    issues.extend(d.validate(false));
    (d, issues)
}

fn body() -> serde_json::Value {
    serde_json::json!({
        "vendor": "Acme", "name": "Résumé", "version": "1.0",
        "licence": {"spdx": "EUPL-1.2"},
        "hosting": {"provider": "Scaleway", "dataLocation": "fr", "extraEuTransfer": false},
        "aiActRiskClass": "limited",
        "criteria": {"innovation": {"score": 4, "evidence": [{"title": "t", "url": "https://x.example"}]}}
    })
}

fn rules(issues: &[FieldIssue]) -> Vec<(String, String)> {
    issues
        .iter()
        .map(|i| (i.field.clone(), i.rule.clone()))
        .collect()
}

#[test]
fn catalogue_a_good_entry_passes_and_normalises() {
    let (d, issues) = create(body());
    assert!(issues.is_empty(), "{issues:?}");
    assert_eq!(d.hosting_location, "FR");
    assert_eq!(d.criteria.innovation.score, Some(4));
    assert!(is_free_licence("EUPL-1.2") && !is_free_licence("LicenseRef-Proprietary"));
    assert!(is_sovereign("FR", false) && !is_sovereign("FR", true));
    assert!(!is_sovereign("US", false));
}

#[test]
fn catalogue_derived_fields_are_refused_by_name() {
    let mut b = body();
    b["criteria"]["environmentalImpact"] = serde_json::json!({"score": 5});
    b["licence"]["free"] = serde_json::json!(true);
    b["hosting"]["sovereign"] = serde_json::Value::Null;
    let (_, issues) = create(b);
    assert_eq!(
        rules(&issues),
        vec![
            ("licence.free".into(), "derived".into()),
            ("hosting.sovereign".into(), "derived".into()),
            ("criteria.environmentalImpact".into(), "derived".into()),
        ]
    );
}

#[test]
fn catalogue_rules_name_the_field() {
    let mut b = body();
    b["vendor"] = "  ".into();
    b["licence"]["spdx"] = "GPL 3".into();
    b["hosting"]["dataLocation"] = "France".into();
    b["aiActRiskClass"] = "unacceptable".into();
    b["criteria"]["fitToNeeds"] = serde_json::json!({"score": 6, "evidence": [{"title": "x"}, {"title": "y", "url": "ftp://z"}]});
    let (_, issues) = create(b);
    assert_eq!(
        rules(&issues),
        vec![
            ("vendor".into(), "required".into()),
            ("licence.spdx".into(), "spdx_syntax".into()),
            ("hosting.dataLocation".into(), "country_code".into()),
            ("aiActRiskClass".into(), "one_of".into()),
            ("criteria.fitToNeeds.score".into(), "range".into()),
            (
                "criteria.fitToNeeds.evidence[0]".into(),
                "url_or_text".into()
            ),
            (
                "criteria.fitToNeeds.evidence[1].url".into(),
                "url_syntax".into()
            ),
        ]
    );
}

#[test]
fn catalogue_prohibited_cannot_be_published() {
    let mut b = body();
    b["aiActRiskClass"] = "prohibited".into();
    let (mut d, issues) = create(b);
    assert_eq!(
        rules(&issues),
        vec![("aiActRiskClass".into(), "not_publishable".into())]
    );
    d.status = PROPOSED.into();
    assert!(d.validate(false).is_empty());
    let mut issues = Vec::new();
    d.apply(
        &UpdateSolution {
            status: Some(PUBLISHED.into()),
            ..Default::default()
        },
        &mut issues,
    );
    assert_eq!(
        rules(&d.validate(true)),
        vec![("status".into(), "not_publishable".into())]
    );
}
