//! Record views: the documented, stable shape conditions (stage criteria, approval
//! conditions, rules) and audit snapshots read a record in. Keys are the field
//! catalogue's keys (`GET /meta/{object}`), custom fields under `custom`; money is an
//! exact two-decimal string. An API response may be shaped differently (or hide
//! fields); these views do not change with it.

use crm_db::repo::opportunities::OpportunityRow;
use rust_decimal::Decimal;
use serde_json::{json, Value};
use uuid::Uuid;

fn money(d: Decimal) -> Decimal {
    let mut d = d;
    d.rescale(2);
    d
}

/// A deal's weighted amount: amount x probability / 100, rounded half away from zero.
pub fn weighted_amount(amount: Option<Decimal>, probability: i32) -> Option<Decimal> {
    amount.map(|a| {
        money(
            (a * Decimal::from(probability) / Decimal::from(100))
                .round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointAwayFromZero),
        )
    })
}

/// The view of a deal. `contacts` are its other contacts as (contact id, role).
pub fn opportunity(r: &OpportunityRow, contacts: &[(Uuid, String)]) -> Value {
    json!({
        "id": r.id,
        "name": r.name,
        "account_id": r.account_id,
        "primary_contact_id": r.primary_contact_id,
        "contacts": contacts.iter().map(|(id, role)| json!({"contact_id": id, "role": role})).collect::<Vec<_>>(),
        "pipeline_id": r.pipeline_id,
        "stage_id": r.stage_id,
        "amount": r.amount,
        "currency": r.currency,
        "expected_close_date": r.expected_close_date,
        "probability": r.probability,
        "weighted_amount": weighted_amount(r.amount, r.probability),
        "owner_id": r.owner_id,
        "team_id": r.team_id,
        "source_lead_id": r.source_lead_id,
        "competitors": r.competitors,
        "next_step": r.next_step,
        "status": r.status,
        "lost_reason": r.lost_reason,
        "closed_at": r.closed_at,
        "stage_entered_at": r.stage_entered_at,
        "last_activity_at": r.last_activity_at,
        "custom": r.custom,
        "created_by": r.created_by,
        "created_at": r.created_at,
        "updated_at": r.updated_at,
        "version": r.version,
    })
}
