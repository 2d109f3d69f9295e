//! The catalogue of AI solutions (Action 1 of the Métropole's strategy): request bodies,
//! their validation, the derived facts (free licence, sovereign hosting, environmental
//! criterion) and the views. No I/O here: the handlers are in `http/catalogue.rs`, the
//! SQL in `store/catalogue.rs`.
//!
//! Six criteria judge each solution: technological added value, innovation, fit to needs,
//! data sovereignty, legal and regulatory framework (scored 0–5 by people, with evidence)
//! and environmental impact, which is never typed in: it is derived from measured trial
//! runs ([`environment::environmental_criterion`]).

pub mod environment;
pub mod export;

use serde::de::Deserializer;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

pub use environment::{EnvironmentalAssessment, environmental_criterion};

use crate::sandboxes::FieldIssue;
use crate::store::{SolutionRow, TrialResultRow};

pub const PROPOSED: &str = "proposed";
pub const PUBLISHED: &str = "published";
pub const REJECTED: &str = "rejected";
pub const STATUSES: [&str; 3] = [PROPOSED, PUBLISHED, REJECTED];

/// EU AI Act risk classes; `prohibited` (art. 5) can never be published.
pub const PROHIBITED: &str = "prohibited";
pub const RISK_CLASSES: [&str; 4] = [PROHIBITED, "high", "limited", "minimal"];

/// Phases of a trial run.
pub const PHASES: [&str; 4] = ["training", "fine-tuning", "inference", "evaluation"];

/// The five criteria scored by people: (JSON key, CSV column, label).
pub const ASSESSED_CRITERIA: [(&str, &str, &str); 5] = [
    (
        "technologicalAddedValue",
        "technological_added_value",
        "Technological added value",
    ),
    ("innovation", "innovation", "Innovation"),
    ("fitToNeeds", "fit_to_needs", "Fit to needs"),
    ("dataSovereignty", "data_sovereignty", "Data sovereignty"),
    (
        "legalFramework",
        "legal_framework",
        "Legal and regulatory framework",
    ),
];

/// SPDX identifiers counted as free software: licences approved by the OSI and
/// recognised as free by the FSF (a short, deliberate list; anything else, including
/// model licences with use restrictions such as OpenRAIL or Llama's, is shown as not
/// free).
pub const FREE_LICENCES: [&str; 24] = [
    "AGPL-3.0-only",
    "AGPL-3.0-or-later",
    "Apache-2.0",
    "BSD-2-Clause",
    "BSD-3-Clause",
    "CECILL-2.1",
    "CECILL-B",
    "CECILL-C",
    "EPL-2.0",
    "EUPL-1.2",
    "GPL-2.0-only",
    "GPL-2.0-or-later",
    "GPL-3.0-only",
    "GPL-3.0-or-later",
    "ISC",
    "LGPL-2.1-only",
    "LGPL-2.1-or-later",
    "LGPL-3.0-only",
    "LGPL-3.0-or-later",
    "MIT",
    "MPL-2.0",
    "Unlicense",
    "Zlib",
    "0BSD",
];

/// Data locations counted as EU: the 27 member states (ISO 3166-1 alpha-2) and `EU`.
pub const EU_LOCATIONS: [&str; 28] = [
    "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU", "IE", "IT",
    "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK", "EU",
];

pub fn is_free_licence(spdx: &str) -> bool {
    FREE_LICENCES.contains(&spdx)
}

/// Sovereign hosting: data located in the EU and never transferred outside it.
pub fn is_sovereign(location: &str, extra_eu_transfer: bool) -> bool {
    EU_LOCATIONS.contains(&location) && !extra_eu_transfer
}

/// A field that is present in the body, even as `null` (for derived fields, which are
/// refused whatever their value).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

// ---- Request bodies ---------------------------------------------------------------------

#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LicenceInput {
    /// SPDX licence identifier, e.g. `Apache-2.0`, `EUPL-1.2`, `LicenseRef-Proprietary`.
    pub spdx: String,
    /// Refused: derived from the SPDX identifier.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<bool>)]
    pub free: Option<Value>,
}

