//! Pipeline configuration (`pipelines:admin`): pipelines and their stages with key
//! tasks, required outputs and entry criteria, checked as a whole (unique codes, an
//! open stage, criteria that name defined stages, tasks, outputs and fields).

use std::collections::HashSet;

use crm_db::repo::audit;
use crm_db::repo::pipelines::{self, NewPipeline, NewStage, PipelineChanges, PipelineRow, StageChanges, StageRow};
use crm_domain::access::Action;
use crm_domain::normalize;
use crm_domain::pipeline::{check_criteria, Criterion, Item};
use diesel::PgConnection;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::checks::Errors;
use crate::context::Ctx;
use crate::error::{AppError, AppResult};
use crate::write::{self, double_option};

const RES: &str = "pipelines";

/// Deal fields that entry criteria may require.
pub const OPPORTUNITY_FIELDS: &[&str] = &[
    "name",
    "account_id",
    "primary_contact_id",
    "contacts",
    "amount",
    "currency",
    "expected_close_date",
    "probability",
    "owner_id",
    "competitors",
    "next_step",
    "source_lead_id",
];

/// Kinds of stage.
pub const STAGE_KINDS: &[&str] = &["open", "won", "lost"];

/// A key task or required output of a stage.
#[derive(Debug, Clone, serde::Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageItem {
    pub code: String,
    pub title: String,
}

/// A new stage.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageInput {
    pub code: String,
    pub name: String,
    pub kind: String,
    pub probability: i32,
    #[serde(default)]
    pub key_tasks: Vec<StageItem>,
    #[serde(default)]
    pub required_outputs: Vec<StageItem>,
    /// Entry criteria as `GET /pipelines` shows them (`{"kind": "field_required", ...}`).
    #[serde(default)]
    pub entry_criteria: Vec<Value>,
    pub stalled_after_days: Option<i32>,
    /// Forecast category of deals in the stage (default by kind: open `pipeline`,
    /// won `closed`, lost `omitted`); a deal may override it.
    pub forecast_category: Option<String>,
    /// 1-based place among the live stages; appended when absent.
    pub position: Option<i32>,
}

/// A new pipeline with its stages.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineInput {
    pub name: String,
    pub description: Option<String>,
    #[serde(default)]
    pub is_default: bool,
    pub stages: Vec<StageInput>,
}

/// A change of a pipeline: rename, describe, make default, archive or restore.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelinePatch {
    pub name: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    pub description: Option<Option<String>>,
    pub is_default: Option<bool>,
    pub archived: Option<bool>,
}

/// A change of a stage (its code is fixed).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StagePatch {
    pub name: Option<String>,
    pub kind: Option<String>,
    pub probability: Option<i32>,
    pub key_tasks: Option<Vec<StageItem>>,
    pub required_outputs: Option<Vec<StageItem>>,
    pub entry_criteria: Option<Vec<Value>>,
    #[serde(default, deserialize_with = "double_option")]
    pub stalled_after_days: Option<Option<i32>>,
    pub archived: Option<bool>,
    pub forecast_category: Option<String>,
}

