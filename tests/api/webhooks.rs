//! Outgoing webhooks end to end: subscriptions through the API, events turned into
//! deliveries by the `webhooks` subscriber, sent to a local receiver on loopback (through
//! the egress allow-list), with the injectable clock driving retries.

use std::sync::Arc;
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use crm_test_support::app::{start, TestApp};
use crm_test_support::receiver::{Answer, Receiver};
use crm_worker::egress::{Egress, Policy};
use crm_worker::webhooks::{deliver, WebhookOptions, WebhookSubscriber};
use crm_worker::JobContext;
use diesel::Connection;
use serde_json::{json, Value};
use uuid::Uuid;

fn loopback() -> Egress {
    Egress::new(
        Policy::parse("127.0.0.1/32").unwrap(),
        Duration::from_secs(3),
        Duration::from_secs(10),
    )
}

fn fast_opts() -> WebhookOptions {
    WebhookOptions {
        base_backoff: Duration::from_secs(30),
        ..WebhookOptions::default()
    }
}

/// Runs the webhook subscriber over everything committed so far.
fn dispatch<S>(app: &TestApp<S>) -> usize {
    let pool = crm_db::pool::build_pool(&app.db.url, &crm_db::pool::PoolConfig::default()).unwrap();
    let setup = crm_worker::Setup {
        pool,
        database_url: app.db.url.clone(),
        registry: crm_worker::builtin::registry(&Default::default()),
        config: crm_worker::WorkerConfig::default(),
        clock: app.state.clock.clone(),
        metrics: Arc::new(crm_worker::WorkerMetrics::default()),
    };
    let mut total = 0;
    loop {
        let n = crm_worker::dispatch::dispatch_once(&setup, &WebhookSubscriber).unwrap();
        if n == 0 {
            return total;
        }
        total += n;
    }
}

/// Runs one delivery job of the subscription, as the worker would.
fn run<S>(app: &TestApp<S>, egress: &Egress, opts: &WebhookOptions, id: &str) -> crm_worker::webhooks::Run {
    let ctx = JobContext {
        clock: app.state.clock.clone(),
        attempt: 1,
    };
    let id: Uuid = id.parse().unwrap();
    let mut c = app.db.app_conn();
    c.transaction(|c| deliver(c, &ctx, egress, opts, id).map_err(diesel::result::Error::QueryBuilderError))
        .unwrap()
}

async fn subscribe<S, B>(app: &TestApp<S>, admin: &str, body: Value) -> (String, String)
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let r = app.post("/api/v1/admin/webhooks", admin, body).await;
    assert_eq!(r.status, 201, "{}", r.text);
    (
        r.body["id"].as_str().unwrap().to_owned(),
        r.body["secret"].as_str().unwrap().to_owned(),
    )
}

fn verify(secret: &str, r: &crm_test_support::receiver::Received) -> bool {
    let header = r.header("webhook-signature").unwrap_or("");
    crm_domain::integrations::verify_signature(secret, header, &r.body, chrono::Utc::now().timestamp(), 300)
}

