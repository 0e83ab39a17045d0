//! DingTalk and WeCom group robots against a local receiver that checks the signature,
//! the message format and the rate; the injectable clock moves the rate window.

use std::sync::Arc;
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use crm_app::channels::{post, Message};
use crm_test_support::app::{request, start, TestApp};
use crm_test_support::receiver::{Answer, Receiver};
use crm_worker::egress::{Egress, Policy};
use crm_worker::robots::{send_channel, Sent};
use crm_worker::JobContext;
use diesel::Connection;
use serde_json::{json, Value};
use uuid::Uuid;

fn egress() -> Egress {
    Egress::new(
        Policy::parse("127.0.0.1").unwrap(),
        Duration::from_secs(3),
        Duration::from_secs(10),
    )
}

fn send<S>(app: &TestApp<S>, id: Uuid) -> Sent {
    let ctx = JobContext {
        clock: app.state.clock.clone(),
        attempt: 1,
    };
    let mut c = app.db.app_conn();
    c.transaction(|c| send_channel(c, &ctx, &egress(), id).map_err(diesel::result::Error::QueryBuilderError))
        .unwrap()
}

fn queue<S>(app: &TestApp<S>, id: Uuid, m: Message) {
    let mut c = app.db.app_conn();
    let now = app.state.clock.now();
    c.transaction(|c| post(c, id, &m, now).map_err(|e| diesel::result::Error::QueryBuilderError(e.to_string().into())))
        .unwrap();
}

fn msg(title: &str) -> Message {
    Message {
        title: title.into(),
        body: format!("{title}：阶段停留超过 15 天，请跟进"),
        link: Some(format!("https://crm.example/opportunities/{title}")),
        mentions: vec!["13800000001".into()],
        dedupe_key: None,
    }
}

async fn channel<S, B>(app: &TestApp<S>, admin: &str, body: Value) -> Uuid
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let r = app.post("/api/v1/admin/channels", admin, body).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert!(!r.text.contains("SEC"), "the secret is never shown");
    r.body["id"].as_str().unwrap().parse().unwrap()
}

fn query(target: &str, key: &str) -> Option<String> {
    target
        .split_once('?')?
        .1
        .split('&')
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")).map(str::to_owned))
}

