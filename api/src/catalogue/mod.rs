//! The catalogue of AI solutions (Action 1 of the Métropole's strategy): request bodies,
//! their validation, the derived facts (free licence, sovereign hosting, environmental
//! criterion) and the views. No I/O here: the handlers are in `http/catalogue.rs`, the
//! SQL in `store/catalogue.rs`.
//!
//! Six criteria judge each solution: technological added value, innovation, fit to needs,
//! data sovereignty, legal and regulatory framework (scored 0–5 by people, with evidence)
//! and environmental impact, which is never typed in: it is derived from measured trial
//! runs ([`environment::environmental_criterion`]).

pub mod attestation;
pub mod environment;
pub mod export;
mod input;
mod validate;
mod view;

pub use input::*;
pub use validate::*;
pub use view::*;

use serde::Deserialize;
use serde::de::Deserializer;
use serde_json::Value;

pub use environment::{EnvironmentalAssessment, environmental_criterion};

pub const PROPOSED: &str = "proposed";
pub const PUBLISHED: &str = "published";
pub const REJECTED: &str = "rejected";
pub const STATUSES: [&str; 3] = [PROPOSED, PUBLISHED, REJECTED];

/// Who records the results trial runs attach: the gateway's accounting. Only its results
/// can count as measured; a result recorded by anyone else is *declared*.
pub const RUN_RECORDER: &str = crate::cluster::SYSTEM_PRINCIPAL;

/// The rule a run breaks when it names a solution it may not feed.
pub const OPEN_FOR_TRIALS: &str = "open_for_trials";

/// Whether runs requested by `requester` may feed `solution` (rule [`OPEN_FOR_TRIALS`]):
/// a published solution takes runs from whoever may start runs in a sandbox; a proposal
/// only from the vendor who proposed it (testing its own entry before review); a rejected
/// entry from nobody. Checked when a run is started and again when it attaches its result.
pub fn open_for_trials(
    solution: &crate::store::SolutionRow,
    requester: &str,
) -> Result<(), String> {
    match solution.status.as_str() {
        PUBLISHED => Ok(()),
        PROPOSED if solution.proposed_by.as_deref() == Some(requester) => Ok(()),
        status => Err(format!(
            "catalogue solution {:?} is {status}: trial runs feed a published solution, or a \
             proposal only when the vendor who proposed it starts them",
            solution.id
        )),
    }
}

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

#[cfg(test)]
mod tests;