#[actix_web::test]
async fn subscriptions_are_validated_and_secrets_shown_once() {
    let app = start().await;
    let admin = app.token(app.org.admin);
    let r = app
        .post(
            "/api/v1/admin/webhooks",
            &admin,
            json!({"url": "ftp://example.com/hook", "event_types": ["spaceship.*", "opportunity.flew"],
                   "condition": {"field": "amount", "op": "between"}, "role": "no_such_role"}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
    let fields: Vec<&str> = r.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    for f in ["url", "event_types[0]", "event_types[1]", "condition", "role"] {
        assert!(fields.contains(&f), "{f} not named: {}", r.text);
    }
    assert_eq!(app.db.count("SELECT count(*) FROM webhooks"), 0);
    let r = app
        .post(
            "/api/v1/admin/webhooks",
            &admin,
            json!({"url": "https://user:pw@example.com/x", "event_types": ["*"], "role": "sales_director"}),
        )
        .await;
    assert_eq!(r.status, 422, "credentials in the URL: {}", r.text);

    let rep = app.token(app.org.rep_east1);
    let r = app
        .post(
            "/api/v1/admin/webhooks",
            &rep,
            json!({"url": "https://example.com/x", "event_types": ["*"], "role": "sales_director"}),
        )
        .await;
    assert_eq!(r.status, 403);

    let (id, secret) = subscribe(
        &app,
        &admin,
        json!({"url": "https://example.com/x", "event_types": ["opportunity.*", "lead.created"], "role": "sales_director",
               "description": "ERP"}),
    )
    .await;
    assert!(secret.starts_with("whsec_") && secret.len() > 30);
    let list = app.get("/api/v1/admin/webhooks", &admin).await;
    assert_eq!(list.status, 200);
    assert!(!list.text.contains(&secret), "the secret is never listed");
    assert_eq!(list.body["items"][0]["role"], "sales_director");
    let one = app.get(&format!("/api/v1/admin/webhooks/{id}"), &admin).await;
    let v = one.etag_version();
    let r = app
        .patch(
            &format!("/api/v1/admin/webhooks/{id}"),
            &admin,
            v,
            json!({"enabled": false, "event_types": ["*"]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["enabled"], false);
    assert_eq!(r.body["event_types"], json!(["*"]));
    let r = app
        .patch(
            &format!("/api/v1/admin/webhooks/{id}"),
            &admin,
            v,
            json!({"enabled": true}),
        )
        .await;
    assert_eq!(r.status, 412, "stale version");
    let rot = app
        .post(
            &format!("/api/v1/admin/webhooks/{id}/rotate-secret"),
            &admin,
            json!({"grace_hours": 2}),
        )
        .await;
    assert_eq!(rot.status, 200, "{}", rot.text);
    let new_secret = rot.body["secret"].as_str().unwrap();
    assert_ne!(new_secret, secret);
    assert!(rot.body["previous_secret_until"].is_string());
    let r = app
        .post(&format!("/api/v1/admin/webhooks/{id}/test"), &admin, json!({}))
        .await;
    assert_eq!(r.status, 409, "disabled: {}", r.text);
    assert_eq!(r.code(), "webhook_disabled");
    assert_eq!(
        app.delete(&format!("/api/v1/admin/webhooks/{id}"), &admin).await.status,
        204
    );
    assert_eq!(
        app.get(&format!("/api/v1/admin/webhooks/{id}"), &admin).await.status,
        404
    );
}

#[actix_web::test]
async fn deliveries_are_signed_shaped_by_the_role_and_in_order() {
    let app = start().await;
    let admin = app.token(app.org.admin);
    let rx = Receiver::start();
    app.set_field_access(
        &admin,
        "sales_director",
        json!([
            {"object": "opportunities", "field": "amount", "access": "hidden"},
            {"object": "opportunities", "field": "next_step", "access": "masked"}
        ]),
    )
    .await;
    let (hook, secret) = subscribe(
        &app,
        &admin,
        json!({"url": rx.url("/hook"), "event_types": ["opportunity.*"], "role": "sales_director"}),
    )
    .await;
    let rep = app.token(app.org.rep_east1);
    let acc = app.account(&rep, "Webhook Co").await;
    let deal = app
        .deal(
            &rep,
            json!({"name": "Big ERP", "account_id": acc["id"], "amount": "250000.00"}),
        )
        .await;
    let deal_id = deal["id"].as_str().unwrap();
    let mut version = deal["version"].as_i64().unwrap() as i32;
    for (amount, step) in [("260000.00", "call"), ("270000.00", "demo"), ("280000.00", "proposal")] {
        let r = app
            .patch(
                &format!("/api/v1/opportunities/{deal_id}"),
                &rep,
                version,
                json!({"amount": amount, "next_step": step}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        version = r.etag_version();
    }
    assert!(dispatch(&app) > 0);
    // Handling the same events again creates nothing new.
    let created = app.db.count("SELECT count(*) FROM webhook_deliveries");
    assert_eq!(created, 4, "created + 3 updates (the account is not subscribed)");
    let egress = loopback();
    let done = run(&app, &egress, &fast_opts(), &hook);
    assert_eq!(done.delivered, 4);
    let got = rx.received();
    assert_eq!(got.len(), 4);
    let bodies: Vec<Value> = got.iter().map(|r| r.json()).collect();
    assert_eq!(bodies[0]["type"], "opportunity.created");
    for (r, b) in got.iter().zip(&bodies) {
        assert!(verify(&secret, r), "signature verifies: {:?}", r.headers);
        assert!(!verify("whsec_wrong", r));
        assert_eq!(r.header("webhook-id").unwrap(), b["id"].as_str().unwrap());
        assert_eq!(r.header("content-type").unwrap(), "application/json");
        assert!(b.get("state").is_none(), "storage rows never leave");
        let rec = &b["record"];
        assert_eq!(rec["id"], deal_id);
        assert!(rec.get("amount").is_none(), "hidden field absent: {rec}");
        assert!(
            rec.get("weighted_amount").is_none(),
            "derived from a hidden field: {rec}"
        );
        if !rec["next_step"].is_null() {
            assert!(rec["next_step"].as_str().unwrap().ends_with("***"), "masked: {rec}");
        }
        assert!(
            b["changes"].get("amount").is_none(),
            "hidden in changes too: {}",
            b["changes"]
        );
        assert!(
            !r.body.contains("250000") && !r.body.contains("260000"),
            "no amount anywhere"
        );
    }
    // Per record in order: the updates arrive as they were made.
    let versions: Vec<i64> = bodies
        .iter()
        .map(|b| b["object"]["version"].as_i64().unwrap_or(0))
        .collect();
    assert!(versions.windows(2).all(|w| w[0] < w[1]), "in order: {versions:?}");
    assert_eq!(bodies[3]["changes"]["next_step"]["after"], "p***", "masked in changes");
    assert!(
        !got.iter().any(|r| r.body.contains("proposal")),
        "the masked value never leaves"
    );

    // The log through the API.
    let log = app
        .get(&format!("/api/v1/admin/webhooks/{hook}/deliveries"), &admin)
        .await;
    assert_eq!(log.status, 200, "{}", log.text);
    let items = log.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 4);
    assert!(items
        .iter()
        .all(|d| d["state"] == "delivered" && d["last_status"] == 200));
    let first = items[0]["id"].as_i64().unwrap();
    let one = app
        .get(&format!("/api/v1/admin/webhooks/{hook}/deliveries/{first}"), &admin)
        .await;
    assert_eq!(one.status, 200);
    assert_eq!(one.body["attempts_log"].as_array().unwrap().len(), 1);
    assert_eq!(one.body["attempts_log"][0]["response"], "ok");

    // Redeliver one, then a window: same event ids, new deliveries.
    let r = app
        .post(
            &format!("/api/v1/admin/webhooks/{hook}/redeliver"),
            &admin,
            json!({"delivery_id": first}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    let from = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    let to = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let r = app
        .post(
            &format!("/api/v1/admin/webhooks/{hook}/redeliver"),
            &admin,
            json!({"from": from, "to": to}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(r.body["delivery_ids"].as_array().unwrap().len(), 4, "originals only");
    let r = app
        .post(
            &format!("/api/v1/admin/webhooks/{hook}/redeliver"),
            &admin,
            json!({"delivery_id": first, "from": from}),
        )
        .await;
    assert_eq!(r.status, 422);
    run(&app, &egress, &fast_opts(), &hook);
    let got = rx.received();
    assert_eq!(got.len(), 9);
    assert_eq!(
        got[4].header("webhook-id"),
        got[3].header("webhook-id"),
        "the same event id"
    );
    assert_eq!(got[4].body, got[3].body, "the exact body");

    // A test event.
    let r = app
        .post(&format!("/api/v1/admin/webhooks/{hook}/test"), &admin, json!({}))
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    run(&app, &egress, &fast_opts(), &hook);
    let last = rx.received().pop().unwrap();
    assert_eq!(last.json()["type"], "webhook.test");
    assert!(verify(&secret, &last));
}

#[actix_web::test]
async fn retries_back_off_honour_retry_after_and_keep_record_order() {
    let app = start().await;
    let admin = app.token(app.org.admin);
    let rx = Receiver::start();
    let (hook, _) = subscribe(
        &app,
        &admin,
        json!({"url": rx.url("/hook"), "event_types": ["account.*"], "role": "sales_director"}),
    )
    .await;
    let rep = app.token(app.org.rep_east1);
    let a = app.account(&rep, "Retry Co").await;
    let r = app
        .patch(
            &format!("/api/v1/accounts/{}", a["id"].as_str().unwrap()),
            &rep,
            1,
            json!({"website": "https://retry.example"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    dispatch(&app);
    let egress = loopback();
    let opts = fast_opts();
    rx.script([
        Answer::status(500).body("boom"),
        Answer::status(429).header("Retry-After", "120"),
        Answer::status(200),
        Answer::status(200),
    ]);
    // Attempt 1 of the creation fails; the update waits behind it (same record).
    let r1 = run(&app, &egress, &opts, &hook);
    assert_eq!((r1.attempted, r1.delivered), (1, 0));
    assert_eq!(rx.count(), 1);
    let again = run(&app, &egress, &opts, &hook);
    assert_eq!(again.attempted, 0, "not due before its backoff");
    let clock = app.state.clock.clone();
    clock.advance(chrono::Duration::seconds(31));
    let r2 = run(&app, &egress, &opts, &hook);
    assert_eq!((r2.attempted, r2.delivered), (1, 0), "429");
    clock.advance(chrono::Duration::seconds(100));
    assert_eq!(
        run(&app, &egress, &opts, &hook).attempted,
        0,
        "Retry-After: 120 is honoured"
    );
    clock.advance(chrono::Duration::seconds(21));
    let r3 = run(&app, &egress, &opts, &hook);
    assert_eq!(r3.delivered, 2, "then both, in order");
    let got = rx.received();
    assert_eq!(got.len(), 4);
    assert_eq!(got[2].json()["type"], "account.created");
    assert_eq!(got[3].json()["type"], "account.updated");
    assert_eq!(
        got[0].header("webhook-id"),
        got[2].header("webhook-id"),
        "retries keep the event id"
    );
    assert_eq!(got[2].header("webhook-attempt"), Some("3"));
    let log = app
        .get(
            &format!("/api/v1/admin/webhooks/{hook}/deliveries?state=delivered"),
            &admin,
        )
        .await;
    let created = log.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["event_type"] == "account.created")
        .unwrap()
        .clone();
    assert_eq!(created["attempts"], 3);
    let detail = app
        .get(
            &format!("/api/v1/admin/webhooks/{hook}/deliveries/{}", created["id"]),
            &admin,
        )
        .await;
    let outcomes: Vec<&str> = detail.body["attempts_log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["retry", "retry", "delivered"]);
    assert_eq!(detail.body["attempts_log"][0]["response"], "boom");

    // A 400 is not retried; a 408 is.
    let b = app.account(&rep, "Reject Co").await;
    let _ = b;
    dispatch(&app);
    rx.script([Answer::status(400)]);
    run(&app, &egress, &opts, &hook);
    let failed = app
        .get(
            &format!("/api/v1/admin/webhooks/{hook}/deliveries?state=failed"),
            &admin,
        )
        .await;
    assert_eq!(failed.body["items"].as_array().unwrap().len(), 1);
    assert!(failed.body["items"][0]["last_error"]
        .as_str()
        .unwrap()
        .contains("not retried"));
}

#[actix_web::test]
async fn a_subscription_failing_continuously_is_disabled_and_its_owner_told() {
    let app = start().await;
    let admin = app.token(app.org.admin);
    let rx = Receiver::start();
    rx.default_answer(Answer::status(503));
    let (hook, _) = subscribe(
        &app,
        &admin,
        json!({"url": rx.url("/down"), "event_types": ["account.created"], "role": "sales_director"}),
    )
    .await;
    let rep = app.token(app.org.rep_east1);
    app.account(&rep, "Down Co").await;
    dispatch(&app);
    let egress = loopback();
    let opts = WebhookOptions {
        disable_after: chrono::Duration::hours(1),
        ..fast_opts()
    };
    let clock = app.state.clock.clone();
    let mut disabled = false;
    for _ in 0..40 {
        let r = run(&app, &egress, &opts, &hook);
        if r.disabled {
            disabled = true;
            break;
        }
        clock.advance(chrono::Duration::minutes(10));
    }
    assert!(disabled, "disabled after an hour of failures");
    let w = app.get(&format!("/api/v1/admin/webhooks/{hook}"), &admin).await;
    assert_eq!(w.body["enabled"], false);
    assert!(w.body["disabled_reason"]
        .as_str()
        .unwrap()
        .contains("failing continuously"));
    let notes = app.get("/api/v1/me/notifications", &admin).await;
    assert!(
        notes.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["kind"] == "webhook_disabled"),
        "{}",
        notes.text
    );
    // Disabled: nothing more is sent, deliveries wait; enabling sends them.
    let before = rx.count();
    clock.advance(chrono::Duration::hours(1));
    assert_eq!(run(&app, &egress, &opts, &hook).attempted, 0);
    assert_eq!(rx.count(), before);
    rx.default_answer(Answer::status(204));
    let v = w.etag_version();
    let r = app
        .patch(
            &format!("/api/v1/admin/webhooks/{hook}"),
            &admin,
            v,
            json!({"enabled": true}),
        )
        .await;
    assert_eq!(r.status, 200);
    assert!(r.body["failing_since"].is_null());
    assert_eq!(run(&app, &egress, &opts, &hook).delivered, 1);
}

#[actix_web::test]
async fn the_egress_policy_refuses_special_addresses_without_the_allow_list() {
    let app = start().await;
    let admin = app.token(app.org.admin);
    let rx = Receiver::start();
    let strict = Egress::new(Policy::default(), Duration::from_secs(3), Duration::from_secs(10));
    let targets = [
        rx.url("/hook"),
        format!("http://localhost:{}/hook", rx.port),
        "http://10.0.0.1/hook".to_owned(),
        "http://172.16.5.4/hook".to_owned(),
        "http://192.168.1.1/hook".to_owned(),
        "http://169.254.169.254/latest/meta-data".to_owned(),
        "http://100.64.0.1/hook".to_owned(),
        "http://[::1]:9/hook".to_owned(),
        "http://[fd00::1]/hook".to_owned(),
        "http://0.0.0.0/hook".to_owned(),
    ];
    for t in &targets {
        let r = strict.post_json(t, &[], "{}");
        match r {
            Err(crm_worker::egress::SendError::Refused(_)) => {}
            other => panic!("{t}: expected a refusal, got {other:?}"),
        }
    }
    assert_eq!(rx.count(), 0, "nothing reached the receiver");
    // Through a subscription: the delivery fails at once, with the reason in the log.
    let (hook, _) = subscribe(
        &app,
        &admin,
        json!({"url": rx.url("/hook"), "event_types": ["account.created"], "role": "sales_director"}),
    )
    .await;
    app.account(&app.token(app.org.rep_east1), "SSRF Co").await;
    dispatch(&app);
    run(&app, &strict, &fast_opts(), &hook);
    assert_eq!(rx.count(), 0);
    let log = app
        .get(&format!("/api/v1/admin/webhooks/{hook}/deliveries"), &admin)
        .await;
    assert_eq!(log.body["items"][0]["state"], "failed");
    assert!(log.body["items"][0]["last_error"]
        .as_str()
        .unwrap()
        .contains("loopback"));
    // Redirects are not followed.
    rx.script([Answer::status(302).header("Location", "http://169.254.169.254/")]);
    let r = loopback().post_json(&rx.url("/r"), &[], "{}").unwrap();
    assert_eq!(r.status, 302);
    assert_eq!(rx.count(), 1);
}

#[actix_web::test]
async fn a_subscription_only_gets_records_its_role_may_read() {
    let app = start().await;
    let admin = app.token(app.org.admin);
    let rx = Receiver::start();
    // sales_rep: own records only — the owner's (the admin's) own.
    let (hook, _) = subscribe(
        &app,
        &admin,
        json!({"url": rx.url("/rep"), "event_types": ["account.created"], "role": "sales_rep"}),
    )
    .await;
    let (cond_hook, _) = subscribe(
        &app,
        &admin,
        json!({"url": rx.url("/cond"), "event_types": ["account.created"], "role": "sales_director",
               "condition": {"field": "name", "op": "contains", "value": "VIP"}}),
    )
    .await;
    app.account(&app.token(app.org.rep_east1), "Someone else's").await;
    app.account(&admin, "Admin's own").await;
    app.account(&admin, "VIP account").await;
    dispatch(&app);
    let egress = loopback();
    run(&app, &egress, &fast_opts(), &hook);
    run(&app, &egress, &fast_opts(), &cond_hook);
    let got = rx.received();
    let rep: Vec<String> = got
        .iter()
        .filter(|r| r.target == "/rep")
        .map(|r| r.json()["record"]["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(rep, ["Admin's own", "VIP account"]);
    let cond: Vec<String> = got
        .iter()
        .filter(|r| r.target == "/cond")
        .map(|r| r.json()["record"]["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(cond, ["VIP account"]);
}
