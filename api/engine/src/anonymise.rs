//! Applying a recipe's column rules to Arrow arrays.
//!
//! Pseudonyms are HMAC-SHA-256 under a per-grant key of the value's canonical text, cut to
//! 16 bytes and written as base64url without padding (22 characters). The canonical text is
//! Arrow's display form: strings as is, integers in decimal, floats in shortest round-trip
//! form, booleans `true`/`false`, dates `yyyy-mm-dd`, timestamps `yyyy-mm-ddThh:mm:ss[.f]`.
//! The column name is not part of the input, so a value pseudonymised in two columns (or two
//! datasets) of the same grant gets the same pseudonym and can still be joined.

use std::fmt::Write as _;
use std::sync::Arc;

use arrow_array::builder::StringBuilder;
use arrow_array::cast::AsArray;
use arrow_array::types::{Date32Type, Float64Type, Int64Type};
use arrow_array::{Array, ArrayRef, StringArray};
use arrow_cast::display::{ArrayFormatter, FormatOptions};
use arrow_cast::{CastOptions, cast_with_options};
use arrow_schema::{ArrowError, DataType, Field};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::recipe::{ColumnRule, DateUnit, Generalisation, is_integer, is_string};
use super::{DataError, Result};

/// Secret key of one grant's pseudonyms. Not printable; zeroed when dropped.
pub struct PseudonymKey([u8; 32]);

impl PseudonymKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        PseudonymKey(bytes)
    }

    /// Key for one grant derived from a server secret: HMAC-SHA-256(secret, context).
    pub fn derive(secret: &[u8], context: &str) -> Self {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret)
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        mac.update(b"serre pseudonym key v1\0");
        mac.update(context.as_bytes());
        PseudonymKey(mac.finalize().into_bytes().into())
    }
}

impl std::fmt::Debug for PseudonymKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PseudonymKey(…)")
    }
}

impl Drop for PseudonymKey {
    fn drop(&mut self) {
        for byte in self.0.iter_mut() {
            // SAFETY: `byte` is a valid, aligned, exclusive reference.
            unsafe { std::ptr::write_volatile(byte, 0) };
        }
    }
}

/// Keyed HMAC state, cloned once per value.
#[derive(Clone)]
pub struct Pseudonymiser {
    prototype: Hmac<Sha256>,
}

impl Pseudonymiser {
    pub fn new(key: &PseudonymKey) -> Self {
        let prototype = <Hmac<Sha256> as Mac>::new_from_slice(&key.0)
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        Pseudonymiser { prototype }
    }

    fn pseudonym(&self, value: &[u8], out: &mut [u8; 22]) {
        let mut mac = self.prototype.clone();
        mac.update(value);
        let digest = mac.finalize().into_bytes();
        // 16 bytes are exactly 22 base64 characters without padding.
        let _ = URL_SAFE_NO_PAD.encode_slice(&digest[..16], out);
    }

    /// Pseudonyms of every value of `array` (any type); nulls stay null.
    pub fn apply(&self, array: &dyn Array) -> Result<ArrayRef> {
        let mut builder = StringBuilder::with_capacity(array.len(), array.len() * 22);
        let mut code = [0u8; 22];
        let mut push = |bytes: &[u8], builder: &mut StringBuilder| {
            self.pseudonym(bytes, &mut code);
            // base64url output is ASCII.
            builder.append_value(std::str::from_utf8(&code).unwrap_or_default());
        };
        if let Some(strings) = array.as_string_opt::<i32>() {
            for value in strings.iter() {
                match value {
                    Some(v) => push(v.as_bytes(), &mut builder),
                    None => builder.append_null(),
                }
            }
        } else {
            let formatter = ArrayFormatter::try_new(array, &FormatOptions::default())
                .map_err(|e| DataError::internal("formatting values to pseudonymise", e))?;
            let mut text = String::new();
            for i in 0..array.len() {
                if array.is_null(i) {
                    builder.append_null();
                    continue;
                }
                text.clear();
                write!(text, "{}", formatter.value(i))
                    .map_err(|e| DataError::internal("formatting values to pseudonymise", e))?;
                push(text.as_bytes(), &mut builder);
            }
        }
        Ok(Arc::new(builder.finish()))
    }
}

