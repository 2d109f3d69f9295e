//! Loading the policies directory: every `*.cedar` policy file and the `*.cedarschema`
//! schema, parsed, validated against the schema, and named for the audit log.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use cedar_policy::{PolicyId, PolicySet, Schema, ValidationMode, Validator};

use super::AuthzError;

pub(super) struct Bundle {
    pub(super) policies: PolicySet,
    pub(super) schema: Schema,
    pub(super) ids: Vec<String>,
}

fn read(path: &Path) -> Result<String, AuthzError> {
    std::fs::read_to_string(path).map_err(|source| AuthzError::Io {
        path: path.display().to_string(),
        source,
    })
}

pub(super) fn load_bundle(dir: &Path) -> Result<Bundle, AuthzError> {
    let entries = std::fs::read_dir(dir).map_err(|source| AuthzError::Io {
        path: dir.display().to_string(),
        source,
    })?;
    let mut files: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    files.sort();
    let mut schema_text = String::new();
    let mut schema_files = 0;
    let mut policies = PolicySet::new();
    let mut ids = Vec::new();
    for path in &files {
        match path.extension().and_then(|e| e.to_str()) {
            Some("cedarschema") => {
                schema_text.push_str(&read(path)?);
                schema_text.push('\n');
                schema_files += 1;
            }
            Some("cedar") => {
                let text = read(path)?;
                let parsed = PolicySet::from_str(&text).map_err(|e| AuthzError::Parse {
                    path: path.display().to_string(),
                    message: format!("{:?}", miette_text(&e)),
                })?;
                for policy in parsed.policies() {
                    let id = policy.annotation("id").ok_or_else(|| AuthzError::Parse {
                        path: path.display().to_string(),
                        message: format!(
                            "a policy has no @id(\"…\") annotation: {}",
                            first_line(&policy.to_string())
                        ),
                    })?;
                    policies
                        .add(policy.new_id(PolicyId::new(id)))
                        .map_err(|e| AuthzError::Parse {
                            path: path.display().to_string(),
                            message: format!("policy {id:?}: {e}"),
                        })?;
                    ids.push(id.to_owned());
                }
                if parsed.templates().next().is_some() {
                    return Err(AuthzError::Parse {
                        path: path.display().to_string(),
                        message: "policy templates are not supported".into(),
                    });
                }
            }
            _ => {}
        }
    }
    if schema_files == 0 {
        return Err(AuthzError::Invalid(format!(
            "{}: no *.cedarschema file",
            dir.display()
        )));
    }
    if ids.is_empty() {
        return Err(AuthzError::Invalid(format!(
            "{}: no policy (*.cedar)",
            dir.display()
        )));
    }
    let (schema, _warnings) =
        Schema::from_cedarschema_str(&schema_text).map_err(|e| AuthzError::Parse {
            path: dir.display().to_string(),
            message: format!("schema: {}", miette_text(&e)),
        })?;
    let result = Validator::new(schema.clone()).validate(&policies, ValidationMode::Strict);
    if !result.validation_passed() {
        let problems: Vec<String> = result.validation_errors().map(|e| miette_text(e)).collect();
        return Err(AuthzError::Invalid(format!(
            "policies do not match the schema: {}",
            problems.join("; ")
        )));
    }
    ids.sort();
    Ok(Bundle {
        policies,
        schema,
        ids,
    })
}

fn first_line(s: &str) -> String {
    s.lines()
        .find(|l| !l.trim().is_empty() && !l.trim_start().starts_with('@'))
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// An error with its help text, on one line.
fn miette_text(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
