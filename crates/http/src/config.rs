//! Settings of the HTTP layer (the server binary fills them from env and flags).

use std::time::Duration;

use crm_db::repo::auth::ThrottleRule;

/// HTTP-layer settings.
#[derive(Clone)]
pub struct HttpConfig {
    pub jwt_secret: Vec<u8>,
    pub jwt_issuer: String,
    pub jwt_audience: String,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    /// How long a rotated refresh token may be presented again by a client retrying a
    /// refresh whose answer was lost (mobile networks); later re-use revokes the session.
    pub refresh_reuse_grace: Duration,
    /// Use `X-Forwarded-For` / `Forwarded` for the client address (behind a proxy).
    pub trust_proxy: bool,
    /// Failures of one account from one address: the lock after them grows with each
    /// further failure (progressive delay).
    pub email_throttle: ThrottleRule,
    /// Failures from one address over all accounts.
    pub ip_throttle: ThrottleRule,
    /// Failures of one account over all addresses (a distributed guess); the account's
    /// known addresses are not held by this lock.
    pub account_throttle: ThrottleRule,
    /// Largest accepted request body.
    pub body_limit: usize,
    /// How long cached principals live without an invalidation.
    pub auth_cache_ttl: Duration,
    /// Exports that may run at once (each holds its document in memory).
    pub export_slots: usize,
    /// Rows an export may hold; a larger result answers 422 `export_too_large`.
    pub export_max_rows: usize,
    /// How long an export waits for a free slot before answering 429.
    pub export_wait: Duration,
    /// Report queries that may run at once; more wait up to `report_wait`.
    pub report_slots: usize,
    /// How long a report waits for a free slot before answering 429 `report_busy`.
    pub report_wait: Duration,
    /// Bearer token that opens `/metrics` on the API listener; without it `/metrics`
    /// is served there to nobody (use a separate metrics listener instead).
    pub metrics_token: Option<String>,
}

impl std::fmt::Debug for HttpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret never reaches a log.
        f.debug_struct("HttpConfig")
            .field("jwt_secret", &"<redacted>")
            .field("jwt_issuer", &self.jwt_issuer)
            .field("jwt_audience", &self.jwt_audience)
            .field("access_ttl", &self.access_ttl)
            .field("refresh_ttl", &self.refresh_ttl)
            .field("trust_proxy", &self.trust_proxy)
            .field("body_limit", &self.body_limit)
            .field("export_slots", &self.export_slots)
            .field("report_slots", &self.report_slots)
            .field("metrics_token", &self.metrics_token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl HttpConfig {
    /// Defaults around a given secret.
    pub fn with_secret(secret: impl Into<Vec<u8>>) -> Self {
        HttpConfig {
            jwt_secret: secret.into(),
            jwt_issuer: "crm".into(),
            jwt_audience: "crm-api".into(),
            access_ttl: Duration::from_secs(15 * 60),
            refresh_ttl: Duration::from_secs(30 * 24 * 3600),
            refresh_reuse_grace: Duration::from_secs(30),
            trust_proxy: false,
            email_throttle: ThrottleRule {
                max_failures: 5,
                window: chrono::Duration::hours(1),
                lockout: chrono::Duration::minutes(1),
                max_lockout: chrono::Duration::hours(1),
            },
            ip_throttle: ThrottleRule {
                max_failures: 50,
                window: chrono::Duration::minutes(15),
                lockout: chrono::Duration::minutes(15),
                max_lockout: chrono::Duration::hours(1),
            },
            account_throttle: ThrottleRule {
                max_failures: 20,
                window: chrono::Duration::minutes(15),
                lockout: chrono::Duration::minutes(15),
                max_lockout: chrono::Duration::hours(1),
            },
            body_limit: 1024 * 1024,
            auth_cache_ttl: Duration::from_secs(60),
            export_slots: 2,
            export_max_rows: 100_000,
            export_wait: Duration::from_secs(15),
            report_slots: 4,
            report_wait: Duration::from_secs(10),
            metrics_token: None,
        }
    }
}
