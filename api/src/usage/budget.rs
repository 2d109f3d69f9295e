//! Monthly energy budgets: a Tenant may carry `energyBudgetKwh`; at 80 % its admins are
//! warned, at 100 % new runs are refused until the next calendar month (UTC) or a raised
//! budget.

use chrono::{DateTime, Datelike, TimeZone, Utc};
use serde::Serialize;
use utoipa::ToSchema;

/// Share of the budget at which tenant admins are warned.
pub const WARN_AT: f64 = 0.8;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum BudgetLevel {
    /// No budget set.
    Unlimited,
    Ok,
    /// At or above 80 %.
    Warning,
    /// At or above 100 %: new runs are refused.
    Exhausted,
}

#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BudgetState {
    pub month_start: DateTime<Utc>,
    pub month_end: DateTime<Utc>,
    pub budget_kwh: Option<f64>,
    pub used_kwh: f64,
    /// used / budget (absent without a budget).
    pub share: Option<f64>,
    pub level: BudgetLevel,
}

/// `[first instant of the month, first instant of the next)` for `now`, UTC.
pub fn month(now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    let start = Utc
        .with_ymd_and_hms(now.year(), now.month(), 1, 0, 0, 0)
        .single()
        .unwrap_or(now);
    let (y, m) = if now.month() == 12 {
        (now.year() + 1, 1)
    } else {
        (now.year(), now.month() + 1)
    };
    let end = Utc
        .with_ymd_and_hms(y, m, 1, 0, 0, 0)
        .single()
        .unwrap_or(now);
    (start, end)
}

pub fn state(now: DateTime<Utc>, budget_kwh: Option<f64>, used_kwh: f64) -> BudgetState {
    let (month_start, month_end) = month(now);
    let share = budget_kwh.map(|b| if b > 0.0 { used_kwh / b } else { f64::INFINITY });
    let level = match share {
        None => BudgetLevel::Unlimited,
        Some(s) if s >= 1.0 => BudgetLevel::Exhausted,
        Some(s) if s >= WARN_AT => BudgetLevel::Warning,
        Some(_) => BudgetLevel::Ok,
    };
    BudgetState {
        month_start,
        month_end,
        budget_kwh,
        used_kwh,
        share: share.filter(|s| s.is_finite()),
        level,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_and_month_bounds() {
        let now = Utc.with_ymd_and_hms(2026, 12, 15, 10, 0, 0).unwrap();
        let (s, e) = month(now);
        assert_eq!(s, Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap());
        assert_eq!(e, Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap());
        assert_eq!(state(now, None, 5.0).level, BudgetLevel::Unlimited);
        assert_eq!(state(now, Some(10.0), 7.9).level, BudgetLevel::Ok);
        assert_eq!(state(now, Some(10.0), 8.0).level, BudgetLevel::Warning);
        assert_eq!(state(now, Some(10.0), 10.0).level, BudgetLevel::Exhausted);
        assert_eq!(state(now, Some(0.0), 0.0).level, BudgetLevel::Exhausted);
        assert_eq!(state(now, Some(0.0), 0.0).share, None);
        assert_eq!(state(now, Some(10.0), 5.0).share, Some(0.5));
    }
}
