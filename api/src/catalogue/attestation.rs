//! Signed trial results: when the gateway's accounting attaches a run's result to a
//! catalogue solution it signs the result's canonical form with the gateway's Ed25519
//! key (the audit checkpoints' key, `audit-signing-key.pem`), so anyone holding the
//! public key (`serre-api audit public-key`, or `GET /v1/catalogue/signing-key`) can
//! check an export, and a row edited in the database no longer verifies. Only results
//! whose signature verifies count as measured in the environmental criterion.
//!
//! The signed bytes are [`SignedResult`] as compact JSON, fields in the order below. An
//! export carries them base64-encoded (`attestation.payload`), so a checker needs no
//! JSON canonicalisation:
//!
//! ```sh
//! jq -r '.[0].results[0].attestation.payload' export.json | base64 -d > payload.json
//! jq -r '.[0].results[0].attestation.signature' export.json | base64 -d > sig.bin
//! openssl pkeyutl -verify -pubin -inkey serre-public.pem -rawin -in payload.json -sigfile sig.bin
//! ```
//!
//! and then compares the payload's figures with the ones shown.

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serre_crypto::{CertificateSigner, CertificateVerifier};
use utoipa::ToSchema;

use crate::store::TrialResultRow;

/// Version of the signed document.
pub const RESULT_VERSION: u32 = 1;

/// What is signed. Field order is the signed order: do not reorder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SignedResult {
    pub version: u32,
    /// `serre-api`.
    pub issuer: String,
    pub result_id: String,
    pub solution_id: String,
    pub run_id: String,
    pub tenant: String,
    pub sandbox: String,
    pub phase: String,
    pub kwh: f64,
    pub gco2e: f64,
    pub duration_s: f64,
    pub functional_units: Option<f64>,
    pub quality_metric: Option<String>,
    pub quality_value: Option<f64>,
    pub measured_at: String,
    /// The method flags, as stored (a JSON object's text).
    pub method: String,
    /// The resources, as stored (a JSON object's text), if any.
    pub resources: Option<String>,
    pub recorded_by: String,
    pub recorded_at: String,
}

impl SignedResult {
    pub fn of(r: &TrialResultRow) -> Self {
        Self {
            version: RESULT_VERSION,
            issuer: crate::audit::checkpoint::ISSUER.to_owned(),
            result_id: r.id.clone(),
            solution_id: r.solution_id.clone(),
            run_id: r.run_id.clone(),
            tenant: r.tenant.clone(),
            sandbox: r.sandbox.clone(),
            phase: r.phase.clone(),
            kwh: r.kwh,
            gco2e: r.gco2e,
            duration_s: r.duration_s,
            functional_units: r.functional_units,
            quality_metric: r.quality_metric.clone(),
            quality_value: r.quality_value,
            measured_at: r.measured_at.clone(),
            method: r.method_json.clone(),
            resources: r.resources_json.clone(),
            recorded_by: r.recorded_by.clone(),
            recorded_at: r.recorded_at.clone(),
        }
    }

    /// The exact bytes that are signed.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        // A struct of strings, numbers and options: serialisation cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// Sign a result: sets its `signature` and `key_id`.
pub fn sign(signer: &CertificateSigner, r: &mut TrialResultRow) {
    let bytes = SignedResult::of(r).canonical_bytes();
    r.signature = Some(signer.sign_bytes(&bytes));
    r.key_id = Some(signer.key_id().to_owned());
}

/// Whether the result carries a valid signature of `verifier`'s key over its current
/// content.
pub fn verified(verifier: &CertificateVerifier, r: &TrialResultRow) -> bool {
    let (Some(signature), Some(key_id)) = (&r.signature, &r.key_id) else {
        return false;
    };
    let bytes = SignedResult::of(r).canonical_bytes();
    verifier.verify_bytes(&bytes, signature, key_id).is_ok()
}

/// A result's signature as shown and exported.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Attestation {
    /// Standard base64 of the signed bytes (compact JSON of the result).
    pub payload: String,
    /// Standard base64 Ed25519 signature over the payload's bytes.
    pub signature: String,
    pub key_id: String,
    /// Whether the gateway's current key verifies it over the result as stored.
    pub verified: bool,
}

impl Attestation {
    pub fn of(verifier: &CertificateVerifier, r: &TrialResultRow) -> Option<Self> {
        let (Some(signature), Some(key_id)) = (&r.signature, &r.key_id) else {
            return None;
        };
        let bytes = SignedResult::of(r).canonical_bytes();
        Some(Self {
            payload: base64::engine::general_purpose::STANDARD.encode(&bytes),
            signature: signature.clone(),
            key_id: key_id.clone(),
            verified: verifier.verify_bytes(&bytes, signature, key_id).is_ok(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> TrialResultRow {
        TrialResultRow {
            id: "r".into(),
            solution_id: "s".into(),
            run_id: "run-0123456789ab".into(),
            tenant: "t".into(),
            sandbox: "t--s".into(),
            phase: "inference".into(),
            kwh: 0.000_123_456_789,
            gco2e: 0.006_913_58,
            duration_s: 41.5,
            functional_units: Some(1000.0),
            quality_metric: Some("rougeL".into()),
            quality_value: Some(0.38),
            measured_at: "2026-05-01T00:00:00.000000Z".into(),
            method_json: r#"{"estimated":false}"#.into(),
            recorded_by: crate::catalogue::RUN_RECORDER.into(),
            recorded_at: "2026-05-01T00:01:00.000000Z".into(),
            resources_json: None,
            signature: None,
            key_id: None,
        }
    }

    #[test]
    fn a_signed_result_verifies_until_any_figure_changes() {
        let signer = CertificateSigner::generate().unwrap();
        let verifier = signer.verifier();
        let mut r = row();
        assert!(!verified(&verifier, &r), "unsigned");
        sign(&signer, &mut r);
        assert!(verified(&verifier, &r));
        let a = Attestation::of(&verifier, &r).unwrap();
        assert!(a.verified);
        // The payload is the canonical form, and the signature checks over its bytes.
        let payload = base64::engine::general_purpose::STANDARD
            .decode(&a.payload)
            .unwrap();
        verifier
            .verify_bytes(&payload, &a.signature, &a.key_id)
            .unwrap();
        let back: SignedResult = serde_json::from_slice(&payload).unwrap();
        assert_eq!(
            (back.kwh, back.run_id.as_str()),
            (r.kwh, "run-0123456789ab")
        );
        // Edited in the database: no longer verified.
        for edit in [
            |r: &mut TrialResultRow| r.kwh /= 10.0,
            |r: &mut TrialResultRow| r.functional_units = Some(1e6),
            |r: &mut TrialResultRow| r.method_json = r#"{"estimated":true}"#.into(),
            |r: &mut TrialResultRow| r.solution_id = "other".into(),
        ] {
            let mut x = r.clone();
            edit(&mut x);
            assert!(!verified(&verifier, &x));
            assert!(!Attestation::of(&verifier, &x).unwrap().verified);
        }
        // Another key's signature is not the gateway's.
        let other = CertificateSigner::generate().unwrap();
        let mut forged = row();
        sign(&other, &mut forged);
        assert!(!verified(&verifier, &forged));
    }
}
