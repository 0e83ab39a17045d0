//! Integrations without IO: webhook signatures and event-type patterns, which addresses
//! outgoing requests may reach, DingTalk robot signing, and robot messages in DingTalk
//! and WeCom formats within their size limits.

use std::net::IpAddr;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::access::{Action, Scope};
use crate::events::CATALOGUE;

type HmacSha256 = Hmac<Sha256>;

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length.
    let mut mac = match HmacSha256::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return Vec::new(),
    };
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// The `v1` signature of a webhook delivery: hex HMAC-SHA256 with the secret over
/// `"{timestamp}.{body}"` (timestamp in Unix seconds, body the exact bytes sent).
pub fn webhook_signature(secret: &str, timestamp: i64, body: &str) -> String {
    let mut data = timestamp.to_string().into_bytes();
    data.push(b'.');
    data.extend_from_slice(body.as_bytes());
    hex::encode(hmac(secret.as_bytes(), &data))
}

/// The `Webhook-Signature` header: `t=<timestamp>,v1=<sig>` with one `v1` per valid
/// secret (two during a rotation's grace period).
pub fn signature_header(secrets: &[&str], timestamp: i64, body: &str) -> String {
    let mut out = format!("t={timestamp}");
    for s in secrets {
        out.push_str(",v1=");
        out.push_str(&webhook_signature(s, timestamp, body));
    }
    out
}

/// What a receiver does: parse the header, recompute with its secret, compare in
/// constant time, and refuse timestamps older than `tolerance_secs`.
pub fn verify_signature(secret: &str, header: &str, body: &str, now: i64, tolerance_secs: i64) -> bool {
    let mut t = None;
    let mut sigs = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = v.parse::<i64>().ok(),
            Some(("v1", v)) => sigs.push(v.to_owned()),
            _ => {}
        }
    }
    let Some(t) = t else { return false };
    if (now - t).abs() > tolerance_secs {
        return false;
    }
    let Ok(key) = HmacSha256::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    sigs.iter().any(|s| {
        let Ok(raw) = hex::decode(s) else { return false };
        let mut mac = key.clone();
        mac.update(format!("{t}.").as_bytes());
        mac.update(body.as_bytes());
        mac.verify_slice(&raw).is_ok()
    })
}

/// DingTalk robot signing: base64(HMAC-SHA256(secret, "{timestamp_ms}\n{secret}")),
/// URL-encoded, sent as `&timestamp=...&sign=...`.
pub fn dingtalk_sign(secret: &str, timestamp_ms: i64) -> String {
    let data = format!("{timestamp_ms}\n{secret}");
    let raw = STANDARD.encode(hmac(secret.as_bytes(), data.as_bytes()));
    url_encode(&raw)
}

/// Percent-encodes everything but unreserved characters (RFC 3986).
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Whether an event type matches a subscription pattern: `*`, `<object>.*` or exact.
pub fn type_matches(pattern: &str, event_type: &str) -> bool {
    match pattern.strip_suffix(".*") {
        _ if pattern == "*" => true,
        Some(prefix) => event_type.split_once('.').is_some_and(|(o, _)| o == prefix),
        None => pattern == event_type,
    }
}

fn singular(object: &str) -> String {
    if let Some(stem) = object.strip_suffix("ies") {
        format!("{stem}y")
    } else {
        object.strip_suffix('s').unwrap_or(object).to_owned()
    }
}

/// Checks a subscription pattern against the event catalogue; the message says why not.
pub fn check_pattern(pattern: &str) -> Result<(), String> {
    if pattern == "*" {
        return Ok(());
    }
    let Some((object, action)) = pattern.split_once('.') else {
        return Err(format!(
            "`{pattern}`: expected `*`, `<object>.*` or `<object>.<action>`"
        ));
    };
    let Some(o) = CATALOGUE.iter().find(|o| singular(o.object) == object) else {
        return Err(format!(
            "`{pattern}`: no events about `{object}` (see GET /meta/events)"
        ));
    };
    if action == "*" || o.actions.iter().any(|a| a.name == action) {
        Ok(())
    } else {
        Err(format!("`{pattern}`: `{object}` has no `{action}` event"))
    }
}

/// What a subscriber's role needs to get events about an object: the permission, and
/// whether the record's owner decides it (data scope).
pub fn read_permission(object: &str) -> (&'static str, Action, bool) {
    match object {
        "leads" | "opportunities" | "activities" | "tasks" | "accounts" | "contacts" | "quotes" | "contracts"
        | "payments" => (resource_name(object), Action::Read, true),
        "invoices" => ("contracts", Action::Read, true),
        "products" | "price_books" => ("products", Action::Read, false),
        "pipelines" => ("pipelines", Action::Read, false),
        "users" => ("users", Action::Read, false),
        "teams" => ("teams", Action::Read, false),
        "roles" => ("roles", Action::Read, false),
        "api_keys" => ("api_keys", Action::Admin, false),
        "approvals" | "approval_definitions" => ("approvals", Action::Admin, false),
        _ => ("settings", Action::Admin, false),
    }
}

