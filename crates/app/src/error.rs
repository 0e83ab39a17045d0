//! What an operation can fail with. The HTTP layer turns each variant into
//! problem+json (`crm_http::error`); code that reacts to a failure matches the variant.

use crm_domain::pipeline::Criterion;
use crm_domain::FieldError;
use serde_json::{Map, Value};
use uuid::Uuid;

pub type AppResult<T> = Result<T, AppError>;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// No such record, or outside the actor's data scope (the two look the same).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The actor lacks the permission.
    #[error("{0}")]
    Forbidden(String),
    /// Input fields are invalid.
    #[error("one or more fields are invalid")]
    Validation(Vec<FieldError>),
    /// The operation conflicts with the record's state or with other records (409).
    #[error("{detail}")]
    Conflict {
        code: &'static str,
        detail: String,
        extra: Map<String, Value>,
    },
    /// A business rule refuses the operation (422).
    #[error("{detail}")]
    Rule {
        code: &'static str,
        detail: String,
        extra: Map<String, Value>,
    },
    /// A stage's entry criteria are not met (422 `stage_criteria_unmet`).
    #[error("{} entry criteria of stage `{stage_code}` are not met", unmet.len())]
    CriteriaUnmet {
        stage_id: Uuid,
        stage_code: String,
        unmet: Vec<Criterion>,
    },
    /// A status machine refuses the action in the record's status (409
    /// `invalid_transition`, naming the current status).
    #[error(transparent)]
    Transition(#[from] crm_domain::status::InvalidTransition),
    /// `If-Match` named an older version (412).
    #[error("the record has changed (current version {current})")]
    Stale { current: i32 },
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
    /// A broken invariant; says nothing to the client.
    #[error("{0}")]
    Internal(String),
}

impl AppError {
    /// One invalid field.
    pub fn field(field: &str, code: &str, message: impl Into<String>) -> AppError {
        AppError::Validation(vec![FieldError::new(field, code, message)])
    }

    /// Whether the error is about the request (what it asks, who asks) rather than a
    /// failure of the database or the server.
    pub fn is_client_error(&self) -> bool {
        !matches!(self, AppError::Db(_) | AppError::Internal(_))
    }

    pub fn internal(detail: impl Into<String>) -> AppError {
        AppError::Internal(detail.into())
    }

    pub fn forbidden(detail: impl Into<String>) -> AppError {
        AppError::Forbidden(detail.into())
    }

    pub fn conflict(code: &'static str, detail: impl Into<String>) -> AppError {
        AppError::Conflict {
            code,
            detail: detail.into(),
            extra: Map::new(),
        }
    }

    pub fn rule(code: &'static str, detail: impl Into<String>) -> AppError {
        AppError::Rule {
            code,
            detail: detail.into(),
            extra: Map::new(),
        }
    }

    /// Field errors renamed under `prefix` (`opportunity.` + `amount`), for an operation
    /// run as part of another one.
    pub fn prefixed(mut self, prefix: &str) -> AppError {
        if let AppError::Validation(errs) = &mut self {
            for e in errs.iter_mut() {
                e.field = format!("{prefix}{}", e.field);
            }
        }
        self
    }

    /// Adds an extension member to a conflict or rule refusal.
    pub fn with_extra(mut self, key: &str, value: Value) -> AppError {
        if let AppError::Conflict { extra, .. } | AppError::Rule { extra, .. } = &mut self {
            extra.insert(key.to_owned(), value);
        }
        self
    }
}
