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

str_enum! {
    /// A day of the week.
    Weekday { Mon => "mon", Tue => "tue", Wed => "wed", Thu => "thu", Fri => "fri", Sat => "sat", Sun => "sun" }
}

impl Weekday {
    pub fn to_chrono(self) -> chrono::Weekday {
        match self {
            Weekday::Mon => chrono::Weekday::Mon,
            Weekday::Tue => chrono::Weekday::Tue,
            Weekday::Wed => chrono::Weekday::Wed,
            Weekday::Thu => chrono::Weekday::Thu,
            Weekday::Fri => chrono::Weekday::Fri,
            Weekday::Sat => chrono::Weekday::Sat,
            Weekday::Sun => chrono::Weekday::Sun,
        }
    }

    pub fn from_chrono(d: chrono::Weekday) -> Self {
        Weekday::ALL[d.num_days_from_monday() as usize]
    }
}

/// One stretch of working time in a working day, business time.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkingHours {
    #[schema(value_type = String, example = "09:00:00", pattern = "^([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]$")]
    pub start: chrono::NaiveTime,
    #[schema(value_type = String, example = "12:00:00", pattern = "^([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]$")]
    pub end: chrono::NaiveTime,
}

/// The business calendar: due times "in N business hours", waits and SLAs count
/// working time only.
#[derive(Debug, Clone, Serialize, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BusinessCalendar {
    /// The business time zone's offset from UTC in hours (China: 8).
    #[validate(range(min = -12, max = 14))]
    #[schema(minimum = -12, maximum = 14)]
    pub utc_offset_hours: i32,
    #[validate(length(max = 7))]
    #[schema(max_items = 7)]
    pub weekdays: Vec<Weekday>,
    /// Ascending, not overlapping.
    #[validate(length(min = 1, max = 8))]
    #[schema(min_items = 1, max_items = 8)]
    pub hours: Vec<WorkingHours>,
    /// Days off that would be working days (public holidays).
    #[validate(length(max = 400))]
    #[schema(max_items = 400)]
    pub holidays: Vec<chrono::NaiveDate>,
    /// Days worked that would be off (make-up working days, 调休上班).
    #[validate(length(max = 400))]
    #[schema(max_items = 400)]
    pub workdays: Vec<chrono::NaiveDate>,
}

impl From<crm_domain::calendar::Calendar> for BusinessCalendar {
    fn from(c: crm_domain::calendar::Calendar) -> Self {
        BusinessCalendar {
            utc_offset_hours: c.utc_offset_hours,
            weekdays: c.weekdays.into_iter().map(Weekday::from_chrono).collect(),
            hours: c
                .hours
                .into_iter()
                .map(|(start, end)| WorkingHours { start, end })
                .collect(),
            holidays: c.holidays.into_iter().collect(),
            workdays: c.workdays.into_iter().collect(),
        }
    }
}

impl From<BusinessCalendar> for crm_domain::calendar::Calendar {
    fn from(b: BusinessCalendar) -> Self {
        let mut weekdays: Vec<chrono::Weekday> = b.weekdays.into_iter().map(Weekday::to_chrono).collect();
        weekdays.dedup();
        crm_domain::calendar::Calendar {
            utc_offset_hours: b.utc_offset_hours,
            weekdays,
            hours: b.hours.into_iter().map(|h| (h.start, h.end)).collect(),
            holidays: b.holidays.into_iter().collect(),
            workdays: b.workdays.into_iter().collect(),
        }
    }
}

/// The lead response SLA: the first response is due this many hours after assignment,
/// counted in business hours (the business calendar) or wall-clock hours.
#[derive(Debug, Clone, Serialize, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LeadSlaSetting {
    #[validate(range(min = 1, max = 720))]
    #[schema(minimum = 1, maximum = 720, example = 1)]
    pub hours: i64,
    pub business_hours: bool,
}

impl From<crm_app::settings::LeadSla> for LeadSlaSetting {
    fn from(s: crm_app::settings::LeadSla) -> Self {
        LeadSlaSetting {
            hours: s.hours,
            business_hours: s.business_hours,
        }
    }
}

str_enum! {
    /// A customer tier, A best.
    Tier { A => "A", B => "B", C => "C", D => "D" }
}

/// One tiering rule: the tier an account gets when `condition` holds.
#[derive(Debug, Serialize, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TierRuleDto {
    #[schema(inline)]
    pub tier: Tier,
    /// A condition in the shared expression format over the account's figures:
    /// `contract_amount` and `payments` (signed / received in the last `value_days`, in
    /// `currency`), `follow_ups` (activities in the last `activity_days`),
    /// `open_pipeline` (open deals' amount in `currency`), `open_deals`,
    /// `days_since_activity` (none without any). Amounts are decimal strings.
    #[schema(value_type = Object)]
    pub condition: serde_json::Value,
}

/// Customer tiering: rules in order, the first that holds gives an account's tier,
/// none gives `default_tier`. Recomputed daily and when an account's deals, contracts,
/// payments or activities change; off, tiers are what users set.
#[derive(Debug, Serialize, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountTiering {
    pub enabled: bool,
    /// Amounts count in this currency only (ISO 4217; others are not converted).
    #[validate(length(min = 3, max = 3))]
    #[schema(min_length = 3, max_length = 3, example = "CNY")]
    pub currency: String,
    /// Contracts signed and payments received in this many days count as value.
    #[validate(range(min = 1, max = 1830))]
    #[schema(minimum = 1, maximum = 1830)]
    pub value_days: i32,
    /// Activities in this many days count as follow-ups.
    #[validate(range(min = 1, max = 365))]
    #[schema(minimum = 1, maximum = 365)]
    pub activity_days: i32,
    #[validate(length(max = 20), nested)]
    #[schema(max_items = 20)]
    pub rules: Vec<TierRuleDto>,
    #[schema(inline)]
    pub default_tier: Tier,
}

/// A recompute of every account was queued.
#[derive(Debug, Serialize, ToSchema)]
pub struct TieringQueued {
    pub queued: bool,
}

/// One change of an account's tier by the tiering rules.
#[derive(Debug, Serialize, ToSchema)]
pub struct TierChange {
    pub id: i64,
    pub tier_from: Option<String>,
    pub tier_to: Option<String>,
    /// `schedule` (the daily run or a recompute) or `change` (a related record changed).
    pub cause: String,
    /// The figures the rules read.
    #[schema(value_type = Object)]
    pub metrics: serde_json::Value,
    /// The rule that held (its index in `rules`); none: the default tier.
    pub rule_index: Option<i32>,
    pub changed_at: chrono::DateTime<chrono::Utc>,
}

impl From<crm_app::tiering::TierChange> for TierChange {
    fn from(t: crm_app::tiering::TierChange) -> Self {
        TierChange {
            id: t.id,
            tier_from: t.tier_from,
            tier_to: t.tier_to,
            cause: t.cause,
            metrics: t.metrics,
            rule_index: t.rule_index,
            changed_at: t.changed_at,
        }
    }
}
