//! Permissions (`resource:action`) with a data scope, and the authenticated principal.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What a permission allows on a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Read,
    Create,
    Update,
    Delete,
    Export,
    /// Reassigning a record's owner.
    Assign,
    /// Moving a closed (won or lost) deal out of its closed stage.
    Reopen,
    Admin,
}

impl Action {
    pub const ALL: [Action; 8] = [
        Action::Read,
        Action::Create,
        Action::Update,
        Action::Delete,
        Action::Export,
        Action::Assign,
        Action::Reopen,
        Action::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::Create => "create",
            Action::Update => "update",
            Action::Delete => "delete",
            Action::Export => "export",
            Action::Assign => "assign",
            Action::Reopen => "reopen",
            Action::Admin => "admin",
        }
    }
}

impl FromStr for Action {
    type Err = UnknownValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Action::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| UnknownValue(s.to_owned()))
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which records a permission reaches. Ordered from narrowest to widest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Records the caller owns.
    Own,
    /// Records of the caller's team (and the caller's own).
    Team,
    /// Records of the caller's team and every team below it.
    TeamAndBelow,
    /// Every record.
    All,
}

impl Scope {
    pub const ALL: [Scope; 4] = [Scope::Own, Scope::Team, Scope::TeamAndBelow, Scope::All];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Own => "own",
            Scope::Team => "team",
            Scope::TeamAndBelow => "team_and_below",
            Scope::All => "all",
        }
    }
}

impl FromStr for Scope {
    type Err = UnknownValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scope::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| UnknownValue(s.to_owned()))
    }
}

/// A string that is not one of the allowed values.
#[derive(Debug, thiserror::Error)]
#[error("unknown value `{0}`")]
pub struct UnknownValue(pub String);

/// A resource that permissions can be granted on, with the actions that make sense for it.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ResourceDef {
    pub name: &'static str,
    pub actions: &'static [Action],
}

const RECORD_ACTIONS: &[Action] = &[
    Action::Read,
    Action::Create,
    Action::Update,
    Action::Delete,
    Action::Export,
    Action::Assign,
];

/// Every resource known to the permission model. Later capabilities add theirs here.
pub const RESOURCES: &[ResourceDef] = &[
    ResourceDef {
        name: "leads",
        actions: RECORD_ACTIONS,
    },
    ResourceDef {
        name: "opportunities",
        actions: &[
            Action::Read,
            Action::Create,
            Action::Update,
            Action::Delete,
            Action::Export,
            Action::Assign,
            Action::Reopen,
        ],
    },
    ResourceDef {
        name: "activities",
        actions: RECORD_ACTIONS,
    },
    ResourceDef {
        name: "tasks",
        actions: RECORD_ACTIONS,
    },
    ResourceDef {
        name: "pipelines",
        actions: &[Action::Read, Action::Admin],
    },
    ResourceDef {
        name: "accounts",
        actions: RECORD_ACTIONS,
    },
    ResourceDef {
        name: "contacts",
        actions: RECORD_ACTIONS,
    },
    ResourceDef {
        name: "users",
        actions: &[Action::Read, Action::Admin],
    },
    ResourceDef {
        name: "teams",
        actions: &[Action::Read, Action::Admin],
    },
    ResourceDef {
        name: "roles",
        actions: &[Action::Read, Action::Admin],
    },
    ResourceDef {
        name: "api_keys",
        actions: &[Action::Admin],
    },
    ResourceDef {
        name: "audit",
        actions: &[Action::Read],
    },
    ResourceDef {
        name: "products",
        actions: &[Action::Read, Action::Admin],
    },
    ResourceDef {
        name: "quotes",
        actions: RECORD_ACTIONS,
    },
    ResourceDef {
        name: "contracts",
        actions: RECORD_ACTIONS,
    },
    ResourceDef {
        name: "payments",
        actions: RECORD_ACTIONS,
    },
    ResourceDef {
        name: "approvals",
        actions: &[Action::Admin],
    },
    ResourceDef {
        name: "settings",
        actions: &[Action::Admin],
    },
    ResourceDef {
        name: "sales_targets",
        actions: &[Action::Read, Action::Create, Action::Update, Action::Delete],
    },
];

/// Looks up a resource definition by name.
pub fn resource(name: &str) -> Option<&'static ResourceDef> {
    RESOURCES.iter().find(|r| r.name == name)
}

/// One granted permission.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub resource: String,
    pub action: Action,
    pub scope: Scope,
}

impl Grant {
    /// Checks the grant against the resource catalogue.
    pub fn validate(&self) -> Result<(), String> {
        let def = resource(&self.resource).ok_or_else(|| format!("unknown resource `{}`", self.resource))?;
        if !def.actions.contains(&self.action) {
            return Err(format!(
                "action `{}` does not apply to `{}`",
                self.action, self.resource
            ));
        }
        Ok(())
    }
}

/// The union of several roles' grants: the widest scope wins per `resource:action`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PermissionSet(BTreeMap<(String, Action), Scope>);

impl PermissionSet {
    pub fn from_grants<I: IntoIterator<Item = Grant>>(grants: I) -> Self {
        let mut set = PermissionSet::default();
        for g in grants {
            set.add(g);
        }
        set
    }

