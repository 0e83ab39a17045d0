//! Black-box tests of the HTTP API against the real Postgres: each test has its own
//! database cloned from a migrated template, so they run in parallel.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod accounts;
mod activities;
mod admin;
mod auth;
mod capture;
mod channels;
mod contacts;
mod contracts;
mod deliveries;
mod errors;
mod events;
mod exports;
mod fields;
mod integrity;
mod leads;
mod notifications;
mod ops;
mod paging;
mod pipeline;
mod q2c;
mod quotes;
mod recycle;
mod reports;
mod rules;
mod scope;
mod tiering;
mod webhooks;

pub use crm_test_support::app::start;
