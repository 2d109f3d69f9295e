//! The usage ledger: which windows to collect next, and the rows to record.
//!
//! [`Ledger::plan`] is pure: given the end of the last recorded window (read from the
//! database by the caller) and the current time, it returns the next contiguous windows,
//! starting exactly where the record stops. A restart, a crash in the middle of a
//! window, or an outage of hours therefore loses nothing: the unrecorded windows are
//! planned again (the rows of one window are written in one transaction, so a window is
//! either recorded whole or not at all). Windows are aligned to multiples of `step` since
//! the Unix epoch, so every replica plans the same windows.

use std::io::Write;
use std::sync::Arc;

use arrow_array::builder::{Float64Builder, StringBuilder, TimestampMicrosecondBuilder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::EnergyError;
use super::usage::{NamespaceUsage, Window};

#[derive(Clone, Debug, PartialEq)]
pub struct Ledger {
    /// Window length (5 minutes by default).
    pub step: Duration,
    /// A window is planned once this long has passed since its end, so that the
    /// scrapes covering it have reached Prometheus.
    pub settle: Duration,
    /// At most this many windows per plan (catching up after an outage is paced).
    pub max_windows: usize,
}

impl Default for Ledger {
    fn default() -> Self {
        Self {
            step: Duration::minutes(5),
            settle: Duration::seconds(60),
            max_windows: 12,
        }
    }
}

impl Ledger {
    fn floor(&self, t: DateTime<Utc>) -> DateTime<Utc> {
        let step = self.step.num_milliseconds();
        let ms = t.timestamp_millis();
        DateTime::from_timestamp_millis(ms - ms.rem_euclid(step)).expect("in range")
    }

    /// The next windows to collect, oldest first. `last_end` is the end of the last
    /// recorded window; `None` (nothing recorded yet) starts with the last complete
    /// window. A `last_end` off the grid (the step changed) gives one short window up to
    /// the next boundary. Empty when the next window has not settled yet.
    pub fn plan(&self, last_end: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Vec<Window> {
        assert!(self.step > Duration::zero(), "ledger step must be positive");
        let horizon = now - self.settle;
        let mut cursor = match last_end {
            Some(t) => t,
            None => self.floor(horizon) - self.step,
        };
        let mut out = Vec::new();
        while out.len() < self.max_windows {
            let end = self.floor(cursor) + self.step;
            if end > horizon {
                break;
            }
            out.push(Window { start: cursor, end });
            cursor = end;
        }
        out
    }
}

/// One recorded figure: the ledger is long (one row per window, namespace and
/// quantity), so a new quantity needs no migration. Proposed table in docs/energy.md.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LedgerRow {
    pub window_start: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
    pub tenant: String,
    pub namespace: String,
    /// The TrialRun the figure belongs to; empty for the namespace's total.
    #[serde(default)]
    pub run: String,
    pub quantity: String,
    pub value: f64,
    pub unit: String,
    pub method: String,
    pub source: String,
}

/// The rows for one window's accounting.
pub fn rows(usages: &[NamespaceUsage]) -> Vec<LedgerRow> {
    usages
        .iter()
        .flat_map(|u| {
            u.figures.iter().map(move |f| LedgerRow {
                window_start: u.window.start,
                window_end: u.window.end,
                tenant: u.tenant.clone().unwrap_or_default(),
                namespace: u.namespace.clone(),
                run: String::new(),
                quantity: f.quantity.as_str().to_string(),
                value: f.value,
                unit: f.unit.clone(),
                method: f.method.as_str().to_string(),
                source: f.source.clone(),
            })
        })
        .collect()
}

const COLUMNS: [&str; 10] = [
    "window_start",
    "window_end",
    "tenant",
    "namespace",
    "run",
    "quantity",
    "value",
    "unit",
    "method",
    "source",
];

/// CSV with a header; times in RFC 3339 (UTC).
pub fn write_csv<W: Write>(rows: &[LedgerRow], out: W) -> Result<(), EnergyError> {
    let export = |e: csv::Error| EnergyError::Export(e.to_string());
    let mut w = csv::Writer::from_writer(out);
    w.write_record(COLUMNS).map_err(export)?;
    for r in rows {
        w.write_record([
            r.window_start.to_rfc3339(),
            r.window_end.to_rfc3339(),
            r.tenant.clone(),
            r.namespace.clone(),
            r.run.clone(),
            r.quantity.clone(),
            r.value.to_string(),
            r.unit.clone(),
            r.method.clone(),
            r.source.clone(),
        ])
        .map_err(export)?;
    }
    w.flush().map_err(|e| EnergyError::Export(e.to_string()))
}

/// The Arrow schema of the export: timestamps in µs UTC, value as float64.
pub fn schema() -> Arc<Schema> {
    let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    let fields: Vec<Field> = COLUMNS
        .iter()
        .map(|c| match *c {
            "window_start" | "window_end" => Field::new(*c, ts.clone(), false),
            "value" => Field::new(*c, DataType::Float64, false),
            _ => Field::new(*c, DataType::Utf8, false),
        })
        .collect();
    Arc::new(Schema::new(fields))
}

pub fn record_batch(rows: &[LedgerRow]) -> Result<RecordBatch, EnergyError> {
    let n = rows.len();
    let ts = |f: fn(&LedgerRow) -> DateTime<Utc>| {
        let mut b = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
        for r in rows {
            b.append_value(f(r).timestamp_micros());
        }
        Arc::new(b.finish()) as ArrayRef
    };
    let text = |f: fn(&LedgerRow) -> &str| {
        let mut b = StringBuilder::new();
        for r in rows {
            b.append_value(f(r));
        }
        Arc::new(b.finish()) as ArrayRef
    };
    let mut values = Float64Builder::with_capacity(n);
    for r in rows {
        values.append_value(r.value);
    }
    let columns = vec![
        ts(|r| r.window_start),
        ts(|r| r.window_end),
        text(|r| &r.tenant),
        text(|r| &r.namespace),
        text(|r| &r.run),
        text(|r| &r.quantity),
        Arc::new(values.finish()) as ArrayRef,
        text(|r| &r.unit),
        text(|r| &r.method),
        text(|r| &r.source),
    ];
    RecordBatch::try_new(schema(), columns).map_err(|e| EnergyError::Export(e.to_string()))
}

/// Parquet (zstd) of the rows, one row group.
pub fn write_parquet<W: Write + Send>(rows: &[LedgerRow], out: W) -> Result<(), EnergyError> {
    use parquet::arrow::ArrowWriter;
    use parquet::basic::{Compression, ZstdLevel};
    use parquet::file::properties::WriterProperties;
    let export = |e: parquet::errors::ParquetError| EnergyError::Export(e.to_string());
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .build();
    let mut writer = ArrowWriter::try_new(out, schema(), Some(props)).map_err(export)?;
    writer.write(&record_batch(rows)?).map_err(export)?;
    writer.close().map_err(export)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 2, h, m, s).unwrap()
    }

    #[test]
    fn first_run_takes_the_last_settled_window() {
        let l = Ledger::default();
        // 10:07:30 − 60 s settle = 10:06:30: the last complete window is 10:00–10:05.
        assert_eq!(
            l.plan(None, t(10, 7, 30)),
            [Window {
                start: t(10, 0, 0),
                end: t(10, 5, 0)
            }]
        );
        // 10:05:30: 10:00–10:05 has not settled yet.
        assert_eq!(
            l.plan(None, t(10, 5, 30)),
            [Window {
                start: t(9, 55, 0),
                end: t(10, 0, 0)
            }]
        );
    }

    #[test]
    fn resumes_after_a_gap_contiguously() {
        let l = Ledger::default();
        // Down from 10:05 to 10:31:10: windows 10:05 … 10:30 all planned, back to back.
        let plan = l.plan(Some(t(10, 5, 0)), t(10, 31, 10));
        assert_eq!(plan.len(), 5);
        assert_eq!(plan[0].start, t(10, 5, 0));
        assert_eq!(plan[4].end, t(10, 30, 0));
        assert!(plan.windows(2).all(|p| p[0].end == p[1].start));
        // A long outage is caught up in bounded chunks, each resuming from the last.
        let l = Ledger {
            max_windows: 3,
            ..Ledger::default()
        };
        let first = l.plan(Some(t(8, 0, 0)), t(10, 31, 10));
        assert_eq!(first.len(), 3);
        let second = l.plan(Some(first[2].end), t(10, 31, 10));
        assert_eq!(second[0].start, t(8, 15, 0));
    }

    #[test]
    fn restart_mid_window_replans_the_unrecorded_window() {
        let l = Ledger::default();
        // Recorded up to 10:05; the process collected 10:05–10:10 but died before writing
        // it, at 10:12. On restart at 10:13 the same window comes back, nothing else.
        let before = l.plan(Some(t(10, 5, 0)), t(10, 11, 30));
        let after = l.plan(Some(t(10, 5, 0)), t(10, 13, 0));
        assert_eq!(before, after);
        assert_eq!(
            after,
            [Window {
                start: t(10, 5, 0),
                end: t(10, 10, 0)
            }]
        );
        // Off-grid end (the step was 1 minute before): one short window to the grid.
        let plan = l.plan(Some(t(10, 7, 0)), t(10, 15, 30));
        assert_eq!(
            plan[0],
            Window {
                start: t(10, 7, 0),
                end: t(10, 10, 0)
            }
        );
        assert_eq!(plan.len(), 1);
        // Nothing settled yet.
        assert!(l.plan(Some(t(10, 10, 0)), t(10, 15, 30)).is_empty());
    }

    fn sample_rows() -> Vec<LedgerRow> {
        vec![LedgerRow {
            window_start: t(10, 0, 0),
            window_end: t(10, 5, 0),
            tenant: "mgp".into(),
            namespace: "sbx-1".into(),
            run: String::new(),
            quantity: "cpu_energy".into(),
            value: 12.5,
            unit: "j".into(),
            method: "kepler".into(),
            source: "q, with a comma".into(),
        }]
    }

    #[test]
    fn csv_export() {
        let mut out = Vec::new();
        write_csv(&sample_rows(), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("window_start,window_end,tenant,namespace,run,quantity,value"));
        assert!(text.contains("2026-03-02T10:00:00+00:00,2026-03-02T10:05:00+00:00,mgp,sbx-1,,cpu_energy,12.5,j,kepler,\"q, with a comma\""));
    }

    #[test]
    fn parquet_export_round_trips() {
        use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
        let mut out = Vec::new();
        write_parquet(&sample_rows(), &mut out).unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(out))
            .unwrap()
            .build()
            .unwrap();
        let batches: Vec<RecordBatch> = reader.map(Result::unwrap).collect();
        assert_eq!(batches[0].num_rows(), 1);
        assert_eq!(batches[0].schema(), schema());
        let values = batches[0]
            .column(6)
            .as_any()
            .downcast_ref::<arrow_array::Float64Array>()
            .unwrap();
        assert_eq!(values.value(0), 12.5);
    }
}
