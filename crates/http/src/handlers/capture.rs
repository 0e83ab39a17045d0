//! Web-to-lead: `POST /api/v1/capture/{form_key}` (public, for website forms and
//! campaign tools) and `/api/v1/admin/capture-forms` (admin).

use actix_web::http::StatusCode;
use actix_web::{delete, get, post, put, web, HttpRequest, HttpResponse};
use crm_app::capture::{self as app, FormInput, Refused, Submitted};
use diesel::Connection;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::{run_op, with_etag, BadRequest, BodyErrors, Forbidden, ReadErrors, Unauthorized, VersionErrors};
use crate::auth::Auth;
use crate::dto::integrations::{
    CaptureBody, CaptureForm, CaptureFormInput, CaptureFormList, CaptureReceived, CaptureSubmission,
    CaptureSubmissionList,
};
use crate::error::{ApiError, ApiResult};
use crate::extract::{client_ip, RequiredIfMatch, ValidJson};
use crate::state::AppState;

/// The largest submission accepted.
pub const MAX_BODY: usize = 16 * 1024;

fn input(d: CaptureFormInput) -> FormInput {
    FormInput {
        name: d.name,
        form_key: d.form_key,
        allowed_origins: d.allowed_origins,
        mapping: d.mapping.into_iter().map(|(k, v)| (k, Value::String(v))).collect(),
        source: d.source,
        campaign: d.campaign,
        owner_id: d.owner_id,
        honeypot: d.honeypot,
        per_address_per_hour: d.per_address_per_hour,
        per_form_per_hour: d.per_form_per_hour,
        enabled: d.enabled,
    }
}

/// Every capture form.
#[utoipa::path(
    tag = "capture",
    responses((status = 200, description = "Capture forms", body = CaptureFormList), Unauthorized, Forbidden)
)]
#[get("/admin/capture-forms")]
pub async fn list_capture_forms(state: web::Data<AppState>, auth: Auth) -> ApiResult<HttpResponse> {
    let rows = run_op(&state, &auth, |c, ctx| Ok(app::list(c, ctx)?)).await?;
    Ok(HttpResponse::Ok().json(CaptureFormList {
        items: rows.into_iter().map(CaptureForm::from).collect(),
    }))
}

/// Create a capture form: where leads come from (origins), how form fields map to lead
/// fields, the source / campaign, and the limits.
#[utoipa::path(
    tag = "capture",
    request_body = CaptureFormInput,
    responses(
        (status = 201, description = "Created", body = CaptureForm, headers(("Location" = String))),
        BadRequest, Unauthorized, Forbidden, BodyErrors
    )
)]
#[post("/admin/capture-forms")]
pub async fn create_capture_form(
    state: web::Data<AppState>,
    auth: Auth,
    body: ValidJson<CaptureFormInput>,
) -> ApiResult<HttpResponse> {
    let dto = body.value?;
    let row = run_op(&state, &auth, move |c, ctx| Ok(app::create(c, ctx, input(dto))?)).await?;
    let id = row.id;
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/api/v1/admin/capture-forms/{id}")))
        .insert_header(("ETag", format!("\"{}\"", row.version)))
        .json(CaptureForm::from(row)))
}

/// One capture form.
#[utoipa::path(
    tag = "capture",
    params(("id" = Uuid, Path, description = "Capture form id")),
    responses((status = 200, description = "The form", body = CaptureForm, headers(("ETag" = String))), ReadErrors)
)]
#[get("/admin/capture-forms/{id}")]
pub async fn get_capture_form(state: web::Data<AppState>, auth: Auth, id: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    let id = id.into_inner();
    let row = run_op(&state, &auth, move |c, ctx| Ok(app::get(c, ctx, id)?)).await?;
    let v = row.version;
    Ok(with_etag(&CaptureForm::from(row), v))
}

/// Replace a capture form's settings (a missing `form_key` keeps the current key).
#[utoipa::path(
    tag = "capture",
    params(("id" = Uuid, Path, description = "Capture form id"), ("If-Match" = String, Header, description = "ETag")),
    request_body = CaptureFormInput,
    responses(
        (status = 200, description = "Replaced", body = CaptureForm, headers(("ETag" = String))),
        ReadErrors, VersionErrors, BodyErrors
    )
)]
#[put("/admin/capture-forms/{id}")]
pub async fn replace_capture_form(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<Uuid>,
    if_match: RequiredIfMatch,
    body: ValidJson<CaptureFormInput>,
) -> ApiResult<HttpResponse> {
    let (id, expected, dto) = (id.into_inner(), if_match.0.expected(), body.value?);
    let row = run_op(&state, &auth, move |c, ctx| {
        Ok(app::replace(c, ctx, id, input(dto), expected)?)
    })
    .await?;
    let v = row.version;
    Ok(with_etag(&CaptureForm::from(row), v))
}

