//! A deal's timeline: activities, stage moves, changes, newest first.

use super::*;

#[derive(serde::Serialize, serde::Deserialize)]
pub(super) struct TimelineCursor {
    at: DateTime<Utc>,
    id: String,
}

/// One merged timeline: stage changes, field changes, activities, tasks and outputs,
/// newest first.
#[utoipa::path(
    tag = "opportunities",
    params(("id" = Uuid, Path, description = "Opportunity id"), HistoryQuery),
    responses((status = 200, description = "Timeline entries", body = Page<TimelineEntry>), ReadErrors)
)]
#[get("/opportunities/{id}/timeline")]
pub async fn timeline(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<Uuid>,
    q: web::Query<HistoryQuery>,
) -> ApiResult<HttpResponse> {
    let scope = auth.filter(RES, Action::Read)?;
    let id = id.into_inner();
    let q = q.into_inner();
    let limit = crm_domain::listing::limit(q.limit)?;
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let before = match q.cursor.as_deref().map(str::trim).filter(|c| !c.is_empty()) {
        None => None,
        Some(raw) => {
            let c: TimelineCursor = engine
                .decode(raw.trim())
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .ok_or_else(|| ApiError::bad_request("invalid_cursor", "cursor is malformed"))?;
            Some((c.at, c.id))
        }
    };
    // Quote, contract and payment entries only as far as the caller may read those.
    let part = |resource: &str| auth.scope(resource, Action::Read).map(|s| auth.principal.filter(s));
    let access = feed_repo::TimelineAccess {
        quotes: part("quotes"),
        contracts: part("contracts"),
        payments: part("payments"),
    };
    let rows = state
        .db
        .run(move |c| {
            opps::find(c, &scope, id, Liveness::Live, false)?.ok_or_else(|| ApiError::not_found("opportunity"))?;
            Ok::<_, ApiError>(feed_repo::timeline(c, id, &access, before, limit + 1)?)
        })
        .await?;
    let more = rows.len() as i64 > limit;
    let mut rows = rows;
    rows.truncate(usize::try_from(limit).unwrap_or(0));
    let next_cursor = if more {
        rows.last().map(|r| {
            engine.encode(
                serde_json::to_vec(&TimelineCursor {
                    at: r.at,
                    id: r.ref_id.clone(),
                })
                .unwrap_or_default(),
            )
        })
    } else {
        None
    };
    Ok(HttpResponse::Ok().json(Page {
        items: rows
            .into_iter()
            .map(|r| {
                let mut e = TimelineEntry::from(r);
                shape_timeline(&auth.principal, &mut e);
                e
            })
            .collect(),
        next_cursor,
    }))
}

/// Field permissions on timeline entries: field changes shaped like history, and the
/// deal's amount and probability in stage changes hidden or masked like the fields.
pub(super) fn shape_timeline(p: &crm_domain::access::Principal, e: &mut TimelineEntry) {
    if !p.restricts(RES) {
        return;
    }
    match e.kind.as_str() {
        "field_change" => {
            if let Some(ch) = e.data.get_mut("changes") {
                custom::shape_changes(p, RES, ch);
            }
        }
        "stage_change" => {
            if let Some(map) = e.data.as_object_mut() {
                for k in ["amount", "probability"] {
                    match p.field_access(RES, k) {
                        crm_domain::fields::FieldAccess::Hidden => {
                            map.remove(k);
                        }
                        crm_domain::fields::FieldAccess::Masked => {
                            if let Some(v) = map.get_mut(k) {
                                *v = crm_domain::fields::mask(v);
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
        _ => {}
    }
}