    pub fn add(&mut self, g: Grant) {
        let entry = self.0.entry((g.resource, g.action)).or_insert(g.scope);
        if g.scope > *entry {
            *entry = g.scope;
        }
    }

    pub fn scope(&self, resource: &str, action: Action) -> Option<Scope> {
        // Avoids allocating a key on the hot path: the map is small.
        self.0
            .iter()
            .find(|((r, a), _)| r == resource && *a == action)
            .map(|(_, s)| *s)
    }

    pub fn grants(&self) -> impl Iterator<Item = Grant> + '_ {
        self.0.iter().map(|((r, a), s)| Grant {
            resource: r.clone(),
            action: *a,
            scope: *s,
        })
    }
}

/// The authenticated caller, resolved from a token or API key plus cached org data.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user_id: Uuid,
    pub email: String,
    pub name: String,
    pub team_id: Option<Uuid>,
    /// The caller's team and every team below it (empty when the caller has no team).
    pub team_subtree: Vec<Uuid>,
    pub role_keys: Vec<String>,
    pub permissions: PermissionSet,
    /// Set when the caller authenticated with an API key.
    pub api_key_id: Option<Uuid>,
    /// Field restrictions below full access, as (object, field, access); fields not
    /// listed are fully accessible. Custom fields are named `custom.<key>`.
    pub field_access: Vec<(String, String, crate::fields::FieldAccess)>,
}

impl Principal {
    /// The system itself (scheduled work, consequences of other operations): every
    /// permission the model knows, on every record, no field restrictions, no user.
    pub fn system() -> Principal {
        Principal {
            user_id: Uuid::nil(),
            email: "system".into(),
            name: "System".into(),
            team_id: None,
            team_subtree: Vec::new(),
            role_keys: vec!["system".into()],
            permissions: PermissionSet::from_grants(RESOURCES.iter().flat_map(|r| {
                r.actions.iter().map(move |a| Grant {
                    resource: r.name.to_owned(),
                    action: *a,
                    scope: Scope::All,
                })
            })),
            api_key_id: None,
            field_access: Vec::new(),
        }
    }

    /// The data scope the caller has for `resource:action`, or `None` when not allowed.
    pub fn scope(&self, resource: &str, action: Action) -> Option<Scope> {
        self.permissions.scope(resource, action)
    }

    /// Whether a record with this owner and team falls inside `scope` for the caller.
    /// Mirrors [`ScopeFilter`] so rules checked in Rust and SQL agree.
    pub fn reaches(&self, scope: Scope, owner_id: Uuid, team_id: Option<Uuid>) -> bool {
        match scope {
            Scope::All => true,
            Scope::Own => owner_id == self.user_id,
            Scope::Team => owner_id == self.user_id || (team_id.is_some() && team_id == self.team_id),
            Scope::TeamAndBelow => owner_id == self.user_id || team_id.is_some_and(|t| self.team_subtree.contains(&t)),
        }
    }

    /// The filter a query must apply for `scope`.
    pub fn filter(&self, scope: Scope) -> ScopeFilter {
        match scope {
            Scope::All => ScopeFilter::All,
            Scope::Own => ScopeFilter::Owner(self.user_id),
            Scope::Team => ScopeFilter::OwnerOrTeams(self.user_id, self.team_id.into_iter().collect()),
            Scope::TeamAndBelow => ScopeFilter::OwnerOrTeams(self.user_id, self.team_subtree.clone()),
        }
    }

    /// The caller's access to a field of an object, derived fields (see
    /// [`crate::fields::DERIVED`]) limited by their sources.
    pub fn field_access(&self, object: &str, field: &str) -> crate::fields::FieldAccess {
        self.access_at(object, field, 0)
    }

    fn access_at(&self, object: &str, field: &str, depth: usize) -> crate::fields::FieldAccess {
        let own = self
            .field_access
            .iter()
            .find(|(o, f, _)| o == object && f == field)
            .map_or(crate::fields::FieldAccess::Full, |(_, _, a)| *a);
        if depth > 4 {
            return own;
        }
        crate::fields::derived_from(object, field)
            .iter()
            .map(|(o, f)| self.access_at(o, f, depth + 1))
            .fold(own, std::cmp::min)
    }

