//! Response views assembled from several rows (shared by the handlers that answer with them).

use crm_db::repo::opportunities::{self as opps, OpportunityRow};
use crm_db::repo::quotes::{self, QuoteRow};
use diesel::PgConnection;
use uuid::Uuid;

use crate::dto::opportunities::{DealContact, DealRole, Opportunity};
use crate::dto::quotes::Quote;
use crate::error::ApiResult;

/// Rows to DTOs with their other contacts (one query for the whole batch).
pub fn with_contacts(c: &mut PgConnection, rows: Vec<OpportunityRow>) -> crm_db::QueryResult<Vec<Opportunity>> {
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let links = if ids.is_empty() {
        Vec::new()
    } else {
        opps::contacts_of(c, &ids)?
    };
    Ok(rows
        .into_iter()
        .map(|r| {
            let mine = links
                .iter()
                .filter(|(o, _, _)| *o == r.id)
                .map(|(_, contact, role)| DealContact {
                    contact_id: *contact,
                    role: DealRole::parse(role).unwrap_or(DealRole::Other),
                })
                .collect();
            Opportunity::from_row(r, mine)
        })
        .collect())
}

/// A quote with its lines.
pub fn quote(c: &mut PgConnection, row: QuoteRow) -> ApiResult<Quote> {
    let lines = quotes::lines(c, &[row.id])?;
    Ok(Quote::from_row(row, lines))
}
