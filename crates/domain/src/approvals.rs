//! Approval process definitions: ordered steps of approvers, each with a mode, an
//! optional condition over the record and a due time after which it escalates.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::expr::Expr;

/// Where role holders are looked for, relative to the requester.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Within {
    /// The requester's own team.
    Team,
    /// The requester's region: the team above the requester's team and everything below it.
    Region,
}

/// Who approves a step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Approvers {
    /// A named user.
    User { user_id: Uuid },
    /// Every active holder of a role (optionally only near the requester).
    Role {
        role: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        within: Option<Within>,
    },
    /// The requester's manager.
    Manager,
    /// The requester's managers up to `levels` levels.
    ManagerChain { levels: u8 },
    /// The lead (sales manager) of the record owner's team, or of the nearest team above.
    TeamLead,
}

/// Whether one approver or all of them must approve a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    #[default]
    Any,
    All,
}

/// One step of an approval process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    pub name: String,
    pub approvers: Approvers,
    #[serde(default)]
    pub mode: Mode,
    /// The step applies only when this holds for the record (e.g. amount > 1,000,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<Expr>,
    /// After this many hours a pending decision escalates to the approver's manager.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_hours: Option<u32>,
}

/// Checks steps; returns (index, message) per problem.
pub fn check_steps(steps: &[Step]) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    if steps.is_empty() {
        out.push((0, "at least one step".into()));
    }
    for (i, s) in steps.iter().enumerate() {
        if s.name.trim().is_empty() {
            out.push((i, "a step needs a name".into()));
        }
        if let Some(c) = &s.condition {
            if let Err(e) = c.validate() {
                out.push((i, e.to_string()));
            }
        }
        match &s.approvers {
            Approvers::ManagerChain { levels } if *levels == 0 || *levels > 10 => {
                out.push((i, "levels must be 1..=10".into()))
            }
            Approvers::Role { role, .. } if role.trim().is_empty() => out.push((i, "a role is needed".into())),
            _ => {}
        }
        if s.due_hours == Some(0) {
            out.push((i, "due_hours must be positive".into()));
        }
    }
    out
}

/// The first step at or after `from` whose condition holds for the record.
pub fn next_step(steps: &[Step], from: usize, record: &serde_json::Value) -> Option<usize> {
    (from..steps.len()).find(|i| steps[*i].condition.as_ref().is_none_or(|c| c.eval(record)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn steps_parse_and_skip_by_condition() {
        let steps: Vec<Step> = serde_json::from_value(json!([
            {"name": "Manager", "approvers": {"kind": "manager"}},
            {"name": "CFO", "approvers": {"kind": "role", "role": "finance", "within": "region"}, "mode": "all",
             "condition": {"field": "total", "op": "gt", "value": "1000000"}, "due_hours": 24},
            {"name": "Chain", "approvers": {"kind": "manager_chain", "levels": 2}}
        ]))
        .unwrap();
        assert!(check_steps(&steps).is_empty());
        assert_eq!(next_step(&steps, 1, &json!({"total": "5000.00"})), Some(2));
        assert_eq!(next_step(&steps, 1, &json!({"total": "5000000.00"})), Some(1));
        assert_eq!(next_step(&steps, 3, &json!({})), None);
        assert!(serde_json::from_value::<Step>(json!({"name": "x", "approvers": {"kind": "oracle"}})).is_err());
        let bad: Vec<Step> =
            serde_json::from_value(json!([{"name": " ", "approvers": {"kind": "manager_chain", "levels": 0}}]))
                .unwrap();
        assert_eq!(check_steps(&bad).len(), 2);
    }
}
