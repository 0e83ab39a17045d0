//! Sales process rules: stage entry criteria, stage moves, lead statuses.

use chrono::{Datelike, Months, NaiveDate};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::expr::{self, Expr};

/// A machine-checkable condition for entering a stage. Unmet criteria are reported
/// as these same objects, so a client can show exactly what is missing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Criterion {
    /// A field of the opportunity is filled in (e.g. `amount`, `primary_contact_id`).
    FieldRequired { field: String },
    /// A key task of a stage (by stage code) is checked off.
    TaskDone { stage: String, task: String },
    /// A required output (deliverable, by code) is attached.
    OutputAttached { output: String },
    /// A quote of the opportunity is in this status (e.g. `accepted`).
    QuoteStatus { status: String },
    /// The opportunity's probability is at least this.
    MinProbability { value: i32 },
    /// An activity of one of these types (any type when empty) was logged on the deal.
    ActivityLogged {
        #[serde(default)]
        types: Vec<String>,
    },
    /// A general condition over the opportunity's fields.
    Condition { expr: Expr },
    /// A contract of the opportunity is signed (signed, active or completed).
    ContractSigned,
    /// A payment (e.g. a prepayment) was received on a contract of the opportunity.
    PaymentReceived,
    /// At least one of these criteria is met.
    AnyOf { criteria: Vec<Criterion> },
    /// Every one of these criteria is met (to group alternatives inside `any_of`).
    AllOf { criteria: Vec<Criterion> },
}

/// What the criteria are checked against.
#[derive(Debug, Default)]
pub struct Evidence<'a> {
    /// The opportunity as JSON (API field names; custom fields under `custom`).
    pub record: Option<&'a Value>,
    /// Key tasks done, as (stage code, task code).
    pub tasks_done: &'a [(String, String)],
    /// Codes of attached outputs.
    pub outputs: &'a [String],
    /// Types of activities logged on the opportunity.
    pub activity_types: &'a [String],
    /// Statuses of the opportunity's quotes.
    pub quote_statuses: &'a [String],
    /// A contract of the opportunity is signed.
    pub contract_signed: bool,
    /// A payment was received on a contract of the opportunity.
    pub payment_received: bool,
}

impl Criterion {
    /// Whether the evidence satisfies the criterion.
    pub fn met(&self, ev: &Evidence<'_>) -> bool {
        let null = Value::Null;
        let record = ev.record.unwrap_or(&null);
        match self {
            Criterion::FieldRequired { field } => !expr::is_blank(expr::lookup(record, field)),
            Criterion::TaskDone { stage, task } => ev.tasks_done.iter().any(|(s, t)| s == stage && t == task),
            Criterion::OutputAttached { output } => ev.outputs.iter().any(|o| o == output),
            Criterion::QuoteStatus { status } => ev.quote_statuses.iter().any(|s| s == status),
            Criterion::MinProbability { value } => expr::lookup(record, "probability")
                .as_i64()
                .is_some_and(|p| p >= i64::from(*value)),
            Criterion::ActivityLogged { types } => {
                if types.is_empty() {
                    !ev.activity_types.is_empty()
                } else {
                    ev.activity_types.iter().any(|t| types.contains(t))
                }
            }
            Criterion::Condition { expr } => expr.eval(record),
            Criterion::ContractSigned => ev.contract_signed,
            Criterion::PaymentReceived => ev.payment_received,
            Criterion::AnyOf { criteria } => criteria.iter().any(|c| c.met(ev)),
            Criterion::AllOf { criteria } => criteria.iter().all(|c| c.met(ev)),
        }
    }
}

/// The criteria not met, in definition order.
pub fn unmet(criteria: &[Criterion], ev: &Evidence<'_>) -> Vec<Criterion> {
    criteria.iter().filter(|c| !c.met(ev)).cloned().collect()
}

/// A named item of a stage checklist or output list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Item {
    /// Stable code, snake_case.
    pub code: String,
    pub title: String,
}

