//! `/api/v1/me/notifications` and `/me/notification-settings`: the caller's in-app
//! notifications (written by the event dispatcher from events that concern them).

use actix_web::{get, post, put, web, HttpResponse};
use base64::Engine;
use crm_app::notifications::{self as notes, Cursor};
use uuid::Uuid;

use super::{run_op, BadRequest, BodyErrors, ReadErrors, Unauthorized};
use crate::auth::Auth;
use crate::dto::background::{
    MarkedRead, Notification, NotificationKindSetting, NotificationPage, NotificationQuery, NotificationSettings,
    SetNotificationSettings,
};
use crate::error::{ApiError, ApiResult};
use crate::extract::ValidJson;
use crate::state::AppState;

fn engine() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
}

fn decode(raw: Option<&str>) -> ApiResult<Option<Cursor>> {
    match raw.map(str::trim).filter(|c| !c.is_empty()) {
        None => Ok(None),
        Some(raw) => engine()
            .decode(raw)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .map(Some)
            .ok_or_else(|| ApiError::bad_request("invalid_cursor", "cursor is malformed")),
    }
}

/// The caller's notifications: unread first, newest first; `unread_count` counts all
/// unread ones.
#[utoipa::path(
    tag = "notifications",
    params(NotificationQuery),
    responses((status = 200, description = "A page of notifications", body = NotificationPage), BadRequest, Unauthorized)
)]
#[get("/me/notifications")]
pub async fn my_notifications(
    state: web::Data<AppState>,
    auth: Auth,
    q: web::Query<NotificationQuery>,
) -> ApiResult<HttpResponse> {
    let q = q.into_inner();
    let limit = crm_domain::listing::limit(q.limit)?;
    let after = decode(q.cursor.as_deref())?;
    let unread_only = q.unread_only.unwrap_or(false);
    let page = run_op(&state, &auth, move |c, ctx| {
        Ok(notes::list(c, ctx, after, limit, unread_only)?)
    })
    .await?;
    Ok(HttpResponse::Ok().json(NotificationPage {
        items: page.items.into_iter().map(Notification::from).collect(),
        next_cursor: page
            .next
            .map(|c| engine().encode(serde_json::to_vec(&c).unwrap_or_default())),
        unread_count: page.unread_count,
    }))
}

/// Mark one of the caller's notifications read (another user's is 404).
#[utoipa::path(
    tag = "notifications",
    params(("id" = Uuid, Path, description = "Notification id")),
    responses((status = 200, description = "The notification", body = Notification), ReadErrors)
)]
#[post("/me/notifications/{id}/read")]
pub async fn read_notification(state: web::Data<AppState>, auth: Auth, id: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    let id = id.into_inner();
    let n = run_op(&state, &auth, move |c, ctx| Ok(notes::mark_read(c, ctx, id)?)).await?;
    Ok(HttpResponse::Ok().json(Notification::from(n)))
}

/// Mark all of the caller's notifications read.
#[utoipa::path(
    tag = "notifications",
    responses((status = 200, description = "How many were unread", body = MarkedRead), Unauthorized)
)]
#[post("/me/notifications/read-all")]
pub async fn read_all_notifications(state: web::Data<AppState>, auth: Auth) -> ApiResult<HttpResponse> {
    let marked = run_op(&state, &auth, move |c, ctx| Ok(notes::mark_all_read(c, ctx)?)).await?;
    Ok(HttpResponse::Ok().json(MarkedRead { marked }))
}

fn settings(muted: &[String]) -> NotificationSettings {
    NotificationSettings {
        kinds: notes::KINDS
            .iter()
            .map(|k| NotificationKindSetting {
                kind: k.kind,
                label_zh: k.label_zh,
                label_en: k.label_en,
                muted: muted.iter().any(|m| m == k.kind),
            })
            .collect(),
    }
}

/// Which kinds of notification the caller gets.
#[utoipa::path(
    tag = "notifications",
    responses((status = 200, description = "Every kind, muted or not", body = NotificationSettings), Unauthorized)
)]
#[get("/me/notification-settings")]
pub async fn get_notification_settings(state: web::Data<AppState>, auth: Auth) -> ApiResult<HttpResponse> {
    let muted = run_op(&state, &auth, move |c, ctx| Ok(notes::muted(c, ctx)?)).await?;
    Ok(HttpResponse::Ok().json(settings(&muted)))
}

/// Mute kinds of notification (the list replaces the muted kinds; others are on).
#[utoipa::path(
    tag = "notifications",
    request_body = SetNotificationSettings,
    responses((status = 200, description = "The settings", body = NotificationSettings), BadRequest, Unauthorized, BodyErrors)
)]
#[put("/me/notification-settings")]
pub async fn put_notification_settings(
    state: web::Data<AppState>,
    auth: Auth,
    body: ValidJson<SetNotificationSettings>,
) -> ApiResult<HttpResponse> {
    let kinds: Vec<String> = body.value?.muted.iter().map(|k| k.as_str().to_owned()).collect();
    let muted = run_op(&state, &auth, move |c, ctx| Ok(notes::set_muted(c, ctx, &kinds)?)).await?;
    Ok(HttpResponse::Ok().json(settings(&muted)))
}
