//! The body of a grant request (`POST /v1/grants` and `/v1/grants/preview`): from flags,
//! from a YAML file with the API body's fields (`--from-file`), or both (flags win).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use serde_json::{Map, Value, json};

use super::{after, duration};
use crate::error::Failure;

#[derive(Args, Debug)]
pub struct Create {
    /// A YAML (or JSON) file with the API body's fields (datasetId, version, grantee,
    /// columns, recipe, rowFilter, purpose, expiresAt); flags given too override them.
    #[arg(long, value_name = "FILE")]
    from_file: Option<PathBuf>,
    /// The dataset's id.
    #[arg(long, required_unless_present = "from_file")]
    dataset: Option<String>,
    /// Its version (default: the latest).
    #[arg(long)]
    version: Option<i64>,
    /// Grant to this sandbox (`<tenant>--<name>`): its tenant's members and its vendors read.
    #[arg(long, conflicts_with = "vendor", required_unless_present_any = ["vendor", "from_file"])]
    sandbox: Option<String>,
    /// Grant to this vendor principal (the `sub` of its tokens).
    #[arg(long)]
    vendor: Option<String>,
    /// Columns of the view, in order (comma-separated).
    #[arg(long, value_delimiter = ',', required_unless_present = "from_file")]
    columns: Vec<String>,
    /// Drop this column from the view (repeatable or comma-separated).
    #[arg(long, value_delimiter = ',')]
    drop: Vec<String>,
    /// Replace this column by a keyed pseudonym (repeatable or comma-separated).
    #[arg(long, value_delimiter = ',')]
    pseudonymise: Vec<String>,
    /// COLUMN=bin:WIDTH, COLUMN=truncate:day|month|year or COLUMN=prefix:N (repeatable).
    #[arg(long)]
    generalise: Vec<String>,
    /// Columns that together could identify a person (comma-separated).
    #[arg(long, value_delimiter = ',')]
    quasi_identifiers: Vec<String>,
    /// Least number of rows sharing the same quasi-identifiers.
    #[arg(long)]
    k: Option<u32>,
    /// Remove rows of classes smaller than k instead of refusing the view.
    #[arg(long)]
    suppress: bool,
    /// A whole recipe as JSON (a file path, or the JSON itself); the flags above add to it.
    #[arg(long)]
    recipe: Option<String>,
    /// Rows kept: an SQL predicate, e.g. "age >= 18 AND commune = 'Montreuil'".
    #[arg(long)]
    row_filter: Option<String>,
    /// What the data is for.
    #[arg(long, required_unless_present = "from_file")]
    purpose: Option<String>,
    /// Lifetime from now, e.g. 30d.
    #[arg(long, value_parser = duration, conflicts_with = "expires_at", required_unless_present_any = ["expires_at", "from_file"])]
    expires_in: Option<Duration>,
    /// Expiry as RFC 3339.
    #[arg(long)]
    expires_at: Option<String>,
}

/// `bin:20`, `truncate:month`, `prefix:2` as the recipe's generalisation.
fn generalisation(spec: &str) -> Result<Value> {
    let bad = || {
        Failure::Usage(format!(
            "--generalise {spec:?}: say COLUMN=bin:WIDTH, COLUMN=truncate:day|month|year or COLUMN=prefix:N"
        ))
    };
    let (how, arg) = spec.split_once(':').ok_or_else(bad)?;
    Ok(match how {
        "bin" => json!({ "bin": arg.parse::<f64>().map_err(|_| bad())? }),
        "truncate" if ["day", "month", "year"].contains(&arg) => json!({ "truncate": arg }),
        "prefix" => json!({ "prefix": arg.parse::<u32>().map_err(|_| bad())? }),
        _ => return Err(bad().into()),
    })
}

impl Create {
    /// The request file's fields, as a JSON object.
    fn file_body(&self) -> Result<Map<String, Value>> {
        let Some(path) = &self.from_file else {
            return Ok(Map::new());
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("read the grant file {}", path.display()))?;
        let value: Value = serde_yaml::from_str(&text).map_err(|e| {
            Failure::Usage(format!(
                "--from-file {}: not YAML or JSON: {e}",
                path.display()
            ))
        })?;
        match value {
            Value::Object(m) => Ok(m),
            _ => Err(Failure::Usage(format!(
                "--from-file {}: must hold a mapping of the API body's fields (datasetId, grantee, …)",
                path.display()
            ))
            .into()),
        }
    }