#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HostingInput {
    /// Hosting provider (e.g. `Scaleway`, `OVHcloud`, `on premises`).
    pub provider: String,
    /// Where the data lies: ISO 3166-1 alpha-2 country code (e.g. `FR`) or `EU`.
    pub data_location: String,
    /// Whether any data is transferred outside the EU (support, sub-processors, …).
    pub extra_eu_transfer: bool,
    /// Refused: derived from the data location and the transfers.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<bool>)]
    pub sovereign: Option<Value>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Evidence {
    pub title: String,
    /// A link to the evidence (http or https)…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// …or the evidence itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// One assessed criterion.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Criterion {
    /// 0 (worst) to 5 (best); null: not assessed.
    #[serde(default)]
    pub score: Option<i64>,
    #[serde(default)]
    pub evidence: Vec<Evidence>,
}

/// The criteria in a request: each one given replaces that criterion.
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CriteriaInput {
    pub technological_added_value: Option<Criterion>,
    pub innovation: Option<Criterion>,
    pub fit_to_needs: Option<Criterion>,
    pub data_sovereignty: Option<Criterion>,
    pub legal_framework: Option<Criterion>,
    /// Refused: derived from measured trial runs.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Object>)]
    pub environmental_impact: Option<Value>,
}

/// A new catalogue entry. Métropole admins create published entries; vendors propose.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateSolution {
    /// The vendor organisation's name.
    pub vendor: String,
    pub name: String,
    pub version: String,
    #[serde(default)]
    pub description: String,
    pub licence: LicenceInput,
    pub hosting: HostingInput,
    /// prohibited, high, limited or minimal (EU AI Act).
    pub ai_act_risk_class: String,
    #[serde(default)]
    pub gdpr_notes: String,
    #[serde(default)]
    pub criteria: CriteriaInput,
}

/// Changes to an entry: the fields given replace the stored ones.
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateSolution {
    pub vendor: Option<String>,
    pub name: Option<String>,
    pub version: Option<String>,
    pub description: Option<String>,
    pub licence: Option<LicenceInput>,
    pub hosting: Option<HostingInput>,
    pub ai_act_risk_class: Option<String>,
    pub gdpr_notes: Option<String>,
    pub criteria: Option<CriteriaInput>,
    /// proposed, published or rejected (Métropole admins only).
    pub status: Option<String>,
}

/// The quality a trial run reached (e.g. `f1` 0.91).
#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Quality {
    pub metric: String,
    pub value: f64,
}

/// One measured phase of a trial run, as the trial-run controller reports it.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrialResultInput {
    pub run_id: String,
    pub tenant: String,
    pub sandbox: String,
    /// training, fine-tuning, inference or evaluation.
    pub phase: String,
    /// Energy measured, kWh.
    pub kwh: f64,
    /// Emissions, grams CO2-equivalent.
    pub gco2e: f64,
    pub duration_s: f64,
    /// Units of useful work done (requests answered, documents processed…), if counted.
    #[serde(default)]
    pub functional_units: Option<f64>,
    #[serde(default)]
    pub quality: Option<Quality>,
    /// RFC 3339.
    pub measured_at: String,
    /// Method flags, e.g. `{"estimated": false, "meter": "nvml+rapl", "pue": 1.2}`. A
    /// result with `"estimated": true` is kept but not counted as measured.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub method: serde_json::Map<String, Value>,
}

// ---- Validation -------------------------------------------------------------------------

/// The editable facts of an entry, merged from a request and (for a change) the stored row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Draft {
    pub vendor: String,
    pub name: String,
    pub version: String,
    pub description: String,
    pub licence_spdx: String,
    pub hosting_provider: String,
    pub hosting_location: String,
    pub extra_eu_transfer: bool,
    pub ai_act_risk_class: String,
    pub gdpr_notes: String,
    pub criteria: Criteria,
    pub status: String,
}

