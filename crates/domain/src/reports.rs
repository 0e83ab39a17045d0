//! Report periods in the business time zone, the previous period beside each, how a
//! figure changed, and the groupings reports accept.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, Duration, FixedOffset, Months, NaiveDate, TimeZone, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// A named period relative to today in the business time zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Preset {
    ThisWeek,
    LastWeek,
    ThisMonth,
    LastMonth,
    ThisQuarter,
    LastQuarter,
    ThisYear,
    LastYear,
}

impl Preset {
    pub const ALL: [Preset; 8] = [
        Preset::ThisWeek,
        Preset::LastWeek,
        Preset::ThisMonth,
        Preset::LastMonth,
        Preset::ThisQuarter,
        Preset::LastQuarter,
        Preset::ThisYear,
        Preset::LastYear,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Preset::ThisWeek => "this_week",
            Preset::LastWeek => "last_week",
            Preset::ThisMonth => "this_month",
            Preset::LastMonth => "last_month",
            Preset::ThisQuarter => "this_quarter",
            Preset::LastQuarter => "last_quarter",
            Preset::ThisYear => "this_year",
            Preset::LastYear => "last_year",
        }
    }

    /// The calendar unit the preset names.
    fn unit(self) -> Unit {
        match self {
            Preset::ThisWeek | Preset::LastWeek => Unit::Week,
            Preset::ThisMonth | Preset::LastMonth => Unit::Month,
            Preset::ThisQuarter | Preset::LastQuarter => Unit::Quarter,
            Preset::ThisYear | Preset::LastYear => Unit::Year,
        }
    }

    fn is_last(self) -> bool {
        matches!(
            self,
            Preset::LastWeek | Preset::LastMonth | Preset::LastQuarter | Preset::LastYear
        )
    }
}

impl FromStr for Preset {
    type Err = crate::access::UnknownValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Preset::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| crate::access::UnknownValue(s.to_owned()))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Week,
    Month,
    Quarter,
    Year,
}

impl Unit {
    /// The first day of the unit that holds `day` (weeks start on Monday).
    fn start_of(self, day: NaiveDate) -> NaiveDate {
        let first = |m: u32| NaiveDate::from_ymd_opt(day.year(), m, 1).unwrap_or(day);
        match self {
            Unit::Week => day - Duration::days(i64::from(day.weekday().num_days_from_monday())),
            Unit::Month => first(day.month()),
            Unit::Quarter => first((day.month0() / 3) * 3 + 1),
            Unit::Year => first(1),
        }
    }

    fn step(self, day: NaiveDate, back: bool) -> NaiveDate {
        let months = match self {
            Unit::Week => {
                return if back {
                    day - Duration::days(7)
                } else {
                    day + Duration::days(7)
                }
            }
            Unit::Month => 1,
            Unit::Quarter => 3,
            Unit::Year => 12,
        };
        let m = Months::new(months);
        if back {
            day.checked_sub_months(m).unwrap_or(day)
        } else {
            day.checked_add_months(m).unwrap_or(day)
        }
    }
}

/// The longest period a report covers (a custom range), so one request cannot ask
/// Postgres for decades of history.
pub const MAX_PERIOD_DAYS: i64 = 3 * 366;

/// Business dates `from ..= to`, and the same instants in UTC (`start` inclusive,
/// `end` exclusive) for timestamp columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl Period {
    /// The dates `from ..= to` in the zone `tz`.
    pub fn dates(from: NaiveDate, to: NaiveDate, tz: FixedOffset) -> Period {
        let at = |d: NaiveDate| {
            tz.from_local_datetime(&d.and_time(chrono::NaiveTime::MIN))
                .single()
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or_else(|| Utc.from_utc_datetime(&d.and_time(chrono::NaiveTime::MIN)))
        };
        Period {
            from,
            to,
            start: at(from),
            end: at(to + Duration::days(1)),
        }
    }

    /// The number of days the period covers.
    pub fn days(&self) -> i64 {
        (self.to - self.from).num_days() + 1
    }

    /// The first day after the period.
    pub fn until(&self) -> NaiveDate {
        self.to + Duration::days(1)
    }
}

