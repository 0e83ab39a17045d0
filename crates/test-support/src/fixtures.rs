//! A small organisation: a company with two regions, sales teams, and a user for every
//! built-in role, so data-scope rules can be exercised.

use std::sync::OnceLock;

use crm_db::repo::{roles, teams, users};
use diesel::PgConnection;
use uuid::Uuid;

/// Password of every fixture user.
pub const PASSWORD: &str = "password123";

fn password_hash() -> String {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| crm_domain::secrets::hash_password(PASSWORD).unwrap())
        .clone()
}

/// Ids of the fixture organisation.
#[derive(Debug, Clone)]
pub struct Org {
    pub company: Uuid,
    pub east: Uuid,
    pub east1: Uuid,
    pub east2: Uuid,
    pub north: Uuid,
    pub north1: Uuid,
    pub admin: Uuid,
    pub director: Uuid,
    /// sales_manager of the east region (team_and_below: east, east1, east2).
    pub manager_east: Uuid,
    /// sales_rep in east1.
    pub rep_east1: Uuid,
    /// second sales_rep in east1.
    pub rep_east1b: Uuid,
    /// sales_rep in east2.
    pub rep_east2: Uuid,
    /// sales_rep in north1.
    pub rep_north1: Uuid,
    pub presales: Uuid,
    pub legal: Uuid,
    pub finance: Uuid,
    pub marketing: Uuid,
}

fn team(c: &mut PgConnection, name: &str, kind: &str, parent: Option<Uuid>) -> Uuid {
    // Region teams cover the region value of their name in lower case ("East" -> "east").
    let region = (kind == "region").then(|| name.to_lowercase());
    teams::insert(
        c,
        &teams::NewTeam {
            id: Uuid::now_v7(),
            name: name.into(),
            kind: kind.into(),
            parent_id: parent,
            region,
        },
    )
    .unwrap()
    .id
}

/// Creates a user with a password and one role.
pub fn user(c: &mut PgConnection, email: &str, role: &str, team: Option<Uuid>, manager: Option<Uuid>) -> Uuid {
    let id = users::insert(
        c,
        &users::NewUser {
            id: Uuid::now_v7(),
            email: email.into(),
            name: email.split('@').next().unwrap_or(email).into(),
            password_hash: Some(password_hash()),
            phone: None,
            team_id: team,
            manager_id: manager,
            is_active: true,
            is_service: false,
        },
    )
    .unwrap()
    .id;
    let role_ids: Vec<Uuid> = roles::find_by_keys(c, &[role.to_owned()])
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(role_ids.len(), 1, "role {role} exists");
    users::set_roles(c, id, &role_ids).unwrap();
    id
}

pub fn create_org(c: &mut PgConnection) -> Org {
    let company = team(c, "Test Co", "company", None);
    let east = team(c, "East", "region", Some(company));
    let east1 = team(c, "East 1", "team", Some(east));
    let east2 = team(c, "East 2", "team", Some(east));
    let north = team(c, "North", "region", Some(company));
    let north1 = team(c, "North 1", "team", Some(north));
    let admin = user(c, "admin@test.local", "admin", Some(company), None);
    let director = user(c, "director@test.local", "sales_director", Some(company), None);
    let manager_east = user(
        c,
        "manager.east@test.local",
        "sales_manager",
        Some(east),
        Some(director),
    );
    Org {
        company,
        east,
        east1,
        east2,
        north,
        north1,
        admin,
        director,
        manager_east,
        rep_east1: user(c, "rep.east1@test.local", "sales_rep", Some(east1), Some(manager_east)),
        rep_east1b: user(c, "rep.east1b@test.local", "sales_rep", Some(east1), Some(manager_east)),
        rep_east2: user(c, "rep.east2@test.local", "sales_rep", Some(east2), Some(manager_east)),
        rep_north1: user(c, "rep.north1@test.local", "sales_rep", Some(north1), Some(director)),
        presales: user(c, "presales@test.local", "presales", Some(company), None),
        legal: user(c, "legal@test.local", "legal", Some(company), None),
        finance: user(c, "finance@test.local", "finance", Some(company), None),
        marketing: user(c, "marketing@test.local", "marketing", Some(company), None),
    }
}