fn valid_code(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 50
        && s.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn check_code(errs: &mut Errors, field: &str, code: &str) {
    if !valid_code(code) {
        errs.add(
            field,
            "invalid_format",
            "lower-case letters, digits and _, starting with a letter",
        );
    }
}

fn check_kind(errs: &mut Errors, field: &str, kind: &str) {
    if !STAGE_KINDS.contains(&kind) {
        errs.add(field, "invalid_choice", "one of open, won, lost");
    }
}

fn check_items(errs: &mut Errors, field: &str, items: &[StageItem]) {
    let mut seen = HashSet::new();
    for (i, it) in items.iter().enumerate() {
        if !valid_code(&it.code) {
            check_code(errs, &format!("{field}[{i}].code"), &it.code);
        } else if !seen.insert(it.code.clone()) {
            errs.add(
                &format!("{field}[{i}].code"),
                "duplicate",
                "codes must be unique within a stage",
            );
        }
        if it.title.trim().is_empty() {
            errs.add(&format!("{field}[{i}].title"), "required", "must not be blank");
        }
    }
}

/// A stage definition as the pipeline-wide checks see it.
struct StageDef {
    code: String,
    kind: String,
    key_tasks: Vec<StageItem>,
    outputs: Vec<StageItem>,
    criteria: Vec<Value>,
}

impl StageDef {
    fn of_input(s: &StageInput) -> StageDef {
        StageDef {
            code: s.code.clone(),
            kind: s.kind.clone(),
            key_tasks: s.key_tasks.clone(),
            outputs: s.required_outputs.clone(),
            criteria: s.entry_criteria.clone(),
        }
    }

    fn of_row(r: &StageRow) -> StageDef {
        let items = |v: &Value| -> Vec<StageItem> { serde_json::from_value(v.clone()).unwrap_or_default() };
        StageDef {
            code: r.code.clone(),
            kind: r.kind.clone(),
            key_tasks: items(&r.key_tasks),
            outputs: items(&r.required_outputs),
            criteria: serde_json::from_value(r.entry_criteria.clone()).unwrap_or_default(),
        }
    }
}

/// Cross-stage checks: unique codes, at least one open stage, criteria that refer to
/// defined stages, tasks, outputs and fields. `prefix(i)` names stage i in errors.
fn check_pipeline(errs: &mut Errors, defs: &[StageDef], prefix: &dyn Fn(usize) -> String) {
    let mut codes = HashSet::new();
    for (i, d) in defs.iter().enumerate() {
        if !codes.insert(d.code.clone()) {
            errs.add(
                &format!("{}.code", prefix(i)),
                "duplicate",
                "stage codes must be unique in a pipeline",
            );
        }
    }
    if !defs.iter().any(|d| d.kind == "open") {
        errs.add("stages", "required", "a pipeline needs at least one open stage");
    }
    let items = |v: &[StageItem]| -> Vec<Item> {
        v.iter()
            .map(|x| Item {
                code: x.code.clone(),
                title: x.title.clone(),
            })
            .collect()
    };
    let catalogue: Vec<(String, Vec<Item>, Vec<Item>)> = defs
        .iter()
        .map(|d| (d.code.clone(), items(&d.key_tasks), items(&d.outputs)))
        .collect();
    for (i, d) in defs.iter().enumerate() {
        let mut domain: Vec<(usize, Criterion)> = Vec::new();
        for (j, c) in d.criteria.iter().enumerate() {
            match serde_json::from_value::<Criterion>(c.clone()) {
                Ok(x) => domain.push((j, x)),
                Err(e) => errs.add(&format!("{}.entry_criteria[{j}]", prefix(i)), "invalid", e.to_string()),
            }
        }
        let list: Vec<Criterion> = domain.iter().map(|(_, c)| c.clone()).collect();
        for (k, msg) in check_criteria(&list, OPPORTUNITY_FIELDS, &catalogue) {
            errs.add(
                &format!("{}.entry_criteria[{}]", prefix(i), domain[k].0),
                "invalid",
                msg,
            );
        }
    }
}

fn json_of<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or_default()
}

fn new_stage(pipeline_id: Uuid, s: &StageInput, position: usize) -> NewStage {
    NewStage {
        id: Uuid::now_v7(),
        pipeline_id,
        code: s.code.clone(),
        name: normalize::clean_text(&s.name),
        kind: s.kind.clone(),
        position: i32::try_from(position).unwrap_or(0),
        probability: s.probability,
        key_tasks: json_of(&s.key_tasks),
        required_outputs: json_of(&s.required_outputs),
        entry_criteria: json_of(&s.entry_criteria),
        stalled_after_days: s.stalled_after_days,
        forecast_category: s
            .forecast_category
            .clone()
            .unwrap_or_else(|| crm_domain::reports::default_category(&s.kind).to_owned()),
    }
}

fn check_stage(errs: &mut Errors, prefix: &str, s: &StageInput) {
    check_code(errs, &format!("{prefix}code"), &s.code);
    check_kind(errs, &format!("{prefix}kind"), &s.kind);
    if s.name.trim().is_empty() {
        errs.add(&format!("{prefix}name"), "required", "must not be blank");
    }
    check_items(errs, &format!("{prefix}key_tasks"), &s.key_tasks);
    check_items(errs, &format!("{prefix}required_outputs"), &s.required_outputs);
    check_category(
        errs,
        &format!("{prefix}forecast_category"),
        s.forecast_category.as_deref(),
    );
}

/// A forecast category must be one of the five.
pub fn check_category(errs: &mut Errors, field: &str, value: Option<&str>) {
    if let Some(v) = value {
        if !crm_domain::reports::FORECAST_CATEGORIES.contains(&v) {
            errs.add(
                field,
                "unknown_category",
                format!("one of {}", crm_domain::reports::FORECAST_CATEGORIES.join(", ")),
            );
        }
    }
}

/// Records a change of the pipeline `id` (its stages included) as `action`.
fn changed(c: &mut PgConnection, ctx: &Ctx, id: Uuid, old: &Value, action: &str, detail: Value) -> AppResult<()> {
    let new = write::audit_view(c, RES, id)?;
    let changes = crm_domain::diff::changes(old, &new);
    audit::record(c, &ctx.actor(), RES, id, action, changes, detail)?;
    Ok(())
}