/// A report's period and the one it is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub preset: Option<Preset>,
    pub current: Period,
    pub previous: Period,
}

impl Window {
    /// The `k`-th period before the current one, of the same kind: the `k`-th week,
    /// month, quarter or year before a preset's; a custom range's days `k` times earlier.
    /// (`earlier(1)` is the period the report compares with.)
    pub fn earlier(&self, k: u32, tz: FixedOffset) -> Period {
        match self.preset {
            Some(p) => {
                let unit = p.unit();
                let mut start = self.current.from;
                for _ in 0..k {
                    start = unit.step(start, true);
                }
                Period::dates(start, unit.step(start, false) - Duration::days(1), tz)
            }
            None => {
                let shift = Duration::days(self.current.days() * i64::from(k));
                Period::dates(self.current.from - shift, self.current.to - shift, tz)
            }
        }
    }
}

/// `part / whole` as a percentage with two decimals (`whole` not zero).
pub fn percent(part: Decimal, whole: Decimal) -> Decimal {
    let mut d = (part * Decimal::ONE_HUNDRED / whole).round_dp(2);
    d.rescale(2);
    d
}

/// Forecast categories, from least to most certain; `omitted` leaves a deal out.
pub const FORECAST_CATEGORIES: [&str; 5] = ["pipeline", "best_case", "commit", "closed", "omitted"];

/// A new stage's default forecast category, from its kind.
pub fn default_category(stage_kind: &str) -> &'static str {
    match stage_kind {
        "won" => "closed",
        "lost" => "omitted",
        _ => "pipeline",
    }
}

/// What is wrong with a requested period.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeriodError {
    #[error("give both `from` and `to`, or neither")]
    Incomplete,
    #[error("`to` is before `from`")]
    Reversed,
    #[error("a period covers at most {MAX_PERIOD_DAYS} days")]
    TooLong,
    #[error("give either `period` or `from` and `to`, not both")]
    Both,
    #[error("dates must lie between 1900-01-01 and 2999-12-31")]
    OutOfRange,
}

/// The dates a report may cover (so date arithmetic never leaves chrono's range).
fn supported(d: NaiveDate) -> bool {
    (1900..=2999).contains(&d.year())
}

/// Resolves a preset (default this month) or a custom range, in zone `tz` on `today`
/// (a business date). A preset compares with the unit before it (last month with the
/// month before it); a custom range with the same number of days just before it.
pub fn window(
    preset: Option<Preset>,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
    today: NaiveDate,
    tz: FixedOffset,
) -> Result<Window, PeriodError> {
    match (preset, from, to) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => Err(PeriodError::Both),
        (None, Some(from), Some(to)) => {
            if !supported(from) || !supported(to) {
                return Err(PeriodError::OutOfRange);
            }
            if to < from {
                return Err(PeriodError::Reversed);
            }
            let current = Period::dates(from, to, tz);
            if current.days() > MAX_PERIOD_DAYS {
                return Err(PeriodError::TooLong);
            }
            let prev_to = from - Duration::days(1);
            let prev_from = prev_to - Duration::days(current.days() - 1);
            Ok(Window {
                preset: None,
                current,
                previous: Period::dates(prev_from, prev_to, tz),
            })
        }
        (None, Some(_), None) | (None, None, Some(_)) => Err(PeriodError::Incomplete),
        (_, None, None) if !supported(today) => Err(PeriodError::OutOfRange),
        (p, None, None) => {
            let p = p.unwrap_or(Preset::ThisMonth);
            let unit = p.unit();
            let mut start = unit.start_of(today);
            if p.is_last() {
                start = unit.step(start, true);
            }
            let next = unit.step(start, false);
            let prev = unit.step(start, true);
            Ok(Window {
                preset: Some(p),
                current: Period::dates(start, next - Duration::days(1), tz),
                previous: Period::dates(prev, start - Duration::days(1), tz),
            })
        }
    }
}