    /// The recipe: the file's, then `--recipe`'s fields, then the recipe flags.
    fn recipe(&self, from_file: Option<Value>) -> Result<Map<String, Value>> {
        let mut recipe = match from_file {
            None => Map::new(),
            Some(Value::Object(m)) => m,
            Some(_) => {
                return Err(
                    Failure::Usage("--from-file: `recipe` must be a mapping".into()).into(),
                );
            }
        };
        if let Some(r) = &self.recipe {
            let text = if r.trim_start().starts_with('{') {
                r.clone()
            } else {
                std::fs::read_to_string(r).with_context(|| format!("read the recipe {r}"))?
            };
            let more: Map<String, Value> = serde_json::from_str(&text)
                .map_err(|e| Failure::Usage(format!("--recipe: not a JSON object: {e}")))?;
            for (k, v) in more {
                // `columns` of both are merged; any other field of --recipe wins.
                match (recipe.get_mut(&k), v) {
                    (Some(Value::Object(old)), Value::Object(new)) if k == "columns" => {
                        old.extend(new);
                    }
                    (_, v) => {
                        recipe.insert(k, v);
                    }
                }
            }
        }
        let columns = recipe
            .entry("columns")
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .ok_or_else(|| Failure::Usage("the recipe's `columns` must be a mapping".into()))?;
        for c in &self.drop {
            columns.insert(c.clone(), json!("drop"));
        }
        for c in &self.pseudonymise {
            columns.insert(c.clone(), json!("pseudonymise"));
        }
        for g in &self.generalise {
            let (col, spec) = g
                .split_once('=')
                .ok_or_else(|| Failure::Usage(format!("--generalise {g:?}: say COLUMN=HOW:ARG")))?;
            columns.insert(
                col.to_owned(),
                json!({ "generalise": generalisation(spec)? }),
            );
        }
        if !self.quasi_identifiers.is_empty() {
            recipe.insert("quasiIdentifiers".into(), json!(self.quasi_identifiers));
        }
        if let Some(k) = self.k {
            recipe.insert("k".into(), json!(k));
        }
        if self.suppress {
            recipe.insert("suppress".into(), json!(true));
        }
        Ok(recipe)
    }

