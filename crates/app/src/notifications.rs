//! In-app notifications: the first subscriber of the event stream. Events become
//! notifications for the users they concern (an approval requested of you, your
//! request decided, a task or a lead assigned to you, your deal won or lost); a user
//! never hears of their own action, sees only their own notifications, and can mute
//! kinds.

use chrono::{DateTime, Utc};
use crm_db::repo::outbox::Delivered;
use diesel::prelude::*;
use diesel::sql_types::{Bool, Nullable, Text, Timestamptz};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::{AppError, AppResult, Ctx};

/// A kind of notification: its key and what it is called.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Kind {
    pub kind: &'static str,
    pub label_zh: &'static str,
    pub label_en: &'static str,
}

pub const KINDS: &[Kind] = &[
    Kind {
        kind: "approval_requested",
        label_zh: "待我审批",
        label_en: "Approval requested of me",
    },
    Kind {
        kind: "approval_decided",
        label_zh: "我的审批申请有结果",
        label_en: "My approval request decided",
    },
    Kind {
        kind: "task_assigned",
        label_zh: "分配给我的任务",
        label_en: "Task assigned to me",
    },
    Kind {
        kind: "deal_won",
        label_zh: "我的商机赢单",
        label_en: "My deal won",
    },
    Kind {
        kind: "deal_lost",
        label_zh: "我的商机输单",
        label_en: "My deal lost",
    },
    Kind {
        kind: "lead_assigned",
        label_zh: "分配给我的线索",
        label_en: "Lead assigned to me",
    },
    Kind {
        kind: "rule_alert",
        label_zh: "自动化规则提醒",
        label_en: "Automation rule alert",
    },
    Kind {
        kind: "report_delivery",
        label_zh: "订阅的报表推送",
        label_en: "A report I subscribed to",
    },
    Kind {
        kind: "report_alert",
        label_zh: "报表预警",
        label_en: "Report alert",
    },
    Kind {
        kind: "webhook_disabled",
        label_zh: "我的 Webhook 因持续失败被停用",
        label_en: "My webhook was disabled after failing continuously",
    },
];

/// One notification to write.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    pub user_id: Uuid,
    pub kind: &'static str,
    pub object_type: String,
    pub object_id: Uuid,
    pub title_zh: String,
    pub title_en: String,
}

fn uuid_at(v: &Value, path: &[&str]) -> Option<Uuid> {
    let mut v = v;
    for p in path {
        v = v.get(p)?;
    }
    v.as_str().and_then(|s| s.parse().ok())
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut v = v;
    for p in path {
        v = v.get(p)?;
    }
    v.as_str()
}

fn object_names(object_type: &str) -> (&'static str, &'static str) {
    match object_type {
        "quote" => ("报价单", "quote"),
        "contract" => ("合同", "contract"),
        "opportunity" => ("商机", "deal"),
        _ => ("记录", "record"),
    }
}

/// The approvers of one step of an approval instance (the original assignees).
fn step_approvers(c: &mut PgConnection, instance_id: Uuid, step: i32) -> AppResult<Vec<Uuid>> {
    use crm_db::schema::approval_tasks as t;
    Ok(t::table
        .filter(t::instance_id.eq(instance_id))
        .filter(t::step_index.eq(step))
        .filter(t::delegated_from.is_null())
        .select(t::approver_id)
        .load(c)?)
}