/// How a figure moved from the previous period: the difference, and the difference
/// as a percentage of the previous value (none when that was zero or missing).
pub fn change(current: Option<Decimal>, previous: Option<Decimal>) -> (Option<Decimal>, Option<Decimal>) {
    match (current, previous) {
        (Some(c), Some(p)) => {
            let pct = (!p.is_zero()).then(|| percent(c - p, p.abs()));
            (Some(c - p), pct)
        }
        _ => (None, None),
    }
}

/// What a report's rows are grouped by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupBy {
    None,
    Team,
    Owner,
    Region,
    Pipeline,
    Source,
    Industry,
    Tier,
    /// The account (receivables).
    Account,
    /// A custom select field of deals (`custom.<key>`).
    Custom(String),
}

impl GroupBy {
    pub const BUILT_IN: [&'static str; 9] = [
        "none", "team", "owner", "region", "pipeline", "source", "industry", "tier", "account",
    ];

    pub fn as_str(&self) -> String {
        match self {
            GroupBy::None => "none".into(),
            GroupBy::Team => "team".into(),
            GroupBy::Owner => "owner".into(),
            GroupBy::Region => "region".into(),
            GroupBy::Pipeline => "pipeline".into(),
            GroupBy::Source => "source".into(),
            GroupBy::Industry => "industry".into(),
            GroupBy::Tier => "tier".into(),
            GroupBy::Account => "account".into(),
            GroupBy::Custom(k) => format!("custom.{k}"),
        }
    }

    /// Parses `team`, `owner`, ... or `custom.<key>` (the key not yet checked against
    /// the field definitions).
    pub fn parse(s: &str) -> Option<GroupBy> {
        Some(match s {
            "none" => GroupBy::None,
            "team" => GroupBy::Team,
            "owner" => GroupBy::Owner,
            "region" => GroupBy::Region,
            "pipeline" => GroupBy::Pipeline,
            "source" => GroupBy::Source,
            "industry" => GroupBy::Industry,
            "tier" => GroupBy::Tier,
            "account" => GroupBy::Account,
            other => {
                let key = other.strip_prefix("custom.")?;
                if key.is_empty()
                    || key.len() > 64
                    || !key
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                {
                    return None;
                }
                GroupBy::Custom(key.to_owned())
            }
        })
    }
}