/// Output field of a column under a rule; `None` when the column is dropped.
pub fn output_field(field: &Field, rule: &ColumnRule) -> Option<Field> {
    let t = field.data_type();
    let data_type = match rule {
        ColumnRule::Keep => t.clone(),
        ColumnRule::Drop => return None,
        ColumnRule::Pseudonymise => DataType::Utf8,
        ColumnRule::Generalise(Generalisation::Bin(_)) if is_integer(t) => DataType::Int64,
        ColumnRule::Generalise(Generalisation::Bin(_)) => DataType::Float64,
        ColumnRule::Generalise(Generalisation::Truncate(_)) => DataType::Date32,
        ColumnRule::Generalise(Generalisation::Prefix(_)) => DataType::Utf8,
    };
    Some(Field::new(field.name(), data_type, field.is_nullable()))
}

/// Apply one rule to one column; `None` when the column is dropped.
pub fn apply_rule(
    name: &str,
    array: &ArrayRef,
    rule: &ColumnRule,
    pseudonymiser: &Pseudonymiser,
) -> Result<Option<ArrayRef>> {
    Ok(match rule {
        ColumnRule::Keep => Some(array.clone()),
        ColumnRule::Drop => None,
        ColumnRule::Pseudonymise => Some(pseudonymiser.apply(array.as_ref())?),
        ColumnRule::Generalise(g) => Some(generalise(name, array, g)?),
    })
}

fn to(name: &str, array: &dyn Array, t: &DataType) -> Result<ArrayRef> {
    let options = CastOptions {
        safe: false,
        ..Default::default()
    };
    cast_with_options(array, t, &options).map_err(|e| {
        DataError::InvalidRecipe(format!("column \"{name}\": cannot convert to {t}: {e}"))
    })
}

/// Generalise a column; see [`Generalisation`] for the output types.
pub fn generalise(name: &str, array: &ArrayRef, g: &Generalisation) -> Result<ArrayRef> {
    let t = array.data_type();
    match g {
        Generalisation::Bin(width) if is_integer(t) => {
            let width = *width as i64;
            let ints = to(name, array, &DataType::Int64)?;
            let binned = ints
                .as_primitive::<Int64Type>()
                .try_unary::<_, Int64Type, ArrowError>(|v| {
                    v.checked_sub(v.rem_euclid(width)).ok_or_else(|| {
                        ArrowError::ComputeError(format!("{v} has no lower bin bound"))
                    })
                })
                .map_err(|e| DataError::InvalidRecipe(format!("column \"{name}\": {e}")))?;
            Ok(Arc::new(binned))
        }
        Generalisation::Bin(width) => {
            let width = *width;
            let floats = to(name, array, &DataType::Float64)?;
            let binned = floats
                .as_primitive::<Float64Type>()
                .unary::<_, Float64Type>(|v| (v / width).floor() * width);
            Ok(Arc::new(binned))
        }
        Generalisation::Truncate(unit) => {
            let dates = to(name, array, &DataType::Date32)?;
            let unit = *unit;
            let truncated = dates
                .as_primitive::<Date32Type>()
                .unary::<_, Date32Type>(|days| truncate_days(days, unit));
            Ok(Arc::new(truncated))
        }
        Generalisation::Prefix(n) => {
            let strings = if is_string(t) && *t != DataType::Utf8 {
                to(name, array, &DataType::Utf8)?
            } else {
                array.clone()
            };
            let strings = strings.as_string_opt::<i32>().ok_or_else(|| {
                DataError::InvalidRecipe(format!("column \"{name}\": prefix applies to strings"))
            })?;
            let n = *n as usize;
            let prefixed: StringArray = strings
                .iter()
                .map(|v| v.map(|s| s.char_indices().nth(n).map_or(s, |(end, _)| &s[..end])))
                .collect();
            Ok(Arc::new(prefixed))
        }
    }
}

/// First day of the day, month or year containing `days` (days since 1970-01-01).
pub(crate) fn truncate_days(days: i32, unit: DateUnit) -> i32 {
    let (y, m, _) = civil_from_days(i64::from(days));
    let first = match unit {
        DateUnit::Day => return days,
        DateUnit::Month => days_from_civil(y, m, 1),
        DateUnit::Year => days_from_civil(y, 1, 1),
    };
    i32::try_from(first).unwrap_or(days)
}

// Howard Hinnant's civil calendar algorithms (proleptic Gregorian).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests;