/// What an event means for whom (before mutes and the actor's own actions are left out).
pub fn plan(c: &mut PgConnection, ev: &Delivered) -> AppResult<Vec<Planned>> {
    let p = &ev.payload;
    let state = p.get("state").unwrap_or(&Value::Null);
    let detail = p.get("detail").unwrap_or(&Value::Null);
    let changes = p.get("changes").unwrap_or(&Value::Null);
    let one = |user: Option<Uuid>, kind: &'static str, zh: String, en: String| {
        user.map(|u| Planned {
            user_id: u,
            kind,
            object_type: ev.aggregate_type.clone(),
            object_id: ev.aggregate_id,
            title_zh: zh,
            title_en: en,
        })
        .into_iter()
        .collect::<Vec<_>>()
    };
    let out = match ev.event_type.as_str() {
        "approval.submitted" | "approval.step_approved" | "approval.delegated" | "approval.escalated" => {
            let (zh, en) = object_names(str_at(detail, &["object_type"]).unwrap_or(""));
            let users: Vec<Uuid> = match ev.event_type.as_str() {
                "approval.submitted" => detail
                    .get("approvers")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(|u| u.as_str()?.parse().ok()).collect())
                    .unwrap_or_default(),
                "approval.step_approved" => match detail.get("next_step").and_then(Value::as_i64) {
                    Some(n) => step_approvers(c, ev.aggregate_id, i32::try_from(n).unwrap_or(i32::MAX))?,
                    None => Vec::new(),
                },
                _ => uuid_at(detail, &["to"]).into_iter().collect(),
            };
            users
                .into_iter()
                .flat_map(|u| {
                    one(
                        Some(u),
                        "approval_requested",
                        format!("待你审批：{zh}"),
                        format!("Approval requested of you: {en}"),
                    )
                })
                .collect()
        }
        "approval.decided" => {
            let (zh, en) = object_names(str_at(detail, &["object_type"]).unwrap_or(""));
            let approved = str_at(detail, &["outcome"]) == Some("approved");
            let (vzh, ven) = if approved {
                ("已通过", "approved")
            } else {
                ("被驳回", "rejected")
            };
            one(
                uuid_at(detail, &["requester_id"]),
                "approval_decided",
                format!("你的{zh}审批申请{vzh}"),
                format!("Your {en} approval request was {ven}"),
            )
        }
        "task.created" | "task.updated" => {
            let assigned = ev.event_type == "task.created" || changes.get("owner_id").is_some();
            let title = str_at(state, &["title"]).unwrap_or("");
            if assigned {
                one(
                    uuid_at(state, &["owner_id"]),
                    "task_assigned",
                    format!("新任务：{title}"),
                    format!("Task assigned to you: {title}"),
                )
            } else {
                Vec::new()
            }
        }
        t if t.starts_with("opportunity.") => {
            let name = str_at(state, &["name"]).unwrap_or("");
            match str_at(changes, &["status", "after"]) {
                Some("won") => one(
                    uuid_at(state, &["owner_id"]),
                    "deal_won",
                    format!("商机赢单：{name}"),
                    format!("Deal won: {name}"),
                ),
                Some("lost") => one(
                    uuid_at(state, &["owner_id"]),
                    "deal_lost",
                    format!("商机输单：{name}"),
                    format!("Deal lost: {name}"),
                ),
                _ => Vec::new(),
            }
        }
        "lead.assigned" | "lead.created" => {
            let assigned = ev.event_type == "lead.assigned" || str_at(state, &["status"]) == Some("assigned");
            let name = str_at(state, &["company"])
                .filter(|s| !s.is_empty())
                .or_else(|| str_at(state, &["name"]))
                .unwrap_or("");
            if assigned {
                one(
                    uuid_at(state, &["owner_id"]),
                    "lead_assigned",
                    format!("新线索分配给你：{name}"),
                    format!("Lead assigned to you: {name}"),
                )
            } else {
                Vec::new()
            }
        }
        _ => Vec::new(),
    };
    Ok(out)
}

/// Handles one event (idempotent by event id: one notification per user, event and
/// kind). Returns the notifications written.
pub fn on_event(c: &mut PgConnection, ev: &Delivered) -> AppResult<usize> {
    let mut written = 0;
    for n in plan(c, ev)? {
        if Some(n.user_id) == ev.actor_id {
            continue;
        }
        let w = write(c, &n, ev.event_id, ev.committed_at)?;
        if w > 0 {
            let key = format!("notification:{}:{}:{}", ev.event_id, n.kind, n.user_id);
            crate::channels::personal(c, n.user_id, &n.title_zh, key, ev.committed_at)?;
        }
        written += w;
    }
    Ok(written)
}

/// Writes one notification for `event_id` unless its user is inactive or muted the kind
/// (or has it already). Returns 1 when written.
pub fn write(c: &mut PgConnection, n: &Planned, event_id: Uuid, at: DateTime<Utc>) -> AppResult<usize> {
    Ok(diesel::sql_query(
        "INSERT INTO notifications (id, user_id, kind, event_id, object_type, object_id, title_zh, title_en, created_at) \
         SELECT $1, u.id, $3, $4, $5, $6, $7, $8, $9 FROM users u \
         WHERE u.id = $2 AND u.is_active \
           AND NOT EXISTS (SELECT 1 FROM notification_mutes m WHERE m.user_id = u.id AND m.kind = $3) \
         ON CONFLICT (user_id, event_id, kind) DO NOTHING",
    )
    .bind::<diesel::sql_types::Uuid, _>(Uuid::now_v7())
    .bind::<diesel::sql_types::Uuid, _>(n.user_id)
    .bind::<Text, _>(n.kind)
    .bind::<diesel::sql_types::Uuid, _>(event_id)
    .bind::<Text, _>(&n.object_type)
    .bind::<diesel::sql_types::Uuid, _>(n.object_id)
    .bind::<Text, _>(&n.title_zh)
    .bind::<Text, _>(&n.title_en)
    .bind::<Timestamptz, _>(at)
    .execute(c)?)
}

fn me(ctx: &Ctx) -> AppResult<Uuid> {
    match ctx.user_id() {
        u if u.is_nil() => Err(AppError::forbidden("notifications belong to users")),
        u => Ok(u),
    }
}

/// A notification as its user sees it.
#[derive(Debug, Clone, QueryableByName, Serialize)]
pub struct Notification {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub id: Uuid,
    #[diesel(sql_type = Text)]
    pub kind: String,
    #[diesel(sql_type = Text)]
    pub title_zh: String,
    #[diesel(sql_type = Text)]
    pub title_en: String,
    #[diesel(sql_type = Text)]
    pub object_type: String,
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub object_id: Uuid,
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub event_id: Uuid,
    #[diesel(sql_type = Timestamptz)]
    pub created_at: DateTime<Utc>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub read_at: Option<DateTime<Utc>>,
}