/// The five assessed criteria as stored (`criteria_json`).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Criteria {
    #[serde(default)]
    pub technological_added_value: Criterion,
    #[serde(default)]
    pub innovation: Criterion,
    #[serde(default)]
    pub fit_to_needs: Criterion,
    #[serde(default)]
    pub data_sovereignty: Criterion,
    #[serde(default)]
    pub legal_framework: Criterion,
}

impl Criteria {
    /// (JSON key, criterion) in the order of [`ASSESSED_CRITERIA`].
    pub fn each(&self) -> [(&'static str, &Criterion); 5] {
        [
            (ASSESSED_CRITERIA[0].0, &self.technological_added_value),
            (ASSESSED_CRITERIA[1].0, &self.innovation),
            (ASSESSED_CRITERIA[2].0, &self.fit_to_needs),
            (ASSESSED_CRITERIA[3].0, &self.data_sovereignty),
            (ASSESSED_CRITERIA[4].0, &self.legal_framework),
        ]
    }

    fn apply(&mut self, input: &CriteriaInput) {
        let pairs = [
            (
                &mut self.technological_added_value,
                &input.technological_added_value,
            ),
            (&mut self.innovation, &input.innovation),
            (&mut self.fit_to_needs, &input.fit_to_needs),
            (&mut self.data_sovereignty, &input.data_sovereignty),
            (&mut self.legal_framework, &input.legal_framework),
        ];
        for (stored, given) in pairs {
            if let Some(c) = given {
                *stored = c.clone();
            }
        }
    }
}

fn derived_issues(
    licence: Option<&LicenceInput>,
    hosting: Option<&HostingInput>,
    criteria: Option<&CriteriaInput>,
    issues: &mut Vec<FieldIssue>,
) {
    if licence.is_some_and(|l| l.free.is_some()) {
        issues.push(FieldIssue::new(
            "licence.free",
            "derived",
            format!(
                "is derived from licence.spdx (free when one of {})",
                FREE_LICENCES.join(", ")
            ),
        ));
    }
    if hosting.is_some_and(|h| h.sovereign.is_some()) {
        issues.push(FieldIssue::new(
            "hosting.sovereign",
            "derived",
            "is derived: sovereign when hosting.dataLocation is in the EU and hosting.extraEuTransfer is false",
        ));
    }
    if criteria.is_some_and(|c| c.environmental_impact.is_some()) {
        issues.push(FieldIssue::new(
            "criteria.environmentalImpact",
            "derived",
            "is never typed in: it is derived from measured trial runs (POST /v1/catalogue/solutions/{id}/results)",
        ));
    }
}

impl Draft {
    /// A new entry's draft, with the status the caller's role gives it.
    pub fn from_create(req: &CreateSolution, status: &str, issues: &mut Vec<FieldIssue>) -> Self {
        derived_issues(
            Some(&req.licence),
            Some(&req.hosting),
            Some(&req.criteria),
            issues,
        );
        let mut criteria = Criteria::default();
        criteria.apply(&req.criteria);
        Draft {
            vendor: req.vendor.trim().to_owned(),
            name: req.name.trim().to_owned(),
            version: req.version.trim().to_owned(),
            description: req.description.clone(),
            licence_spdx: req.licence.spdx.trim().to_owned(),
            hosting_provider: req.hosting.provider.trim().to_owned(),
            hosting_location: req.hosting.data_location.trim().to_ascii_uppercase(),
            extra_eu_transfer: req.hosting.extra_eu_transfer,
            ai_act_risk_class: req.ai_act_risk_class.clone(),
            gdpr_notes: req.gdpr_notes.clone(),
            criteria,
            status: status.to_owned(),
        }
    }

