//! Request and response bodies. Field docs become OpenAPI descriptions.

pub mod accounts;
pub mod activities;
pub mod admin;
pub mod approvals;
pub mod auth;
pub mod contacts;
pub mod contracts;
pub mod events;
pub mod fields;
pub mod leads;
pub mod me;
pub mod opportunities;
pub mod overview;
pub mod pipelines;
pub mod products;
pub mod quotes;
pub mod settings;

use crm_domain::normalize;
use crm_domain::FieldError;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// Declares a string enum with serde, OpenAPI schema and `as_str`.
macro_rules! str_enum {
    ($(#[doc = $doc:literal])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[doc = $doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
        pub enum $name {
            $(#[serde(rename = $text)] $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            pub fn parse(s: &str) -> Option<Self> {
                match s { $($text => Some($name::$variant),)+ _ => None }
            }
        }

        // Written by hand: the derive ignores the `serde(rename)`s a macro generates and
        // documented the Rust variant names instead of the wire values.
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                let doc: &[&str] = &[$($doc),*];
                let description = doc.iter().map(|l| l.trim()).collect::<Vec<_>>().join(" ");
                utoipa::openapi::schema::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .enum_values(Some([$($text),+]))
                    .description((!description.is_empty()).then_some(description))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {
            fn name() -> std::borrow::Cow<'static, str> {
                std::borrow::Cow::Borrowed(stringify!($name))
            }
        }
    };
}
pub(crate) use str_enum;

/// Money, percentages and quantities in request bodies: decimal strings only
/// (`"120000.00"`), as the document says. A JSON number is refused rather than read
/// through a float.
pub mod decimal_str {
    use std::str::FromStr;

    use rust_decimal::Decimal;
    use serde::{Deserialize, Deserializer};

    fn parse<E: serde::de::Error>(s: &str) -> Result<Decimal, E> {
        let body = s.strip_prefix('-').unwrap_or(s);
        let (int, frac) = body.split_once('.').unwrap_or((body, ""));
        let digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
        if int.is_empty() || !digits(int) || !digits(frac) || (body.contains('.') && frac.is_empty()) {
            return Err(E::custom(format!("`{s}` is not a decimal number such as \"12.50\"")));
        }
        Decimal::from_str(s).map_err(|_| E::custom(format!("`{s}` is out of range")))
    }

    pub fn required<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
        let s = String::deserialize(d)?;
        parse(&s)
    }

    pub fn optional<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(s) => parse(&s).map(Some),
        }
    }

    /// PATCH: absent (`None`), `null` (`Some(None)`) or a value.
    pub fn nullable<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<Decimal>>, D::Error> {
        optional(d).map(Some)
    }
}

/// Deserialises a present field (even `null`) as `Some(..)`, so PATCH can tell
/// "absent" (leave alone) from `null` (clear).
pub fn double_option<'de, T, D>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: Deserializer<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// A page of a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T: ToSchema> {
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// A page of a list that supports delta sync (`updated_since`).
#[derive(Debug, Serialize, ToSchema)]
pub struct SyncPage<T: ToSchema> {
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; null on the last page.
    pub next_cursor: Option<String>,
    /// With `updated_since`: ids to drop from a local copy (first page only): records
    /// deleted since then, and records that left the caller's data scope since then
    /// (reassigned to someone the caller does not reach).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deleted_ids: Option<Vec<Uuid>>,
}

/// Collects field errors while a request is normalised.
#[derive(Default)]
pub struct Errors(pub Vec<FieldError>);

impl Errors {
    pub fn add(&mut self, field: &str, code: &str, message: impl Into<String>) {
        self.0.push(FieldError::new(field, code, message));
    }

    pub fn into_result(self) -> Result<(), crate::error::ApiError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            let mut errs = self.0;
            errs.sort_by(|a, b| a.field.cmp(&b.field));
            Err(crate::error::ApiError::validation(errs))
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

/// Applies a cleaning function to a PATCH field, keeping absent/null/value apart.
pub fn patch<T, U>(v: Option<Option<T>>, f: impl FnOnce(Option<T>) -> Option<U>) -> Option<Option<U>> {
    v.map(f)
}
