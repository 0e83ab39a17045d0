//! Every error leaves as RFC 9457 `application/problem+json` with a stable `code`.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use crm_domain::listing::ListError;
use crm_domain::FieldError;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// A problem details document (RFC 9457).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// URI reference identifying the problem type.
    #[serde(rename = "type")]
    pub problem_type: String,
    /// Short, human-readable summary of the problem type.
    pub title: String,
    /// HTTP status code.
    pub status: u16,
    /// Explanation specific to this occurrence.
    pub detail: String,
    /// Stable machine-readable code, e.g. `validation_failed`, `duplicate`, `stale_version`.
    pub code: String,
    /// Per-field validation errors (for `validation_failed`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldErrorDto>,
    /// The existing record a duplicate collides with (`duplicate`): its `id`, and for
    /// accounts and leads `name` and `matched_on`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub existing: Option<ExistingRecord>,
    /// Every entry criterion not met (`stage_criteria_unmet`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(no_recursion)]
    pub unmet: Option<Vec<crate::dto::pipelines::Criterion>>,
    /// The stage whose criteria are unmet (`stage_criteria_unmet`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage_id: Option<uuid::Uuid>,
    /// The record's status when an action does not apply to it (`invalid_transition`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_status: Option<String>,
    /// What installments add up to (`plan_total_mismatch`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub planned: Option<String>,
    /// The contract amount they must add up to (`plan_total_mismatch`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub contract_amount: Option<String>,
    /// What is left (`exceeds_installment`, `exceeds_contract`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub remaining: Option<String>,
    /// The export row limit (`export_too_large`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_rows: Option<i64>,
    /// The approval step nobody can approve (`no_approver`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<i32>,
    /// The caller's decision and the approval's status (`already_decided`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval_status: Option<String>,
}

/// The record a duplicate collides with.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ExistingRecord {
    pub id: uuid::Uuid,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// What matched: e.g. `name`, `phone`, `email`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matched_on: Option<String>,
}

/// One invalid field.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FieldErrorDto {
    /// Dotted path of the field, e.g. `email` or `custom.budget_source`.
    pub field: String,
    /// Stable code, e.g. `required`, `too_long`, `invalid_format`, `not_found`.
    pub code: String,
    pub message: String,
}

impl From<FieldError> for FieldErrorDto {
    fn from(e: FieldError) -> Self {
        FieldErrorDto {
            field: e.field,
            code: e.code,
            message: e.message,
        }
    }
}

/// The internal cause of a 500, kept in response extensions for the request log.
#[derive(Debug, Clone)]
pub struct InternalCause(pub String);

/// An error answered to the client. Boxed so that `Result<T, ApiError>` stays small.
#[derive(Debug)]
pub struct ApiError(Box<ErrorDetails>);

/// What an [`ApiError`] carries.
#[derive(Debug)]
pub struct ErrorDetails {
    pub status: StatusCode,
    pub code: &'static str,
    pub detail: String,
    pub errors: Vec<FieldError>,
    pub extra: Map<String, Value>,
    pub retry_after: Option<u64>,
    /// The `Allow` header of a 405.
    pub allow: Option<String>,
    /// Never sent to the client; logged with the request id.
    pub cause: Option<String>,
}

impl std::ops::Deref for ApiError {
    type Target = ErrorDetails;
    fn deref(&self) -> &ErrorDetails {
        &self.0
    }
}

impl std::ops::DerefMut for ApiError {
    fn deref_mut(&mut self) -> &mut ErrorDetails {
        &mut self.0
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.code, self.detail)
    }
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        ApiError(Box::new(ErrorDetails {
            status,
            code,
            detail: detail.into(),
            errors: Vec::new(),
            extra: Map::new(),
            retry_after: None,
            allow: None,
            cause: None,
        }))
    }

    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, detail)
    }

    pub fn unauthorized(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, detail)
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", format!("{what} not found"))
    }

    pub fn conflict(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, detail)
    }

    pub fn stale(current: i32) -> Self {
        Self::new(
            StatusCode::PRECONDITION_FAILED,
            "stale_version",
            format!("the record has changed (current version {current}); reload and retry"),
        )
    }

    pub fn unprocessable(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, detail)
    }

    /// 422 with per-field errors.
    pub fn validation(errors: Vec<FieldError>) -> Self {
        let mut e = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "one or more fields are invalid",
        );
        e.errors = errors;
        e
    }

    /// 422 for a single field.
    pub fn field(field: &str, code: &str, message: impl Into<String>) -> Self {
        Self::validation(vec![FieldError::new(field, code, message)])
    }

    pub fn too_many_requests(retry_after: u64) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_attempts",
            "too many failed attempts; try again later",
        );
        e.retry_after = Some(retry_after.max(1));
        e
    }

    /// 429 `rate_limited`: over a request limit; retry after `retry_after` seconds.
    pub fn rate_limited(retry_after: u64) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many submissions; try again later",
        );
        e.retry_after = Some(retry_after.max(1));
        e
    }

    pub fn internal(cause: impl Into<String>) -> Self {
        let mut e = Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "an unexpected error occurred; it has been logged",
        );
        e.cause = Some(cause.into());
        e
    }

    /// The methods a 405 lists in `Allow`.
    pub fn with_allow(mut self, methods: String) -> Self {
        self.0.allow = Some(methods);
        self
    }

    pub fn with_extra(mut self, key: &str, value: Value) -> Self {
        self.extra.insert(key.to_owned(), value);
        self
    }

    fn title(&self) -> &'static str {
        self.status.canonical_reason().unwrap_or("Error")
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut body = serde_json::to_value(Problem {
            problem_type: format!("/problems/{}", self.code.replace('_', "-")),
            title: self.title().to_owned(),
            status: self.status.as_u16(),
            detail: self.detail.clone(),
            code: self.code.to_owned(),
            errors: self.errors.iter().cloned().map(FieldErrorDto::from).collect(),
            existing: None,
            unmet: None,
            stage_id: None,
            current_status: None,
            planned: None,
            contract_amount: None,
            remaining: None,
            max_rows: None,
            step: None,
            task_status: None,
            approval_status: None,
        })
        .unwrap_or(Value::Null);
        if let Value::Object(map) = &mut body {
            for (k, v) in &self.extra {
                // RFC 9457's own members are never overwritten by an extension.
                if !matches!(k.as_str(), "type" | "title" | "status" | "detail" | "code" | "errors") {
                    map.insert(k.clone(), v.clone());
                }
            }
        }
        let mut resp = HttpResponse::build(self.status);
        resp.insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        ));
        if let Some(secs) = self.retry_after {
            resp.insert_header((header::RETRY_AFTER, secs.to_string()));
        }
        if let Some(allow) = &self.allow {
            resp.insert_header((header::ALLOW, allow.as_str()));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            resp.insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
        }
        let mut resp = resp.body(body.to_string());
        if let Some(cause) = &self.cause {
            resp.extensions_mut().insert(InternalCause(cause.clone()));
        }
        resp
    }
}