/// Validates a stage's criteria against the pipeline: fields that exist, stages, tasks
/// and outputs that are defined. Returns (index, message) per problem.
pub fn check_criteria(
    criteria: &[Criterion],
    fields: &[&str],
    stages: &[(String, Vec<Item>, Vec<Item>)],
) -> Vec<(usize, String)> {
    check_criteria_at(criteria, fields, stages, 1)
}

/// How deep `any_of` / `all_of` may nest criteria (a criterion at the top is level 1).
pub const MAX_CRITERIA_DEPTH: usize = 3;

fn check_criteria_at(
    criteria: &[Criterion],
    fields: &[&str],
    stages: &[(String, Vec<Item>, Vec<Item>)],
    depth: usize,
) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (i, c) in criteria.iter().enumerate() {
        if let Criterion::AnyOf { criteria: inner } | Criterion::AllOf { criteria: inner } = c {
            if depth >= MAX_CRITERIA_DEPTH {
                out.push((
                    i,
                    format!("any_of/all_of nest at most {MAX_CRITERIA_DEPTH} levels deep"),
                ));
                continue;
            }
            if inner.is_empty() {
                out.push((i, "any_of/all_of needs at least one criterion".to_owned()));
            }
            for (_, p) in check_criteria_at(inner, fields, stages, depth + 1) {
                out.push((i, p));
            }
            continue;
        }
        let problem = match c {
            Criterion::FieldRequired { field } => {
                let root = field.split('.').next().unwrap_or("");
                (!(fields.contains(&field.as_str()) || (root == "custom" && field.len() > 7)))
                    .then(|| format!("unknown field `{field}`"))
            }
            Criterion::TaskDone { stage, task } => match stages.iter().find(|(code, _, _)| code == stage) {
                None => Some(format!("unknown stage `{stage}`")),
                Some((_, tasks, _)) => (!tasks.iter().any(|t| &t.code == task))
                    .then(|| format!("stage `{stage}` has no key task `{task}`")),
            },
            Criterion::OutputAttached { output } => {
                (!stages.iter().any(|(_, _, outs)| outs.iter().any(|o| &o.code == output)))
                    .then(|| format!("no stage defines the output `{output}`"))
            }
            Criterion::QuoteStatus { status } => (![
                "draft",
                "pending_approval",
                "approved",
                "rejected",
                "sent",
                "accepted",
                "declined",
                "expired",
            ]
            .contains(&status.as_str()))
            .then(|| format!("unknown quote status `{status}`")),
            Criterion::MinProbability { value } => {
                (!(0..=100).contains(value)).then(|| "probability must be 0..=100".to_owned())
            }
            Criterion::ActivityLogged { types } => types
                .iter()
                .find(|t| !["call", "visit", "meeting", "email", "message", "note"].contains(&t.as_str()))
                .map(|t| format!("unknown activity type `{t}`")),
            Criterion::Condition { expr } => expr.validate().err().map(|e| e.to_string()),
            Criterion::ContractSigned | Criterion::PaymentReceived => None,
            Criterion::AnyOf { .. } | Criterion::AllOf { .. } => None,
        };
        if let Some(p) = problem {
            out.push((i, p));
        }
    }
    out
}

/// Kind of stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StageKind {
    Open,
    Won,
    Lost,
}

impl StageKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StageKind::Open => "open",
            StageKind::Won => "won",
            StageKind::Lost => "lost",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "open" => Some(StageKind::Open),
            "won" => Some(StageKind::Won),
            "lost" => Some(StageKind::Lost),
            _ => None,
        }
    }
}

/// Where a stage sits.
#[derive(Debug, Clone, Copy)]
pub struct StagePos {
    pub position: i32,
    pub kind: StageKind,
}

/// What kind of move a stage change is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Move {
    Forward,
    Backward,
    Won,
    Lost,
    /// From won or lost back to an open stage.
    Reopen,
}

