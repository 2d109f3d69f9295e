//! What commands print: aligned tables for people, JSON or YAML for scripts (`-o`).

use clap::ValueEnum;
use serde_json::Value;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns (or `key: value` lines for one object).
    Table,
    /// The gateway's JSON, unchanged.
    Json,
    /// The gateway's JSON as YAML.
    Yaml,
}

/// Print `value` as the format asks; `human` renders it for people.
pub fn emit(format: Format, value: &Value, human: impl FnOnce(&Value) -> String) {
    let text = match format {
        Format::Json => serde_json::to_string_pretty(value).unwrap_or_default() + "\n",
        Format::Yaml => serde_yaml::to_string(value).unwrap_or_default(),
        Format::Table => human(value),
    };
    print!("{text}");
}

/// A value at a JSON pointer, as text: `-` when absent or null, strings unquoted,
/// arrays joined by commas.
pub fn field(v: &Value, pointer: &str) -> String {
    text(v.pointer(pointer).unwrap_or(&Value::Null))
}

pub fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) if s.is_empty() => "-".into(),
        Value::String(s) => s.clone(),
        Value::Array(items) if items.is_empty() => "-".into(),
        Value::Array(items) => items.iter().map(text).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

/// Columns aligned with two spaces between them; the last column is not padded.
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&str]) -> Self {
        Self {
            headers: headers.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let n = self.headers.len();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for r in &self.rows {
            for (i, c) in r.iter().enumerate().take(n) {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
        let mut out = String::new();
        for r in std::iter::once(&self.headers).chain(&self.rows) {
            let mut line = String::new();
            for (i, c) in r.iter().enumerate().take(n) {
                if i + 1 == n {
                    line.push_str(c);
                } else {
                    let pad = widths[i] - c.chars().count();
                    line.push_str(c);
                    line.push_str(&" ".repeat(pad + 2));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// `key: value` lines, keys aligned.
pub fn pairs(items: &[(&str, String)]) -> String {
    let width = items.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    items
        .iter()
        .map(|(k, v)| format!("{k}:{}{v}\n", " ".repeat(width - k.len() + 1)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn table_aligns_columns() {
        let mut t = Table::new(&["NAME", "STATE"]);
        t.row(vec!["est-ensemble--traffic".into(), "Approved".into()]);
        t.row(vec!["a".into(), "PendingApproval".into()]);
        assert_eq!(
            t.render(),
            "NAME                   STATE\nest-ensemble--traffic  Approved\na                      PendingApproval\n"
        );
    }

    #[test]
    fn fields_render_absent_as_dash_and_arrays_joined() {
        let v = json!({"a": {"b": ["x", "y"]}, "n": 3, "e": ""});
        assert_eq!(field(&v, "/a/b"), "x,y");
        assert_eq!(field(&v, "/n"), "3");
        assert_eq!(field(&v, "/missing"), "-");
        assert_eq!(field(&v, "/e"), "-");
    }

    #[test]
    fn pairs_align_keys() {
        assert_eq!(
            pairs(&[("name", "x".into()), ("tenant", "y".into())]),
            "name:   x\ntenant: y\n"
        );
    }
}
