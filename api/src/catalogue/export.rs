//! Exports of the published catalogue: CSV (one row per solution, RFC 4180) and DCAT-AP
//! JSON-LD (a `dcat:Catalog` whose `dcat:service` entries are the solutions). The mapping
//! is documented in `docs/catalogue.md`.

use serde_json::{Value, json};

use super::{ASSESSED_CRITERIA, SolutionView};

/// The CSV columns, in order.
pub fn csv_header() -> Vec<String> {
    let mut h: Vec<String> = [
        "id",
        "vendor",
        "name",
        "version",
        "description",
        "licence_spdx",
        "licence_free",
        "hosting_provider",
        "hosting_data_location",
        "hosting_extra_eu_transfer",
        "hosting_sovereign",
        "ai_act_risk_class",
        "gdpr_notes",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for (_, column, _) in ASSESSED_CRITERIA {
        h.push(format!("score_{column}"));
    }
    h.extend(
        [
            "score_environmental_impact",
            "environmental_runs",
            "environmental_total_kwh",
            "environmental_wh_per_unit",
            "environmental_gco2e_per_unit",
            "environmental_functional_unit",
            "published_at",
            "updated_at",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    h
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

/// One row per solution; empty cells for "not assessed" and unknown figures.
pub fn to_csv(items: &[SolutionView]) -> Result<Vec<u8>, csv::Error> {
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    w.write_record(csv_header())?;
    for s in items {
        let c = &s.criteria;
        let env = &c.environmental_impact.assessment;
        let mut row = vec![
            s.id.clone(),
            s.vendor.clone(),
            s.name.clone(),
            s.version.clone(),
            s.description.clone(),
            s.licence.spdx.clone(),
            s.licence.free.to_string(),
            s.hosting.provider.clone(),
            s.hosting.data_location.clone(),
            s.hosting.extra_eu_transfer.to_string(),
            s.hosting.sovereign.to_string(),
            s.ai_act_risk_class.clone(),
            s.gdpr_notes.clone(),
        ];
        for criterion in [
            &c.technological_added_value,
            &c.innovation,
            &c.fit_to_needs,
            &c.data_sovereignty,
            &c.legal_framework,
        ] {
            row.push(opt(criterion.score));
        }
        row.extend([
            opt(c.environmental_impact.score),
            env.runs.to_string(),
            env.total_kwh.to_string(),
            opt(env.wh_per_unit),
            opt(env.gco2e_per_unit),
            opt(env.functional_unit.clone()),
            opt(s.published_at.clone()),
            s.updated_at.clone(),
        ]);
        w.write_record(&row)?;
    }
    w.into_inner().map_err(|e| e.into_error().into())
}

/// The JSON-LD context of the DCAT-AP export.
pub fn dcat_context() -> Value {
    json!({
        "dcat": "http://www.w3.org/ns/dcat#",
        "dct": "http://purl.org/dc/terms/",
        "foaf": "http://xmlns.com/foaf/0.1/",
        "adms": "http://www.w3.org/ns/adms#",
        "owl": "http://www.w3.org/2002/07/owl#",
        "rdfs": "http://www.w3.org/2000/01/rdf-schema#",
        "xsd": "http://www.w3.org/2001/XMLSchema#",
        "serre": "https://serre.metropolegrandparis.fr/ns/catalogue#"
    })
}

fn datetime(v: &str) -> Value {
    json!({ "@value": v, "@type": "xsd:dateTime" })
}

/// The entry's last change: its own, or the latest trial result attached (which moves
/// the environmental score). Both are RFC 3339 UTC with the same precision.
fn modified(s: &SolutionView) -> String {
    let results = &s.criteria.environmental_impact.assessment.last_recorded_at;
    match results {
        Some(r) if *r > s.updated_at => r.clone(),
        _ => s.updated_at.clone(),
    }
}

/// The published catalogue as DCAT-AP JSON-LD. `base` is the gateway's public URL (for
/// the landing page and endpoint of each entry).
pub fn to_dcat(items: &[SolutionView], base: &str) -> Value {
    let services: Vec<Value> = items
        .iter()
        .map(|s| {
            let page = format!("{base}/v1/catalogue/solutions/{}", s.id);
            let mut scores = serde_json::Map::new();
            for ((key, _, _), criterion) in ASSESSED_CRITERIA.iter().zip([
                &s.criteria.technological_added_value,
                &s.criteria.innovation,
                &s.criteria.fit_to_needs,
                &s.criteria.data_sovereignty,
                &s.criteria.legal_framework,
            ]) {
                scores.insert(format!("serre:{key}"), json!(criterion.score));
            }
            scores.insert(
                "serre:environmentalImpact".into(),
                json!(s.criteria.environmental_impact.score),
            );
            json!({
                "@id": format!("urn:uuid:{}", s.id),
                "@type": "dcat:DataService",
                "dct:identifier": s.id,
                "dct:title": s.name,
                "dct:description": s.description,
                "dct:publisher": {
                    "@type": ["foaf:Agent", "foaf:Organization"],
                    "foaf:name": s.vendor,
                },
                "dct:license": {
                    "@id": format!("http://spdx.org/licenses/{}", s.licence.spdx),
                    "@type": "dct:LicenseDocument",
                },
                "dct:issued": datetime(s.published_at.as_deref().unwrap_or(&s.created_at)),
                "dct:modified": datetime(&modified(s)),
                "owl:versionInfo": s.version,
                "dcat:keyword": [
                    format!("ai-act:{}", s.ai_act_risk_class),
                    if s.hosting.sovereign { "hosting:sovereign" } else { "hosting:not-sovereign" },
                    if s.licence.free { "licence:free" } else { "licence:not-free" },
                ],
                "dcat:landingPage": { "@id": page, "@type": "foaf:Document" },
                "dcat:endpointURL": { "@id": page, "@type": "rdfs:Resource" },
                "dcat:endpointDescription": {
                    "@id": format!("{base}/openapi.json"),
                    "@type": "rdfs:Resource",
                },
                "serre:aiActRiskClass": s.ai_act_risk_class,
                "serre:dataLocation": s.hosting.data_location,
                "serre:sovereign": s.hosting.sovereign,
                "serre:freeSoftware": s.licence.free,
                "serre:scores": Value::Object(scores),
            })
        })
        .collect();
    json!({
        "@context": dcat_context(),
        "@id": format!("{base}/v1/catalogue/export?format=dcat"),
        "@type": "dcat:Catalog",
        "dct:title": "Catalogue des solutions d'IA de la Métropole du Grand Paris",
        "dct:description": "AI solutions judged on six criteria: technological added value, innovation, fit to needs, data sovereignty, legal and regulatory framework, environmental impact (measured).",
        "dct:publisher": {
            "@type": ["foaf:Agent", "foaf:Organization"],
            "foaf:name": "Métropole du Grand Paris",
        },
        "dct:language": {
            "@id": "http://publications.europa.eu/resource/authority/language/FRA",
            "@type": "dct:LinguisticSystem",
        },
        "dcat:service": services,
    })
}