/// Delete a capture form; its key stops working at once.
#[utoipa::path(
    tag = "capture",
    params(("id" = Uuid, Path, description = "Capture form id")),
    responses((status = 204, description = "Deleted"), ReadErrors)
)]
#[delete("/admin/capture-forms/{id}")]
pub async fn delete_capture_form(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let id = id.into_inner();
    run_op(&state, &auth, move |c, ctx| Ok(app::delete(c, ctx, id)?)).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The latest submissions of a form (100) and what each came to.
#[utoipa::path(
    tag = "capture",
    params(("id" = Uuid, Path, description = "Capture form id")),
    responses((status = 200, description = "Submissions", body = CaptureSubmissionList), ReadErrors)
)]
#[get("/admin/capture-forms/{id}/submissions")]
pub async fn list_capture_submissions(
    state: web::Data<AppState>,
    auth: Auth,
    id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let id = id.into_inner();
    let rows = run_op(&state, &auth, move |c, ctx| Ok(app::submissions(c, ctx, id, 100)?)).await?;
    Ok(HttpResponse::Ok().json(CaptureSubmissionList {
        items: rows
            .into_iter()
            .map(|r| CaptureSubmission {
                id: r.id,
                received_at: r.received_at,
                client: r.client,
                outcome: r.outcome,
                lead_id: r.lead_id,
            })
            .collect(),
    }))
}

fn parse_body(req: &HttpRequest, body: &[u8]) -> ApiResult<Map<String, Value>> {
    let ctype = req
        .headers()
        .get("Content-Type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if ctype.starts_with("application/json") {
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(m)) => Ok(m),
            _ => Err(ApiError::bad_request(
                "malformed_json",
                "send a JSON object of form fields",
            )),
        }
    } else if ctype.starts_with("application/x-www-form-urlencoded") {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
            .map_err(|_| ApiError::bad_request("invalid_body", "not a form-encoded body"))?;
        Ok(pairs.into_iter().map(|(k, v)| (k, Value::String(v))).collect())
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send application/json or application/x-www-form-urlencoded",
        ))
    }
}

fn refused(r: Refused) -> ApiError {
    match r {
        Refused::NoForm | Refused::Failed(crm_app::AppError::Forbidden(_)) => ApiError::not_found("form"),
        Refused::Origin => ApiError::new(
            StatusCode::FORBIDDEN,
            "origin_not_allowed",
            "this form does not accept submissions from this page",
        ),
        Refused::RateLimited { retry_after } => ApiError::rate_limited(u64::try_from(retry_after).unwrap_or(60)),
        Refused::Invalid(fields) => ApiError::validation(
            fields
                .into_iter()
                .map(|(f, m)| crm_domain::validation::FieldError::new(f, "invalid", m))
                .collect(),
        ),
        Refused::Failed(e) => e.into(),
    }
}

/// Submit a website form: a lead is created through the same operation as the API
/// (validation, duplicate detection, then the assignment rules), as the form's owner.
/// Every accepted submission gets the same answer, whether it created a lead, matched
/// an open one (nothing created) or filled the honeypot.
#[utoipa::path(
    tag = "capture",
    params(("form_key" = String, Path, description = "The form's key")),
    request_body(content(
        (CaptureBody = "application/json"),
        (CaptureBody = "application/x-www-form-urlencoded")
    )),
    responses(
        (status = 202, description = "Received", body = CaptureReceived),
        BadRequest,
        (status = 403, description = "The page's origin is not allowed (`origin_not_allowed`)", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such form (`not_found`)", body = crate::error::Problem, content_type = "application/problem+json"),
        BodyErrors,
        (status = 429, description = "Too many submissions from this address or to this form (`rate_limited`); see `Retry-After`", body = crate::error::Problem, content_type = "application/problem+json")
    ),
    security(())
)]
#[post("/capture/{form_key}")]
pub async fn capture(
    state: web::Data<AppState>,
    req: HttpRequest,
    key: web::Path<String>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    if body.len() > MAX_BODY {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("a submission is at most {MAX_BODY} bytes"),
        ));
    }
    let values = parse_body(&req, &body)?;
    let key = key.into_inner();
    let client = client_ip(&req, state.config.trust_proxy);
    let origin = req
        .headers()
        .get("Origin")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let clock = state.clock.clone();
    let o = origin.clone();
    let submitted = state
        .db
        .run(move |c| {
            // Counted in a transaction of its own: a refused submission still counts.
            let form = c.transaction(|c| {
                let form = app::open_form(c, &key, o.as_deref()).map_err(refused)?;
                app::count(c, &form, &client, clock.now()).map_err(refused)?;
                Ok::<_, ApiError>(form)
            })?;
            c.transaction(|c| app::submit(c, &clock, &form, &client, &values).map_err(refused))
        })
        .await?;
    if let Submitted::Created(id) = submitted {
        tracing::info!(lead = %id, "lead captured");
    }
    let mut resp = HttpResponse::Accepted();
    if let Some(o) = origin {
        resp.insert_header(("Access-Control-Allow-Origin", o))
            .insert_header(("Vary", "Origin"));
    }
    Ok(resp.json(CaptureReceived {
        status: "received".into(),
    }))
}
