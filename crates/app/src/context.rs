//! Who performs an operation, with what permissions, and at what time.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use crm_db::repo::audit;
use crm_domain::access::{Action, Principal, Scope, ScopeFilter};
use uuid::Uuid;

use crate::clock::Clock;
use crate::error::{AppError, AppResult};

/// What kind of actor an operation runs for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActorKind {
    /// A person, signed in with a token.
    User,
    /// An integration's API key (acting with one role of its service user).
    ApiKey,
    /// An automation rule, acting as its configured user.
    Rule { rule_id: Uuid },
    /// The system itself: scheduled work, consequences of other operations.
    System,
}

/// The context every operation takes: the acting principal (permissions, data scopes,
/// field access), what kind of actor it is, the request it serves and the clock.
#[derive(Clone)]
pub struct Ctx {
    pub principal: Arc<Principal>,
    pub kind: ActorKind,
    pub request_id: Option<String>,
    pub clock: Clock,
}

impl Ctx {
    /// A signed-in user or an API key (told apart by the principal).
    pub fn user(principal: Arc<Principal>, request_id: Option<String>, clock: Clock) -> Ctx {
        let kind = if principal.api_key_id.is_some() {
            ActorKind::ApiKey
        } else {
            ActorKind::User
        };
        Ctx {
            principal,
            kind,
            request_id,
            clock,
        }
    }

    /// A rule acting as `principal` (its configured user).
    pub fn rule(rule_id: Uuid, principal: Arc<Principal>, clock: Clock) -> Ctx {
        Ctx {
            principal,
            kind: ActorKind::Rule { rule_id },
            request_id: None,
            clock,
        }
    }

    /// The system: every permission, every record, no user.
    pub fn system(clock: Clock) -> Ctx {
        Ctx {
            principal: Arc::new(Principal::system()),
            kind: ActorKind::System,
            request_id: None,
            clock,
        }
    }

    /// The same actor and clock acting as the system (for consequences an operation
    /// has beyond the caller's own reach, e.g. a signed contract winning its deal).
    pub fn as_system(&self) -> Ctx {
        Ctx {
            principal: Arc::new(Principal::system()),
            kind: ActorKind::System,
            request_id: self.request_id.clone(),
            clock: self.clock.clone(),
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    pub fn today(&self) -> NaiveDate {
        self.clock.today()
    }

    /// The user id recorded for what this actor creates (nil for the system).
    pub fn user_id(&self) -> Uuid {
        self.principal.user_id
    }

    /// Who is writing, for audit entries and events.
    pub fn actor(&self) -> audit::Actor {
        audit::Actor {
            user_id: self.principal.user_id,
            api_key_id: self.principal.api_key_id,
            rule_id: match self.kind {
                ActorKind::Rule { rule_id } => Some(rule_id),
                _ => None,
            },
            request_id: self.request_id.clone(),
        }
    }

    /// The caller's scope for `resource:action`, or `Forbidden`.
    pub fn require(&self, resource: &str, action: Action) -> AppResult<Scope> {
        self.principal
            .scope(resource, action)
            .ok_or_else(|| AppError::Forbidden(format!("missing permission {resource}:{action}")))
    }

    /// The SQL scope filter for `resource:action`, or `Forbidden`.
    pub fn filter(&self, resource: &str, action: Action) -> AppResult<ScopeFilter> {
        Ok(self.principal.filter(self.require(resource, action)?))
    }

    /// The read scope for `resource` (own records when the permission is missing).
    pub fn read_scope(&self, resource: &str) -> ScopeFilter {
        self.principal
            .filter(self.principal.scope(resource, Action::Read).unwrap_or(Scope::Own))
    }
}
