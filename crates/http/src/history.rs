//! Audit history of any record (shared by every resource that keeps one).

use actix_web::HttpResponse;
use crm_db::repo::accounts::Liveness;
use crm_db::repo::audit;
use crm_db::repo::soft_delete::SoftDelete;
use crm_domain::access::Action;
use uuid::Uuid;

use crate::auth::Auth;
use crate::custom;
use crate::dto::accounts::{AuditEntry, HistoryQuery};
use crate::dto::Page;
use crate::error::{ApiError, ApiResult};
use crate::handlers::{decode_id_cursor, encode_id_cursor};
use crate::state::AppState;

/// Audit history of a live record the caller can read, newest first (shared by every
/// object with a recycle bin), with the caller's field permissions applied to the
/// changes.
pub async fn history<R: SoftDelete>(
    state: &AppState,
    auth: &Auth,
    id: Uuid,
    q: HistoryQuery,
) -> ApiResult<HttpResponse> {
    let resource = R::TABLE;
    let scope = auth.filter(resource, Action::Read)?;
    let limit = crm_domain::listing::limit(q.limit)?;
    let before = q
        .cursor
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(decode_id_cursor)
        .transpose()?;
    let rows = state
        .db
        .run(move |c| {
            if R::find(c, &scope, id, Liveness::Live, false)?.is_none() {
                return Err(ApiError::not_found(resource.trim_end_matches('s')));
            }
            Ok(audit::history(c, resource, id, before, limit + 1)?)
        })
        .await?;
    let more = rows.len() as i64 > limit;
    let mut rows = rows;
    rows.truncate(limit as usize);
    let next_cursor = if more {
        rows.last().map(|r| encode_id_cursor(r.id))
    } else {
        None
    };
    Ok(HttpResponse::Ok().json(Page {
        items: rows
            .into_iter()
            .map(|r| {
                let mut e = AuditEntry::from(r);
                custom::shape_changes(&auth.principal, resource, &mut e.changes);
                e
            })
            .collect(),
        next_cursor,
    }))
}
