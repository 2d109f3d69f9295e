//! A small client for Prometheus' HTTP query API: instant queries
//! (`GET /api/v1/query?query=...&time=...`) whose result is a vector.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::EnergyError;

/// One element of an instant vector: its labels and its value at the query time.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

impl Sample {
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels.get(name).map(String::as_str)
    }
}

#[derive(Clone, Debug)]
pub struct PrometheusClient {
    base: String,
    http: reqwest::Client,
}

impl PrometheusClient {
    /// `base` is the server's root, e.g. `http://127.0.0.1:9090`.
    pub fn new(base: &str, timeout: Duration) -> Result<Self, EnergyError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| EnergyError::Config(format!("HTTP client: {e}")))?;
        Ok(Self {
            base: base.trim_end_matches('/').to_string(),
            http,
        })
    }

    /// Evaluate `promql` at `time`; the result must be an instant vector.
    pub async fn query(
        &self,
        promql: &str,
        time: DateTime<Utc>,
    ) -> Result<Vec<Sample>, EnergyError> {
        let (status, body) = self.get(promql, time).await?;
        parse_response(status, &body)
    }

    /// Evaluate a range selector (`metric{…}[W]`) at `time`: the raw samples of each series.
    pub async fn query_series(
        &self,
        promql: &str,
        time: DateTime<Utc>,
    ) -> Result<Vec<Series>, EnergyError> {
        let (status, body) = self.get(promql, time).await?;
        parse_matrix(status, &body)
    }

    async fn get(
        &self,
        promql: &str,
        time: DateTime<Utc>,
    ) -> Result<(u16, bytes::Bytes), EnergyError> {
        let url = format!("{}/api/v1/query", self.base);
        let at = format!("{:.3}", time.timestamp_millis() as f64 / 1000.0);
        let unreachable = |e: reqwest::Error| EnergyError::Unreachable {
            url: url.clone(),
            message: e.to_string(),
        };
        let response = self
            .http
            .get(&url)
            .query(&[("query", promql), ("time", at.as_str())])
            .send()
            .await
            .map_err(unreachable)?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(unreachable)?;
        Ok((status, body))
    }
}

/// One series of a range-vector answer: its labels and its raw samples `(time, value)`,
/// oldest first.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub labels: BTreeMap<String, String>,
    pub points: Vec<(f64, f64)>,
}

#[derive(Deserialize)]
struct Matrix {
    data: MatrixData,
}

#[derive(Deserialize)]
struct MatrixData {
    result: Vec<RawSeries>,
}

#[derive(Deserialize)]
struct RawSeries {
    metric: BTreeMap<String, String>,
    values: Vec<(f64, String)>,
}

/// Decode a range-vector answer; non-finite values are dropped.
pub fn parse_matrix(status: u16, body: &[u8]) -> Result<Vec<Series>, EnergyError> {
    let result_type = check_envelope(status, body)?;
    if result_type != "matrix" {
        return Err(EnergyError::Decode(format!(
            "expected a matrix result, got {result_type}"
        )));
    }
    let raw = serde_json::from_slice::<Matrix>(body)
        .map_err(|e| EnergyError::Decode(e.to_string()))?
        .data
        .result;
    raw.into_iter()
        .map(|s| {
            let mut points = Vec::with_capacity(s.values.len());
            for (t, v) in s.values {
                let v: f64 = v.parse().map_err(|_| {
                    EnergyError::Decode(format!("sample value {v:?} is not a number"))
                })?;
                if v.is_finite() {
                    points.push((t, v));
                }
            }
            Ok(Series {
                labels: s.metric,
                points,
            })
        })
        .collect()
}