/// Creates a pipeline with its stages; a default pipeline takes the flag from the
/// previous one.
pub fn create(c: &mut PgConnection, ctx: &Ctx, fields: &Map<String, Value>) -> AppResult<PipelineRow> {
    ctx.require(RES, Action::Admin)?;
    let input: PipelineInput = write::parse(fields)?;
    let mut errs = Errors::default();
    let name = errs.required_text("name", &input.name);
    for (i, s) in input.stages.iter().enumerate() {
        check_stage(&mut errs, &format!("stages[{i}]."), s);
    }
    let defs: Vec<StageDef> = input.stages.iter().map(StageDef::of_input).collect();
    check_pipeline(&mut errs, &defs, &|i| format!("stages[{i}]"));
    errs.into_result()?;
    let new = NewPipeline {
        id: Uuid::now_v7(),
        name: normalize::clean_text(&name),
        description: input.description.map(|d| d.trim().to_owned()).filter(|d| !d.is_empty()),
        is_default: input.is_default,
    };
    let p = pipelines::insert(c, &new).map_err(|e| match e {
        diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _) => {
            AppError::conflict("duplicate", "a pipeline with this name exists")
        }
        other => other.into(),
    })?;
    for (i, s) in input.stages.iter().enumerate() {
        pipelines::insert_stage(c, &new_stage(p.id, s, i + 1))?;
    }
    write::created(c, ctx, RES, p.id)?;
    // The pipeline that lost the default flag, if this one took it.
    audit::record_pending(c, &ctx.actor(), RES, "updated")?;
    Ok(p)
}

/// Renames, describes, makes default, archives or restores a pipeline (the default
/// one cannot be archived: `default_pipeline`).
pub fn update(
    c: &mut PgConnection,
    ctx: &Ctx,
    id: Uuid,
    expected: Option<i32>,
    fields: &Map<String, Value>,
) -> AppResult<PipelineRow> {
    ctx.require(RES, Action::Admin)?;
    let input: PipelinePatch = write::parse(fields)?;
    let mut errs = Errors::default();
    let name = input.name.as_deref().map(|n| errs.required_text("name", n));
    if input.archived == Some(true) && input.is_default == Some(true) {
        errs.add("archived", "conflict", "the default pipeline cannot be archived");
    }
    errs.into_result()?;
    let row = pipelines::find_for_update(c, id)?.ok_or(AppError::NotFound("pipeline"))?;
    let version = row.version;
    let now = ctx.now();
    let row = write::change_locked(c, ctx, (RES, id), row, (version, expected), |c, row| {
        if input.archived == Some(true) && (row.is_default && input.is_default != Some(false)) {
            return Err(AppError::conflict(
                "default_pipeline",
                "make another pipeline the default before archiving this one",
            ));
        }
        let changes = PipelineChanges {
            name,
            description: input
                .description
                .map(|d| d.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())),
            is_default: input.is_default,
            archived_at: input.archived.map(|a| a.then_some(now)),
        };
        pipelines::update(c, id, &changes)?;
        Ok(Some(pipelines::find(c, id)?.ok_or(AppError::NotFound("pipeline"))?))
    })?;
    audit::record_pending(c, &ctx.actor(), RES, "updated")?;
    Ok(row)
}

/// Adds a stage to a pipeline (appended, or inserted at `position`); the pipeline as a
/// whole is checked again.
pub fn add_stage(c: &mut PgConnection, ctx: &Ctx, id: Uuid, fields: &Map<String, Value>) -> AppResult<StageRow> {
    ctx.require(RES, Action::Admin)?;
    let s: StageInput = write::parse(fields)?;
    let mut errs = Errors::default();
    check_stage(&mut errs, "", &s);
    errs.into_result()?;
    pipelines::find_for_update(c, id)?.ok_or(AppError::NotFound("pipeline"))?;
    let old = write::audit_view(c, RES, id)?;
    let existing = pipelines::stages_of(c, &[id], true)?;
    let mut defs: Vec<StageDef> = existing.iter().map(StageDef::of_row).collect();
    defs.push(StageDef::of_input(&s));
    let last = defs.len() - 1;
    let mut errs = Errors::default();
    check_pipeline(&mut errs, &defs, &|i| {
        if i == last {
            "stage".into()
        } else {
            format!("existing[{i}]")
        }
    });
    errs.0
        .iter_mut()
        .for_each(|e| e.field = e.field.trim_start_matches("stage.").to_owned());
    errs.into_result()?;
    let live: Vec<Uuid> = existing
        .iter()
        .filter(|r| r.archived_at.is_none())
        .map(|r| r.id)
        .collect();
    let new = pipelines::insert_stage(c, &new_stage(id, &s, live.len() + 1))?;
    if let Some(pos) = s.position {
        let mut order = live;
        let at = usize::try_from(pos - 1).unwrap_or(0).min(order.len());
        order.insert(at, new.id);
        pipelines::reorder(c, &order)?;
    }
    changed(
        c,
        ctx,
        id,
        &old,
        "stage_added",
        json!({"pipeline_id": id, "stage_id": new.id}),
    )?;
    Ok(new)
}