fn resource_name(object: &str) -> &'static str {
    crate::access::RESOURCES
        .iter()
        .find(|r| r.name == object)
        .map_or("settings", |r| r.name)
}

/// Whether a scope restricts by owner at all.
pub fn scoped(scope: Scope) -> bool {
    scope != Scope::All
}

/// Why an address may not be reached by an outgoing request, or `None` when it may.
/// Loopback, private, link-local (cloud metadata included), CGNAT, unspecified,
/// broadcast, multicast, documentation and IPv6 unique-local ranges are refused;
/// IPv4-mapped IPv6 addresses are judged as the IPv4 address they carry.
pub fn blocked_address(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            if v4.is_loopback() {
                Some("loopback")
            } else if v4.is_private() {
                Some("private")
            } else if v4.is_link_local() {
                Some("link-local / metadata")
            } else if o[0] == 100 && (o[1] & 0xC0) == 64 {
                Some("carrier-grade NAT")
            } else if v4.is_unspecified() || o[0] == 0 {
                Some("unspecified")
            } else if v4.is_broadcast() || v4.is_multicast() || o[0] >= 240 {
                Some("broadcast / multicast / reserved")
            } else if v4.is_documentation()
                || (o[0] == 198 && (o[1] & 0xFE) == 18)
                || (o[0] == 192 && o[1] == 0 && o[2] == 0)
            {
                Some("reserved")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return blocked_address(IpAddr::V4(v4));
            }
            let s = v6.segments();
            if v6.is_loopback() {
                Some("loopback")
            } else if v6.is_unspecified() {
                Some("unspecified")
            } else if (s[0] & 0xfe00) == 0xfc00 {
                Some("private (unique local)")
            } else if (s[0] & 0xffc0) == 0xfe80 {
                Some("link-local / metadata")
            } else if v6.is_multicast() {
                Some("broadcast / multicast / reserved")
            } else if s[0] == 0x64 && s[1] == 0xff9b {
                // NAT64 prefix: judge the embedded IPv4 address.
                let v4 = std::net::Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
                blocked_address(IpAddr::V4(v4))
            } else if s[0] == 0x2001 && s[1] == 0x0db8 {
                Some("reserved")
            } else {
                None
            }
        }
    }
}

/// A robot message before it is put in a platform's format.
#[derive(Debug, Clone, PartialEq)]
pub struct RobotMessage {
    pub title: String,
    pub body: String,
    /// A link to the record, shown as a button (DingTalk actionCard) or a link line.
    pub link: Option<String>,
    /// Mobile numbers to @-mention.
    pub mentions: Vec<String>,
}

/// Which robot format to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RobotFormat {
    Text,
    Markdown,
    /// DingTalk only: markdown with a button linking to the record.
    ActionCard,
}

/// WeCom caps markdown content at 4,096 bytes and text content at 2,048 bytes.
pub const WECOM_MARKDOWN_LIMIT: usize = 4096;
pub const WECOM_TEXT_LIMIT: usize = 2048;
/// DingTalk's limit on a message's content (bytes, kept conservative).
pub const DINGTALK_LIMIT: usize = 4096;

/// Cuts `text` to at most `limit` bytes on a character boundary, preferring a line
/// break, and ends it with `tail` (e.g. a link to the whole record) when cut.
pub fn cut(text: &str, limit: usize, tail: &str) -> String {
    if text.len() <= limit {
        return text.to_owned();
    }
    let marker = format!("\n…{tail}");
    let room = limit.saturating_sub(marker.len());
    let mut end = room.min(text.len());
    while end > 0 && !text.is_char_boundary(end) {
        end -= 1;
    }
    let head = &text[..end];
    // A clean cut: at the last line break when it keeps most of the room.
    let head = match head.rfind('\n') {
        Some(i) if i >= room / 2 => &head[..i],
        _ => head,
    };
    let mut out = head.trim_end().to_owned();
    out.push_str(&marker);
    if out.len() > limit {
        // The tail alone is too long: plain cut.
        let mut end = limit;
        while end > 0 && !text.is_char_boundary(end) {
            end -= 1;
        }
        return text[..end].to_owned();
    }
    out
}

