//! Business hours: working days and hours, holidays and make-up working days (调休) as
//! data, in the business time zone. Used for due times "in N business hours", waits and
//! SLAs: `add` moves a moment forward by working time only, `between` measures the
//! working time between two moments.

use std::collections::BTreeSet;

use chrono::{DateTime, Datelike, Duration, FixedOffset, NaiveDate, NaiveTime, Offset, TimeZone, Utc, Weekday};
use serde::{Deserialize, Serialize};

/// A working calendar.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Calendar {
    /// Offset of the business time zone from UTC, in hours (China: 8).
    pub utc_offset_hours: i32,
    /// Working weekdays (Monday to Friday by default).
    pub weekdays: Vec<Weekday>,
    /// Working hours of a working day, ascending and not overlapping (e.g. 09:00–12:00
    /// and 13:30–18:00).
    pub hours: Vec<(NaiveTime, NaiveTime)>,
    /// Days off that would otherwise be working days (public holidays).
    pub holidays: BTreeSet<NaiveDate>,
    /// Days worked that would otherwise be off (make-up working days, 调休上班).
    pub workdays: BTreeSet<NaiveDate>,
}

/// What is wrong with a calendar.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalendarError {
    #[error("working hours must be ascending, non-empty intervals that do not overlap")]
    BadHours,
    #[error("a calendar needs at least one working weekday or make-up working day")]
    NoWorkingDays,
    #[error("the UTC offset must be between -12 and +14 hours")]
    BadOffset,
}

fn hm(h: u32, m: u32) -> NaiveTime {
    NaiveTime::from_hms_opt(h, m, 0).unwrap_or(NaiveTime::MIN)
}

impl Default for Calendar {
    /// Monday to Friday, 09:00–12:00 and 13:30–18:00, China Standard Time, no holidays.
    fn default() -> Self {
        Calendar {
            utc_offset_hours: 8,
            weekdays: vec![Weekday::Mon, Weekday::Tue, Weekday::Wed, Weekday::Thu, Weekday::Fri],
            hours: vec![(hm(9, 0), hm(12, 0)), (hm(13, 30), hm(18, 0))],
            holidays: BTreeSet::new(),
            workdays: BTreeSet::new(),
        }
    }
}

/// The longest stretch `add` and `between` walk, so a calendar with (almost) no working
/// time cannot loop for ever.
const MAX_DAYS: i64 = 3 * 366;

impl Calendar {
    pub fn validate(&self) -> Result<(), CalendarError> {
        if !(-12..=14).contains(&self.utc_offset_hours) {
            return Err(CalendarError::BadOffset);
        }
        if self.hours.is_empty()
            || self.hours.iter().any(|(a, b)| a >= b)
            || self.hours.windows(2).any(|w| w[0].1 > w[1].0)
        {
            return Err(CalendarError::BadHours);
        }
        if self.weekdays.is_empty() && self.workdays.is_empty() {
            return Err(CalendarError::NoWorkingDays);
        }
        Ok(())
    }

    pub fn offset(&self) -> FixedOffset {
        FixedOffset::east_opt(self.utc_offset_hours * 3600).unwrap_or_else(|| Utc.fix())
    }

    /// Whether `day` (a business date) is worked.
    pub fn is_working_day(&self, day: NaiveDate) -> bool {
        if self.workdays.contains(&day) {
            return true;
        }
        !self.holidays.contains(&day) && self.weekdays.contains(&day.weekday())
    }