/// Why a stage change is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoveError {
    #[error("the opportunity is already in this stage")]
    SameStage,
    #[error("a reason is required for this move")]
    ReasonRequired,
}

/// A classified stage change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StageChange {
    pub kind: Move,
    /// The deal leaves a closed (won or lost) stage: a reopening, whatever the target.
    /// It needs the reopen permission and a reason.
    pub reopens: bool,
}

impl StageChange {
    /// Entry criteria apply to every entry into an open or won stage, whatever the
    /// deal comes from: advancing, winning, and re-entering after being won or lost
    /// (a reopened deal re-enters under that stage's criteria like any other entry).
    /// Only going back to an earlier open stage and losing skip them.
    pub fn checks_criteria(self) -> bool {
        match self.kind {
            Move::Forward | Move::Won | Move::Reopen => true,
            Move::Backward => false,
            Move::Lost => false,
        }
    }
}

/// Classifies a move and checks the rules that do not need data: moving backwards,
/// losing and leaving a closed stage need a reason.
pub fn classify_move(from: StagePos, to: StagePos, same: bool, reason: Option<&str>) -> Result<StageChange, MoveError> {
    if same {
        return Err(MoveError::SameStage);
    }
    let has_reason = reason.is_some_and(|r| !r.trim().is_empty());
    let reopens = from.kind != StageKind::Open;
    let kind = match (from.kind, to.kind) {
        (_, StageKind::Lost) => Move::Lost,
        (_, StageKind::Won) => Move::Won,
        (StageKind::Won | StageKind::Lost, StageKind::Open) => Move::Reopen,
        (StageKind::Open, StageKind::Open) if to.position < from.position => Move::Backward,
        (StageKind::Open, StageKind::Open) => Move::Forward,
    };
    let needs_reason = reopens || matches!(kind, Move::Backward | Move::Lost);
    if needs_reason && !has_reason {
        return Err(MoveError::ReasonRequired);
    }
    Ok(StageChange { kind, reopens })
}

impl Move {
    /// The name used in stage history events.
    pub fn as_str(self) -> &'static str {
        match self {
            Move::Forward => "forward",
            Move::Backward => "backward",
            Move::Won => "won",
            Move::Lost => "lost",
            Move::Reopen => "reopen",
        }
    }
}

/// Lead statuses: new -> assigned -> contacted -> qualified | disqualified -> converted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeadStatus {
    New,
    Assigned,
    Contacted,
    Qualified,
    Disqualified,
    Converted,
}

impl LeadStatus {
    pub const ALL: [LeadStatus; 6] = [
        LeadStatus::New,
        LeadStatus::Assigned,
        LeadStatus::Contacted,
        LeadStatus::Qualified,
        LeadStatus::Disqualified,
        LeadStatus::Converted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LeadStatus::New => "new",
            LeadStatus::Assigned => "assigned",
            LeadStatus::Contacted => "contacted",
            LeadStatus::Qualified => "qualified",
            LeadStatus::Disqualified => "disqualified",
            LeadStatus::Converted => "converted",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// Status changes a user may make directly (assignment and conversion have their
    /// own endpoints).
    pub fn can_become(self, to: LeadStatus) -> bool {
        use LeadStatus::*;
        matches!(
            (self, to),
            (New | Assigned, Contacted)
                | (Contacted, Qualified)
                | (Qualified, Contacted)
                | (New | Assigned | Contacted | Qualified, Disqualified)
                | (Disqualified, Contacted)
        )
    }

    /// Whether the lead can still be converted.
    pub fn convertible(self) -> bool {
        matches!(
            self,
            LeadStatus::New | LeadStatus::Assigned | LeadStatus::Contacted | LeadStatus::Qualified
        )
    }
}

/// How a close-date range `[after, before)` splits for the board totals: whole months
/// (read from the monthly rollup) and the partial months at its edges (aggregated live).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonthSplit {
    /// Whole months, as first days: `[from, to)`, `None` for an open end. `None` when no
    /// whole month lies in the range.
    pub months: Option<(Option<NaiveDate>, Option<NaiveDate>)>,
    /// Date ranges `[from, to)` to total by day: at most two, each inside one calendar
    /// month.
    pub edges: Vec<(NaiveDate, NaiveDate)>,
}

