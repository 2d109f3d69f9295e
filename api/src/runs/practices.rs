//! The frugal-AI good-practice checklist of a run's report: the practices (themes of AFNOR
//! SPEC 2314, worded by Serre), the requester's answers and their validation, kept apart
//! from what Serre measured ([`super::frugality`]).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::frugality::MethodClass;

/// An answer to one practice of the checklist.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum Answer {
    Yes,
    Partly,
    No,
    NotApplicable,
}

impl Answer {
    pub fn as_str(self) -> &'static str {
        match self {
            Answer::Yes => "yes",
            Answer::Partly => "partly",
            Answer::No => "no",
            Answer::NotApplicable => "notApplicable",
        }
    }
}

/// One practice of the checklist with the vendor's answer, if given.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PracticeItem {
    pub id: String,
    pub theme: String,
    pub practice: String,
    /// Null: not answered.
    pub answer: Option<Answer>,
    pub comment: Option<String>,
}

/// The frugal-AI good practices, answered by the run's requester: declared, never
/// measured, never mixed with the figures.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PracticeChecklist {
    /// Always `declared`.
    pub method: MethodClass,
    pub reference: String,
    /// Who answered, when; null while unanswered.
    pub answered_by: Option<String>,
    pub answered_at: Option<String>,
    pub items: Vec<PracticeItem>,
}

/// The checklist (id, theme, practice). The themes are those of AFNOR SPEC 2314
/// ("Référentiel général pour l'IA frugale", 2024); the practices are Serre's own short
/// wording of them (the SPEC's text is AFNOR's and is not reproduced here): check them
/// against the SPEC before relying on them.
pub const PRACTICES: [(&str, &str, &str); 12] = [
    (
        "relevance.need",
        "Qualify the relevance of AI for the need",
        "The need was stated first, and a solution without AI (rules, search, statistics) was considered and found insufficient.",
    ),
    (
        "relevance.goals",
        "Qualify the relevance of AI for the need",
        "The service's goals and expected use volume were sized, and frugality is one of its acceptance criteria.",
    ),
    (
        "data.minimise",
        "Optimise data management",
        "Training and inference use only the data the need requires (fields, history, resolution), and it is not duplicated.",
    ),
    (
        "data.lifecycle",
        "Optimise data management",
        "Data and intermediate artefacts have a retention period and are deleted when it ends.",
    ),
    (
        "model.smallest",
        "Optimise the model's performance",
        "The smallest model reaching the required quality was chosen (compared with smaller ones on the same functional unit).",
    ),
    (
        "model.reuse",
        "Optimise the model's performance",
        "Pre-trained models are reused or fine-tuned rather than trained from scratch where that reaches the required quality.",
    ),
    (
        "model.inference",
        "Optimise the model's performance",
        "Inference is optimised (quantisation, distillation, batching, caching of repeated requests) where quality allows.",
    ),
    (
        "equipment.sizing",
        "Analyse and optimise equipment use",
        "Resources are requested to the need (CPU, memory, GPU), and GPUs are used only where they lower the energy per unit.",
    ),
    (
        "equipment.lifespan",
        "Analyse and optimise equipment use",
        "The service runs on existing shared equipment, without hardware bought for it alone.",
    ),
    (
        "measurement.tools",
        "Tool the measurement of environmental impact",
        "Energy and emissions are measured per life-cycle phase and per functional unit, with the method and its limits stated.",
    ),
    (
        "measurement.continuous",
        "Tool the measurement of environmental impact",
        "Measurements are repeated when the model, data or volume change, and compared like with like.",
    ),
    (
        "skills.training",
        "Manage skills and build a frugal-AI culture",
        "The team building the service is trained in frugal AI and its impact measurement.",
    ),
];

/// The reference the checklist follows.
pub const PRACTICES_REFERENCE: &str = "Themes of AFNOR SPEC 2314 (Référentiel général pour l'IA frugale, 2024); practices worded by Serre, answered by the run's requester";

/// Answers as stored (`PUT …/runs/{id}/practices`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PracticeAnswers {
    pub answers: Vec<PracticeAnswer>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PracticeAnswer {
    /// A practice id of the checklist, e.g. `model.smallest`.
    pub id: String,
    pub answer: Answer,
    #[serde(default)]
    pub comment: Option<String>,
}

/// Problems with a set of answers: unknown or repeated ids, comments over 1000 chars.
pub fn validate_answers(a: &PracticeAnswers) -> Vec<crate::sandboxes::FieldIssue> {
    use crate::sandboxes::FieldIssue;
    let mut issues = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (i, x) in a.answers.iter().enumerate() {
        if !PRACTICES.iter().any(|(id, _, _)| *id == x.id) {
            issues.push(FieldIssue::new(
                &format!("answers[{i}].id"),
                "one_of",
                format!("{:?} is not a practice of the checklist", x.id),
            ));
        } else if !seen.insert(x.id.as_str()) {
            issues.push(FieldIssue::new(
                &format!("answers[{i}].id"),
                "unique",
                format!("{:?} is answered twice", x.id),
            ));
        }
        if x.comment.as_ref().is_some_and(|c| c.chars().count() > 1000) {
            issues.push(FieldIssue::new(
                &format!("answers[{i}].comment"),
                "max_length",
                "at most 1000 characters",
            ));
        }
    }
    issues
}

/// The checklist with the answers given (if any).
pub fn checklist(
    answers: Option<&PracticeAnswers>,
    by: Option<String>,
    at: Option<String>,
) -> PracticeChecklist {
    let items = PRACTICES
        .iter()
        .map(|(id, theme, practice)| {
            let a = answers.and_then(|a| a.answers.iter().find(|x| x.id == *id));
            PracticeItem {
                id: (*id).into(),
                theme: (*theme).into(),
                practice: (*practice).into(),
                answer: a.map(|a| a.answer),
                comment: a.and_then(|a| a.comment.clone()),
            }
        })
        .collect();
    PracticeChecklist {
        method: MethodClass::Declared,
        reference: PRACTICES_REFERENCE.into(),
        answered_by: by,
        answered_at: at,
        items,
    }
}