    /// The stored entry's draft; corrupt criteria read as not assessed.
    pub fn from_row(row: &SolutionRow) -> Self {
        Draft {
            vendor: row.vendor.clone(),
            name: row.name.clone(),
            version: row.version.clone(),
            description: row.description.clone(),
            licence_spdx: row.licence_spdx.clone(),
            hosting_provider: row.hosting_provider.clone(),
            hosting_location: row.hosting_location.clone(),
            extra_eu_transfer: row.extra_eu_transfer,
            ai_act_risk_class: row.ai_act_risk_class.clone(),
            gdpr_notes: row.gdpr_notes.clone(),
            criteria: serde_json::from_str(&row.criteria_json).unwrap_or_default(),
            status: row.status.clone(),
        }
    }

    /// Apply a change; issues for the derived fields it tries to set.
    pub fn apply(&mut self, req: &UpdateSolution, issues: &mut Vec<FieldIssue>) {
        derived_issues(
            req.licence.as_ref(),
            req.hosting.as_ref(),
            req.criteria.as_ref(),
            issues,
        );
        let set = |target: &mut String, v: &Option<String>| {
            if let Some(v) = v {
                *target = v.trim().to_owned();
            }
        };
        set(&mut self.vendor, &req.vendor);
        set(&mut self.name, &req.name);
        set(&mut self.version, &req.version);
        if let Some(d) = &req.description {
            self.description = d.clone();
        }
        if let Some(l) = &req.licence {
            self.licence_spdx = l.spdx.trim().to_owned();
        }
        if let Some(h) = &req.hosting {
            self.hosting_provider = h.provider.trim().to_owned();
            self.hosting_location = h.data_location.trim().to_ascii_uppercase();
            self.extra_eu_transfer = h.extra_eu_transfer;
        }
        if let Some(c) = &req.ai_act_risk_class {
            self.ai_act_risk_class = c.clone();
        }
        if let Some(g) = &req.gdpr_notes {
            self.gdpr_notes = g.clone();
        }
        if let Some(c) = &req.criteria {
            self.criteria.apply(c);
        }
        if let Some(s) = &req.status {
            self.status = s.clone();
        }
    }

    /// Check every rule; `status_given` says whether the request set the status (to name
    /// the field a publication refusal is about).
    pub fn validate(&self, status_given: bool) -> Vec<FieldIssue> {
        let mut issues = Vec::new();
        let mut text = |field: &str, value: &str, required: bool, max: usize| {
            if required && value.trim().is_empty() {
                issues.push(FieldIssue::new(field, "required", "must not be empty"));
            } else if value.chars().count() > max {
                issues.push(FieldIssue::new(
                    field,
                    "max_length",
                    format!("at most {max} characters"),
                ));
            }
        };
        text("vendor", &self.vendor, true, 200);
        text("name", &self.name, true, 200);
        text("version", &self.version, true, 64);
        text("description", &self.description, false, 5000);
        text("hosting.provider", &self.hosting_provider, true, 200);
        text("gdprNotes", &self.gdpr_notes, false, 5000);
        let spdx = &self.licence_spdx;
        if spdx.is_empty()
            || spdx.len() > 100
            || !spdx
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'+')
        {
            issues.push(FieldIssue::new(
                "licence.spdx",
                "spdx_syntax",
                format!("{spdx:?} is not an SPDX licence identifier (e.g. Apache-2.0, EUPL-1.2, LicenseRef-Proprietary)"),
            ));
        }
        let loc = &self.hosting_location;
        if loc.len() != 2 || !loc.bytes().all(|b| b.is_ascii_uppercase()) {
            issues.push(FieldIssue::new(
                "hosting.dataLocation",
                "country_code",
                format!("{loc:?} is not an ISO 3166-1 alpha-2 country code (e.g. FR) or EU"),
            ));
        }
        if !RISK_CLASSES.contains(&self.ai_act_risk_class.as_str()) {
            issues.push(FieldIssue::new(
                "aiActRiskClass",
                "one_of",
                format!(
                    "{:?} is not one of {}",
                    self.ai_act_risk_class,
                    RISK_CLASSES.join(", ")
                ),
            ));
        }
        if !STATUSES.contains(&self.status.as_str()) {
            issues.push(FieldIssue::new(
                "status",
                "one_of",
                format!("{:?} is not one of {}", self.status, STATUSES.join(", ")),
            ));
        }
        if self.status == PUBLISHED && self.ai_act_risk_class == PROHIBITED {
            issues.push(FieldIssue::new(
                if status_given {
                    "status"
                } else {
                    "aiActRiskClass"
                },
                "not_publishable",
                "a prohibited AI practice (AI Act, art. 5) cannot be published in the catalogue",
            ));
        }
        for (key, c) in self.criteria.each() {
            check_criterion(&format!("criteria.{key}"), c, &mut issues);
        }
        issues
    }
}

