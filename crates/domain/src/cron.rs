//! Five-field cron expressions (`minute hour day-of-month month day-of-week`) read in
//! the business time zone: `*`, numbers, ranges `a-b`, steps `*/n` and `a-b/n`, and
//! lists `a,b`; day of week 0-7 (0 and 7 are Sunday). As in Vixie cron, when both the
//! day of month and the day of week are restricted a day matching either is taken.
//!
//! `0 9 * * 1` is 09:00 every Monday; `30 8 1 * *` 08:30 on the first of each month;
//! `0 9-18/3 * * 1-5` 09:00, 12:00, 15:00 and 18:00 on working days.

use chrono::{DateTime, Datelike, Duration, FixedOffset, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc};

/// A parsed expression: the allowed values of each field as bits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    minutes: u64,
    hours: u32,
    days: u32,
    months: u16,
    weekdays: u8,
    any_day: bool,
    any_weekday: bool,
}

fn field(text: &str, min: u32, max: u32, name: &str) -> Result<(u64, bool), String> {
    let mut bits = 0u64;
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => {
                let step: u32 = s.parse().map_err(|_| format!("{name}: step `{s}` is not a number"))?;
                if step == 0 {
                    return Err(format!("{name}: a step of 0"));
                }
                (r, step)
            }
            None => (part, 1),
        };
        let (lo, hi) = if range == "*" {
            (min, max)
        } else {
            let num = |s: &str| -> Result<u32, String> {
                let n: u32 = s.parse().map_err(|_| format!("{name}: `{s}` is not a number"))?;
                if n < min || n > max {
                    return Err(format!("{name}: {n} is outside {min}-{max}"));
                }
                Ok(n)
            };
            match range.split_once('-') {
                Some((a, b)) => {
                    let (a, b) = (num(a)?, num(b)?);
                    if a > b {
                        return Err(format!("{name}: range {a}-{b} runs backwards"));
                    }
                    (a, b)
                }
                None if step > 1 => (num(range)?, max),
                None => {
                    let n = num(range)?;
                    (n, n)
                }
            }
        };
        let mut v = lo;
        while v <= hi {
            bits |= 1 << v;
            v += step;
        }
    }
    Ok((bits, text == "*"))
}

impl Cron {
    pub fn parse(text: &str) -> Result<Cron, String> {
        let parts: Vec<&str> = text.split_whitespace().collect();
        let [m, h, dom, mon, dow] = parts.as_slice() else {
            return Err("five fields: minute hour day-of-month month day-of-week".into());
        };
        let (minutes, _) = field(m, 0, 59, "minute")?;
        let (hours, _) = field(h, 0, 23, "hour")?;
        let (days, any_day) = field(dom, 1, 31, "day of month")?;
        let (months, _) = field(mon, 1, 12, "month")?;
        let (mut weekdays, any_weekday) = field(dow, 0, 7, "day of week")?;
        if weekdays & (1 << 7) != 0 {
            weekdays |= 1;
        }
        Ok(Cron {
            minutes,
            hours: hours as u32,
            days: days as u32,
            months: months as u16,
            weekdays: (weekdays & 0x7f) as u8,
            any_day,
            any_weekday,
        })
    }

    fn day_ok(&self, d: NaiveDate) -> bool {
        let dom = self.days & (1 << d.day()) != 0;
        let dow = self.weekdays & (1 << d.weekday().num_days_from_sunday()) != 0;
        match (self.any_day, self.any_weekday) {
            (true, true) => true,
            (false, true) => dom,
            (true, false) => dow,
            (false, false) => dom || dow,
        }
    }

    /// The first moment strictly after `after` the expression names, read in the time
    /// zone `tz`; `None` when there is none within five years (`0 0 31 2 *`).
    pub fn next_after(&self, after: DateTime<Utc>, tz: FixedOffset) -> Option<DateTime<Utc>> {
        let local = after.with_timezone(&tz).naive_local();
        let mut t: NaiveDateTime = local.date().and_hms_opt(local.hour(), local.minute(), 0)? + Duration::minutes(1);
        let limit = t + Duration::days(366 * 5);
        while t < limit {
            if self.months & (1 << t.month()) == 0 {
                let (y, m) = if t.month() == 12 {
                    (t.year() + 1, 1)
                } else {
                    (t.year(), t.month() + 1)
                };
                t = NaiveDate::from_ymd_opt(y, m, 1)?.and_hms_opt(0, 0, 0)?;
                continue;
            }
            if !self.day_ok(t.date()) {
                t = t.date().succ_opt()?.and_hms_opt(0, 0, 0)?;
                continue;
            }
            if self.hours & (1 << t.hour()) == 0 {
                t = t.date().and_hms_opt(t.hour(), 0, 0)? + Duration::hours(1);
                continue;
            }
            if self.minutes & (1 << t.minute()) == 0 {
                t += Duration::minutes(1);
                continue;
            }
            return tz.from_local_datetime(&t).single().map(|x| x.with_timezone(&Utc));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn china() -> FixedOffset {
        FixedOffset::east_opt(8 * 3600).unwrap()
    }

    #[test]
    fn next_occurrences_in_the_business_time_zone() {
        // 2026-12-01 is a Tuesday.
        let monday_nine = Cron::parse("0 9 * * 1").unwrap();
        assert_eq!(
            monday_nine.next_after(at("2026-12-01T00:00:00Z"), china()),
            Some(at("2026-12-07T01:00:00Z"))
        );
        // Exactly at an occurrence: the next one.
        assert_eq!(
            monday_nine.next_after(at("2026-12-07T01:00:00Z"), china()),
            Some(at("2026-12-14T01:00:00Z"))
        );
        let first = Cron::parse("30 8 1 * *").unwrap();
        assert_eq!(
            first.next_after(at("2026-12-01T01:00:00Z"), china()),
            Some(at("2027-01-01T00:30:00Z")),
            "08:30 on 1 January, China time"
        );
        let steps = Cron::parse("0 9-18/3 * * 1-5").unwrap();
        assert_eq!(
            steps.next_after(at("2026-12-01T04:30:00Z"), china()),
            Some(at("2026-12-01T07:00:00Z")),
            "15:00 China time"
        );
        let every = Cron::parse("*/15 * * * *").unwrap();
        assert_eq!(
            every.next_after(at("2026-12-01T00:07:30Z"), china()),
            Some(at("2026-12-01T00:15:00Z"))
        );
        // Day of month or day of week when both are given; Sunday as 7.
        let either = Cron::parse("0 0 13 * 7").unwrap();
        assert_eq!(
            either.next_after(at("2026-12-01T00:00:00Z"), FixedOffset::east_opt(0).unwrap()),
            Some(at("2026-12-06T00:00:00Z"))
        );
        assert_eq!(
            Cron::parse("0 0 31 2 *")
                .unwrap()
                .next_after(at("2026-12-01T00:00:00Z"), china()),
            None
        );
    }

    #[test]
    fn bad_expressions_say_why() {
        for bad in [
            "",
            "* * * *",
            "60 * * * *",
            "* 24 * * *",
            "* * 0 * *",
            "* * * 13 *",
            "* * * * 8",
            "5-1 * * * *",
            "*/0 * * * *",
            "a * * * *",
        ] {
            assert!(Cron::parse(bad).is_err(), "{bad}");
        }
    }
}
