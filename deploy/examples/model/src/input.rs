//! The granted datasets: `<grants dir>/<grant id>/data.parquet`, read column by column into
//! [`Groups`].

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type,
    UInt32Type, UInt64Type,
};
use arrow_array::{Array, ArrowPrimitiveType, PrimitiveArray};
use arrow_schema::DataType;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::fit::Groups;

/// The file name of a grant's dataset inside its directory.
pub const DATA_FILE: &str = "data.parquet";

/// The three columns the model reads.
#[derive(Debug, Clone)]
pub struct Columns {
    pub group: String,
    pub x: String,
    pub y: String,
}

/// One granted dataset found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub id: String,
    pub path: PathBuf,
}

/// What was read from one dataset, as reported in results.json.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InputSummary {
    pub grant: String,
    pub rows: u64,
    pub sha256: String,
}

/// The grants under `dir`, sorted by id. A missing directory means no grants; a
/// sub-directory without a data file, or a hidden entry (Kubernetes volumes hold `..data`
/// links), is left out.
pub fn discover(dir: &Path) -> anyhow::Result<Vec<Grant>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    let mut grants = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
        let Ok(id) = entry.file_name().into_string() else {
            continue;
        };
        if id.starts_with('.') {
            continue;
        }
        let path = entry.path().join(DATA_FILE);
        if path.is_file() {
            grants.push(Grant { id, path });
        }
    }
    grants.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(grants)
}

/// SHA-256 of a file, lower-case hex.
pub fn sha256_file(path: &Path) -> anyhow::Result<String> {
    let mut file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut hasher = Sha256::new();
    io::copy(&mut file, &mut hasher).with_context(|| format!("reading {}", path.display()))?;
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Reads one dataset into `groups`: only the three columns, batch by batch.
pub fn read_grant(
    grant: &Grant,
    columns: &Columns,
    groups: &mut Groups,
) -> anyhow::Result<InputSummary> {
    let path = &grant.path;
    let sha256 = sha256_file(path)?;
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)
        .with_context(|| format!("{} is not a readable Parquet file", path.display()))?;
    let schema = builder.schema().clone();
    let mut indices = Vec::with_capacity(3);
    for name in [&columns.group, &columns.x, &columns.y] {
        let Ok(index) = schema.index_of(name) else {
            let known: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
            bail!(
                "column '{name}' not found in {} (grant {}); its columns are: {}",
                path.display(),
                grant.id,
                known.join(", ")
            );
        };
        indices.push(index);
    }
    let mask = ProjectionMask::roots(builder.parquet_schema(), indices);
    let reader = builder
        .with_projection(mask)
        .build()
        .with_context(|| format!("reading {}", path.display()))?;
    let mut rows = 0u64;
    for batch in reader {
        let batch = batch.with_context(|| format!("reading {}", path.display()))?;
        let column = |name: &str| {
            batch.column_by_name(name).with_context(|| {
                format!("column '{name}' missing from a batch of {}", path.display())
            })
        };
        let group = group_values(column(&columns.group)?.as_ref())
            .with_context(|| format!("column '{}' of {}", columns.group, path.display()))?;
        let x = numeric_values(column(&columns.x)?.as_ref())
            .with_context(|| format!("column '{}' of {}", columns.x, path.display()))?;
        let y = numeric_values(column(&columns.y)?.as_ref())
            .with_context(|| format!("column '{}' of {}", columns.y, path.display()))?;
        for ((g, x), y) in group.iter().zip(&x).zip(&y) {
            groups.push(g.as_deref(), *x, *y);
        }
        rows += batch.num_rows() as u64;
    }
    Ok(InputSummary {
        grant: grant.id.clone(),
        rows,
        sha256,
    })
}

fn primitive<T>(array: &PrimitiveArray<T>, to_f64: impl Fn(T::Native) -> f64) -> Vec<Option<f64>>
where
    T: ArrowPrimitiveType,
{
    array.iter().map(|v| v.map(&to_f64)).collect()
}

