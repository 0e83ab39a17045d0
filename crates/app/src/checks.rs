//! Input checks shared by every operation and the HTTP layer: field errors collected
//! while input is normalised, money and percentage bounds.

use crm_domain::normalize;
use crm_domain::FieldError;

use crate::error::{AppError, AppResult};

/// Collects field errors while a request is normalised.
#[derive(Default)]
pub struct Errors(pub Vec<FieldError>);

impl Errors {
    pub fn add(&mut self, field: &str, code: &str, message: impl Into<String>) {
        self.0.push(FieldError::new(field, code, message));
    }

    /// `Ok` without errors, else one validation error listing them by field.
    pub fn into_result(self) -> AppResult<()> {
        if self.0.is_empty() {
            Ok(())
        } else {
            let mut errs = self.0;
            errs.sort_by(|a, b| a.field.cmp(&b.field));
            Err(AppError::Validation(errs))
        }
    }

    /// Cleans a required text: trimmed, width-folded, whitespace collapsed, non-empty.
    pub fn required_text(&mut self, field: &str, v: &str) -> String {
        let s = normalize::clean_text(v);
        if s.is_empty() {
            self.add(field, "required", "must not be blank");
        }
        s
    }

    /// Cleans optional free text; blank becomes absent.
    pub fn text(&mut self, v: Option<String>) -> Option<String> {
        v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
    }

    /// Cleans an optional single-line text (collapses whitespace); blank becomes absent.
    pub fn line(&mut self, v: Option<String>) -> Option<String> {
        v.map(|s| normalize::clean_text(&s)).filter(|s| !s.is_empty())
    }

    pub fn phone(&mut self, field: &str, v: Option<String>) -> Option<String> {
        let v = v.filter(|s| !s.trim().is_empty())?;
        match normalize::normalize_phone(&v) {
            Ok(p) => Some(p),
            Err(e) => {
                self.add(field, "invalid_format", e.to_string());
                None
            }
        }
    }

    pub fn email(&mut self, field: &str, v: Option<String>) -> Option<String> {
        let v = v.filter(|s| !s.trim().is_empty())?;
        match normalize::normalize_email(&v) {
            Ok(e) => Some(e),
            Err(e) => {
                self.add(field, "invalid_format", e.to_string());
                None
            }
        }
    }

    /// A web address; `https://` is assumed when no scheme is given.
    pub fn website(&mut self, field: &str, v: Option<String>) -> Option<String> {
        let v = v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())?;
        let url = if v.contains("://") { v } else { format!("https://{v}") };
        let ok = (url.starts_with("http://") || url.starts_with("https://"))
            && url
                .split("://")
                .nth(1)
                .and_then(|rest| rest.split(['/', '?', '#']).next())
                .is_some_and(|host| host.contains('.') && !host.starts_with('.'))
            && !url.chars().any(char::is_whitespace);
        if !ok {
            self.add(field, "invalid_format", "not a valid web address");
            return None;
        }
        Some(url)
    }
}

/// Money as it leaves the API: exactly two decimals ("0.00", "150.25").
pub fn money(mut d: rust_decimal::Decimal) -> rust_decimal::Decimal {
    d.rescale(2);
    d
}

/// Checks an amount: not negative, at most two decimals (money is never rounded silently).
pub fn check_amount(errs: &mut Errors, field: &str, v: Option<rust_decimal::Decimal>) -> Option<rust_decimal::Decimal> {
    let v = v?;
    if v.is_sign_negative() {
        errs.add(field, "out_of_range", "must not be negative");
    } else if v.normalize().scale() > 2 {
        errs.add(field, "too_precise", "at most two decimal places");
    } else if v >= rust_decimal::Decimal::from(10_000_000_000_000_000i64) {
        errs.add(field, "out_of_range", "too large");
    }
    Some(v.round_dp(2))
}

/// Checks a percentage: 0..=100 with at most two decimals.
pub fn check_pct(errs: &mut Errors, field: &str, v: Option<rust_decimal::Decimal>) -> Option<rust_decimal::Decimal> {
    let v = v?;
    if v.is_sign_negative() || v > rust_decimal::Decimal::from(100) {
        errs.add(field, "out_of_range", "a percentage between 0 and 100");
    } else if v.normalize().scale() > 2 {
        errs.add(field, "too_precise", "at most two decimal places");
    }
    Some(money(v))
}