    /// The body of `POST /v1/grants` (and of its preview).
    pub fn body(&self) -> Result<Value> {
        let mut body = self.file_body()?;
        let recipe = self.recipe(body.remove("recipe"))?;
        body.insert("recipe".into(), Value::Object(recipe));
        if let Some(d) = &self.dataset {
            body.insert("datasetId".into(), json!(d));
        }
        if let Some(v) = self.version {
            body.insert("version".into(), json!(v));
        }
        match (&self.sandbox, &self.vendor) {
            (Some(s), _) => body.insert("grantee".into(), json!({ "sandbox": s })),
            (None, Some(v)) => body.insert("grantee".into(), json!({ "vendor": v })),
            (None, None) => None,
        };
        if !self.columns.is_empty() {
            body.insert("columns".into(), json!(self.columns));
        }
        if let Some(f) = &self.row_filter {
            body.insert("rowFilter".into(), json!(f));
        }
        if let Some(p) = &self.purpose {
            body.insert("purpose".into(), json!(p));
        }
        match (&self.expires_at, self.expires_in) {
            (Some(at), _) => body.insert("expiresAt".into(), json!(at)),
            (None, Some(d)) => body.insert("expiresAt".into(), json!(after(d)?)),
            (None, None) => None,
        };
        for (field, flag) in [
            ("datasetId", "--dataset"),
            ("grantee", "--sandbox or --vendor"),
            ("columns", "--columns"),
            ("purpose", "--purpose"),
            ("expiresAt", "--expires-in or --expires-at"),
        ] {
            if !body.contains_key(field) {
                return Err(Failure::Usage(format!(
                    "no {field}: say {flag}, or put `{field}` in the --from-file file"
                ))
                .into());
            }
        }
        Ok(Value::Object(body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        c: Create,
    }

    #[test]
    fn flags_build_the_documented_recipe() {
        let t = T::parse_from([
            "t",
            "--dataset",
            "d1",
            "--vendor",
            "acme",
            "--columns",
            "id,age,postcode,income",
            "--pseudonymise",
            "id",
            "--generalise",
            "age=bin:20",
            "--generalise",
            "postcode=prefix:2",
            "--quasi-identifiers",
            "age,postcode",
            "--k",
            "5",
            "--suppress",
            "--row-filter",
            "age >= 18",
            "--purpose",
            "Trial",
            "--expires-at",
            "2027-01-31T00:00:00Z",
        ]);
        assert_eq!(
            t.c.body().unwrap(),
            json!({
                "datasetId": "d1", "grantee": {"vendor": "acme"},
                "columns": ["id", "age", "postcode", "income"],
                "recipe": {"columns": {"id": "pseudonymise", "age": {"generalise": {"bin": 20.0}},
                                       "postcode": {"generalise": {"prefix": 2}}},
                           "quasiIdentifiers": ["age", "postcode"], "k": 5, "suppress": true},
                "rowFilter": "age >= 18", "purpose": "Trial", "expiresAt": "2027-01-31T00:00:00Z"
            })
        );
    }

    #[test]
    fn a_recipe_file_is_merged_and_bad_generalisations_are_usage_errors() {
        let t = T::parse_from([
            "t",
            "--dataset",
            "d1",
            "--sandbox",
            "est-ensemble--traffic",
            "--columns",
            "a",
            "--recipe",
            r#"{"columns": {"b": "drop"}, "k": 3}"#,
            "--drop",
            "c",
            "--purpose",
            "p",
            "--expires-in",
            "1d",
        ]);
        let body = t.c.body().unwrap();
        assert_eq!(
            body["recipe"],
            json!({"columns": {"b": "drop", "c": "drop"}, "k": 3})
        );
        assert_eq!(body["grantee"], json!({"sandbox": "est-ensemble--traffic"}));
        for bad in ["age=bin:x", "age=round:2", "age"] {
            let t = T::parse_from([
                "t",
                "--dataset",
                "d",
                "--vendor",
                "v",
                "--columns",
                "a",
                "--generalise",
                bad,
                "--purpose",
                "p",
                "--expires-in",
                "1d",
            ]);
            let e = t.c.body().unwrap_err();
            assert_eq!(
                crate::error::exit_code(&e),
                crate::error::EXIT_USAGE,
                "{bad}"
            );
        }
    }

    #[test]
    fn a_request_file_gives_the_body_and_flags_override_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("grant.yaml");
        std::fs::write(
            &file,
            "datasetId: d1\ngrantee: {vendor: acme}\ncolumns: [a, b]\n\
             recipe: {columns: {a: pseudonymise}, k: 5}\npurpose: From the file\n\
             expiresAt: 2027-01-31T00:00:00Z\n",
        )
        .unwrap();
        let f = file.to_str().unwrap();
        let t = T::parse_from(["t", "--from-file", f, "--purpose", "Flag", "--drop", "b"]);
        assert_eq!(
            t.c.body().unwrap(),
            json!({
                "datasetId": "d1", "grantee": {"vendor": "acme"}, "columns": ["a", "b"],
                "recipe": {"columns": {"a": "pseudonymise", "b": "drop"}, "k": 5},
                "purpose": "Flag", "expiresAt": "2027-01-31T00:00:00Z"
            })
        );
        std::fs::write(&file, "datasetId: d1\ncolumns: [a]\n").unwrap();
        let t = T::parse_from([
            "t",
            "--from-file",
            f,
            "--purpose",
            "p",
            "--expires-in",
            "1d",
        ]);
        let e = t.c.body().unwrap_err();
        assert_eq!(crate::error::exit_code(&e), crate::error::EXIT_USAGE);
        assert!(e.to_string().contains("no grantee"), "{e}");
    }
}
