//! In-app notifications written by the event dispatcher, read through the API; and the
//! admin view of background jobs.

use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use crm_test_support::app::{start, TestApp};
use serde_json::json;

use crate::q2c::{deal, product, quote};

/// Runs the notification subscriber over everything committed so far, as a worker would.
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
        let n = crm_worker::dispatch::dispatch_once(&setup, &crm_worker::builtin::Notifications).unwrap();
        if n == 0 {
            return total;
        }
        total += n;
    }
}

async fn notes<S, B>(app: &TestApp<S>, token: &str) -> serde_json::Value
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let r = app.get("/api/v1/me/notifications", token).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body
}

async fn mute<S, B>(app: &TestApp<S>, token: &str, kinds: serde_json::Value) -> crm_test_support::Resp
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let req = crm_test_support::app::request(
        actix_web::http::Method::PUT,
        "/api/v1/me/notification-settings",
        Some(token),
    );
    app.send(req.set_json(json!({ "muted": kinds }))).await
}

#[actix_web::test]
async fn a_lead_or_task_assigned_to_you_notifies_you_once_and_only_you() {
    let app = start().await;
    let mkt = app.token(app.org.marketing);
    let manager = app.token(app.org.manager_east);
    let rep = app.token(app.org.rep_east1);
    let other = app.token(app.org.rep_east2);
    let lead = app
        .post(
            "/api/v1/leads",
            &mkt,
            json!({"person_name": "刘强", "company": "深圳云帆科技", "mobile": "13900001111", "source": "website"}),
        )
        .await;
    assert_eq!(lead.status, 201, "{}", lead.text);
    let lead_id = lead.body["id"].as_str().unwrap().to_owned();
    let r = app
        .post(
            "/api/v1/leads/assign",
            &mkt,
            json!({"lead_ids": [lead_id], "owner_id": app.org.rep_east1}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // A task the rep gives themself is no news to them.
    let own = app.post("/api/v1/tasks", &rep, json!({"title": "Call back"})).await;
    assert_eq!(own.status, 201, "{}", own.text);
    assert!(dispatch(&app) > 0);
    // Handing the same events over again changes nothing.
    assert_eq!(dispatch(&app), 0);

    let mine = notes(&app, &rep).await;
    assert_eq!(mine["unread_count"], 1, "{mine}");
    let n = &mine["items"][0];
    assert_eq!(n["kind"], "lead_assigned");
    assert_eq!(n["object_type"], "leads");
    assert_eq!(n["object_id"].as_str().unwrap(), lead_id);
    assert!(n["title_zh"].as_str().unwrap().contains("深圳云帆科技"), "{n}");
    assert!(
        n["title_en"].as_str().unwrap().starts_with("Lead assigned to you"),
        "{n}"
    );
    assert!(n["read_at"].is_null());
    assert!(n["event_id"].is_string());
    for token in [&mkt, &manager, &other] {
        assert_eq!(
            notes(&app, token).await["unread_count"],
            0,
            "only the assignee hears of it"
        );
    }

    // Someone else's notification cannot be read or marked.
    let id = n["id"].as_str().unwrap().to_owned();
    let r = app
        .post(&format!("/api/v1/me/notifications/{id}/read"), &other, json!({}))
        .await;
    assert_eq!(r.status, 404);

    // Mute task assignments: the manager's task for the rep stays silent.
    let r = mute(&app, &rep, json!(["task_assigned"])).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let muted: Vec<_> = r.body["kinds"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["muted"] == true)
        .map(|k| k["kind"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(muted, ["task_assigned"]);
    let r = mute(&app, &rep, json!(["everything"])).await;
    assert_eq!(r.status, 422, "{}", r.text);
    let t = app
        .post(
            "/api/v1/tasks",
            &manager,
            json!({"title": "Visit 深圳云帆科技", "owner_id": app.org.rep_east1}),
        )
        .await;
    assert_eq!(t.status, 201, "{}", t.text);
    let t2 = app
        .post(
            "/api/v1/tasks",
            &manager,
            json!({"title": "Send the brochure", "owner_id": app.org.rep_east2}),
        )
        .await;
    assert_eq!(t2.status, 201, "{}", t2.text);
    dispatch(&app);
    assert_eq!(notes(&app, &rep).await["unread_count"], 1, "muted kind stays silent");
    let theirs = notes(&app, &other).await;
    assert_eq!(theirs["unread_count"], 1);
    assert_eq!(theirs["items"][0]["kind"], "task_assigned");
    assert_eq!(theirs["items"][0]["object_id"], t2.body["id"]);

    // Mark one read, then all: unread ones come first.
    let r = app
        .post(&format!("/api/v1/me/notifications/{id}/read"), &rep, json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.body["read_at"].is_string());
    assert_eq!(notes(&app, &rep).await["unread_count"], 0);
    let r = app.post("/api/v1/me/notifications/read-all", &other, json!({})).await;
    assert_eq!((r.status, r.body["marked"].as_i64()), (200, Some(1)), "{}", r.text);
    assert_eq!(notes(&app, &other).await["unread_count"], 0);
}

#[actix_web::test]
async fn approvals_notify_the_approver_then_the_requester_and_pages_put_unread_first() {
    let app = start().await;
    let admin = app.token(app.org.admin);
    let rep = app.token(app.org.rep_east1);
    let director = app.token(app.org.director);
    let p = product(&app, &admin, "P-1", "1000.00", "400.00").await;
    let mut approvals = Vec::new();
    for _ in 0..3 {
        let (deal_id, _) = deal(&app, &rep).await;
        let q = quote(
            &app,
            &rep,
            &deal_id,
            json!([{"product_id": p["id"], "quantity": "1", "discount_pct": "20"}]),
            "0",
        )
        .await;
        let id = q["id"].as_str().unwrap().to_owned();
        let r = app.post(&format!("/api/v1/quotes/{id}/submit"), &rep, json!({})).await;
        assert_eq!(r.body["status"], "pending_approval", "{}", r.text);
        approvals.push(id);
    }
    dispatch(&app);
    let inbox = notes(&app, &director).await;
    assert_eq!(inbox["unread_count"], 3, "{inbox}");
    assert!(inbox["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|n| n["kind"] == "approval_requested"));
    assert_eq!(inbox["items"][0]["title_en"], "Approval requested of you: quote");

    // Approve one: the rep hears the outcome.
    let pending = app.get("/api/v1/me/approvals", &director).await;
    let approval = pending.body["items"][0]["approval_id"].as_str().unwrap().to_owned();
    let r = app
        .post(
            &format!("/api/v1/approvals/{approval}/approve"),
            &director,
            json!({"comment": "ok"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    dispatch(&app);
    let mine = notes(&app, &rep).await;
    assert_eq!(mine["unread_count"], 1, "{mine}");
    assert_eq!(mine["items"][0]["kind"], "approval_decided");
    assert_eq!(mine["items"][0]["title_en"], "Your quote approval request was approved");
    assert_eq!(mine["items"][0]["object_id"].as_str().unwrap(), approval);

    // Paging: two per page, unread first, the read one last.
    let first = inbox["items"][1]["id"].as_str().unwrap().to_owned();
    let r = app
        .post(&format!("/api/v1/me/notifications/{first}/read"), &director, json!({}))
        .await;
    assert_eq!(r.status, 200);
    let p1 = app.get("/api/v1/me/notifications?limit=2", &director).await;
    assert_eq!(p1.body["unread_count"], 2);
    assert_eq!(p1.body["items"].as_array().unwrap().len(), 2);
    assert!(p1.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|n| n["read_at"].is_null()));
    let cursor = p1.body["next_cursor"].as_str().unwrap();
    let p2 = app
        .get(&format!("/api/v1/me/notifications?limit=2&cursor={cursor}"), &director)
        .await;
    assert_eq!(p2.status, 200, "{}", p2.text);
    let rest = p2.body["items"].as_array().unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0]["id"].as_str().unwrap(), first);
    assert!(p2.body["next_cursor"].is_null());
    let unread = app.get("/api/v1/me/notifications?unread_only=true", &director).await;
    assert_eq!(unread.body["items"].as_array().unwrap().len(), 2);
    let bad = app.get("/api/v1/me/notifications?cursor=nope", &director).await;
    assert_eq!((bad.status, bad.code()), (400, "invalid_cursor"));
    let bad = app.get("/api/v1/me/notifications?limit=0", &director).await;
    assert_eq!((bad.status, bad.code()), (400, "invalid_limit"));
    let bad = app.get("/api/v1/me/notifications?unread=1", &director).await;
    assert_eq!((bad.status, bad.code()), (400, "invalid_query"), "{}", bad.text);
}

#[actix_web::test]
async fn admins_see_queues_and_dead_jobs_and_can_retry_or_cancel_them() {
    let app = start().await;
    let admin = app.token(app.org.admin);
    let rep = app.token(app.org.rep_east1);
    let mut c = app.db.conn();
    let dead = crm_db::repo::jobs::enqueue(
        &mut c,
        &crm_db::repo::jobs::NewJob::new("default", "webhook.deliver", json!({})).attempts(1),
    )
    .unwrap()
    .unwrap();
    let claimed = crm_db::repo::jobs::claim(&mut c, "default", "w1", 60).unwrap().unwrap();
    assert_eq!(claimed.id, dead);
    crm_db::repo::jobs::fail(&mut c, dead, "w1", "connection refused", 1.0).unwrap();
    let waiting = crm_db::repo::jobs::enqueue(&mut c, &crm_db::repo::jobs::NewJob::new("events", "x", json!({})))
        .unwrap()
        .unwrap();

    assert_eq!(app.get("/api/v1/admin/jobs", &rep).await.status, 403);
    let r = app.get("/api/v1/admin/jobs", &admin).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let queues = r.body["queues"].as_array().unwrap();
    let q = |name: &str| queues.iter().find(|q| q["queue"] == name).cloned().unwrap();
    assert_eq!(q("default")["dead"], 1);
    assert_eq!(q("events")["ready"], 1);
    assert!(q("events")["oldest_ready_age_secs"].as_f64().unwrap() >= 0.0);
    assert_eq!(r.body["jobs"][0]["id"], dead);
    assert_eq!(r.body["jobs"][0]["last_error"], "connection refused");
    assert!(r.body["subscribers"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["name"] == "notifications"));

    let r = app
        .post(&format!("/api/v1/admin/jobs/{dead}/retry"), &admin, json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        (r.body["state"].as_str(), r.body["attempts"].as_i64()),
        (Some("waiting"), Some(0))
    );
    let r = app
        .post(&format!("/api/v1/admin/jobs/{waiting}/cancel"), &admin, json!({}))
        .await;
    assert_eq!(r.status, 204);
    let r = app
        .post(&format!("/api/v1/admin/jobs/{waiting}/cancel"), &admin, json!({}))
        .await;
    assert_eq!(r.status, 404);
    // A running job is neither retried nor cancelled.
    let running = crm_db::repo::jobs::claim(&mut c, "default", "w1", 60).unwrap().unwrap();
    let r = app
        .post(&format!("/api/v1/admin/jobs/{}/cancel", running.id), &admin, json!({}))
        .await;
    assert_eq!((r.status, r.code()), (409, "job_running"));
    // The retried job was the one claimed: listed as running, and a retry is refused
    // without changing it.
    assert_eq!(running.id, dead);
    let r = app.get("/api/v1/admin/jobs?state=running", &admin).await;
    assert_eq!(
        (r.status, r.body["jobs"][0]["id"].as_i64()),
        (200, Some(dead)),
        "{}",
        r.text
    );
    let r = app
        .post(&format!("/api/v1/admin/jobs/{dead}/retry"), &admin, json!({}))
        .await;
    assert_eq!((r.status, r.code()), (409, "job_running"));
    let still = crm_db::repo::jobs::find(&mut c, dead).unwrap().unwrap();
    assert_eq!((still.state.as_str(), still.attempts), ("running", 1));
    let r = app.post("/api/v1/admin/jobs/987654321/retry", &admin, json!({})).await;
    assert_eq!(r.status, 404);
    let r = app
        .post(&format!("/api/v1/admin/jobs/{dead}/retry"), &rep, json!({}))
        .await;
    assert_eq!(r.status, 403);
    let r = app.get("/api/v1/admin/jobs?state=done", &admin).await;
    assert_eq!((r.status, r.code()), (400, "invalid_query"), "{}", r.text);
}

#[actix_web::test]
async fn the_owner_hears_when_their_deal_is_lost_by_someone_else() {
    let app = start().await;
    let rep = app.token(app.org.rep_east1);
    let manager = app.token(app.org.manager_east);
    let p = app.default_pipeline(&rep).await;
    let lost = crm_test_support::app::stage_id(&p, "lost");
    let (theirs, _) = deal(&app, &rep).await;
    let (own, _) = deal(&app, &rep).await;
    let r = app.move_stage(&manager, &theirs, &lost, Some("budget cut")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app.move_stage(&rep, &own, &lost, Some("went quiet")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    dispatch(&app);
    let mine = notes(&app, &rep).await;
    assert_eq!(mine["unread_count"], 1, "not for the deal the rep closed: {mine}");
    let n = &mine["items"][0];
    assert_eq!(n["kind"], "deal_lost");
    assert_eq!(n["object_type"], "opportunities");
    assert_eq!(n["object_id"].as_str().unwrap(), theirs);
    assert!(n["title_en"].as_str().unwrap().starts_with("Deal lost: "), "{n}");
}
