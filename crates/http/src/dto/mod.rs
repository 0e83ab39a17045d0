//! Request and response bodies. Field docs become OpenAPI descriptions.

pub mod accounts;
pub mod activities;
pub mod admin;
pub mod approvals;
pub mod auth;
pub mod background;
pub mod contacts;
pub mod contracts;
pub mod events;
pub mod fields;
pub mod integrations;
pub mod leads;
pub mod me;
pub mod opportunities;
pub mod overview;
pub mod pipelines;
pub mod products;
pub mod quotes;
pub mod reports;
pub mod rules;
pub mod settings;

use serde::Serialize;
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

pub use crm_app::write::{decimal_str, double_option};

/// A page of a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T: ToSchema> {
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; null on the last page.
    pub next_cursor: Option<String>,
}

impl<T: ToSchema> Page<T> {
    /// A page of rows as the API shows them.
    pub fn of<R>(page: crm_db::sql::Page<R>, shape: impl FnMut(R) -> T) -> Page<T> {
        Page {
            items: page.items.into_iter().map(shape).collect(),
            next_cursor: page.next_cursor,
        }
    }
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

pub use crm_app::checks::{check_amount, check_pct, money, Errors};

/// The one sum of per-currency sums: zero without any, the sum with one currency,
/// none when currencies mix (amounts of different currencies are never added up).
pub fn single_currency_sum(sums: &[rust_decimal::Decimal]) -> Option<rust_decimal::Decimal> {
    match sums {
        [] => Some(rust_decimal::Decimal::ZERO),
        [one] => Some(*one),
        _ => None,
    }
}

/// Applies a cleaning function to a PATCH field, keeping absent/null/value apart.
pub fn patch<T, U>(v: Option<Option<T>>, f: impl FnOnce(Option<T>) -> Option<U>) -> Option<Option<U>> {
    v.map(f)
}