fn check_criterion(field: &str, c: &Criterion, issues: &mut Vec<FieldIssue>) {
    if let Some(s) = c.score
        && !(0..=5).contains(&s)
    {
        issues.push(FieldIssue::new(
            &format!("{field}.score"),
            "range",
            format!("{s} is not between 0 and 5 (null: not assessed)"),
        ));
    }
    if c.evidence.len() > 20 {
        issues.push(FieldIssue::new(
            &format!("{field}.evidence"),
            "max_items",
            "at most 20 pieces of evidence",
        ));
    }
    for (i, e) in c.evidence.iter().enumerate() {
        let f = format!("{field}.evidence[{i}]");
        if e.title.trim().is_empty() {
            issues.push(FieldIssue::new(
                &format!("{f}.title"),
                "required",
                "must not be empty",
            ));
        } else if e.title.chars().count() > 300 {
            issues.push(FieldIssue::new(
                &format!("{f}.title"),
                "max_length",
                "at most 300 characters",
            ));
        }
        match (&e.url, &e.text) {
            (None, None) => issues.push(FieldIssue::new(&f, "url_or_text", "give a url or a text")),
            (Some(u), _)
                if !(u.starts_with("https://") || u.starts_with("http://"))
                    || u.len() > 2000
                    || u.contains(char::is_whitespace) =>
            {
                issues.push(FieldIssue::new(
                    &format!("{f}.url"),
                    "url_syntax",
                    "an http or https URL of at most 2000 characters",
                ));
            }
            (_, Some(t)) if t.chars().count() > 5000 => issues.push(FieldIssue::new(
                &format!("{f}.text"),
                "max_length",
                "at most 5000 characters",
            )),
            _ => {}
        }
    }
}

/// Check a trial result (the tenant's existence is checked by the caller).
pub fn validate_result(
    r: &TrialResultInput,
    now: chrono::DateTime<chrono::Utc>,
) -> Vec<FieldIssue> {
    let mut issues = Vec::new();
    for (field, value) in [
        ("runId", &r.run_id),
        ("tenant", &r.tenant),
        ("sandbox", &r.sandbox),
    ] {
        if value.trim().is_empty() {
            issues.push(FieldIssue::new(field, "required", "must not be empty"));
        } else if value.len() > 200 {
            issues.push(FieldIssue::new(
                field,
                "max_length",
                "at most 200 characters",
            ));
        }
    }
    if !PHASES.contains(&r.phase.as_str()) {
        issues.push(FieldIssue::new(
            "phase",
            "one_of",
            format!("{:?} is not one of {}", r.phase, PHASES.join(", ")),
        ));
    }
    for (field, v) in [
        ("kwh", r.kwh),
        ("gco2e", r.gco2e),
        ("durationS", r.duration_s),
    ] {
        if !v.is_finite() || v < 0.0 {
            issues.push(FieldIssue::new(field, "non_negative", "a number ≥ 0"));
        }
    }
    if let Some(u) = r.functional_units
        && (!u.is_finite() || u <= 0.0)
    {
        issues.push(FieldIssue::new(
            "functionalUnits",
            "positive",
            "a number > 0 (leave it out when units were not counted)",
        ));
    }
    if let Some(q) = &r.quality {
        if q.metric.trim().is_empty() || q.metric.len() > 100 {
            issues.push(FieldIssue::new(
                "quality.metric",
                "required",
                "name the metric (at most 100 characters)",
            ));
        }
        if !q.value.is_finite() {
            issues.push(FieldIssue::new("quality.value", "type", "a finite number"));
        }
    }
    match crate::store::parse_timestamp(&r.measured_at) {
        None => issues.push(FieldIssue::new(
            "measuredAt",
            "timestamp_syntax",
            "an RFC 3339 timestamp, e.g. 2026-05-01T12:00:00Z",
        )),
        Some(t) if t > now + chrono::Duration::minutes(5) => issues.push(FieldIssue::new(
            "measuredAt",
            "not_in_future",
            "a measurement cannot be in the future",
        )),
        Some(_) => {}
    }
    if r.method.get("estimated").is_some_and(|v| !v.is_boolean()) {
        issues.push(FieldIssue::new("method.estimated", "type", "true or false"));
    }
    issues
}