/// An integer or floating-point column as f64 (null stays None).
pub fn numeric_values(array: &dyn Array) -> anyhow::Result<Vec<Option<f64>>> {
    Ok(match array.data_type() {
        DataType::Int8 => primitive(array.as_primitive::<Int8Type>(), f64::from),
        DataType::Int16 => primitive(array.as_primitive::<Int16Type>(), f64::from),
        DataType::Int32 => primitive(array.as_primitive::<Int32Type>(), f64::from),
        DataType::Int64 => primitive(array.as_primitive::<Int64Type>(), |v| v as f64),
        DataType::UInt8 => primitive(array.as_primitive::<UInt8Type>(), f64::from),
        DataType::UInt16 => primitive(array.as_primitive::<UInt16Type>(), f64::from),
        DataType::UInt32 => primitive(array.as_primitive::<UInt32Type>(), f64::from),
        DataType::UInt64 => primitive(array.as_primitive::<UInt64Type>(), |v| v as f64),
        DataType::Float32 => primitive(array.as_primitive::<Float32Type>(), f64::from),
        DataType::Float64 => primitive(array.as_primitive::<Float64Type>(), |v| v),
        other => bail!("type {other} is not an integer or floating-point type"),
    })
}

/// A string, dictionary-of-string or integer column as text (null stays None).
pub fn group_values(array: &dyn Array) -> anyhow::Result<Vec<Option<String>>> {
    if let Some(a) = array.as_string_opt::<i32>() {
        return Ok(a.iter().map(|v| v.map(str::to_owned)).collect());
    }
    if let Some(a) = array.as_string_opt::<i64>() {
        return Ok(a.iter().map(|v| v.map(str::to_owned)).collect());
    }
    if let Some(a) = array.as_string_view_opt() {
        return Ok(a.iter().map(|v| v.map(str::to_owned)).collect());
    }
    if let Some(dict) = array.as_any_dictionary_opt() {
        let values = group_values(dict.values().as_ref())?;
        return Ok(dict
            .normalized_keys()
            .into_iter()
            .enumerate()
            .map(|(i, key)| {
                if array.is_null(i) {
                    None
                } else {
                    values.get(key).cloned().flatten()
                }
            })
            .collect());
    }
    if array.data_type().is_integer() {
        // Integer codes (e.g. an INSEE code stored as a number): the number's text. f64
        // holds every integer up to 2^53 exactly.
        return Ok(numeric_values(array)?
            .into_iter()
            .map(|v| v.map(|v| format!("{v}")))
            .collect());
    }
    bail!(
        "type {} is not a string, dictionary or integer type",
        array.data_type()
    )
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{
        DictionaryArray, Float32Array, Int16Array, Int64Array, LargeStringArray, RecordBatch,
        StringArray, UInt32Array,
    };
    use arrow_schema::{Field, Schema};
    use parquet::arrow::ArrowWriter;

    use super::*;
    use crate::fit::GroupResult;

    #[test]
    fn numeric_columns() {
        assert_eq!(
            numeric_values(&Int16Array::from(vec![Some(2020), None, Some(-3)])).unwrap(),
            vec![Some(2020.0), None, Some(-3.0)]
        );
        assert_eq!(
            numeric_values(&Float32Array::from(vec![Some(1.5), None])).unwrap(),
            vec![Some(1.5), None]
        );
        assert_eq!(
            numeric_values(&UInt32Array::from(vec![7])).unwrap(),
            vec![Some(7.0)]
        );
        let err = numeric_values(&StringArray::from(vec!["a"])).unwrap_err();
        assert!(err.to_string().contains("not an integer"), "{err}");
    }

    #[test]
    fn group_columns() {
        assert_eq!(
            group_values(&StringArray::from(vec![Some("Bondy"), None])).unwrap(),
            vec![Some("Bondy".to_owned()), None]
        );
        assert_eq!(
            group_values(&LargeStringArray::from(vec!["Pantin"])).unwrap(),
            vec![Some("Pantin".to_owned())]
        );
        let dict: DictionaryArray<arrow_array::types::Int32Type> =
            vec![Some("b"), Some("a"), None, Some("b")]
                .into_iter()
                .collect();
        assert_eq!(
            group_values(&dict).unwrap(),
            vec![Some("b".into()), Some("a".into()), None, Some("b".into())]
        );
        assert_eq!(
            group_values(&Int64Array::from(vec![Some(93008), None])).unwrap(),
            vec![Some("93008".into()), None]
        );
        assert!(group_values(&Float32Array::from(vec![1.0])).is_err());
    }

    fn write_parquet(path: &Path, batch: &RecordBatch) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let file = File::create(path).unwrap();
        let mut writer = ArrowWriter::try_new(file, batch.schema(), None).unwrap();
        writer.write(batch).unwrap();
        writer.close().unwrap();
    }

    fn columns() -> Columns {
        Columns {
            group: "commune".into(),
            x: "year".into(),
            y: "value".into(),
        }
    }

    #[test]
    fn reads_a_file_and_skips_nulls() {
        let dir = tempfile::tempdir().unwrap();
        let schema = Arc::new(Schema::new(vec![
            Field::new("commune", DataType::Utf8, true),
            Field::new("year", DataType::Int32, true),
            Field::new("value", DataType::Float64, true),
            Field::new("unused", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec![
                    Some("A"),
                    Some("A"),
                    Some("A"),
                    None,
                ])),
                Arc::new(arrow_array::Int32Array::from(vec![
                    Some(2020),
                    Some(2021),
                    None,
                    Some(2020),
                ])),
                Arc::new(arrow_array::Float64Array::from(vec![1.0, 3.0, 100.0, 5.0])),
                Arc::new(StringArray::from(vec!["x"; 4])),
            ],
        )
        .unwrap();
        let path = dir.path().join("g1").join(DATA_FILE);
        write_parquet(&path, &batch);
        std::fs::create_dir_all(dir.path().join("empty")).unwrap();
        std::fs::create_dir_all(dir.path().join("..data")).unwrap();

        let grants = discover(dir.path()).unwrap();
        assert_eq!(
            grants,
            vec![Grant {
                id: "g1".into(),
                path: path.clone()
            }]
        );
        let mut groups = Groups::new();
        let summary = read_grant(&grants[0], &columns(), &mut groups).unwrap();
        assert_eq!(summary.rows, 4);
        assert_eq!(summary.sha256, sha256_file(&path).unwrap());
        assert_eq!(summary.sha256.len(), 64);
        assert_eq!(groups.skipped(), 2);
        assert_eq!(
            groups.finish(None),
            vec![GroupResult::Fitted {
                group: "A".into(),
                n: 2,
                slope: 2.0,
                intercept: 1.0 - 2.0 * 2020.0,
                r2: 1.0,
                forecast: 5.0,
            }]
        );
    }

    #[test]
    fn missing_column_names_column_and_file() {
        let dir = tempfile::tempdir().unwrap();
        let schema = Arc::new(Schema::new(vec![
            Field::new("commune", DataType::Utf8, false),
            Field::new("year", DataType::Int32, false),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec!["A"])),
                Arc::new(arrow_array::Int32Array::from(vec![2020])),
            ],
        )
        .unwrap();
        let path = dir.path().join("g2").join(DATA_FILE);
        write_parquet(&path, &batch);
        let grant = Grant {
            id: "g2".into(),
            path: path.clone(),
        };
        let err = read_grant(&grant, &columns(), &mut Groups::new()).unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("column 'value' not found"), "{msg}");
        assert!(msg.contains(&path.display().to_string()), "{msg}");
    }

    #[test]
    fn missing_grants_dir_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        assert!(discover(&dir.path().join("nope")).unwrap().is_empty());
    }
}