fn mention_line(mentions: &[String]) -> String {
    mentions.iter().map(|m| format!("@{m}")).collect::<Vec<_>>().join(" ")
}

/// The DingTalk robot request body.
pub fn dingtalk_body(m: &RobotMessage, format: RobotFormat) -> Value {
    let at = json!({"atMobiles": m.mentions, "isAtAll": false});
    let link_tail = m
        .link
        .as_deref()
        .map(|l| format!(" [查看全文]({l})"))
        .unwrap_or_default();
    match format {
        RobotFormat::Text => {
            let mut content = format!("{}\n{}", m.title, m.body);
            if let Some(l) = &m.link {
                content = cut(&content, DINGTALK_LIMIT - l.len() - 2 - 100, "");
                content.push_str(&format!("\n{l}"));
            }
            if !m.mentions.is_empty() {
                content.push_str(&format!("\n{}", mention_line(&m.mentions)));
            }
            json!({"msgtype": "text", "text": {"content": cut(&content, DINGTALK_LIMIT, "")}, "at": at})
        }
        RobotFormat::Markdown => {
            let mut text = cut(
                &format!("### {}\n\n{}", m.title, m.body),
                DINGTALK_LIMIT - 200,
                &link_tail,
            );
            if let Some(l) = &m.link {
                if !text.contains(l.as_str()) {
                    text.push_str(&format!("\n\n[查看记录]({l})"));
                }
            }
            if !m.mentions.is_empty() {
                text.push_str(&format!("\n\n{}", mention_line(&m.mentions)));
            }
            json!({"msgtype": "markdown", "markdown": {"title": m.title, "text": text}, "at": at})
        }
        RobotFormat::ActionCard => {
            let mut text = cut(&format!("### {}\n\n{}", m.title, m.body), DINGTALK_LIMIT - 200, "");
            if !m.mentions.is_empty() {
                text.push_str(&format!("\n\n{}", mention_line(&m.mentions)));
            }
            let mut card = json!({"title": m.title, "text": text, "btnOrientation": "0"});
            if let Some(l) = &m.link {
                card["singleTitle"] = json!("查看记录");
                card["singleURL"] = json!(l);
            }
            json!({"msgtype": "actionCard", "actionCard": card, "at": at})
        }
    }
}

/// The WeCom robot request body (action cards are sent as markdown).
pub fn wecom_body(m: &RobotMessage, format: RobotFormat) -> Value {
    let link_tail = m
        .link
        .as_deref()
        .map(|l| format!(" [查看全文]({l})"))
        .unwrap_or_default();
    match format {
        RobotFormat::Text => {
            let tail = m.link.as_deref().map(|l| format!(" {l}")).unwrap_or_default();
            let content = cut(&format!("{}\n{}", m.title, m.body), WECOM_TEXT_LIMIT, &tail);
            json!({"msgtype": "text", "text": {"content": content, "mentioned_mobile_list": m.mentions}})
        }
        RobotFormat::Markdown | RobotFormat::ActionCard => {
            let mut content = format!("### {}\n{}", m.title, m.body);
            if let Some(l) = &m.link {
                content.push_str(&format!("\n[查看记录]({l})"));
            }
            let content = cut(&content, WECOM_MARKDOWN_LIMIT, &link_tail);
            json!({"msgtype": "markdown", "markdown": {"content": content}})
        }
    }
}

/// Merges waiting messages into one digest, as many as fit `limit` bytes of body;
/// returns the digest and how many messages it holds (at least one).
pub fn digest(messages: &[RobotMessage], limit: usize) -> (RobotMessage, usize) {
    let mut body = String::new();
    let mut mentions: Vec<String> = Vec::new();
    let mut taken = 0;
    for (i, m) in messages.iter().enumerate() {
        let line = match &m.link {
            Some(l) => format!("{}. [{}]({l}) {}\n", i + 1, m.title, first_line(&m.body)),
            None => format!("{}. {} {}\n", i + 1, m.title, first_line(&m.body)),
        };
        if taken > 0 && body.len() + line.len() > limit {
            break;
        }
        body.push_str(&line);
        for x in &m.mentions {
            if !mentions.contains(x) {
                mentions.push(x.clone());
            }
        }
        taken += 1;
    }
    let title = format!("{taken} 条通知 / {taken} notifications");
    (
        RobotMessage {
            title,
            body: cut(body.trim_end(), limit, ""),
            link: None,
            mentions,
        },
        taken.max(1),
    )
}

