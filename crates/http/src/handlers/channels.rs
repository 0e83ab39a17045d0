//! `/api/v1/admin/channels`: DingTalk and WeCom group robots; `/api/v1/me/channel`:
//! the caller's choice to get personal notifications in one.

use actix_web::{delete, get, post, put, web, HttpResponse};
use crm_app::channels::{self as app, ChannelInput};
use uuid::Uuid;

use super::{run_op, BadRequest, BodyErrors, Forbidden, ReadErrors, Unauthorized};
use crate::auth::Auth;
use crate::dto::integrations::{Channel, ChannelList, CreateChannel, MyChannel};
use crate::error::ApiResult;
use crate::extract::ValidJson;
use crate::state::AppState;

/// Every channel (URLs and secrets are never shown).
#[utoipa::path(
    tag = "channels",
    responses((status = 200, description = "Channels", body = ChannelList), Unauthorized, Forbidden)
)]
#[get("/admin/channels")]
pub async fn list_channels(state: web::Data<AppState>, auth: Auth) -> ApiResult<HttpResponse> {
    let rows = run_op(&state, &auth, |c, ctx| Ok(app::list(c, ctx)?)).await?;
    Ok(HttpResponse::Ok().json(ChannelList {
        items: rows.into_iter().map(Channel::from).collect(),
    }))
}

/// Add a DingTalk robot (webhook URL, optional signing secret) or a WeCom robot (key).
#[utoipa::path(
    tag = "channels",
    request_body = CreateChannel,
    responses(
        (status = 201, description = "Created", body = Channel, headers(("Location" = String))),
        BadRequest, Unauthorized, Forbidden, BodyErrors
    )
)]
#[post("/admin/channels")]
pub async fn create_channel(
    state: web::Data<AppState>,
    auth: Auth,
    body: ValidJson<CreateChannel>,
) -> ApiResult<HttpResponse> {
    let d = body.value?;
    let row = run_op(&state, &auth, move |c, ctx| {
        let input = ChannelInput {
            kind: d.kind.as_str().to_owned(),
            name: d.name,
            url: d.url,
            secret: d.secret,
            per_minute: d.per_minute,
            enabled: d.enabled,
        };
        Ok(app::create(c, ctx, input)?)
    })
    .await?;
    let id = row.id;
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/api/v1/admin/channels/{id}")))
        .json(Channel::from(row)))
}

/// One channel.
#[utoipa::path(
    tag = "channels",
    params(("id" = Uuid, Path, description = "Channel id")),
    responses((status = 200, description = "The channel", body = Channel), ReadErrors)
)]
#[get("/admin/channels/{id}")]
pub async fn get_channel(state: web::Data<AppState>, auth: Auth, id: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    let id = id.into_inner();
    let row = run_op(&state, &auth, move |c, ctx| Ok(app::get(c, ctx, id)?)).await?;
    Ok(HttpResponse::Ok().json(Channel::from(row)))
}

/// Stop sending to a channel (messages keep waiting).
#[utoipa::path(
    tag = "channels",
    params(("id" = Uuid, Path, description = "Channel id")),
    responses((status = 200, description = "Disabled", body = Channel), ReadErrors)
)]
#[post("/admin/channels/{id}/disable")]
pub async fn disable_channel(state: web::Data<AppState>, auth: Auth, id: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    let id = id.into_inner();
    let row = run_op(&state, &auth, move |c, ctx| Ok(app::set_enabled(c, ctx, id, false)?)).await?;
    Ok(HttpResponse::Ok().json(Channel::from(row)))
}

/// Send to a channel again (what waited goes out, within the rate).
#[utoipa::path(
    tag = "channels",
    params(("id" = Uuid, Path, description = "Channel id")),
    responses((status = 200, description = "Enabled", body = Channel), ReadErrors)
)]
#[post("/admin/channels/{id}/enable")]
pub async fn enable_channel(state: web::Data<AppState>, auth: Auth, id: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    let id = id.into_inner();
    let row = run_op(&state, &auth, move |c, ctx| Ok(app::set_enabled(c, ctx, id, true)?)).await?;
    Ok(HttpResponse::Ok().json(Channel::from(row)))
}

/// Delete a channel with its waiting messages.
#[utoipa::path(
    tag = "channels",
    params(("id" = Uuid, Path, description = "Channel id")),
    responses((status = 204, description = "Deleted"), ReadErrors)
)]
#[delete("/admin/channels/{id}")]
pub async fn delete_channel(state: web::Data<AppState>, auth: Auth, id: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    let id = id.into_inner();
    run_op(&state, &auth, move |c, ctx| Ok(app::delete(c, ctx, id)?)).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Queue a test message to the channel.
#[utoipa::path(
    tag = "channels",
    params(("id" = Uuid, Path, description = "Channel id")),
    responses((status = 202, description = "Queued"), ReadErrors)
)]
#[post("/admin/channels/{id}/test")]
pub async fn test_channel(state: web::Data<AppState>, auth: Auth, id: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    let id = id.into_inner();
    run_op(&state, &auth, move |c, ctx| Ok(app::send_test(c, ctx, id)?)).await?;
    Ok(HttpResponse::Accepted().finish())
}

/// The channel the caller gets personal notifications in.
#[utoipa::path(
    tag = "channels",
    responses((status = 200, description = "The choice", body = MyChannel), Unauthorized)
)]
#[get("/me/channel")]
pub async fn get_my_channel(state: web::Data<AppState>, auth: Auth) -> ApiResult<HttpResponse> {
    let mine = run_op(&state, &auth, |c, ctx| Ok(app::mine(c, ctx)?)).await?;
    Ok(HttpResponse::Ok().json(MyChannel {
        channel_id: mine.as_ref().map(|m| m.0),
        mobile: mine.and_then(|m| m.1),
    }))
}

/// Get personal notifications in a channel too (`channel_id: null` to stop), @-mentioned
/// by `mobile`.
#[utoipa::path(
    tag = "channels",
    request_body = MyChannel,
    responses((status = 200, description = "Saved", body = MyChannel), BadRequest, Unauthorized, Forbidden, BodyErrors)
)]
#[put("/me/channel")]
pub async fn put_my_channel(
    state: web::Data<AppState>,
    auth: Auth,
    body: ValidJson<MyChannel>,
) -> ApiResult<HttpResponse> {
    let d = body.value?;
    // A mobile number is checked even when no channel is chosen: bad input changes nothing.
    let mut errs = crm_app::checks::Errors::default();
    let mobile = errs.phone("mobile", d.mobile);
    errs.into_result()?;
    let choice = d.channel_id.map(|id| (id, mobile.clone()));
    run_op(&state, &auth, move |c, ctx| Ok(app::set_mine(c, ctx, choice)?)).await?;
    Ok(HttpResponse::Ok().json(MyChannel {
        channel_id: d.channel_id,
        mobile: d.channel_id.and(mobile),
    }))
}