/// How to total an edge `[from, to)` inside one month from rollups by month and by
/// day, reading the fewer days: the days themselves, or the whole month less the days
/// of it outside the edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EdgePlan {
    Days(NaiveDate, NaiveDate),
    MonthLess {
        /// First day of the month.
        month: NaiveDate,
        /// Day ranges `[from, to)` to subtract (one or two, none empty).
        less: Vec<(NaiveDate, NaiveDate)>,
    },
}

impl EdgePlan {
    /// The plan for an edge inside one month.
    pub fn of(from: NaiveDate, to: NaiveDate) -> EdgePlan {
        let month = first_of_month(from);
        let end = first_of_next_month(from);
        let inside = to.signed_duration_since(from).num_days();
        let outside = from.signed_duration_since(month).num_days() + end.signed_duration_since(to).num_days();
        if inside <= outside || to > end {
            return EdgePlan::Days(from, to);
        }
        let less = [(month, from), (to, end)].into_iter().filter(|(a, b)| a < b).collect();
        EdgePlan::MonthLess { month, less }
    }
}

fn first_of_month(d: NaiveDate) -> NaiveDate {
    d.with_day(1).unwrap_or(d)
}

fn first_of_next_month(d: NaiveDate) -> NaiveDate {
    first_of_month(d)
        .checked_add_months(Months::new(1))
        .unwrap_or(NaiveDate::MAX)
}

