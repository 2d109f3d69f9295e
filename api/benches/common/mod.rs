//! What the accounting benches share: Prometheus query answers, generated.

use std::fmt::Write as _;

/// A Prometheus instant-vector answer (`/api/v1/query`) holding `series`: each its label
/// pairs already written as JSON members (`"pod":"x","namespace":"y"`) and its value.
pub fn response(series: impl Iterator<Item = (String, f64)>) -> Vec<u8> {
    let mut out = String::from(r#"{"status":"success","data":{"resultType":"vector","result":["#);
    for (i, (labels, value)) in series.enumerate() {
        if i > 0 {
            out.push(',');
        }
        write!(
            out,
            r#"{{"metric":{{{labels}}},"value":[1772445900.000,"{value}"]}}"#
        )
        .unwrap();
    }
    out.push_str("]}}");
    out.into_bytes()
}