// ---- Views ------------------------------------------------------------------------------

#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LicenceView {
    pub spdx: String,
    /// Derived: the identifier is one of the free-software allowlist.
    pub free: bool,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HostingView {
    pub provider: String,
    pub data_location: String,
    pub extra_eu_transfer: bool,
    /// Derived: data in the EU and no transfer outside it.
    pub sovereign: bool,
}

/// The environmental criterion: derived from measured trial runs, never typed in.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentalCriterion {
    /// 0–5 from the energy per functional unit; null without a measured run with units.
    pub score: Option<i64>,
    pub assessment: EnvironmentalAssessment,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CriteriaView {
    pub technological_added_value: Criterion,
    pub innovation: Criterion,
    pub fit_to_needs: Criterion,
    pub data_sovereignty: Criterion,
    pub legal_framework: Criterion,
    pub environmental_impact: EnvironmentalCriterion,
}

/// A catalogue entry as shown (and exported).
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SolutionView {
    pub id: String,
    /// proposed, published or rejected.
    pub status: String,
    pub vendor: String,
    pub name: String,
    pub version: String,
    pub description: String,
    pub licence: LicenceView,
    pub hosting: HostingView,
    pub ai_act_risk_class: String,
    pub gdpr_notes: String,
    pub criteria: CriteriaView,
    /// The vendor principal who proposed it; null when a Métropole admin created it.
    pub proposed_by: Option<String>,
    pub created_by: String,
    pub created_at: String,
    pub updated_by: String,
    pub updated_at: String,
    pub published_at: Option<String>,
}

impl SolutionView {
    pub fn new(row: &SolutionRow, results: &[TrialResultRow]) -> Self {
        let d = Draft::from_row(row);
        let assessment = environmental_criterion(results);
        SolutionView {
            id: row.id.clone(),
            status: row.status.clone(),
            vendor: d.vendor,
            name: d.name,
            version: d.version,
            description: d.description,
            licence: LicenceView {
                free: is_free_licence(&d.licence_spdx),
                spdx: d.licence_spdx,
            },
            hosting: HostingView {
                sovereign: is_sovereign(&d.hosting_location, d.extra_eu_transfer),
                provider: d.hosting_provider,
                data_location: d.hosting_location,
                extra_eu_transfer: d.extra_eu_transfer,
            },
            ai_act_risk_class: d.ai_act_risk_class,
            gdpr_notes: d.gdpr_notes,
            criteria: CriteriaView {
                technological_added_value: d.criteria.technological_added_value,
                innovation: d.criteria.innovation,
                fit_to_needs: d.criteria.fit_to_needs,
                data_sovereignty: d.criteria.data_sovereignty,
                legal_framework: d.criteria.legal_framework,
                environmental_impact: EnvironmentalCriterion {
                    score: assessment.score,
                    assessment,
                },
            },
            proposed_by: row.proposed_by.clone(),
            created_by: row.created_by.clone(),
            created_at: row.created_at.clone(),
            updated_by: row.updated_by.clone(),
            updated_at: row.updated_at.clone(),
            published_at: row.published_at.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
