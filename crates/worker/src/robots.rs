//! Sending to DingTalk and WeCom group robots. Both platforms throttle a robot at 20
//! messages a minute; a channel's send job keeps its requests under the channel's
//! `per_minute` over a sliding minute (the `channel_sends` rows), and when more messages
//! wait than the minute allows it merges them into digests — nothing is dropped, what
//! does not fit waits for the next minute. A failed request leaves its messages waiting
//! (retried a minute later), so a robot that is down loses nothing either.

use std::sync::Arc;

use chrono::Utc;
use crm_app::channels::{QUEUE, SEND};
use crm_db::repo::channels::{self as repo, ChannelRow, MessageRow};
use crm_domain::integrations::{
    digest, dingtalk_body, dingtalk_sign, wecom_body, RobotFormat, RobotMessage, DINGTALK_LIMIT, WECOM_MARKDOWN_LIMIT,
};
use diesel::PgConnection;
use serde_json::Value;
use uuid::Uuid;

use crate::egress::Egress;
use crate::{BoxError, JobContext, Registry};

/// Registers the channel send job.
pub fn register(registry: &mut Registry, egress: Egress) {
    let egress = Arc::new(egress);
    registry.handle(SEND, move |c, ctx, payload: &Value| {
        let id = payload
            .get("channel_id")
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<Uuid>().ok())
            .ok_or("payload has no channel_id")?;
        send_channel(c, ctx, &egress, id)?;
        Ok(())
    });
}

/// What one run did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    /// Requests made to the robot.
    pub requests: usize,
    /// Messages they carried.
    pub messages: usize,
    pub failed: bool,
}

fn robot_message(m: &MessageRow) -> RobotMessage {
    RobotMessage {
        title: m.title.clone(),
        body: m.body.clone(),
        link: m.link.clone(),
        mentions: m.mentions.clone(),
    }
}

fn body_for(ch: &ChannelRow, m: &RobotMessage) -> Value {
    if ch.kind == "dingtalk" {
        let format = if m.link.is_some() {
            RobotFormat::ActionCard
        } else {
            RobotFormat::Markdown
        };
        dingtalk_body(m, format)
    } else {
        // WeCom mentions by mobile only work in text messages.
        let format = if m.mentions.is_empty() {
            RobotFormat::Markdown
        } else {
            RobotFormat::Text
        };
        wecom_body(m, format)
    }
}

fn url_for(ch: &ChannelRow, now_ms: i64) -> String {
    match (&ch.secret, ch.kind.as_str()) {
        (Some(secret), "dingtalk") => {
            let sep = if ch.url.contains('?') { '&' } else { '?' };
            format!(
                "{}{sep}timestamp={now_ms}&sign={}",
                ch.url,
                dingtalk_sign(secret, now_ms)
            )
        }
        _ => ch.url.clone(),
    }
}

/// Sends what waits for a channel, within its rate (see the module docs).
pub fn send_channel(c: &mut PgConnection, ctx: &JobContext, egress: &Egress, id: Uuid) -> Result<Sent, BoxError> {
    let mut out = Sent::default();
    let now = ctx.clock.now();
    let Some(ch) = repo::lock_for_sending(c, id)? else {
        // Deleted meanwhile: nothing to send. Otherwise another run holds it.
        if repo::find(c, id)?.is_some() {
            repo::schedule(c, QUEUE, SEND, id, now + chrono::Duration::seconds(2))?;
        }
        return Ok(out);
    };
    if !ch.enabled {
        return Ok(out);
    }
    let minute = chrono::Duration::seconds(60);
    let (recent, oldest) = repo::sends_since(c, id, now - minute)?;
    let budget = usize::try_from(i64::from(ch.per_minute) - recent).unwrap_or(0);
    let waiting = repo::waiting(c, id, 1000)?;
    if waiting.is_empty() {
        return Ok(out);
    }
    if budget == 0 {
        let at = oldest.map_or(now + minute, |o| o + minute) + chrono::Duration::seconds(1);
        repo::schedule(c, QUEUE, SEND, id, at)?;
        return Ok(out);
    }
    // Each alone when they fit the minute, else digests of as many as fit a message.
    let limit = if ch.kind == "dingtalk" {
        DINGTALK_LIMIT - 400
    } else {
        WECOM_MARKDOWN_LIMIT - 400
    };
    let mut groups: Vec<(RobotMessage, Vec<i64>)> = Vec::new();
    if waiting.len() <= budget {
        groups = waiting.iter().map(|m| (robot_message(m), vec![m.id])).collect();
    } else {
        let mut rest: &[MessageRow] = &waiting;
        while !rest.is_empty() && groups.len() < budget {
            let msgs: Vec<RobotMessage> = rest.iter().map(robot_message).collect();
            let (d, n) = digest(&msgs, limit);
            groups.push((d, rest[..n].iter().map(|m| m.id).collect()));
            rest = &rest[n..];
        }
    }
    for (m, ids) in groups {
        let at = ctx.clock.now();
        let url = url_for(&ch, Utc::now().timestamp_millis());
        let body = body_for(&ch, &m).to_string();
        let result = egress.post_json(&url, &[], &body);
        let (status, error) = match result {
            Ok(r) if r.status == 200 => {
                let code = serde_json::from_str::<Value>(&r.body)
                    .ok()
                    .and_then(|v| v.get("errcode").and_then(Value::as_i64))
                    .unwrap_or(0);
                if code == 0 {
                    (Some(200), None)
                } else {
                    (
                        Some(200),
                        Some(format!(
                            "errcode {code}: {}",
                            r.body.chars().take(300).collect::<String>()
                        )),
                    )
                }
            }
            Ok(r) => (Some(i32::from(r.status)), Some(format!("HTTP {}", r.status))),
            Err(e) => (None, Some(e.to_string())),
        };
        repo::record_send(c, id, at, &ids, status, error.as_deref())?;
        out.requests += 1;
        if let Some(e) = error {
            tracing::warn!(channel = %id, error = %e, "robot send failed; messages wait");
            out.failed = true;
            repo::schedule(c, QUEUE, SEND, id, at + minute)?;
            return Ok(out);
        }
        out.messages += ids.len();
    }
    if repo::count_waiting(c, id)? > 0 {
        let (recent, oldest) = repo::sends_since(c, id, ctx.clock.now() - minute)?;
        let at = if recent < i64::from(ch.per_minute) {
            ctx.clock.now()
        } else {
            oldest.map_or(ctx.clock.now() + minute, |o| o + minute) + chrono::Duration::seconds(1)
        };
        repo::schedule(c, QUEUE, SEND, id, at)?;
    }
    Ok(out)
}