/// An operation's typed failure as problem+json, with the codes the API has always
/// used.
impl From<crm_app::AppError> for ApiError {
    fn from(e: crm_app::AppError) -> Self {
        use crm_app::AppError as E;
        match e {
            E::NotFound(what) => ApiError::not_found(what),
            E::Forbidden(msg) => ApiError::forbidden(msg),
            E::Validation(errors) => ApiError::validation(errors),
            E::Conflict { code, detail, extra } => {
                let mut err = ApiError::conflict(code, detail);
                err.extra = extra;
                err
            }
            E::Rule { code, detail, extra } => {
                let mut err = ApiError::unprocessable(code, detail);
                err.extra = extra;
                err
            }
            E::CriteriaUnmet {
                stage_id,
                stage_code,
                unmet,
            } => {
                let listed: Vec<crate::dto::pipelines::Criterion> = unmet
                    .iter()
                    .filter_map(crate::dto::pipelines::Criterion::from_domain)
                    .collect();
                ApiError::unprocessable(
                    "stage_criteria_unmet",
                    format!("{} entry criteria of stage `{stage_code}` are not met", listed.len()),
                )
                .with_extra("unmet", serde_json::to_value(listed).unwrap_or_default())
                .with_extra("stage_id", serde_json::json!(stage_id))
            }
            E::Transition(t) => crate::handlers::transition_error(t),
            E::Stale { current } => ApiError::stale(current),
            E::Db(e) => ApiError::from(e),
            E::Internal(msg) => ApiError::internal(msg),
        }
    }
}

impl From<DieselError> for ApiError {
    fn from(e: DieselError) -> Self {
        match &e {
            DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => ApiError::conflict(
                "conflict",
                format!(
                    "a record with the same unique value already exists{}",
                    info.constraint_name().map(|c| format!(" ({c})")).unwrap_or_default()
                ),
            ),
            DieselError::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, _) => {
                ApiError::unprocessable("invalid_reference", "a referenced record does not exist")
            }
            DieselError::DatabaseError(DatabaseErrorKind::CheckViolation, info) => ApiError::unprocessable(
                "constraint_violation",
                format!(
                    "the change violates a data rule{}",
                    info.constraint_name().map(|c| format!(" ({c})")).unwrap_or_default()
                ),
            ),
            DieselError::DatabaseError(DatabaseErrorKind::SerializationFailure, _) => {
                ApiError::conflict("concurrent_update", "a concurrent change conflicted; retry")
            }
            // Postgres broke a lock cycle by rolling this transaction back (40P01, which
            // diesel reports by message only): nothing was written, a retry succeeds.
            DieselError::DatabaseError(_, info) if info.message().starts_with("deadlock detected") => {
                ApiError::conflict("concurrent_update", "a concurrent change conflicted; retry")
            }
            _ => ApiError::internal(format!("database: {e}")),
        }
    }
}

impl From<crm_db::DbError> for ApiError {
    fn from(e: crm_db::DbError) -> Self {
        match e {
            crm_db::DbError::Pool(_) | crm_db::DbError::Busy => {
                let mut err = ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "service_unavailable",
                    "the service is busy; retry shortly",
                );
                err.retry_after = Some(1);
                err.cause = Some(e.to_string());
                err
            }
            crm_db::DbError::Task(_) => ApiError::internal(e.to_string()),
        }
    }
}

impl From<ListError> for ApiError {
    fn from(e: ListError) -> Self {
        let code = match e {
            ListError::UnknownSortField { .. } | ListError::DuplicateSortField(_) => "invalid_sort",
            ListError::InvalidLimit => "invalid_limit",
            ListError::InvalidCursor | ListError::CursorMismatch => "invalid_cursor",
        };
        ApiError::bad_request(code, e.to_string())
    }
}

/// `Result` alias for handlers.
pub type ApiResult<T> = Result<T, ApiError>;
