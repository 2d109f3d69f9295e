//! k-anonymity: rows per equivalence class of the (generalised) quasi-identifiers.
//!
//! Classes are keyed by the Arrow row encoding of the quasi-identifier values, so nulls are
//! a value like any other and no row allocates once its class exists.

use std::collections::HashMap;

use arrow_array::{ArrayRef, BooleanArray};
use arrow_row::{RowConverter, SortField};
use arrow_schema::DataType;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{DataError, Result};

/// k-anonymity figures of a view, over the rows that pass the filter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KAnonymityReport {
    /// Columns the classes are built from.
    pub quasi_identifiers: Vec<String>,
    /// Minimum class size the recipe asks for.
    pub k_required: Option<u32>,
    /// Rows in the smallest class (0 when no row passes the filter).
    pub smallest_class: u64,
    /// Number of distinct quasi-identifier combinations.
    pub classes: u64,
    pub classes_below_k: u64,
    pub rows_below_k: u64,
    /// Rows removed by suppression (0 unless the recipe suppresses).
    pub rows_suppressed: u64,
    /// Rows in the view.
    pub rows_out: u64,
    /// Smallest class among the rows kept (0 when none is kept).
    pub smallest_class_out: u64,
}

impl KAnonymityReport {
    /// Refuse a view whose released rows fall in classes smaller than `k_min` (a tenant's
    /// minimum, or the recipe's own `k`).
    pub fn ensure(&self, k_min: u32) -> Result<()> {
        let k_min = u64::from(k_min);
        if self.rows_out == 0 || self.smallest_class_out >= k_min {
            return Ok(());
        }
        Err(DataError::KAnonymity(format!(
            "dataset is personal: smallest class is {} rows over ({}), tenant minimum k is {k_min}; generalise or suppress",
            self.smallest_class_out,
            self.quasi_identifiers.join(", ")
        )))
    }
}

type Hasher = foldhash::fast::RandomState;

/// Counts rows per class across batches.
pub(crate) struct ClassCounter {
    converter: Option<RowConverter>,
    counts: HashMap<Box<[u8]>, u64, Hasher>,
    rows: u64,
}

fn kernel(err: arrow_schema::ArrowError) -> DataError {
    DataError::internal("encoding quasi-identifiers", err)
}

impl ClassCounter {
    /// `types`: the quasi-identifiers' types after generalisation.
    pub(crate) fn new(types: &[DataType]) -> Result<Self> {
        let converter = if types.is_empty() {
            None
        } else {
            let fields = types.iter().map(|t| SortField::new(t.clone())).collect();
            Some(RowConverter::new(fields).map_err(kernel)?)
        };
        Ok(ClassCounter {
            converter,
            counts: HashMap::default(),
            rows: 0,
        })
    }

    /// Count the rows of one batch (quasi-identifier columns, in order).
    pub(crate) fn add(&mut self, columns: &[ArrayRef], rows: usize) -> Result<()> {
        self.rows += rows as u64;
        let Some(converter) = &self.converter else {
            return Ok(());
        };
        let encoded = converter.convert_columns(columns).map_err(kernel)?;
        for row in encoded.iter() {
            let key = row.data();
            if let Some(count) = self.counts.get_mut(key) {
                *count += 1;
            } else {
                self.counts.insert(key.into(), 1);
            }
        }
        Ok(())
    }

    /// Which rows of a batch belong to classes of at least `k` rows.
    pub(crate) fn keep(&self, columns: &[ArrayRef], rows: usize, k: u32) -> Result<BooleanArray> {
        let k = u64::from(k);
        let Some(converter) = &self.converter else {
            return Ok(std::iter::repeat_n(Some(self.rows >= k), rows).collect());
        };
        let encoded = converter.convert_columns(columns).map_err(kernel)?;
        Ok(encoded
            .iter()
            .map(|row| Some(self.counts.get(row.data()).copied().unwrap_or(0) >= k))
            .collect())
    }

    fn sizes(&self) -> Vec<u64> {
        match self.converter {
            Some(_) => self.counts.values().copied().collect(),
            None if self.rows > 0 => vec![self.rows],
            None => Vec::new(),
        }
    }

    /// Figures for the report; `suppress` removes the classes below `k`.
    pub(crate) fn report(
        &self,
        quasi_identifiers: &[String],
        k: Option<u32>,
        suppress: bool,
    ) -> KAnonymityReport {
        report_from_sizes(quasi_identifiers, &self.sizes(), k, suppress)
    }
}

