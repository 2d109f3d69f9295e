//! Ordinary least squares per group: pure arithmetic, no I/O.
//!
//! Rows are pushed one at a time ([`Groups::push`]); a row with a null (or non-finite) group,
//! x or y is skipped and counted. [`Groups::finish`] fits `y = intercept + slope·x` in each
//! group with the two-pass formulas (means first, then centred sums), which stay exact for
//! small integer data such as years.

use std::collections::BTreeMap;

use serde::Serialize;

/// The fit of one group, or the reason it has none.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum GroupResult {
    Fitted {
        group: String,
        n: usize,
        slope: f64,
        intercept: f64,
        r2: f64,
        forecast: f64,
    },
    Unfitted {
        group: String,
        n: usize,
        reason: String,
    },
}

impl GroupResult {
    pub fn group(&self) -> &str {
        match self {
            GroupResult::Fitted { group, .. } | GroupResult::Unfitted { group, .. } => group,
        }
    }
}

/// A line fitted by least squares.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Line {
    pub slope: f64,
    pub intercept: f64,
    /// Coefficient of determination; 1 when every y is equal (the line passes through all
    /// points).
    pub r2: f64,
}

/// Why a set of points has no least-squares line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoFit {
    TooFewPoints,
    ZeroXVariance,
}

impl NoFit {
    pub fn reason(self, n: usize) -> String {
        match self {
            NoFit::TooFewPoints => format!("too few points: n={n}, at least 2 are needed"),
            NoFit::ZeroXVariance => "zero variance in x: every point has the same x".to_owned(),
        }
    }
}

/// Least squares of y on x over `points` (x, y).
pub fn ols(points: &[(f64, f64)]) -> Result<Line, NoFit> {
    if points.len() < 2 {
        return Err(NoFit::TooFewPoints);
    }
    let n = points.len() as f64;
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    let (mut sxx, mut sxy, mut syy) = (0.0, 0.0, 0.0);
    for &(x, y) in points {
        let (dx, dy) = (x - mean_x, y - mean_y);
        sxx += dx * dx;
        sxy += dx * dy;
        syy += dy * dy;
    }
    if sxx == 0.0 {
        return Err(NoFit::ZeroXVariance);
    }
    let slope = sxy / sxx;
    let intercept = mean_y - slope * mean_x;
    let r2 = if syy == 0.0 {
        1.0
    } else {
        (sxy * sxy) / (sxx * syy)
    };
    Ok(Line {
        slope,
        intercept,
        r2,
    })
}

/// Rows grouped by the group column's value.
#[derive(Debug, Default)]
pub struct Groups {
    points: BTreeMap<String, Vec<(f64, f64)>>,
    max_x: Option<f64>,
    skipped: u64,
}

impl Groups {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one row; a null or non-finite value anywhere skips it.
    pub fn push(&mut self, group: Option<&str>, x: Option<f64>, y: Option<f64>) {
        match (group, x, y) {
            (Some(group), Some(x), Some(y)) if x.is_finite() && y.is_finite() => {
                self.max_x = Some(self.max_x.map_or(x, |m| m.max(x)));
                match self.points.get_mut(group) {
                    Some(points) => points.push((x, y)),
                    None => {
                        self.points.insert(group.to_owned(), vec![(x, y)]);
                    }
                }
            }
            _ => self.skipped += 1,
        }
    }

    /// Rows skipped for a null or non-finite value.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Rows kept.
    pub fn used(&self) -> u64 {
        self.points.values().map(|p| p.len() as u64).sum()
    }

    /// The x of the forecast: `predict`, or the largest x of all kept rows plus one (None
    /// when no row was kept).
    pub fn forecast_x(&self, predict: Option<f64>) -> Option<f64> {
        predict.or(self.max_x.map(|m| m + 1.0))
    }

