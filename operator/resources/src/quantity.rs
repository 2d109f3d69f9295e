//! Exact arithmetic on Kubernetes quantities (`500m`, `2`, `16Gi`, `1.5G`).
//!
//! Values are kept as thousandths of a unit in an `i128`, which holds every quantity
//! a Kubernetes object can carry (up to `Ei`) without rounding.

use std::fmt;
use std::ops::{Add, Sub};
use std::str::FromStr;

/// A non-negative Kubernetes quantity, stored in thousandths ("milli-units").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Quantity {
    milli: i128,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid quantity {input:?}: {reason} (expected e.g. \"500m\", \"2\", \"16Gi\")")]
pub struct QuantityError {
    pub input: String,
    pub reason: &'static str,
}

const SUFFIXES: &[(&str, i128)] = &[
    ("Ki", 1 << 10),
    ("Mi", 1 << 20),
    ("Gi", 1 << 30),
    ("Ti", 1 << 40),
    ("Pi", 1 << 50),
    ("Ei", 1 << 60),
    ("k", 1_000),
    ("M", 1_000_000),
    ("G", 1_000_000_000),
    ("T", 1_000_000_000_000),
    ("P", 1_000_000_000_000_000),
    ("E", 1_000_000_000_000_000_000),
];

impl Quantity {
    pub const ZERO: Quantity = Quantity { milli: 0 };

    pub fn from_units(units: i128) -> Self {
        Self {
            milli: units * 1000,
        }
    }

    pub fn from_milli(milli: i128) -> Self {
        Self { milli }
    }

    pub fn milli(self) -> i128 {
        self.milli
    }

    /// Whole units, rounded up (as Kubernetes does for byte counts).
    pub fn units_ceil(self) -> i128 {
        (self.milli + 999).div_euclid(1000)
    }

    /// Canonical form for CPU-like quantities: `2`, `1500m`.
    pub fn to_cpu_string(self) -> String {
        if self.milli % 1000 == 0 {
            (self.milli / 1000).to_string()
        } else {
            format!("{}m", self.milli)
        }
    }

    /// Canonical form for byte quantities: the largest binary suffix that divides exactly.
    pub fn to_bytes_string(self) -> String {
        if self.milli % 1000 != 0 {
            return format!("{}m", self.milli);
        }
        let bytes = self.milli / 1000;
        if bytes == 0 {
            return "0".to_owned();
        }
        for (suffix, mult) in SUFFIXES[..6].iter().rev() {
            if bytes % mult == 0 {
                return format!("{}{}", bytes / mult, suffix);
            }
        }
        bytes.to_string()
    }
}

impl FromStr for Quantity {
    type Err = QuantityError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let err = |reason| QuantityError {
            input: input.to_owned(),
            reason,
        };
        let s = input.trim();
        if s.is_empty() {
            return Err(err("empty"));
        }
        let split = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(s.len());
        let (number, suffix) = s.split_at(split);
        let (int_part, frac_part) = match number.split_once('.') {
            Some((i, f)) => (i, f),
            None => (number, ""),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(err("no digits"));
        }
        if frac_part.contains('.') {
            return Err(err("more than one decimal point"));
        }
        if int_part.len() + frac_part.len() > 24 {
            return Err(err("too many digits"));
        }
        let digits = format!("{int_part}{frac_part}");
        let mantissa: i128 = digits.parse().map_err(|_| err("not a number"))?;
        let scale = 10i128.pow(frac_part.len() as u32);
        // Value in milli-units = mantissa * multiplier * 1000 / scale, rounded up.
        let (mul, div) = match suffix {
            "" => (1000, 1),
            "m" => (1, 1),
            other => match SUFFIXES.iter().find(|(s, _)| *s == other) {
                Some((_, m)) => (m * 1000, 1),
                None => return Err(err("unknown suffix")),
            },
        };
        let numerator = mantissa.checked_mul(mul).ok_or_else(|| err("too large"))?;
        let denominator = scale * div;
        let milli = (numerator + denominator - 1) / denominator;
        Ok(Quantity { milli })
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_cpu_string())
    }
}

impl Add for Quantity {
    type Output = Quantity;
    fn add(self, rhs: Self) -> Self {
        Quantity {
            milli: self.milli + rhs.milli,
        }
    }
}

impl Sub for Quantity {
    type Output = Quantity;
    fn sub(self, rhs: Self) -> Self {
        Quantity {
            milli: self.milli - rhs.milli,
        }
    }
}

impl std::iter::Sum for Quantity {
    fn sum<I: Iterator<Item = Self>>(iter: I) -> Self {
        iter.fold(Quantity::ZERO, Add::add)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Quantity {
        s.parse().unwrap()
    }

    #[test]
    fn parses_kubernetes_syntax() {
        assert_eq!(q("500m").milli(), 500);
        assert_eq!(q("2").milli(), 2000);
        assert_eq!(q("1.5").milli(), 1500);
        assert_eq!(q("2Gi").units_ceil(), 2 * 1024 * 1024 * 1024);
        assert_eq!(q("1.5Gi").units_ceil(), 3 * 512 * 1024 * 1024);
        assert_eq!(q("1G").units_ceil(), 1_000_000_000);
        assert_eq!(q("10k").units_ceil(), 10_000);
        assert_eq!(
            q("0.5m").milli(),
            1,
            "sub-milli values round up like Kubernetes"
        );
        assert_eq!(q("1Ei").units_ceil(), 1i128 << 60);
    }

    #[test]
    fn rejects_garbage_with_a_reason() {
        for bad in ["", "abc", "1.2.3", "5Xi", "-1", "1 Gi", ".", "1e3"] {
            let e = bad.parse::<Quantity>().unwrap_err();
            assert_eq!(e.input, bad);
            assert!(e.to_string().contains("invalid quantity"), "{e}");
        }
    }

    #[test]
    fn arithmetic_and_ordering() {
        let total: Quantity = ["500m", "1500m", "1"].iter().map(|s| q(s)).sum();
        assert_eq!(total, q("3"));
        assert!(q("1Gi") > q("1G"));
        assert_eq!(q("2Gi") - q("1Gi"), q("1Gi"));
        assert!(q("1024Mi") == q("1Gi"));
    }

    #[test]
    fn canonical_formatting() {
        assert_eq!(q("1500m").to_cpu_string(), "1500m");
        assert_eq!(q("2000m").to_cpu_string(), "2");
        assert_eq!(q("1024Mi").to_bytes_string(), "1Gi");
        assert_eq!(q("1536Mi").to_bytes_string(), "1536Mi");
        assert_eq!(q("1000").to_bytes_string(), "1000");
        assert_eq!(q("0").to_bytes_string(), "0");
        assert_eq!((q("3Gi") + q("512Mi")).to_bytes_string(), "3584Mi");
    }
}
