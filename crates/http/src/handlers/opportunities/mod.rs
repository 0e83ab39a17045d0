//! `/api/v1/opportunities`: deals, stage moves with entry criteria, checklist, outputs,
//! stage history and timeline.

use actix_web::{delete, get, patch, post, put, web, HttpRequest, HttpResponse};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use crm_db::repo::accounts::Liveness;
use crm_db::repo::opportunities::{self as opps, OpportunityFilter, OpportunityRow};
use crm_db::repo::pipelines;
use crm_db::repo::timeline as feed_repo;
use crm_domain::access::Action;
use diesel::prelude::*;
use uuid::Uuid;

use crate::handlers::{
    changed_record, created_record, run_op, BadRequest, BodyErrors, Conflict, ExportBusy, Forbidden,
    PreconditionFailed, ReadErrors, Unauthorized, Unprocessable, VersionErrors,
};
use crm_app::opportunities;

use crate::auth::Auth;
use crate::custom::{self, Shaper};
use crate::dto::accounts::HistoryQuery;
use crate::dto::accounts::{AuditEntry, CreateQuery};
use crate::dto::opportunities::{
    Checklist, ChecklistItem, ChecklistStage, CreateOpportunity, CreateOutput, MoveStage, Opportunity,
    OpportunityListQuery, Output, OutputList, OutputStatus, SetTask, StageHistory, StageVisit, TimelineEntry,
    UpdateOpportunity,
};
use crate::dto::pipelines::{Stage, StageItem};
use crate::dto::{Page, SyncPage};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ExportQuery, IdempotencyKey, ListQuery, OptionalIfMatch, RequiredIfMatch, ValidJson};
use crate::idempotency::{self, Outcome};
use crate::listing::{self, ExportOptions};
use crate::state::AppState;
use crate::views::with_contacts;

const RES: &str = "opportunities";

fn one(c: &mut PgConnection, row: OpportunityRow) -> ApiResult<Opportunity> {
    Ok(with_contacts(c, vec![row])?.remove(0))
}

mod checklist;
mod feed;
mod outputs;
mod records;
mod stages;

pub use checklist::*;
pub use feed::*;
pub use outputs::*;
pub use records::*;
pub use stages::*;