    /// One result per group, sorted by group.
    pub fn finish(&self, predict: Option<f64>) -> Vec<GroupResult> {
        let at = self.forecast_x(predict).unwrap_or(0.0);
        self.points
            .iter()
            .map(|(group, points)| {
                let n = points.len();
                match ols(points) {
                    Ok(line) => GroupResult::Fitted {
                        group: group.clone(),
                        n,
                        slope: line.slope,
                        intercept: line.intercept,
                        r2: line.r2,
                        forecast: line.intercept + line.slope * at,
                    },
                    Err(why) => GroupResult::Unfitted {
                        group: group.clone(),
                        n,
                        reason: why.reason(n),
                    },
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_line() {
        // y = 3 + 2x, exactly.
        let line = ols(&[(1.0, 5.0), (2.0, 7.0), (3.0, 9.0), (4.0, 11.0)]).unwrap();
        assert_eq!(line.slope, 2.0);
        assert_eq!(line.intercept, 3.0);
        assert_eq!(line.r2, 1.0);
    }

    #[test]
    fn known_regression() {
        // x = 1..5, y = 2,4,5,4,5: mean x 3, mean y 4, sxx 10, sxy 6, syy 6.
        // slope 0.6, intercept 2.2, r² = 36 / 60 = 0.6.
        let line = ols(&[(1.0, 2.0), (2.0, 4.0), (3.0, 5.0), (4.0, 4.0), (5.0, 5.0)]).unwrap();
        assert!((line.slope - 0.6).abs() < 1e-12, "{line:?}");
        assert!((line.intercept - 2.2).abs() < 1e-12, "{line:?}");
        assert!((line.r2 - 0.6).abs() < 1e-12, "{line:?}");
    }

    #[test]
    fn flat_y_has_r2_one() {
        let line = ols(&[(2020.0, 7.0), (2021.0, 7.0), (2022.0, 7.0)]).unwrap();
        assert_eq!(line.slope, 0.0);
        assert_eq!(line.intercept, 7.0);
        assert_eq!(line.r2, 1.0);
    }

    #[test]
    fn no_fit_reasons() {
        assert_eq!(ols(&[]), Err(NoFit::TooFewPoints));
        assert_eq!(ols(&[(1.0, 1.0)]), Err(NoFit::TooFewPoints));
        assert_eq!(
            ols(&[(2024.0, 1.0), (2024.0, 3.0)]),
            Err(NoFit::ZeroXVariance)
        );
    }

    #[test]
    fn groups_skip_nulls_and_report_reasons() {
        let mut g = Groups::new();
        // "a": y = 10 + x over x = 0..3, plus rows with a null somewhere.
        for x in 0..3 {
            g.push(Some("a"), Some(x as f64), Some(10.0 + x as f64));
        }
        g.push(Some("a"), None, Some(99.0));
        g.push(Some("a"), Some(1.0), None);
        g.push(None, Some(1.0), Some(1.0));
        g.push(Some("a"), Some(f64::NAN), Some(1.0));
        // "b": one point.
        g.push(Some("b"), Some(1.0), Some(1.0));
        // "c": two points at the same x.
        g.push(Some("c"), Some(2.0), Some(1.0));
        g.push(Some("c"), Some(2.0), Some(5.0));
        assert_eq!(g.skipped(), 4);
        assert_eq!(g.used(), 6);
        let results = g.finish(None);
        assert_eq!(
            results,
            vec![
                GroupResult::Fitted {
                    group: "a".into(),
                    n: 3,
                    slope: 1.0,
                    intercept: 10.0,
                    r2: 1.0,
                    // Largest x over all groups (2) plus one.
                    forecast: 13.0,
                },
                GroupResult::Unfitted {
                    group: "b".into(),
                    n: 1,
                    reason: "too few points: n=1, at least 2 are needed".into(),
                },
                GroupResult::Unfitted {
                    group: "c".into(),
                    n: 2,
                    reason: "zero variance in x: every point has the same x".into(),
                },
            ]
        );
        // An explicit forecast x.
        match &g.finish(Some(10.0))[0] {
            GroupResult::Fitted { forecast, .. } => assert_eq!(*forecast, 20.0),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn serialises_flat() {
        let json = serde_json::to_value(GroupResult::Unfitted {
            group: "b".into(),
            n: 1,
            reason: "r".into(),
        })
        .unwrap();
        assert_eq!(
            json,
            serde_json::json!({"group": "b", "n": 1, "reason": "r"})
        );
    }

    #[test]
    fn empty_groups() {
        let g = Groups::new();
        assert!(g.finish(None).is_empty());
        assert_eq!(g.forecast_x(None), None);
    }
}
