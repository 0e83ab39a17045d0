//! Settings bodies.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use validator::Validate;

use super::str_enum;

str_enum! {
    /// A numbered document series.
    NumberingSeries { Contract => "contract", Quote => "quote", Invoice => "invoice" }
}

/// A numbering pattern: `<prefix><separator><year><separator><sequence>`.
#[derive(Debug, Serialize, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Numbering {
    #[validate(length(max = 20))]
    pub prefix: String,
    /// Zero-padded width of the sequence, 1..=12.
    #[validate(range(min = 1, max = 12))]
    pub digits: u8,
    #[serde(default = "yes")]
    pub include_year: bool,
    #[serde(default = "dash")]
    #[validate(length(max = 3))]
    pub separator: String,
    /// The first number of this year under the pattern (read-only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub example: Option<String>,
}

fn yes() -> bool {
    true
}

fn dash() -> String {
    "-".into()
}

/// Company details printed on quotes.
#[derive(Debug, Default, Serialize, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompanyInfo {
    #[validate(length(max = 200))]
    pub name: String,
    #[validate(length(max = 500))]
    pub address: Option<String>,
    #[validate(length(max = 50))]
    pub phone: Option<String>,
    /// Unified social credit code / tax id.
    #[validate(length(max = 50))]
    pub tax_id: Option<String>,
}
