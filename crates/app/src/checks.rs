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

    /// A value of a built-in choice field of `object` (its catalogue options); an
    /// unknown value is `invalid_choice`.
    pub fn choice(&mut self, object: &str, key: &str, v: Option<String>) -> Option<String> {
        let v = v?;
        let options = crm_domain::catalogue::builtins(object)
            .into_iter()
            .find(|b| b.key == key)
            .map_or(&[][..], |b| b.options);
        if !options.contains(&v.as_str()) {
            self.add(key, "invalid_choice", format!("must be one of: {}", options.join(", ")));
            return None;
        }
        Some(v)
    }

    /// Text at most `max` characters long (`too_long` otherwise).
    pub fn max_len(&mut self, field: &str, v: Option<String>, max: usize) -> Option<String> {
        if v.as_ref().is_some_and(|s| s.chars().count() > max) {
            self.add(field, "too_long", format!("must be at most {max} characters"));
        }
        v
    }

    /// [`Errors::line`] at most `max` characters long.
    pub fn line_max(&mut self, field: &str, v: Option<String>, max: usize) -> Option<String> {
        let v = self.line(v);
        self.max_len(field, v, max)
    }

    /// [`Errors::text`] at most `max` characters long.
    pub fn text_max(&mut self, field: &str, v: Option<String>, max: usize) -> Option<String> {
        let v = self.text(v);
        self.max_len(field, v, max)
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

/// Applies a cleaning function to a patch field, keeping absent / null / value apart.
pub fn patch<T, U>(v: Option<Option<T>>, f: impl FnOnce(Option<T>) -> Option<U>) -> Option<Option<U>> {
    v.map(f)
}

/// Drops requested changes equal to the current values; evaluates to `true` when
/// nothing is left to change.
#[macro_export]
macro_rules! prune_changes {
    ($ch:expr, $before:expr; $($f:ident),+ $(,)?) => {{
        $( if $ch.$f.as_ref() == Some(&$before.$f) { $ch.$f = None; } )+
        true $( && $ch.$f.is_none() )+
    }};
}
