//! Validation of catalogue entries and the facts derived from them.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::*;
use crate::sandboxes::FieldIssue;
use crate::store::SolutionRow;

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

/// Who made an entry and when, for [`Draft::into_row`].
pub struct Provenance {
    pub id: String,
    pub proposed_by: Option<String>,
    pub created_by: String,
    pub created_at: String,
    pub updated_by: String,
    pub updated_at: String,
    pub published_at: Option<String>,
}

impl Draft {
    /// The stored row of this draft with `status` and its provenance.
    pub fn into_row(self, status: String, p: Provenance) -> Result<SolutionRow, serde_json::Error> {
        Ok(SolutionRow {
            id: p.id,
            status,
            vendor: self.vendor,
            name: self.name,
            version: self.version,
            description: self.description,
            licence_spdx: self.licence_spdx,
            hosting_provider: self.hosting_provider,
            hosting_location: self.hosting_location,
            extra_eu_transfer: self.extra_eu_transfer,
            ai_act_risk_class: self.ai_act_risk_class,
            gdpr_notes: self.gdpr_notes,
            criteria_json: serde_json::to_string(&self.criteria)?,
            proposed_by: p.proposed_by,
            created_by: p.created_by,
            created_at: p.created_at,
            updated_by: p.updated_by,
            updated_at: p.updated_at,
            published_at: p.published_at,
        })
    }
}
