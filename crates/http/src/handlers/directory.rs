//! Read-only organisation directory for everyone: users (within `users:read` scope) and
//! the team tree.

use actix_web::{get, web, HttpResponse};
use crm_db::repo::{teams, users};
use crm_db::sql::ListSpec;
use crm_domain::access::Action;

use super::{BadRequest, Forbidden, Unauthorized};
use crate::auth::Auth;
use crate::dto::admin::{Team, TeamList, UserListQuery, UserSummary};
use crate::dto::Page;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Users the caller may see (owner pickers, assignment).
#[utoipa::path(
    tag = "organisation",
    params(UserListQuery),
    responses((status = 200, description = "A page of users", body = Page<UserSummary>), BadRequest, Unauthorized, Forbidden)
)]
#[get("/users")]
pub async fn list_users(
    state: web::Data<AppState>,
    auth: Auth,
    q: web::Query<UserListQuery>,
) -> ApiResult<HttpResponse> {
    let scope = auth.filter("users", Action::Read)?;
    let q = q.into_inner();
    let spec = ListSpec::new(
        users::SORT_COLUMNS,
        users::DEFAULT_SORT,
        q.sort.as_deref(),
        q.cursor.as_deref(),
        q.limit,
        "users",
    )?;
    let filter = users::UserFilter {
        team_id: q.team_id,
        is_active: q.is_active,
        role: q.role,
        q: q.q,
    };
    let page = state
        .db
        .run(move |c| users::list(c, &scope, &filter, &spec).map_err(ApiError::from))
        .await?;
    Ok(HttpResponse::Ok().json(Page::of(page, UserSummary::from)))
}

/// The whole team tree (flat; build the tree with `parent_id`).
#[utoipa::path(
    tag = "organisation",
    responses((status = 200, description = "Every team", body = TeamList), Unauthorized, Forbidden)
)]
#[get("/teams")]
pub async fn list_teams(state: web::Data<AppState>, auth: Auth) -> ApiResult<HttpResponse> {
    auth.require("teams", Action::Read)?;
    let rows = state.db.run(|c| teams::list(c).map_err(ApiError::from)).await?;
    Ok(HttpResponse::Ok().json(TeamList {
        items: rows.into_iter().map(Team::from).collect(),
    }))
}