#[derive(Deserialize)]
struct Envelope {
    status: String,
    #[serde(default)]
    data: Option<Data>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

/// `data` as first read: its type only (the samples are skipped, not built).
#[derive(Deserialize)]
struct Data {
    #[serde(rename = "resultType")]
    result_type: String,
}

/// The samples of a vector answer, decoded straight into their final form (no
/// intermediate JSON tree: answers of 10,000 series stay small in memory).
#[derive(Deserialize)]
struct Vector {
    data: VectorData,
}

#[derive(Deserialize)]
struct VectorData {
    result: Vec<RawSample>,
}

#[derive(Deserialize)]
struct RawSample {
    metric: BTreeMap<String, String>,
    value: (f64, String),
}

/// Decode a query answer: `status` is the HTTP status, `body` the JSON body.
/// Non-finite values (`NaN`, `+Inf`) are dropped: they carry no usable quantity.
pub fn parse_response(status: u16, body: &[u8]) -> Result<Vec<Sample>, EnergyError> {
    let result_type = check_envelope(status, body)?;
    if result_type != "vector" {
        return Err(EnergyError::Decode(format!(
            "expected a vector result, got {result_type}"
        )));
    }
    let raw = serde_json::from_slice::<Vector>(body)
        .map_err(|e| EnergyError::Decode(e.to_string()))?
        .data
        .result;
    let mut out = Vec::with_capacity(raw.len());
    for s in raw {
        let value: f64 = s.value.1.parse().map_err(|_| {
            EnergyError::Decode(format!("sample value {:?} is not a number", s.value.1))
        })?;
        if value.is_finite() {
            out.push(Sample {
                labels: s.metric,
                value,
            });
        }
    }
    Ok(out)
}

/// Check an answer's envelope (HTTP status, `status`, errors); its result type.
fn check_envelope(status: u16, body: &[u8]) -> Result<String, EnergyError> {
    let envelope: Envelope = serde_json::from_slice(body).map_err(|e| {
        if (200..300).contains(&status) {
            EnergyError::Decode(e.to_string())
        } else {
            EnergyError::Query {
                status,
                error_type: "http".into(),
                message: String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
            }
        }
    })?;
    if envelope.status != "success" {
        return Err(EnergyError::Query {
            status,
            error_type: envelope.error_type.unwrap_or_else(|| "unknown".into()),
            message: envelope.error.unwrap_or_default(),
        });
    }
    let data = envelope
        .data
        .ok_or_else(|| EnergyError::Decode("success without data".into()))?;
    Ok(data.result_type)
}

/// Sum sample values by one label; samples without the label (or with it empty) are
/// left out.
pub fn sum_by(samples: &[Sample], label: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for s in samples {
        if let Some(key) = s.label(label).filter(|k| !k.is_empty()) {
            *out.entry(key.to_string()).or_insert(0.0) += s.value;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_vector() {
        let body = br#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"pod_namespace":"a"},"value":[1700000000.5,"12.5"]},
            {"metric":{"pod_namespace":"b"},"value":[1700000000.5,"NaN"]},
            {"metric":{"pod_namespace":"a"},"value":[1700000000.5,"1e3"]}]}}"#;
        let samples = parse_response(200, body).unwrap();
        assert_eq!(samples.len(), 2);
        assert_eq!(sum_by(&samples, "pod_namespace")["a"], 1012.5);
    }

    #[test]
    fn errors_are_typed() {
        let body = br#"{"status":"error","errorType":"bad_data","error":"parse error at char 3"}"#;
        let err = parse_response(400, body).unwrap_err();
        assert_eq!(err.category(), "prometheus_query");
        assert!(err.to_string().contains("bad_data"));
        let err = parse_response(502, b"<html>bad gateway</html>").unwrap_err();
        assert_eq!(err.category(), "prometheus_query");
        let err = parse_response(200, b"{").unwrap_err();
        assert_eq!(err.category(), "prometheus_decode");
        let matrix = br#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#;
        assert_eq!(
            parse_response(200, matrix).unwrap_err().category(),
            "prometheus_decode"
        );
    }

    #[test]
    fn parses_a_matrix() {
        let body = br#"{"status":"success","data":{"resultType":"matrix","result":[
            {"metric":{"pod":"p"},"values":[[1700000000.5,"1.5"],[1700000001.5,"NaN"],[1700000002.5,"3"]]}]}}"#;
        let series = parse_matrix(200, body).unwrap();
        assert_eq!(series.len(), 1);
        assert_eq!(series[0].labels["pod"], "p");
        assert_eq!(
            series[0].points,
            vec![(1700000000.5, 1.5), (1700000002.5, 3.0)]
        );
        let vector = br#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
        assert_eq!(
            parse_matrix(200, vector).unwrap_err().category(),
            "prometheus_decode"
        );
    }
}
