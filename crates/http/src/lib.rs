//! HTTP layer of the CRM: routes, handlers, DTOs, extractors, errors and the OpenAPI
//! document. `routes::app` builds the actix `App` used by the server and the tests.

pub mod auth;
pub mod config;
pub mod custom;
pub mod dto;
pub mod error;
pub mod extract;
pub mod handlers;
pub mod history;
pub mod idempotency;
pub mod listing;
pub mod meta;
pub mod metrics;
pub mod middleware;
pub mod openapi;
pub mod routes;
pub mod state;
pub mod views;

pub use config::HttpConfig;
pub use error::ApiError;
pub use state::AppState;