/// Splits `[after, before)` (either end open) into whole months and edge ranges.
pub fn split_months(after: Option<NaiveDate>, before: Option<NaiveDate>) -> MonthSplit {
    let lo = after.map(|a| if a.day() == 1 { a } else { first_of_next_month(a) });
    let hi = before.map(first_of_month);
    if let (Some(l), Some(h)) = (lo, hi) {
        if l >= h {
            // No whole month: the range lies in one month or across the end of one.
            let edges = match (after, before) {
                (Some(a), Some(b)) if a < b => {
                    let cut = first_of_next_month(a);
                    if b <= cut {
                        vec![(a, b)]
                    } else {
                        vec![(a, cut), (cut, b)]
                    }
                }
                _ => Vec::new(),
            };
            return MonthSplit { months: None, edges };
        }
    }
    let mut edges = Vec::new();
    if let (Some(a), Some(l)) = (after, lo) {
        if a < l {
            edges.push((a, l));
        }
    }
    if let (Some(h), Some(b)) = (hi, before) {
        if h < b {
            edges.push((h, b));
        }
    }
    MonthSplit {
        months: Some((lo, hi)),
        edges,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pos(position: i32, kind: StageKind) -> StagePos {
        StagePos { position, kind }
    }

    #[test]
    fn criteria_report_what_is_missing() {
        let criteria: Vec<Criterion> = serde_json::from_value(json!([
            {"kind": "field_required", "field": "amount"},
            {"kind": "task_done", "stage": "qualification", "task": "confirm_need_budget"},
            {"kind": "output_attached", "output": "first_call_notes"},
            {"kind": "min_probability", "value": 30},
            {"kind": "activity_logged", "types": ["call", "visit"]},
            {"kind": "quote_status", "status": "accepted"},
            {"kind": "condition", "expr": {"field": "amount", "op": "gte", "value": "1000"}}
        ]))
        .unwrap();
        let rec = json!({"amount": null, "probability": 20});
        let none = Evidence {
            record: Some(&rec),
            ..Evidence::default()
        };
        assert_eq!(unmet(&criteria, &none).len(), 7);
        let rec = json!({"amount": "5000.00", "probability": 30});
        let tasks = vec![("qualification".to_owned(), "confirm_need_budget".to_owned())];
        let outputs = vec!["first_call_notes".to_owned()];
        let acts = vec!["visit".to_owned()];
        let quotes = vec!["accepted".to_owned()];
        let all = Evidence {
            record: Some(&rec),
            tasks_done: &tasks,
            outputs: &outputs,
            activity_types: &acts,
            quote_statuses: &quotes,
            ..Evidence::default()
        };
        assert!(unmet(&criteria, &all).is_empty());
        let emails = vec!["email".to_owned()];
        let ev = Evidence {
            activity_types: &emails,
            ..all
        };
        assert_eq!(unmet(&criteria, &ev), vec![criteria[4].clone()]);
    }

    #[test]
    fn won_alternatives_any_of_contract_payment_or_manual() {
        let criteria: Vec<Criterion> = serde_json::from_value(json!([{"kind": "any_of", "criteria": [
            {"kind": "contract_signed"},
            {"kind": "payment_received"},
            {"kind": "all_of", "criteria": [
                {"kind": "task_done", "stage": "closing", "task": "contract_signed"},
                {"kind": "output_attached", "output": "signed_contract"}]}
        ]}]))
        .unwrap();
        assert_eq!(unmet(&criteria, &Evidence::default()).len(), 1);
        let signed = Evidence {
            contract_signed: true,
            ..Evidence::default()
        };
        assert!(unmet(&criteria, &signed).is_empty());
        let paid = Evidence {
            payment_received: true,
            ..Evidence::default()
        };
        assert!(unmet(&criteria, &paid).is_empty());
        let tasks = vec![("closing".to_owned(), "contract_signed".to_owned())];
        let half = Evidence {
            tasks_done: &tasks,
            ..Evidence::default()
        };
        assert_eq!(unmet(&criteria, &half).len(), 1);
        let outputs = vec!["signed_contract".to_owned()];
        let manual = Evidence {
            tasks_done: &tasks,
            outputs: &outputs,
            ..Evidence::default()
        };
        assert!(unmet(&criteria, &manual).is_empty());
        let item = |c: &str| Item {
            code: c.into(),
            title: c.into(),
        };
        let stages = vec![(
            "closing".to_owned(),
            vec![item("contract_signed")],
            vec![item("signed_contract")],
        )];
        assert!(check_criteria(&criteria, &[], &stages).is_empty());
        let bad: Vec<Criterion> = serde_json::from_value(json!([{"kind": "any_of", "criteria": [
            {"kind": "task_done", "stage": "closing", "task": "nope"}]}, {"kind": "all_of", "criteria": []}]))
        .unwrap();
        assert_eq!(check_criteria(&bad, &[], &stages).len(), 2);
        // The document spells out three levels; deeper nesting is refused.
        let deep: Vec<Criterion> = serde_json::from_value(json!([{"kind": "any_of", "criteria": [
            {"kind": "all_of", "criteria": [{"kind": "any_of", "criteria": [{"kind": "contract_signed"}]}]}]}]))
        .unwrap();
        assert_eq!(check_criteria(&deep, &[], &stages).len(), 1);
    }

    #[test]
    fn criteria_definitions_are_checked_against_the_pipeline() {
        let item = |c: &str| Item {
            code: c.into(),
            title: c.into(),
        };
        let stages = vec![("qualification".to_owned(), vec![item("call")], vec![item("notes")])];
        let criteria: Vec<Criterion> = serde_json::from_value(json!([
            {"kind": "field_required", "field": "amount"},
            {"kind": "field_required", "field": "password"},
            {"kind": "task_done", "stage": "qualification", "task": "call"},
            {"kind": "task_done", "stage": "nope", "task": "call"},
            {"kind": "output_attached", "output": "notes"},
            {"kind": "output_attached", "output": "missing"},
            {"kind": "min_probability", "value": 101},
            {"kind": "field_required", "field": "custom.budget"}
        ]))
        .unwrap();
        let problems: Vec<usize> = check_criteria(&criteria, &["amount"], &stages)
            .into_iter()
            .map(|(i, _)| i)
            .collect();
        assert_eq!(problems, vec![1, 3, 5, 6]);
        assert!(serde_json::from_value::<Criterion>(json!({"kind": "telepathy"})).is_err());
        assert!(
            serde_json::from_value::<Criterion>(json!({"kind": "field_required", "field": "a", "extra": 1})).is_err()
        );
    }

    #[test]
    fn moves_need_reasons_where_it_matters() {
        let (q, d, won, lost) = (
            pos(1, StageKind::Open),
            pos(2, StageKind::Open),
            pos(6, StageKind::Won),
            pos(7, StageKind::Lost),
        );
        let kind = |r: Result<StageChange, MoveError>| r.map(|c| c.kind);
        assert_eq!(kind(classify_move(q, d, false, None)), Ok(Move::Forward));
        assert_eq!(classify_move(d, q, false, None), Err(MoveError::ReasonRequired));
        assert_eq!(classify_move(d, q, false, Some("  ")), Err(MoveError::ReasonRequired));
        assert_eq!(kind(classify_move(d, q, false, Some("budget cut"))), Ok(Move::Backward));
        assert_eq!(kind(classify_move(d, won, false, None)), Ok(Move::Won));
        assert_eq!(classify_move(d, lost, false, None), Err(MoveError::ReasonRequired));
        assert_eq!(kind(classify_move(d, lost, false, Some("price"))), Ok(Move::Lost));
        assert_eq!(classify_move(won, d, false, None), Err(MoveError::ReasonRequired));
        assert_eq!(kind(classify_move(lost, d, false, Some("back"))), Ok(Move::Reopen));
        assert_eq!(classify_move(lost, won, false, None), Err(MoveError::ReasonRequired));
        assert_eq!(classify_move(d, d, true, Some("x")), Err(MoveError::SameStage));
    }

    #[test]
    fn every_entry_into_an_open_or_won_stage_checks_its_criteria() {
        let (q, d, won, lost) = (
            pos(1, StageKind::Open),
            pos(2, StageKind::Open),
            pos(6, StageKind::Won),
            pos(7, StageKind::Lost),
        );
        let ch = |f, t| classify_move(f, t, false, Some("r")).unwrap();
        // The reported hole: lost -> won and lost -> open used to skip every criterion.
        let lost_to_won = ch(lost, won);
        assert_eq!(lost_to_won.kind, Move::Won);
        assert!(lost_to_won.reopens && lost_to_won.checks_criteria());
        let lost_to_open = ch(lost, d);
        assert!(lost_to_open.reopens && lost_to_open.checks_criteria());
        let won_to_open = ch(won, q);
        assert!(won_to_open.reopens && won_to_open.checks_criteria());
        let won_to_lost = ch(won, lost);
        assert!(won_to_lost.reopens && !won_to_lost.checks_criteria());
        assert!(ch(q, d).checks_criteria() && !ch(q, d).reopens);
        assert!(ch(d, won).checks_criteria());
        assert!(!ch(d, q).checks_criteria() && !ch(d, lost).checks_criteria());
    }

    #[test]
    fn lead_statuses_follow_the_funnel() {
        use LeadStatus::*;
        assert!(New.can_become(Contacted));
        assert!(Contacted.can_become(Qualified));
        assert!(!New.can_become(Qualified));
        assert!(Qualified.can_become(Disqualified));
        assert!(!Converted.can_become(Contacted));
        assert!(!New.can_become(Converted));
        assert!(!Disqualified.convertible() && !Converted.convertible() && Qualified.convertible());
        for s in LeadStatus::ALL {
            assert_eq!(LeadStatus::parse(s.as_str()), Some(s));
        }
    }

    mod month_split {
        use super::super::{first_of_next_month, split_months, EdgePlan, NaiveDate};
        use chrono::Datelike;
        use proptest::prelude::*;

        fn day(n: i32) -> NaiveDate {
            NaiveDate::from_ymd_opt(2024, 1, 1).unwrap() + chrono::Duration::days(i64::from(n))
        }

        #[test]
        fn a_quarter_is_three_whole_months_and_a_partial_one_is_an_edge() {
            let d = |y, m, dd| NaiveDate::from_ymd_opt(y, m, dd).unwrap();
            let q = split_months(Some(d(2026, 10, 1)), Some(d(2027, 1, 1)));
            assert_eq!(q.months, Some((Some(d(2026, 10, 1)), Some(d(2027, 1, 1)))));
            assert!(q.edges.is_empty());
            let s = split_months(None, Some(d(2026, 12, 27)));
            assert_eq!(s.months, Some((None, Some(d(2026, 12, 1)))));
            assert_eq!(s.edges, vec![(d(2026, 12, 1), d(2026, 12, 27))]);
            let inside = split_months(Some(d(2026, 12, 3)), Some(d(2026, 12, 20)));
            assert_eq!(inside.months, None);
            assert_eq!(inside.edges, vec![(d(2026, 12, 3), d(2026, 12, 20))]);
            let across = split_months(Some(d(2026, 12, 20)), Some(d(2027, 1, 10)));
            assert_eq!(
                across.edges,
                vec![(d(2026, 12, 20), d(2027, 1, 1)), (d(2027, 1, 1), d(2027, 1, 10))]
            );
            // 26 days of December: the month less its first four days and last day.
            assert_eq!(
                EdgePlan::of(d(2026, 12, 5), d(2026, 12, 31)),
                EdgePlan::MonthLess {
                    month: d(2026, 12, 1),
                    less: vec![(d(2026, 12, 1), d(2026, 12, 5)), (d(2026, 12, 31), d(2027, 1, 1))]
                }
            );
            assert_eq!(
                EdgePlan::of(d(2026, 12, 1), d(2026, 12, 3)),
                EdgePlan::Days(d(2026, 12, 1), d(2026, 12, 3))
            );
        }

        proptest! {
            /// Every date is counted exactly once when in the range, never otherwise.
            #[test]
            fn whole_months_and_edges_partition_the_range(
                a in proptest::option::of(0i32..800), b in proptest::option::of(0i32..800), x in 0i32..800,
            ) {
                let (after, before, x) = (a.map(day), b.map(day), day(x));
                let split = split_months(after, before);
                let in_range = after.is_none_or(|a| x >= a) && before.is_none_or(|b| x < b);
                let month = x.with_day(1).unwrap();
                let by_month = split.months.is_some_and(|(f, t)| f.is_none_or(|f| month >= f) && t.is_none_or(|t| month < t));
                let by_edge = split.edges.iter().filter(|(f, t)| x >= *f && x < *t).count();
                prop_assert!(split.edges.len() <= 2);
                prop_assert!(split.edges.iter().all(|(f, t)| f < t && *t <= first_of_next_month(*f)));
                prop_assert_eq!(usize::from(by_month) + by_edge, usize::from(in_range), "{:?}", split);
                // Each edge's plan counts the same days, reading at most half a month.
                for (f, t) in &split.edges {
                    let counted = |x: NaiveDate| match EdgePlan::of(*f, *t) {
                        EdgePlan::Days(a, b) => i32::from(x >= a && x < b),
                        EdgePlan::MonthLess { month, less } => {
                            i32::from(x.with_day(1).unwrap() == month)
                                - less.iter().filter(|(a, b)| x >= *a && x < *b).count() as i32
                        }
                    };
                    prop_assert_eq!(counted(x), i32::from(x >= *f && x < *t));
                    let read = match EdgePlan::of(*f, *t) {
                        EdgePlan::Days(a, b) => b.signed_duration_since(a).num_days(),
                        EdgePlan::MonthLess { less, .. } => {
                            less.iter().map(|(a, b)| b.signed_duration_since(*a).num_days()).sum()
                        }
                    };
                    prop_assert!(read <= 16, "{f}..{t} reads {read} days");
                }
            }
        }
    }
}