/// Where a page of notifications continues: after this one in the list's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Cursor {
    pub read: bool,
    pub at: DateTime<Utc>,
    pub id: Uuid,
}

/// One page of a user's notifications.
#[derive(Debug, Clone)]
pub struct Page {
    pub items: Vec<Notification>,
    pub next: Option<Cursor>,
    pub unread_count: i64,
}

/// The caller's notifications: unread first, newest first within each.
pub fn list(c: &mut PgConnection, ctx: &Ctx, after: Option<Cursor>, limit: i64, unread_only: bool) -> AppResult<Page> {
    let me = me(ctx)?;
    let limit = limit.clamp(1, 200);
    let mut items: Vec<Notification> = diesel::sql_query(
        "SELECT id, kind, title_zh, title_en, object_type, object_id, event_id, created_at, read_at \
         FROM notifications WHERE user_id = $1 AND (NOT $2 OR read_at IS NULL) \
           AND ($3::bool IS NULL OR (read_at IS NOT NULL) > $3 \
                OR ((read_at IS NOT NULL) = $3 AND (created_at, id) < ($4, $5))) \
         ORDER BY (read_at IS NOT NULL), created_at DESC, id DESC LIMIT $6",
    )
    .bind::<diesel::sql_types::Uuid, _>(me)
    .bind::<Bool, _>(unread_only)
    .bind::<Nullable<Bool>, _>(after.map(|a| a.read))
    .bind::<Nullable<Timestamptz>, _>(after.map(|a| a.at))
    .bind::<Nullable<diesel::sql_types::Uuid>, _>(after.map(|a| a.id))
    .bind::<diesel::sql_types::BigInt, _>(limit + 1)
    .load(c)?;
    let next = if items.len() as i64 > limit {
        items.truncate(usize::try_from(limit).unwrap_or(0));
        items.last().map(|n| Cursor {
            read: n.read_at.is_some(),
            at: n.created_at,
            id: n.id,
        })
    } else {
        None
    };
    Ok(Page {
        items,
        next,
        unread_count: unread_count(c, me)?,
    })
}

pub fn unread_count(c: &mut PgConnection, user: Uuid) -> AppResult<i64> {
    use crm_db::schema::notifications as n;
    Ok(n::table
        .filter(n::user_id.eq(user))
        .filter(n::read_at.is_null())
        .count()
        .get_result(c)?)
}

/// Marks one of the caller's notifications read (another user's is not found).
pub fn mark_read(c: &mut PgConnection, ctx: &Ctx, id: Uuid) -> AppResult<Notification> {
    let me = me(ctx)?;
    let rows: Vec<Notification> = diesel::sql_query(
        "UPDATE notifications SET read_at = coalesce(read_at, $3) WHERE id = $1 AND user_id = $2 \
         RETURNING id, kind, title_zh, title_en, object_type, object_id, event_id, created_at, read_at",
    )
    .bind::<diesel::sql_types::Uuid, _>(id)
    .bind::<diesel::sql_types::Uuid, _>(me)
    .bind::<Timestamptz, _>(ctx.now())
    .load(c)?;
    rows.into_iter().next().ok_or(AppError::NotFound("notification"))
}

/// Marks all of the caller's notifications read; how many were unread.
pub fn mark_all_read(c: &mut PgConnection, ctx: &Ctx) -> AppResult<usize> {
    use crm_db::schema::notifications as n;
    let me = me(ctx)?;
    Ok(
        diesel::update(n::table.filter(n::user_id.eq(me)).filter(n::read_at.is_null()))
            .set(n::read_at.eq(ctx.now()))
            .execute(c)?,
    )
}

/// The caller's muted kinds.
pub fn muted(c: &mut PgConnection, ctx: &Ctx) -> AppResult<Vec<String>> {
    use crm_db::schema::notification_mutes as m;
    let me = me(ctx)?;
    Ok(m::table
        .filter(m::user_id.eq(me))
        .select(m::kind)
        .order(m::kind)
        .load(c)?)
}

/// Replaces the caller's muted kinds; an unknown kind is refused (422 naming it).
pub fn set_muted(c: &mut PgConnection, ctx: &Ctx, kinds: &[String]) -> AppResult<Vec<String>> {
    use crm_db::schema::notification_mutes as m;
    let me = me(ctx)?;
    let mut errors = crate::checks::Errors::default();
    for (i, k) in kinds.iter().enumerate() {
        if !KINDS.iter().any(|x| x.kind == k) {
            errors.add(
                &format!("muted[{i}]"),
                "unknown_kind",
                format!("`{k}` is not a notification kind"),
            );
        }
    }
    errors.into_result()?;
    diesel::delete(m::table.filter(m::user_id.eq(me))).execute(c)?;
    let rows: Vec<_> = kinds
        .iter()
        .map(|k| (m::user_id.eq(me), m::kind.eq(k.as_str())))
        .collect();
    diesel::insert_into(m::table)
        .values(&rows)
        .on_conflict_do_nothing()
        .execute(c)?;
    muted(c, ctx)
}
