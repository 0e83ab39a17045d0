//! Shared application state.

use std::sync::Arc;

use crm_db::Db;

use crate::auth::{AuthCache, JwtKeys};
use crate::config::HttpConfig;
use crate::metrics::Metrics;

/// State shared by every worker; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub config: Arc<HttpConfig>,
    pub jwt: Arc<JwtKeys>,
    pub auth_cache: Arc<AuthCache>,
    pub metrics: Arc<Metrics>,
    pub fields: Arc<crate::custom::FieldCache>,
    /// Time as the business rules see it (approval due times, escalation, quote expiry,
    /// receivable ageing); tests move it forward.
    pub clock: Clock,
    /// Slots for running exports ([`HttpConfig::export_slots`]).
    pub exports: Arc<tokio::sync::Semaphore>,
    /// Where report queries run: a read replica (`CRM_REPORTS_DATABASE_URL`) or the primary.
    pub reports_db: Db,
    /// Slots for running report queries ([`HttpConfig::report_slots`]).
    pub reports: Arc<tokio::sync::Semaphore>,
    /// More Prometheus text for `/metrics` (the background worker of this process).
    pub extra_metrics: Option<Arc<dyn Fn() -> String + Send + Sync>>,
}

pub use crm_app::clock::{Clock, BUSINESS_UTC_OFFSET_HOURS};

impl AppState {
    pub fn new(db: Db, config: HttpConfig) -> Self {
        let jwt = Arc::new(JwtKeys::new(&config));
        let auth_cache = Arc::new(AuthCache::new(config.auth_cache_ttl));
        let exports = Arc::new(tokio::sync::Semaphore::new(config.export_slots.max(1)));
        let reports = Arc::new(tokio::sync::Semaphore::new(config.report_slots.max(1)));
        AppState {
            reports_db: db.clone(),
            reports,
            db,
            config: Arc::new(config),
            jwt,
            auth_cache,
            metrics: Arc::new(Metrics::default()),
            fields: Arc::new(crate::custom::FieldCache::new(std::time::Duration::from_secs(60))),
            clock: Clock::default(),
            exports,
            extra_metrics: None,
        }
    }

    /// Drops cached org and field data (after a change here or a NOTIFY from elsewhere).
    pub fn invalidate_caches(&self) {
        self.auth_cache.invalidate_all();
        self.fields.invalidate();
    }
}
