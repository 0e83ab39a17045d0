//! Who may own a record.

use crm_db::repo::users;
use crm_domain::access::Action;
use diesel::PgConnection;
use uuid::Uuid;

use crate::context::Ctx;
use crate::error::{AppError, AppResult};

/// Checks who may own a record the actor creates or reassigns, and returns the owner's
/// team (which the record takes). Another owner than the actor needs `<resource>:assign`
/// reaching that owner.
pub fn resolve_owner(c: &mut PgConnection, ctx: &Ctx, resource: &str, owner_id: Uuid) -> AppResult<Option<Uuid>> {
    let owner = users::find(c, owner_id)?
        .filter(|u| u.is_active)
        .ok_or_else(|| AppError::field("owner_id", "not_found", "no active user with this id"))?;
    if owner_id != ctx.user_id() {
        let scope = ctx.require(resource, Action::Assign)?;
        if !ctx.principal.reaches(scope, owner_id, owner.team_id) {
            return Err(AppError::Forbidden(format!(
                "{resource}:assign does not reach this owner's team"
            )));
        }
    }
    Ok(owner.team_id)
}