pub(crate) fn report_from_sizes(
    quasi_identifiers: &[String],
    sizes: &[u64],
    k: Option<u32>,
    suppress: bool,
) -> KAnonymityReport {
    let k_min = k.map_or(0, u64::from);
    let below: Vec<u64> = sizes.iter().copied().filter(|s| *s < k_min).collect();
    let rows_below_k: u64 = below.iter().sum();
    let total: u64 = sizes.iter().sum();
    let rows_suppressed = if suppress && k.is_some() {
        rows_below_k
    } else {
        0
    };
    let kept = sizes
        .iter()
        .copied()
        .filter(|s| !(suppress && k.is_some()) || *s >= k_min);
    KAnonymityReport {
        quasi_identifiers: quasi_identifiers.to_vec(),
        k_required: k,
        smallest_class: sizes.iter().copied().min().unwrap_or(0),
        classes: sizes.len() as u64,
        classes_below_k: below.len() as u64,
        rows_below_k,
        rows_suppressed,
        rows_out: total - rows_suppressed,
        smallest_class_out: kept.min().unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{Int64Array, StringArray};

    use super::*;

    /// age band × postcode prefix, hand-counted:
    /// (30, "93") ×3, (30, "75") ×1, (40, "93") ×2, (null, "93") ×1, (40, null) ×1 + 1 in batch 2.
    #[test]
    fn figures_on_a_hand_counted_table() {
        let ages: ArrayRef = Arc::new(Int64Array::from(vec![
            Some(30),
            Some(30),
            Some(30),
            Some(30),
            Some(40),
            Some(40),
            None,
            Some(40),
        ]));
        let codes: ArrayRef = Arc::new(StringArray::from(vec![
            Some("93"),
            Some("93"),
            Some("75"),
            Some("93"),
            Some("93"),
            Some("93"),
            Some("93"),
            None,
        ]));
        let mut counter = ClassCounter::new(&[DataType::Int64, DataType::Utf8]).expect("counter");
        counter.add(&[ages.clone(), codes.clone()], 8).expect("add");
        let more_ages: ArrayRef = Arc::new(Int64Array::from(vec![Some(40)]));
        let more_codes: ArrayRef = Arc::new(StringArray::from(vec![None::<&str>]));
        counter.add(&[more_ages, more_codes], 1).expect("add");

        let qis = vec!["age".to_string(), "postcode".to_string()];
        let r = counter.report(&qis, Some(2), true);
        assert_eq!(r.classes, 5);
        assert_eq!(r.smallest_class, 1);
        assert_eq!(r.classes_below_k, 2, "(30,75) and (null,93)");
        assert_eq!(r.rows_below_k, 2);
        assert_eq!(r.rows_suppressed, 2);
        assert_eq!(r.rows_out, 7);
        assert_eq!(r.smallest_class_out, 2);
        r.ensure(2).expect("2-anonymous after suppression");
        let err = r.ensure(3).expect_err("not 3-anonymous");
        assert_eq!(err.category(), "k_anonymity");
        assert!(
            err.to_string()
                .contains("smallest class is 2 rows over (age, postcode)"),
            "{err}"
        );

        let keep = counter.keep(&[ages, codes], 8, 2).expect("keep");
        let keep: Vec<bool> = keep.iter().map(|v| v == Some(true)).collect();
        assert_eq!(keep, [true, true, false, true, true, true, false, true]);

        let unsuppressed = counter.report(&qis, Some(2), false);
        assert_eq!(
            (unsuppressed.rows_suppressed, unsuppressed.rows_out),
            (0, 9)
        );
        assert_eq!(unsuppressed.smallest_class_out, 1);
        assert!(unsuppressed.ensure(2).is_err());
    }

    #[test]
    fn no_quasi_identifiers_is_one_class() {
        let mut counter = ClassCounter::new(&[]).expect("counter");
        counter.add(&[], 4).expect("add");
        let r = counter.report(&[], None, false);
        assert_eq!((r.classes, r.smallest_class, r.rows_out), (1, 4, 4));
        let empty = ClassCounter::new(&[])
            .expect("counter")
            .report(&[], None, false);
        assert_eq!(
            (empty.classes, empty.smallest_class, empty.rows_out),
            (0, 0, 0)
        );
    }
}