impl fmt::Display for GroupBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn china() -> FixedOffset {
        FixedOffset::east_opt(8 * 3600).unwrap()
    }

    #[test]
    fn earlier_periods_step_by_the_presets_unit_or_the_ranges_length() {
        let w = window(Some(Preset::ThisWeek), None, None, d("2026-12-03"), china()).unwrap();
        assert_eq!(w.earlier(1, china()), w.previous);
        let p = w.earlier(4, china());
        assert_eq!((p.from, p.to), (d("2026-11-02"), d("2026-11-08")));
        let m = window(Some(Preset::ThisMonth), None, None, d("2026-03-31"), china()).unwrap();
        let p = m.earlier(1, china());
        assert_eq!((p.from, p.to), (d("2026-02-01"), d("2026-02-28")));
        let p = m.earlier(3, china());
        assert_eq!((p.from, p.to), (d("2025-12-01"), d("2025-12-31")));
        let r = window(
            None,
            Some(d("2026-01-10")),
            Some(d("2026-01-19")),
            d("2026-12-03"),
            china(),
        )
        .unwrap();
        let p = r.earlier(2, china());
        assert_eq!((p.from, p.to), (d("2025-12-21"), d("2025-12-30")));
        assert_eq!(r.earlier(1, china()), r.previous);
    }

    #[test]
    fn presets_follow_the_calendar() {
        let today = d("2026-12-03"); // a Thursday
        let w = window(Some(Preset::ThisWeek), None, None, today, china()).unwrap();
        assert_eq!((w.current.from, w.current.to), (d("2026-11-30"), d("2026-12-06")));
        assert_eq!((w.previous.from, w.previous.to), (d("2026-11-23"), d("2026-11-29")));
        let w = window(None, None, None, today, china()).unwrap();
        assert_eq!(w.preset, Some(Preset::ThisMonth));
        assert_eq!((w.current.from, w.current.to), (d("2026-12-01"), d("2026-12-31")));
        assert_eq!((w.previous.from, w.previous.to), (d("2026-11-01"), d("2026-11-30")));
        let w = window(Some(Preset::LastQuarter), None, None, today, china()).unwrap();
        assert_eq!((w.current.from, w.current.to), (d("2026-07-01"), d("2026-09-30")));
        assert_eq!((w.previous.from, w.previous.to), (d("2026-04-01"), d("2026-06-30")));
        let w = window(Some(Preset::LastYear), None, None, today, china()).unwrap();
        assert_eq!((w.current.from, w.current.to), (d("2025-01-01"), d("2025-12-31")));
        let w = window(Some(Preset::LastMonth), None, None, d("2026-03-31"), china()).unwrap();
        assert_eq!((w.current.from, w.current.to), (d("2026-02-01"), d("2026-02-28")));
        assert_eq!((w.previous.from, w.previous.to), (d("2026-01-01"), d("2026-01-31")));
    }

    #[test]
    fn a_business_day_starts_at_midnight_in_the_business_zone() {
        let w = window(
            None,
            Some(d("2026-12-01")),
            Some(d("2026-12-01")),
            d("2026-12-03"),
            china(),
        )
        .unwrap();
        assert_eq!(w.current.start.to_rfc3339(), "2026-11-30T16:00:00+00:00");
        assert_eq!(w.current.end.to_rfc3339(), "2026-12-01T16:00:00+00:00");
        assert_eq!((w.previous.from, w.previous.to), (d("2026-11-30"), d("2026-11-30")));
    }

    #[test]
    fn custom_ranges_are_checked() {
        let t = d("2026-12-03");
        assert_eq!(
            window(None, Some(d("2026-12-02")), Some(d("2026-12-01")), t, china()),
            Err(PeriodError::Reversed)
        );
        assert_eq!(window(None, Some(t), None, t, china()), Err(PeriodError::Incomplete));
        assert_eq!(
            window(Some(Preset::ThisWeek), Some(t), Some(t), t, china()),
            Err(PeriodError::Both)
        );
        assert_eq!(
            window(None, Some(d("2020-01-01")), Some(t), t, china()),
            Err(PeriodError::TooLong)
        );
        assert_eq!(
            window(None, Some(d("9999-12-30")), Some(d("9999-12-31")), t, china()),
            Err(PeriodError::OutOfRange)
        );
        let w = window(None, Some(d("2026-11-01")), Some(d("2026-11-10")), t, china()).unwrap();
        assert_eq!((w.previous.from, w.previous.to), (d("2026-10-22"), d("2026-10-31")));
    }

    #[test]
    fn change_is_absolute_and_relative() {
        let n = |s: &str| Some(s.parse::<Decimal>().unwrap());
        assert_eq!(change(n("150"), n("100")), (n("50"), n("50.00")));
        assert_eq!(change(n("0"), n("40")), (n("-40"), n("-100.00")));
        assert_eq!(change(n("10"), n("0")), (n("10"), None));
        assert_eq!(change(None, n("1")), (None, None));
    }

    #[test]
    fn groupings_parse() {
        assert_eq!(GroupBy::parse("owner"), Some(GroupBy::Owner));
        assert_eq!(
            GroupBy::parse("custom.deal_type"),
            Some(GroupBy::Custom("deal_type".into()))
        );
        assert_eq!(GroupBy::parse("custom."), None);
        assert_eq!(GroupBy::parse("custom.x;drop"), None);
        assert_eq!(GroupBy::parse("colour"), None);
    }
}
