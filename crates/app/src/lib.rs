//! Business operations of the CRM, one function per use case, callable from HTTP
//! handlers, background workers, rules and importers alike. Each takes a [`Ctx`] (who
//! acts, with what permissions, at what time) and runs inside the caller's transaction;
//! failures are typed ([`AppError`]).
//!
//! Dependencies point one way: server -> http -> app -> db -> domain.

pub mod accounts;
pub mod activities;
pub mod approvals;
pub mod capture;
pub mod channels;
pub mod checks;
pub mod clock;
pub mod contacts;
pub mod context;
pub mod contracts;
pub mod custom;
pub mod error;
pub mod fields;
pub mod leads;
pub mod notifications;
pub mod numbering;
pub mod opportunities;
pub mod org;
pub mod owners;
pub mod payments;
pub mod pipelines;
pub mod products;
pub mod quotes;
pub mod record;
pub mod recycle;
pub mod reports;
pub mod rules;
pub mod settings;
pub mod shaping;
pub mod tasks;
pub mod tiering;
pub mod webhooks;
pub mod write;

pub use clock::Clock;
pub use context::{ActorKind, Ctx};
pub use error::{AppError, AppResult};