    /// The working intervals of one business date, as UTC moments.
    fn intervals(&self, day: NaiveDate) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
        if !self.is_working_day(day) {
            return Vec::new();
        }
        let zone = self.offset();
        self.hours
            .iter()
            .filter_map(|(a, b)| {
                let start = zone.from_local_datetime(&day.and_time(*a)).single()?;
                let end = zone.from_local_datetime(&day.and_time(*b)).single()?;
                Some((start.with_timezone(&Utc), end.with_timezone(&Utc)))
            })
            .collect()
    }

    fn local_date(&self, at: DateTime<Utc>) -> NaiveDate {
        at.with_timezone(&self.offset()).date_naive()
    }

    /// The moment `work` of working time after `from` (`from` itself when `work` is
    /// zero or negative). A start outside working hours begins at the next opening.
    /// `None` when the calendar has no working time in the next three years.
    pub fn add(&self, from: DateTime<Utc>, work: Duration) -> Option<DateTime<Utc>> {
        if work <= Duration::zero() {
            return Some(from);
        }
        let mut left = work;
        let first = self.local_date(from);
        for offset in 0..MAX_DAYS {
            let day = first + Duration::days(offset);
            for (start, end) in self.intervals(day) {
                if end <= from {
                    continue;
                }
                let start = start.max(from);
                let available = end - start;
                if left <= available {
                    return Some(start + left);
                }
                left -= available;
            }
        }
        None
    }

    /// The working time between two moments (zero when `to` is not after `from`).
    pub fn between(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Duration {
        let mut total = Duration::zero();
        if to <= from {
            return total;
        }
        let first = self.local_date(from);
        let last = self.local_date(to);
        let days = (last - first).num_days().min(MAX_DAYS);
        for offset in 0..=days {
            for (start, end) in self.intervals(first + Duration::days(offset)) {
                let (s, e) = (start.max(from), end.min(to));
                if e > s {
                    total += e - s;
                }
            }
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A business-time moment (UTC+8) as UTC.
    fn cst(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        FixedOffset::east_opt(8 * 3600)
            .unwrap()
            .with_ymd_and_hms(y, m, d, h, min, 0)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    /// A National Day week: 1–7 October off, Sunday 27 September and Saturday
    /// 10 October worked (example data, the shape of the yearly State Council notice).
    fn national_day() -> Calendar {
        Calendar {
            holidays: (1..=7).map(|d| date(2026, 10, d)).collect(),
            workdays: [date(2026, 9, 27), date(2026, 10, 10)].into_iter().collect(),
            ..Calendar::default()
        }
    }

    #[test]
    fn the_default_is_a_valid_chinese_office_week() {
        let c = Calendar::default();
        assert_eq!(c.validate(), Ok(()));
        assert!(c.is_working_day(date(2026, 12, 1))); // Tuesday
        assert!(!c.is_working_day(date(2026, 12, 5))); // Saturday
    }

    #[test]
    fn hours_within_a_day_skip_the_lunch_break() {
        let c = Calendar::default();
        // 11:00 + 2 h = 12:00 (1 h) + 13:30..14:30 (1 h).
        assert_eq!(
            c.add(cst(2026, 12, 1, 11, 0), Duration::hours(2)),
            Some(cst(2026, 12, 1, 14, 30))
        );
        assert_eq!(
            c.between(cst(2026, 12, 1, 11, 0), cst(2026, 12, 1, 14, 30)),
            Duration::hours(2)
        );
    }

    #[test]
    fn a_start_outside_hours_begins_at_the_next_opening_and_weekends_are_skipped() {
        let c = Calendar::default();
        // Friday 17:00 + 4 h: 1 h on Friday, then Monday 09:00 + 3 h = 12:00.
        assert_eq!(
            c.add(cst(2026, 12, 4, 17, 0), Duration::hours(4)),
            Some(cst(2026, 12, 7, 12, 0))
        );
        // Saturday night + 1 h: Monday 10:00.
        assert_eq!(
            c.add(cst(2026, 12, 5, 22, 0), Duration::hours(1)),
            Some(cst(2026, 12, 7, 10, 0))
        );
        // Before opening on a working day.
        assert_eq!(
            c.add(cst(2026, 12, 1, 6, 0), Duration::minutes(30)),
            Some(cst(2026, 12, 1, 9, 30))
        );
        assert_eq!(
            c.add(cst(2026, 12, 1, 6, 0), Duration::zero()),
            Some(cst(2026, 12, 1, 6, 0))
        );
        // A weekend holds no working time.
        assert_eq!(
            c.between(cst(2026, 12, 5, 0, 0), cst(2026, 12, 7, 0, 0)),
            Duration::zero()
        );
        assert_eq!(
            c.between(cst(2026, 12, 7, 0, 0), cst(2026, 12, 5, 0, 0)),
            Duration::zero()
        );
    }

    #[test]
    fn holidays_are_off_and_make_up_days_are_worked() {
        let c = national_day();
        assert!(c.is_working_day(date(2026, 9, 27)), "make-up Sunday");
        assert!(!c.is_working_day(date(2026, 10, 1)));
        assert!(c.is_working_day(date(2026, 10, 10)), "make-up Saturday");
        // Wednesday 30 September 17:00 + 2 h: 1 h that day, the holiday week is skipped,
        // Thursday 8 October 09:00 + 1 h.
        assert_eq!(
            c.add(cst(2026, 9, 30, 17, 0), Duration::hours(2)),
            Some(cst(2026, 10, 8, 10, 0))
        );
        // A working week of 7.5 h days: 8 Oct (Thu), 9 Oct (Fri), 10 Oct (make-up Sat).
        assert_eq!(
            c.between(cst(2026, 10, 1, 0, 0), cst(2026, 10, 11, 0, 0)),
            Duration::minutes(3 * 450)
        );
    }

    #[test]
    fn add_and_between_agree() {
        let c = national_day();
        let from = cst(2026, 9, 25, 15, 45);
        for minutes in [1, 59, 450, 451, 2000, 9000] {
            let to = c.add(from, Duration::minutes(minutes)).unwrap();
            assert_eq!(c.between(from, to), Duration::minutes(minutes), "{minutes} min");
        }
    }

    #[test]
    fn bad_calendars_are_refused_and_an_empty_one_never_loops() {
        let overlapping = Calendar {
            hours: vec![(hm(9, 0), hm(13, 0)), (hm(12, 0), hm(18, 0))],
            ..Calendar::default()
        };
        assert_eq!(overlapping.validate(), Err(CalendarError::BadHours));
        let never = Calendar {
            weekdays: Vec::new(),
            ..Calendar::default()
        };
        assert_eq!(never.validate(), Err(CalendarError::NoWorkingDays));
        assert_eq!(never.add(cst(2026, 12, 1, 9, 0), Duration::hours(1)), None);
        let far = Calendar {
            utc_offset_hours: 20,
            ..Calendar::default()
        };
        assert_eq!(far.validate(), Err(CalendarError::BadOffset));
    }
}
