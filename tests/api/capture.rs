//! Web-to-lead: capture forms (admin) and the public capture endpoint.

use actix_web::http::Method;
use crm_test_support::app::{request, start};
use serde_json::json;

#[actix_web::test]
async fn website_forms_become_leads_through_the_lead_operation() {
    let app = start().await;
    let admin = app.token(app.org.admin);
    // Bad settings are named and nothing is stored.
    let r = app
        .post(
            "/api/v1/admin/capture-forms",
            &admin,
            json!({"name": "Landing", "mapping": {"n": "nickname"}, "allowed_origins": ["not an origin"],
                   "source": "carrier_pigeon"}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
    let fields: Vec<&str> = r.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    for f in ["mapping.n", "mapping", "allowed_origins[0]", "source"] {
        assert!(fields.contains(&f), "{f}: {}", r.text);
    }
    assert_eq!(app.db.count("SELECT count(*) FROM capture_forms"), 0);

    let r = app
        .post(
            "/api/v1/admin/capture-forms",
            &admin,
            json!({"name": "Landing page", "form_key": "landing-2026-q4",
                   "allowed_origins": ["https://www.example.com"],
                   "mapping": {"name": "person_name", "org": "company", "tel": "mobile", "mail": "email", "msg": "notes"},
                   "source": "website", "campaign": "Q4 expo", "owner_id": app.org.marketing,
                   "per_address_per_hour": 3}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let form_id = r.body["id"].as_str().unwrap().to_owned();
    let submit = |body: &str, origin: Option<&str>, ctype: &str| {
        let mut req = request(Method::POST, "/api/v1/capture/landing-2026-q4", None)
            .insert_header(("Content-Type", ctype.to_owned()))
            .set_payload(body.to_owned());
        if let Some(o) = origin {
            req = req.insert_header(("Origin", o.to_owned()));
        }
        req
    };
    let site = Some("https://www.example.com");
    // A form post (urlencoded), from an allowed origin.
    let r = app
        .send_from(
            submit(
                "name=%E6%9D%8E%E9%9B%B7&org=Gumu+Tech&tel=13812345678&mail=li%40gumu.cn&msg=demo+please",
                site,
                "application/x-www-form-urlencoded",
            ),
            "203.0.113.7",
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(r.body["status"], "received");
    assert_eq!(r.header("access-control-allow-origin").as_deref(), site);
    let lead = app.get("/api/v1/leads?q=Gumu", &app.token(app.org.marketing)).await;
    let items = lead.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{}", lead.text);
    assert_eq!(items[0]["person_name"], "李雷");
    assert_eq!(items[0]["source"], "website");
    assert_eq!(items[0]["campaign"], "Q4 expo");
    assert_eq!(items[0]["owner_id"], app.org.marketing.to_string());
    assert_eq!(
        app.db
            .count("SELECT count(*) FROM outbox_events WHERE event_type = 'lead.created'"),
        1,
        "the same operation as the API: audited, with its event"
    );

    // The same person again: a duplicate, answered alike, nothing created.
    let r = app
        .send_from(
            submit(r#"{"name": "李雷", "tel": "138 1234 5678"}"#, site, "application/json"),
            "203.0.113.8",
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(app.db.count("SELECT count(*) FROM leads"), 1);

    // The honeypot: accepted to the bot's eyes, dropped.
    let r = app
        .send_from(
            submit(
                r#"{"name": "Bot", "website": "http://spam.example"}"#,
                site,
                "application/json",
            ),
            "203.0.113.9",
        )
        .await;
    assert_eq!(r.status, 202);
    assert_eq!(app.db.count("SELECT count(*) FROM leads"), 1);
    let subs = app
        .get(&format!("/api/v1/admin/capture-forms/{form_id}/submissions"), &admin)
        .await;
    let outcomes: Vec<&str> = subs.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["spam", "duplicate", "created"]);

    // Invalid values name the form's fields, not the lead's.
    let r = app
        .send_from(
            submit(
                r#"{"name": "Han Meimei", "mail": "not-an-email"}"#,
                site,
                "application/json",
            ),
            "203.0.113.10",
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(r.body["errors"][0]["field"], "mail");
    assert!(!r.text.contains("email"), "no lead field names: {}", r.text);

    // Another origin, an unknown key, a wrong content type, too large a body.
    let r = app
        .send_from(
            submit(r#"{"name": "X"}"#, Some("https://evil.example"), "application/json"),
            "203.0.113.11",
        )
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(r.code(), "origin_not_allowed");
    let r = app
        .send_from(submit(r#"{"name": "X"}"#, None, "application/json"), "203.0.113.11")
        .await;
    assert_eq!(r.status, 403, "no origin when the form names origins");
    let r = app
        .send_from(
            request(Method::POST, "/api/v1/capture/no-such-form-key", None)
                .insert_header(("Content-Type", "application/json"))
                .set_payload(r#"{"name": "X"}"#),
            "203.0.113.12",
        )
        .await;
    assert_eq!(r.status, 404);
    assert!(!r.text.contains("no-such-form-key"));
    let r = app
        .send_from(submit("name=X", site, "text/plain"), "203.0.113.12")
        .await;
    assert_eq!(r.status, 415);
    let big = format!(r#"{{"name": "X", "msg": "{}"}}"#, "x".repeat(20_000));
    let r = app
        .send_from(submit(&big, site, "application/json"), "203.0.113.12")
        .await;
    assert_eq!(r.status, 413);
    assert_eq!(
        app.db.count("SELECT count(*) FROM leads"),
        1,
        "none of that created anything"
    );

    // Over the per-address limit (3 an hour): 429 with Retry-After; others still pass.
    for i in 0..3 {
        let body = format!(r#"{{"name": "Rate {i}", "mail": "rate{i}@example.com"}}"#);
        let r = app
            .send_from(submit(&body, site, "application/json"), "198.51.100.1")
            .await;
        assert_eq!(r.status, 202, "{i}: {}", r.text);
    }
    let r = app
        .send_from(
            submit(
                r#"{"name": "Rate 4", "mail": "rate4@example.com"}"#,
                site,
                "application/json",
            ),
            "198.51.100.1",
        )
        .await;
    assert_eq!(r.status, 429, "{}", r.text);
    assert_eq!(r.code(), "rate_limited");
    assert!(r.header("retry-after").unwrap().parse::<u64>().unwrap() >= 1);
    let r = app
        .send_from(
            submit(
                r#"{"name": "Other", "mail": "other@example.com"}"#,
                site,
                "application/json",
            ),
            "198.51.100.2",
        )
        .await;
    assert_eq!(r.status, 202);
    assert_eq!(app.db.count("SELECT count(*) FROM leads"), 5);

    // Disabled: the key stops working. Replacing keeps the key.
    let f = app.get(&format!("/api/v1/admin/capture-forms/{form_id}"), &admin).await;
    let v = f.etag_version();
    let r = app
        .send(
            request(
                Method::PUT,
                &format!("/api/v1/admin/capture-forms/{form_id}"),
                Some(&admin),
            )
            .insert_header(("If-Match", format!("\"{v}\"")))
            .set_json(json!({"name": "Landing page", "mapping": {"name": "person_name"}, "enabled": false})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["form_key"], "landing-2026-q4");
    let r = app
        .send_from(submit(r#"{"name": "Late"}"#, None, "application/json"), "198.51.100.3")
        .await;
    assert_eq!(r.status, 404);
    // Only admins manage forms.
    let rep = app.token(app.org.rep_east1);
    assert_eq!(app.get("/api/v1/admin/capture-forms", &rep).await.status, 403);
}