fn first_line(s: &str) -> String {
    let line = s.lines().next().unwrap_or("");
    cut(line, 200, "")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn signatures_verify_and_reject_tampering() {
        let body = r#"{"id":"1"}"#;
        let h = signature_header(&["new", "old"], 1_700_000_000, body);
        assert!(h.starts_with("t=1700000000,v1="));
        assert_eq!(h.matches("v1=").count(), 2);
        assert!(verify_signature("new", &h, body, 1_700_000_010, 300));
        assert!(verify_signature("old", &h, body, 1_700_000_010, 300));
        assert!(!verify_signature("other", &h, body, 1_700_000_010, 300));
        assert!(!verify_signature("new", &h, r#"{"id":"2"}"#, 1_700_000_010, 300));
        assert!(!verify_signature("new", &h, body, 1_700_001_000, 300), "too old");
        // Known answer: HMAC-SHA256("secret", "1.{}").
        assert_eq!(
            webhook_signature("secret", 1, "{}"),
            "1122767b193110cfec322b6f199b599edbf608ed087f2d27afb0b97d99523908"
        );
    }

    #[test]
    fn dingtalk_signature_follows_the_documented_algorithm() {
        // Known answer, computed independently (Python hmac + base64 + quote).
        assert_eq!(
            dingtalk_sign("SECabc", 1_700_000_000_000),
            "jcUpW0QmtKduN03n4JqQ0PBosVjqnM8gU7fIIvsDmCM%3D"
        );
    }

    #[test]
    fn patterns() {
        assert!(type_matches("*", "lead.created"));
        assert!(type_matches("opportunity.*", "opportunity.stage_changed"));
        assert!(!type_matches("opportunity.*", "opportunityx.created"));
        assert!(type_matches("lead.created", "lead.created"));
        assert!(!type_matches("lead.created", "lead.updated"));
        assert!(check_pattern("opportunity.*").is_ok());
        assert!(check_pattern("opportunity.stage_changed").is_ok());
        assert!(check_pattern("opportunity.flew").is_err());
        assert!(check_pattern("spaceship.*").is_err());
        assert!(check_pattern("lead").is_err());
    }

    #[test]
    fn blocked_ranges() {
        let b = |s: &str| blocked_address(s.parse().unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)));
        for s in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
        ] {
            assert!(b(s).is_some(), "{s} must be blocked");
        }
        for s in ["8.8.8.8", "1.1.1.1", "100.128.0.1", "2606:4700::1111"] {
            assert_eq!(b(s), None, "{s} must be allowed");
        }
        assert_eq!(blocked_address(IpAddr::V6(Ipv6Addr::LOCALHOST)), Some("loopback"));
    }

    #[test]
    fn cuts_within_the_limit_on_a_char_boundary() {
        let text = "销售".repeat(3000);
        let out = cut(&text, WECOM_MARKDOWN_LIMIT, " [全文](https://crm.example/o/1)");
        assert!(out.len() <= WECOM_MARKDOWN_LIMIT);
        assert!(out.ends_with("[全文](https://crm.example/o/1)"));
        assert_eq!(cut("short", 10, "x"), "short");
        let m = RobotMessage {
            title: "t".into(),
            body: "长".repeat(5000),
            link: Some("https://crm.example/r/1".into()),
            mentions: vec!["13800000000".into()],
        };
        let b = wecom_body(&m, RobotFormat::Markdown);
        let content = b["markdown"]["content"].as_str().unwrap_or("");
        assert!(content.len() <= WECOM_MARKDOWN_LIMIT && content.contains("https://crm.example/r/1"));
        let t = wecom_body(&m, RobotFormat::Text);
        assert!(t["text"]["content"].as_str().unwrap_or("").len() <= WECOM_TEXT_LIMIT);
        assert_eq!(t["text"]["mentioned_mobile_list"][0], "13800000000");
        let d = dingtalk_body(&m, RobotFormat::ActionCard);
        assert_eq!(d["actionCard"]["singleURL"], "https://crm.example/r/1");
        assert!(d["actionCard"]["text"].as_str().unwrap_or("").contains("@13800000000"));
        assert_eq!(d["at"]["atMobiles"][0], "13800000000");
    }

    #[test]
    fn digest_merges_what_fits() {
        let msgs: Vec<RobotMessage> = (0..50)
            .map(|i| RobotMessage {
                title: format!("商机 {i}"),
                body: "阶段停留超过 15 天".repeat(3),
                link: Some(format!("https://crm.example/o/{i}")),
                mentions: vec![],
            })
            .collect();
        let (d, n) = digest(&msgs, 2000);
        assert!(n > 1 && n < 50);
        assert!(d.body.len() <= 2000);
        assert!(d.title.starts_with(&format!("{n} ")));
        let (_, all) = digest(&msgs[..3], 4000);
        assert_eq!(all, 3);
    }
}
