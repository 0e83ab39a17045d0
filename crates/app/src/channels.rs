//! Group robot channels: DingTalk and WeCom robots configured by admins; messages to
//! them are queued and sent by the worker within the robots' rate (20 a minute),
//! merged into digests when more wait than the rate allows — never dropped. Used by
//! the rule engine's notify action and by users who want their personal notifications
//! in a channel.

use chrono::{DateTime, Utc};
use crm_db::repo::channels::{self as repo, ChannelRow, NewChannel, NewMessage};
use crm_domain::access::Action;
use diesel::PgConnection;
use uuid::Uuid;

use crate::checks::Errors;
use crate::context::Ctx;
use crate::error::{AppError, AppResult};

pub const QUEUE: &str = "webhooks";
/// Sends a channel's waiting messages: `{"channel_id"}`.
pub const SEND: &str = "channels.send";
/// Where WeCom robots are called, with `?key=<key>`.
pub const WECOM_SEND: &str = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send";

const RES: &str = "settings";

/// What a channel is created from.
#[derive(Debug, Clone)]
pub struct ChannelInput {
    /// `dingtalk` or `wecom`.
    pub kind: String,
    pub name: String,
    /// DingTalk: the robot's webhook URL; WeCom: optional (the key is enough).
    pub url: Option<String>,
    /// DingTalk: the signing secret (`SEC…`), optional; WeCom: the robot's key.
    pub secret: Option<String>,
    pub per_minute: Option<i32>,
    pub enabled: Option<bool>,
}

fn check_url(errs: &mut Errors, raw: &str) {
    match url::Url::parse(raw) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {}
        _ => errs.add("url", "invalid_url", "an http or https URL"),
    }
}

pub fn create(c: &mut PgConnection, ctx: &Ctx, input: ChannelInput) -> AppResult<ChannelRow> {
    ctx.require(RES, Action::Admin)?;
    let mut errs = Errors::default();
    let name = errs.required_text("name", &input.name);
    let name = errs.max_len("name", Some(name), 200).unwrap_or_default();
    let per_minute = input.per_minute.unwrap_or(20);
    if !(1..=20).contains(&per_minute) {
        errs.add("per_minute", "out_of_range", "1 to 20 (the platforms' limit)");
    }
    let secret = input.secret.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
    let url = match input.kind.as_str() {
        "dingtalk" => match input.url {
            Some(u) => {
                check_url(&mut errs, &u);
                u
            }
            None => {
                errs.add("url", "required", "the robot's webhook URL");
                String::new()
            }
        },
        "wecom" => match (input.url, &secret) {
            (Some(u), _) => {
                check_url(&mut errs, &u);
                u
            }
            (None, Some(key)) => format!("{WECOM_SEND}?key={}", crm_domain::integrations::url_encode(key)),
            (None, None) => {
                errs.add("secret", "required", "the robot's key");
                String::new()
            }
        },
        _ => {
            errs.add("kind", "invalid_choice", "dingtalk or wecom");
            String::new()
        }
    };
    errs.into_result()?;
    Ok(repo::insert(
        c,
        &NewChannel {
            id: Uuid::now_v7(),
            kind: input.kind,
            name,
            url,
            secret,
            enabled: input.enabled.unwrap_or(true),
            per_minute,
        },
    )?)
}

pub fn list(c: &mut PgConnection, ctx: &Ctx) -> AppResult<Vec<ChannelRow>> {
    ctx.require(RES, Action::Admin)?;
    Ok(repo::list(c)?)
}

pub fn get(c: &mut PgConnection, ctx: &Ctx, id: Uuid) -> AppResult<ChannelRow> {
    ctx.require(RES, Action::Admin)?;
    repo::find(c, id)?.ok_or(AppError::NotFound("channel"))
}

pub fn set_enabled(c: &mut PgConnection, ctx: &Ctx, id: Uuid, enabled: bool) -> AppResult<ChannelRow> {
    ctx.require(RES, Action::Admin)?;
    let row = repo::set_enabled(c, id, enabled)?.ok_or(AppError::NotFound("channel"))?;
    if enabled {
        repo::schedule(c, QUEUE, SEND, id, ctx.now())?;
    }
    Ok(row)
}

pub fn delete(c: &mut PgConnection, ctx: &Ctx, id: Uuid) -> AppResult<()> {
    ctx.require(RES, Action::Admin)?;
    if !repo::delete(c, id)? {
        return Err(AppError::NotFound("channel"));
    }
    Ok(())
}

/// A message for a channel.
#[derive(Debug, Clone)]
pub struct Message {
    pub title: String,
    pub body: String,
    /// A link to the record (a button on DingTalk).
    pub link: Option<String>,
    /// Mobile numbers to @-mention.
    pub mentions: Vec<String>,
    /// Queued once per key (e.g. a rule run's action).
    pub dedupe_key: Option<String>,
}

/// Queues a message in the caller's transaction and schedules the channel's send job;
/// returns whether it was queued (false: the dedupe key was seen).
pub fn post(c: &mut PgConnection, channel: Uuid, m: &Message, now: DateTime<Utc>) -> AppResult<bool> {
    let queued = repo::enqueue(
        c,
        &NewMessage {
            channel_id: channel,
            dedupe_key: m.dedupe_key.clone(),
            title: m.title.clone(),
            body: m.body.clone(),
            link: m.link.clone(),
            mentions: m.mentions.clone(),
            created_at: now,
        },
    )?;
    if queued {
        repo::schedule(c, QUEUE, SEND, channel, now)?;
    }
    Ok(queued)
}

/// Queues a test message (admin).
pub fn send_test(c: &mut PgConnection, ctx: &Ctx, id: Uuid) -> AppResult<()> {
    let ch = get(c, ctx, id)?;
    post(
        c,
        ch.id,
        &Message {
            title: "CRM 测试消息 / test message".into(),
            body: format!("来自 CRM 的测试消息：频道「{}」已连通。", ch.name),
            link: None,
            mentions: Vec::new(),
            dedupe_key: None,
        },
        ctx.now(),
    )?;
    Ok(())
}

/// Chooses (or clears) the channel the caller gets personal notifications in, with the
/// mobile number to @-mention.
pub fn set_mine(c: &mut PgConnection, ctx: &Ctx, choice: Option<(Uuid, Option<String>)>) -> AppResult<()> {
    let me = ctx.user_id();
    if me.is_nil() {
        return Err(AppError::forbidden("a personal channel belongs to a user"));
    }
    if let Some((id, _)) = &choice {
        repo::find(c, *id)?
            .filter(|ch| ch.enabled)
            .ok_or_else(|| AppError::field("channel_id", "not_found", "no enabled channel with this id"))?;
    }
    Ok(repo::set_user_channel(c, me, choice)?)
}

pub fn mine(c: &mut PgConnection, ctx: &Ctx) -> AppResult<Option<(Uuid, Option<String>)>> {
    Ok(repo::user_channel(c, ctx.user_id())?)
}

/// Copies a personal notification into the user's channel, when they chose one.
pub fn personal(
    c: &mut PgConnection,
    user: Uuid,
    title: &str,
    dedupe_key: String,
    now: DateTime<Utc>,
) -> AppResult<bool> {
    let Some((channel, mobile)) = repo::user_channel(c, user)? else {
        return Ok(false);
    };
    post(
        c,
        channel,
        &Message {
            title: title.to_owned(),
            body: title.to_owned(),
            link: None,
            mentions: mobile.into_iter().collect(),
            dedupe_key: Some(dedupe_key),
        },
        now,
    )
}
