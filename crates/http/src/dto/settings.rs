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
    #[schema(max_length = 20)]
    pub prefix: String,
    /// Zero-padded width of the sequence, 1..=12.
    #[validate(range(min = 1, max = 12))]
    #[schema(minimum = 1, maximum = 12)]
    pub digits: u8,
    #[serde(default = "yes")]
    pub include_year: bool,
    #[serde(default = "dash")]
    #[validate(length(max = 3))]
    #[schema(max_length = 3)]
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
    #[schema(max_length = 200)]
    pub name: String,
    #[validate(length(max = 500))]
    #[schema(max_length = 500)]
    pub address: Option<String>,
    #[validate(length(max = 50))]
    #[schema(max_length = 50)]
    pub phone: Option<String>,
    /// Unified social credit code / tax id.
    #[validate(length(max = 50))]
    #[schema(max_length = 50)]
    pub tax_id: Option<String>,
}

/// How payments (回款) are bounded and when a prepayment wins a deal.
#[derive(Debug, Serialize, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentSettings {
    /// How much a contract's payments may exceed its amount (kept as unapplied credit);
    /// beyond it a payment is refused with 422 `exceeds_contract`. Default "0.00".
    #[schema(value_type = String, example = "0.00")]
    #[serde(deserialize_with = "super::decimal_str::required")]
    pub overpayment_tolerance: rust_decimal::Decimal,
    /// Whether money may be recorded on a contract not signed yet (a prepayment, held
    /// unapplied until the contract is signed). Default true.
    pub accept_prepayments: bool,
    /// Prepayments on one contract reaching this percentage of its amount count as the
    /// Won criterion "payment received"; null: only a signed contract does. Default "10.00".
    #[schema(value_type = Option<String>, example = "10.00")]
    #[serde(default, deserialize_with = "super::decimal_str::optional")]
    pub prepayment_wins_pct: Option<rust_decimal::Decimal>,
}

impl From<crm_domain::money::PaymentRules> for PaymentSettings {
    fn from(r: crm_domain::money::PaymentRules) -> Self {
        PaymentSettings {
            overpayment_tolerance: super::money(r.overpayment_tolerance),
            accept_prepayments: r.accept_prepayments,
            prepayment_wins_pct: r.prepayment_wins_pct.map(super::money),
        }
    }
}