/// Changes a stage. Archiving is refused while open deals sit in it (`stage_in_use`);
/// live stages stay numbered 1..n.
pub fn update_stage(
    c: &mut PgConnection,
    ctx: &Ctx,
    id: Uuid,
    expected: Option<i32>,
    fields: &Map<String, Value>,
) -> AppResult<StageRow> {
    ctx.require(RES, Action::Admin)?;
    let dto: StagePatch = write::parse(fields)?;
    let mut errs = Errors::default();
    let name = dto.name.as_deref().map(|n| errs.required_text("name", n));
    if let Some(k) = &dto.kind {
        check_kind(&mut errs, "kind", k);
    }
    if let Some(t) = &dto.key_tasks {
        check_items(&mut errs, "key_tasks", t);
    }
    if let Some(o) = &dto.required_outputs {
        check_items(&mut errs, "required_outputs", o);
    }
    errs.into_result()?;
    let row = pipelines::find_stage_for_update(c, id)?.ok_or(AppError::NotFound("stage"))?;
    if expected.is_some_and(|v| v != row.version) {
        return Err(AppError::Stale { current: row.version });
    }
    let pid = row.pipeline_id;
    let old = write::audit_view(c, RES, pid)?;
    if dto.archived == Some(true) && row.archived_at.is_none() {
        let n = pipelines::open_deals_in_stage(c, id)?;
        if n > 0 {
            return Err(AppError::conflict(
                "stage_in_use",
                format!("{n} open deals are in this stage; move them first"),
            ));
        }
    }
    let all = pipelines::stages_of(c, &[pid], true)?;
    let defs: Vec<StageDef> = all
        .iter()
        .filter(|r| !(r.id == id && dto.archived == Some(true)))
        .map(|r| {
            let mut d = StageDef::of_row(r);
            if r.id == id {
                d.kind = dto.kind.clone().unwrap_or(d.kind);
                d.key_tasks = dto.key_tasks.clone().unwrap_or(d.key_tasks);
                d.outputs = dto.required_outputs.clone().unwrap_or(d.outputs);
                d.criteria = dto.entry_criteria.clone().unwrap_or(d.criteria);
            }
            d
        })
        .collect();
    let mut errs = Errors::default();
    check_pipeline(&mut errs, &defs, &|i| format!("stages[{i}]"));
    check_category(&mut errs, "forecast_category", dto.forecast_category.as_deref());
    errs.into_result()?;
    let changes = StageChanges {
        name,
        kind: dto.kind,
        probability: dto.probability,
        key_tasks: dto.key_tasks.as_ref().map(json_of),
        required_outputs: dto.required_outputs.as_ref().map(json_of),
        entry_criteria: dto.entry_criteria.as_ref().map(json_of),
        stalled_after_days: dto.stalled_after_days,
        archived_at: dto.archived.map(|a| a.then(|| ctx.now())),
        forecast_category: dto.forecast_category,
    };
    let after = pipelines::update_stage(c, id, &changes)?;
    if dto.archived.is_some() {
        // Keep live stages numbered 1..n; archived ones go last.
        let mut order: Vec<_> = pipelines::stages_of(c, &[pid], true)?;
        order.sort_by_key(|s| (s.archived_at.is_some(), s.position));
        pipelines::reorder(c, &order.iter().map(|s| s.id).collect::<Vec<_>>())?;
    }
    changed(
        c,
        ctx,
        pid,
        &old,
        "stage_updated",
        json!({"pipeline_id": pid, "stage_id": id}),
    )?;
    Ok(after)
}

/// Reorders the live stages of a pipeline (each listed once); history keeps pointing at
/// the same stages.
pub fn reorder(c: &mut PgConnection, ctx: &Ctx, id: Uuid, order: &[Uuid]) -> AppResult<()> {
    ctx.require(RES, Action::Admin)?;
    pipelines::find_for_update(c, id)?.ok_or(AppError::NotFound("pipeline"))?;
    let old = write::audit_view(c, RES, id)?;
    let live: HashSet<Uuid> = pipelines::stages_of(c, &[id], false)?
        .into_iter()
        .map(|s| s.id)
        .collect();
    let given: HashSet<Uuid> = order.iter().copied().collect();
    if given.len() != order.len() || given != live {
        return Err(AppError::field(
            "stage_ids",
            "mismatch",
            "list every live stage of the pipeline exactly once",
        ));
    }
    pipelines::reorder(c, order)?;
    changed(c, ctx, id, &old, "stages_reordered", json!({"pipeline_id": id}))
}