    /// Restricts formula fields as far as their inputs are restricted (a formula over a
    /// hidden amount would reveal it). `formulas`: (object, `custom.<key>`, inputs).
    pub fn restrict_formulas(&mut self, formulas: &[(String, String, Vec<String>)]) {
        use crate::fields::FieldAccess;
        // Formulas may use formulas: a few passes reach a fixed point.
        for _ in 0..4 {
            let mut changed = false;
            for (object, field, inputs) in formulas {
                let own = self.field_access(object, field);
                let limit = inputs
                    .iter()
                    .map(|i| self.field_access(object, i))
                    .fold(FieldAccess::Full, std::cmp::min);
                if limit < own {
                    self.field_access.retain(|(o, f, _)| !(o == object && f == field));
                    self.field_access.push((object.clone(), field.clone(), limit));
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
    }

    /// Whether any field of the object is restricted for the caller (directly or
    /// through a derived field's sources).
    pub fn restricts(&self, object: &str) -> bool {
        self.field_access.iter().any(|(o, _, _)| o == object)
            || crate::fields::DERIVED
                .iter()
                .any(|(o, f, _)| *o == object && self.field_access(o, f) < crate::fields::FieldAccess::Full)
    }

    /// A stable key identifying the caller, e.g. for idempotency records.
    pub fn caller_key(&self) -> String {
        match self.api_key_id {
            Some(k) => format!("key:{k}"),
            None => format!("user:{}", self.user_id),
        }
    }
}

/// A data-scope restriction in a form the persistence layer turns into SQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScopeFilter {
    All,
    Owner(Uuid),
    OwnerOrTeams(Uuid, Vec<Uuid>),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(r: &str, a: Action, s: Scope) -> Grant {
        Grant {
            resource: r.into(),
            action: a,
            scope: s,
        }
    }

    fn principal(perms: PermissionSet) -> Principal {
        Principal {
            user_id: Uuid::from_u128(1),
            email: "a@b.c".into(),
            name: "A".into(),
            team_id: Some(Uuid::from_u128(10)),
            team_subtree: vec![Uuid::from_u128(10), Uuid::from_u128(11)],
            role_keys: vec![],
            permissions: perms,
            api_key_id: None,
            field_access: Vec::new(),
        }
    }

    #[test]
    fn derived_fields_and_formulas_are_no_more_visible_than_their_sources() {
        use crate::fields::FieldAccess::*;
        let mut p = principal(PermissionSet::default());
        assert!(!p.restricts("opportunities"));
        p.field_access.push(("opportunities".into(), "amount".into(), Hidden));
        assert_eq!(p.field_access("opportunities", "weighted_amount"), Hidden);
        assert_eq!(p.field_access("opportunities", "probability"), Full);
        p.field_access.push(("products".into(), "standard_cost".into(), Masked));
        assert!(p.restricts("quotes"));
        assert_eq!(p.field_access("quotes", "cost_total"), Masked);
        assert_eq!(p.field_access("quotes", "gross_margin_pct"), Masked);
        assert_eq!(p.field_access("quotes", "total"), Full);
        let formulas = vec![
            (
                "opportunities".to_owned(),
                "custom.commission".to_owned(),
                vec!["amount".to_owned()],
            ),
            (
                "opportunities".to_owned(),
                "custom.double".to_owned(),
                vec!["custom.commission".to_owned()],
            ),
            (
                "opportunities".to_owned(),
                "custom.seats_x2".to_owned(),
                vec!["custom.seats".to_owned()],
            ),
        ];
        p.restrict_formulas(&formulas);
        assert_eq!(p.field_access("opportunities", "custom.commission"), Hidden);
        assert_eq!(p.field_access("opportunities", "custom.double"), Hidden);
        assert_eq!(p.field_access("opportunities", "custom.seats_x2"), Full);
    }

    #[test]
    fn widest_scope_wins_across_roles() {
        let set = PermissionSet::from_grants([
            grant("accounts", Action::Read, Scope::Own),
            grant("accounts", Action::Read, Scope::TeamAndBelow),
            grant("accounts", Action::Read, Scope::Team),
        ]);
        assert_eq!(set.scope("accounts", Action::Read), Some(Scope::TeamAndBelow));
        assert_eq!(set.scope("accounts", Action::Update), None);
        assert_eq!(set.scope("contacts", Action::Read), None);
    }

    #[test]
    fn reaches_matches_each_scope() {
        let p = principal(PermissionSet::default());
        let me = p.user_id;
        let other = Uuid::from_u128(2);
        let my_team = Some(Uuid::from_u128(10));
        let sub_team = Some(Uuid::from_u128(11));
        let far_team = Some(Uuid::from_u128(99));
        assert!(p.reaches(Scope::Own, me, far_team));
        assert!(!p.reaches(Scope::Own, other, my_team));
        assert!(p.reaches(Scope::Team, other, my_team));
        assert!(!p.reaches(Scope::Team, other, sub_team));
        assert!(p.reaches(Scope::TeamAndBelow, other, sub_team));
        assert!(!p.reaches(Scope::TeamAndBelow, other, far_team));
        assert!(!p.reaches(Scope::TeamAndBelow, other, None));
        assert!(p.reaches(Scope::All, other, None));
    }

    #[test]
    fn grants_are_checked_against_the_catalogue() {
        assert!(grant("accounts", Action::Assign, Scope::All).validate().is_ok());
        assert!(grant("api_keys", Action::Read, Scope::All).validate().is_err());
        assert!(grant("nope", Action::Read, Scope::All).validate().is_err());
    }

    #[test]
    fn action_and_scope_round_trip_through_strings() {
        for a in Action::ALL {
            assert_eq!(a.as_str().parse::<Action>().ok(), Some(a));
        }
        for s in Scope::ALL {
            assert_eq!(s.as_str().parse::<Scope>().ok(), Some(s));
        }
        assert!("everything".parse::<Scope>().is_err());
    }
}