#[actix_web::test]
async fn dingtalk_messages_are_signed_formatted_and_kept_under_the_rate() {
    let app = start().await;
    let admin = app.token(app.org.admin);
    let rx = Receiver::start();
    rx.default_answer(Answer::status(200).body(r#"{"errcode":0,"errmsg":"ok"}"#));
    let r = app
        .post(
            "/api/v1/admin/channels",
            &admin,
            json!({"kind": "dingtalk", "name": "Sales East"}),
        )
        .await;
    assert_eq!(r.status, 422, "a DingTalk robot needs its URL: {}", r.text);
    let id = channel(
        &app,
        &admin,
        json!({"kind": "dingtalk", "name": "Sales East", "url": rx.url("/robot/send?access_token=tok"),
               "secret": "SECtest-secret"}),
    )
    .await;

    // One at a time: the first 20 go out alone, the rest wait for the next minute.
    for i in 0..25 {
        queue(&app, id, msg(&format!("deal-{i}")));
        send(&app, id);
    }
    let got = rx.received();
    assert_eq!(got.len(), 20, "20 a minute");
    for r in &got {
        let ts: i64 = query(&r.target, "timestamp").unwrap().parse().unwrap();
        assert!(
            (chrono::Utc::now().timestamp_millis() - ts).abs() < 60_000,
            "millisecond timestamp"
        );
        assert_eq!(
            query(&r.target, "sign").unwrap(),
            crm_domain::integrations::dingtalk_sign("SECtest-secret", ts),
            "signed as DingTalk documents"
        );
        assert_eq!(query(&r.target, "access_token").as_deref(), Some("tok"));
        let b = r.json();
        assert_eq!(b["msgtype"], "actionCard", "a button to the record");
        assert!(b["actionCard"]["singleURL"]
            .as_str()
            .unwrap()
            .starts_with("https://crm.example/opportunities/"));
        assert_eq!(b["at"]["atMobiles"][0], "13800000001");
        assert!(b["actionCard"]["text"].as_str().unwrap().contains("@13800000001"));
    }
    assert_eq!(
        app.db
            .count("SELECT count(*) FROM channel_messages WHERE state = 'waiting'"),
        5
    );
    app.state.clock.advance(chrono::Duration::seconds(61));
    let s = send(&app, id);
    assert_eq!((s.requests, s.messages), (5, 5));
    assert_eq!(rx.count(), 25);

    // A burst larger than the minute allows: merged into digests, nothing dropped.
    app.state.clock.advance(chrono::Duration::seconds(61));
    for i in 0..45 {
        queue(&app, id, msg(&format!("burst-{i}")));
    }
    let s = send(&app, id);
    assert_eq!(s.messages, 45);
    assert!(s.requests <= 20 && s.requests >= 1);
    let digests: Vec<String> = rx.received()[25..].iter().map(|r| r.body.clone()).collect();
    for i in 0..45 {
        assert!(
            digests.iter().any(|d| d.contains(&format!("burst-{i}]"))),
            "burst-{i} is in a digest"
        );
    }
    assert!(digests[0].contains("notifications"), "a digest title");
    assert_eq!(
        app.db
            .count("SELECT count(*) FROM channel_messages WHERE state = 'waiting'"),
        0
    );
}

#[actix_web::test]
async fn wecom_messages_respect_the_length_limit_and_failures_lose_nothing() {
    let app = start().await;
    let admin = app.token(app.org.admin);
    let rx = Receiver::start();
    let id = channel(
        &app,
        &admin,
        json!({"kind": "wecom", "name": "Ops", "url": rx.url("/cgi-bin/webhook/send?key=k-123")}),
    )
    .await;
    rx.script([
        Answer::status(200).body(r#"{"errcode":45009,"errmsg":"api freq out of limit"}"#),
        Answer::status(200).body(r#"{"errcode":0}"#),
    ]);
    let long = Message {
        title: "周报".into(),
        body: "销售数据".repeat(2000),
        link: Some("https://crm.example/reports/weekly".into()),
        mentions: Vec::new(),
        dedupe_key: Some("weekly-1".into()),
    };
    queue(&app, id, long.clone());
    queue(&app, id, long);
    assert_eq!(
        app.db.count("SELECT count(*) FROM channel_messages"),
        1,
        "a dedupe key is queued once"
    );
    let s = send(&app, id);
    assert!(s.failed, "throttled by WeCom");
    assert_eq!(
        app.db
            .count("SELECT count(*) FROM channel_messages WHERE state = 'waiting'"),
        1
    );
    app.state.clock.advance(chrono::Duration::seconds(61));
    let s = send(&app, id);
    assert_eq!(s.messages, 1);
    let got = rx.received();
    assert_eq!(got.len(), 2);
    let b = got[1].json();
    assert_eq!(b["msgtype"], "markdown");
    let content = b["markdown"]["content"].as_str().unwrap();
    assert!(content.len() <= 4096, "{} bytes", content.len());
    assert!(
        content.contains("https://crm.example/reports/weekly"),
        "cut cleanly, the link kept"
    );
    assert_eq!(query(&got[1].target, "key").as_deref(), Some("k-123"));

    // Personal notifications in a channel.
    let rep = app.token(app.org.rep_east1);
    let r = app
        .send(
            request(actix_web::http::Method::PUT, "/api/v1/me/channel", Some(&rep))
                .set_json(json!({"channel_id": id, "mobile": "13900000002"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // A mobile number that is none is refused, with or without a channel.
    let r = app
        .send(
            request(actix_web::http::Method::PUT, "/api/v1/me/channel", Some(&rep))
                .set_json(json!({"channel_id": null, "mobile": "不是号码"})),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
    let manager = app.token(app.org.manager_east);
    let t = app
        .post(
            "/api/v1/tasks",
            &manager,
            json!({"title": "拜访深圳云帆科技", "owner_id": app.org.rep_east1}),
        )
        .await;
    assert_eq!(t.status, 201, "{}", t.text);
    let pool = crm_db::pool::build_pool(&app.db.url, &crm_db::pool::PoolConfig::default()).unwrap();
    let setup = crm_worker::Setup {
        pool,
        database_url: app.db.url.clone(),
        registry: crm_worker::builtin::registry(&Default::default()),
        config: crm_worker::WorkerConfig::default(),
        clock: app.state.clock.clone(),
        metrics: Arc::new(crm_worker::WorkerMetrics::default()),
    };
    while crm_worker::dispatch::dispatch_once(&setup, &crm_worker::builtin::Notifications).unwrap() > 0 {}
    send(&app, id);
    let last = rx.received().pop().unwrap();
    let b = last.json();
    assert_eq!(b["msgtype"], "text", "mentions by mobile need text on WeCom");
    assert!(
        b["text"]["content"].as_str().unwrap().contains("拜访深圳云帆科技"),
        "{b}"
    );
    assert_eq!(b["text"]["mentioned_mobile_list"][0], "13900000002");
}
