//! The one clock business time is read from: the system clock plus an offset that
//! tests move forward (never sleep).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};

/// Business dates (due dates, validity, ageing) are China Standard Time (UTC+8, no DST).
pub const BUSINESS_UTC_OFFSET_HOURS: i64 = 8;

/// The injectable clock; cheap to clone (clones share the offset).
#[derive(Clone, Default, Debug)]
pub struct Clock {
    offset_secs: Arc<AtomicI64>,
}

impl Clock {
    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + chrono::Duration::seconds(self.offset_secs.load(Ordering::SeqCst))
    }

    /// Today's business date.
    pub fn today(&self) -> NaiveDate {
        (self.now() + chrono::Duration::hours(BUSINESS_UTC_OFFSET_HOURS)).date_naive()
    }

    /// Moves the clock forward (tests).
    pub fn advance(&self, by: chrono::Duration) {
        self.offset_secs.fetch_add(by.num_seconds(), Ordering::SeqCst);
    }
}
