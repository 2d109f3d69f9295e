//! The Spark JSON schema string that Delta Sharing's `metaData.schemaString` carries,
//! from the column list Serre records for each view (`[{name, type, nullable}]`).

use serde_json::{Value, json};

/// Spark's name for one of Serre's column types.
fn spark_type(t: &str) -> Result<String, String> {
    Ok(match t {
        "string" | "Utf8" | "LargeUtf8" | "Utf8View" => "string".into(),
        "int64" | "Int64" | "UInt32" => "long".into(),
        "Int32" | "UInt16" => "integer".into(),
        "Int16" | "UInt8" => "short".into(),
        "Int8" => "byte".into(),
        "float64" | "Float64" => "double".into(),
        "Float32" | "Float16" => "float".into(),
        "boolean" | "Boolean" => "boolean".into(),
        "date" | "Date32" | "Date64" => "date".into(),
        "timestamp" => "timestamp".into(),
        "Binary" | "LargeBinary" | "BinaryView" => "binary".into(),
        other => {
            // Decimal128(p, s) → decimal(p,s)
            if let Some(inner) = other
                .strip_prefix("Decimal128(")
                .or_else(|| other.strip_prefix("Decimal256("))
                .and_then(|s| s.strip_suffix(')'))
            {
                let parts: Vec<&str> = inner.split(',').map(str::trim).collect();
                if let [p, s] = parts.as_slice() {
                    return Ok(format!("decimal({p},{s})"));
                }
            }
            return Err(format!(
                "column type {other:?} has no Delta Sharing equivalent"
            ));
        }
    })
}

pub fn schema_string(columns: &Value) -> Result<String, String> {
    let columns = columns.as_array().ok_or("the view schema is not a list")?;
    let fields = columns
        .iter()
        .map(|c| {
            let name = c["name"].as_str().ok_or("a column has no name")?;
            let t = c["type"].as_str().ok_or("a column has no type")?;
            Ok(json!({
                "name": name,
                "type": spark_type(t)?,
                "nullable": c["nullable"].as_bool().unwrap_or(true),
                "metadata": {},
            }))
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(json!({ "type": "struct", "fields": fields }).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serre_types_map_to_spark_types() {
        let cols = json!([
            {"name": "age", "type": "int64", "nullable": false},
            {"name": "id", "type": "string", "nullable": true},
            {"name": "d", "type": "date", "nullable": true},
            {"name": "x", "type": "Decimal128(10, 2)", "nullable": true},
        ]);
        let s: Value = serde_json::from_str(&schema_string(&cols).expect("schema")).expect("json");
        let types: Vec<&str> = s["fields"]
            .as_array()
            .expect("fields")
            .iter()
            .map(|f| f["type"].as_str().unwrap_or(""))
            .collect();
        assert_eq!(types, ["long", "string", "date", "decimal(10,2)"]);
        assert_eq!(s["fields"][0]["nullable"], json!(false));
        assert!(schema_string(&json!([{"name": "m", "type": "Map(…)"}])).is_err());
    }
}
