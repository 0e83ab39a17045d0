//! Activities, tasks and the customer 360 view.

use crm_test_support::app::start;
use serde_json::json;

#[actix_web::test]
async fn logging_activities_touches_the_linked_records() {
    let app = start().await;
    let rep = app.token(app.org.rep_east1);
    let acc = app.account(&rep, "Touch Co").await;
    let aid = acc["id"].as_str().unwrap();
    let contact = app.contact(&rep, aid, "赵敏").await;
    let deal = app.deal(&rep, json!({"name": "Deal", "account_id": aid})).await;
    let day = |back: i64| {
        (app.state.clock.today() - chrono::Duration::days(back))
            .format("%Y-%m-%dT10:00:00Z")
            .to_string()
    };
    let (visit_at, old_at) = (day(30), day(300));
    let r = app
        .post(
            "/api/v1/activities",
            &rep,
            json!({"type": "visit", "subject": "Site visit", "content": "Met the team", "duration_minutes": 90,
                   "contact_id": contact["id"], "opportunity_id": deal["id"], "occurred_at": visit_at}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(
        r.body["account_id"].as_str().unwrap(),
        aid,
        "the account is filled from the contact"
    );
    for path in [
        format!("/api/v1/accounts/{aid}"),
        format!("/api/v1/contacts/{}", contact["id"].as_str().unwrap()),
        format!("/api/v1/opportunities/{}", deal["id"].as_str().unwrap()),
    ] {
        let x = app.get(&path, &rep).await;
        assert_eq!(x.body["last_activity_at"], visit_at.as_str(), "{path}");
    }
    // An older activity does not move last_activity_at backwards; the version is untouched.
    app.post(
        "/api/v1/activities",
        &rep,
        json!({"type": "note", "subject": "Old note", "account_id": aid, "occurred_at": old_at}),
    )
    .await;
    let a = app.get(&format!("/api/v1/accounts/{aid}"), &rep).await;
    assert_eq!(a.body["last_activity_at"], visit_at.as_str());
    assert_eq!(a.body["version"], 1);

    let list = app.get(&format!("/api/v1/activities?account_id={aid}"), &rep).await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 2);
    assert_eq!(list.body["items"][0]["subject"], "Site visit");

    for (body, field) in [
        (json!({"type": "call", "subject": "x"}), "lead_id"),
        (
            json!({"type": "call", "subject": "x", "account_id": uuid::Uuid::now_v7()}),
            "account_id",
        ),
        (
            json!({"type": "call", "subject": "x", "account_id": aid, "occurred_at": "2999-01-01T00:00:00Z"}),
            "occurred_at",
        ),
        // Loose dates were accepted before (issue 9): a follow-up "logged" in 2000.
        (
            json!({"type": "call", "subject": "x", "account_id": aid, "occurred_at": "2000-01-01T00:00:00Z"}),
            "occurred_at",
        ),
        (json!({"type": "fax", "subject": "x", "account_id": aid}), "type"),
    ] {
        let r = app.post("/api/v1/activities", &rep, body.clone()).await;
        assert_eq!(r.status, 422, "{body}: {}", r.text);
        assert_eq!(r.body["errors"][0]["field"], field);
    }
    // Someone else's account cannot be linked.
    let other = app.account(&app.token(app.org.rep_north1), "Not Mine").await;
    let r = app
        .post(
            "/api/v1/activities",
            &rep,
            json!({"type": "call", "subject": "x", "account_id": other["id"]}),
        )
        .await;
    assert_eq!(r.status, 422);
}

#[actix_web::test]
async fn tasks_for_me_and_others() {
    let app = start().await;
    let rep = app.token(app.org.rep_east1);
    let now = chrono::Utc::now();
    let fmt = |d: chrono::DateTime<chrono::Utc>| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let overdue = app
        .post(
            "/api/v1/tasks",
            &rep,
            json!({"title": "Overdue", "due_at": fmt(now - chrono::Duration::days(2))}),
        )
        .await;
    let later = app
        .post(
            "/api/v1/tasks",
            &rep,
            json!({"title": "Later", "due_at": fmt(now + chrono::Duration::days(5)), "priority": "high"}),
        )
        .await;
    let someday = app.post("/api/v1/tasks", &rep, json!({"title": "Someday"})).await;
    assert_eq!((overdue.status, later.status, someday.status), (201, 201, 201));
    let r = app.get("/api/v1/me/tasks?due=overdue", &rep).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.ids(), vec![overdue.body["id"].as_str().unwrap().to_owned()]);
    let r = app.get("/api/v1/me/tasks?due=upcoming&utc_offset=%2B08:00", &rep).await;
    assert_eq!(r.ids(), vec![later.body["id"].as_str().unwrap().to_owned()]);
    let all = app.get("/api/v1/me/tasks", &rep).await;
    let titles: Vec<&str> = all.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["title"].as_str().unwrap())
        .collect();
    assert_eq!(
        titles,
        ["Overdue", "Later", "Someday"],
        "soonest due first, no due date last"
    );
    assert_eq!(app.get("/api/v1/me/tasks?utc_offset=8", &rep).await.status, 400);

    let id = overdue.body["id"].as_str().unwrap();
    let r = app
        .patch(&format!("/api/v1/tasks/{id}"), &rep, 1, json!({"status": "done"}))
        .await;
    assert_eq!(r.status, 200);
    assert!(r.body["completed_at"].is_string());
    assert!(app.get("/api/v1/me/tasks?due=overdue", &rep).await.ids().is_empty());
    assert_eq!(
        app.get("/api/v1/me/tasks?status=done", &rep).await.ids(),
        vec![id.to_owned()]
    );
    let r = app
        .patch(&format!("/api/v1/tasks/{id}"), &rep, 2, json!({"status": "open"}))
        .await;
    assert!(r.body["completed_at"].is_null());

    let r = app
        .post(
            "/api/v1/tasks",
            &rep,
            json!({"title": "For someone", "owner_id": app.org.rep_east2}),
        )
        .await;
    assert_eq!(r.status, 403);
    let m = app.token(app.org.manager_east);
    let r = app
        .post(
            "/api/v1/tasks",
            &m,
            json!({"title": "Call back", "owner_id": app.org.rep_east1, "priority": "urgent"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    // Overdue (reopened), Later, Someday and the manager's task.
    assert_eq!(app.get("/api/v1/me/tasks", &rep).await.ids().len(), 4);
    let r = app
        .post(
            "/api/v1/tasks",
            &rep,
            json!({"title": "x", "due_at": fmt(now), "reminder_at": fmt(now + chrono::Duration::hours(1))}),
        )
        .await;
    assert_eq!(r.body["errors"][0]["field"], "reminder_at");
    let r = app
        .post("/api/v1/tasks", &rep, json!({"title": "x", "related_type": "account"}))
        .await;
    assert_eq!(r.body["errors"][0]["field"], "related_id");
}

#[actix_web::test]
async fn the_customer_360_view_brings_it_together() {
    let app = start().await;
    let rep = app.token(app.org.rep_east1);
    let acc = app.account(&rep, "360 Co").await;
    let aid = acc["id"].as_str().unwrap();
    let today = chrono::Utc::now().date_naive();
    let soon = today + chrono::Duration::days(3);
    let birthday =
        chrono::NaiveDate::from_ymd_opt(1985, chrono::Datelike::month(&soon), chrono::Datelike::day(&soon)).unwrap();
    let c1 = app
        .post(
            "/api/v1/contacts",
            &rep,
            json!({"account_id": aid, "name": "生日快乐", "birthday": birthday.to_string()}),
        )
        .await;
    assert_eq!(c1.status, 201, "{}", c1.text);
    app.contact(&rep, aid, "Other Person").await;
    let d1 = app
        .deal(&rep, json!({"name": "Open 1", "account_id": aid, "amount": "100.00"}))
        .await;
    app.deal(&rep, json!({"name": "Open 2", "account_id": aid, "amount": "50.25"}))
        .await;
    let lost_id = app
        .deal(&rep, json!({"name": "Lost", "account_id": aid, "amount": "999"}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let p = app.default_pipeline(&rep).await;
    assert_eq!(
        app.move_stage(
            &rep,
            &lost_id,
            &crm_test_support::app::stage_id(&p, "lost"),
            Some("price")
        )
        .await
        .status,
        200
    );
    app.post(
        "/api/v1/activities",
        &rep,
        json!({"type": "call", "subject": "On the deal", "opportunity_id": d1["id"]}),
    )
    .await;
    app.post(
        "/api/v1/tasks",
        &rep,
        json!({"title": "Send quote", "related_type": "opportunity", "related_id": d1["id"]}),
    )
    .await;

    let r = app.get(&format!("/api/v1/accounts/{aid}/overview"), &rep).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let o = &r.body;
    assert_eq!(o["account"]["id"].as_str().unwrap(), aid);
    assert_eq!(o["contacts"].as_array().unwrap().len(), 2);
    assert_eq!(o["open_deals"]["count"], 2);
    assert_eq!(o["open_deals"]["amount"], "150.25");
    assert_eq!(o["lost_deals"]["count"], 1);
    assert_eq!(o["won_deals"]["count"], 0);
    assert_eq!(o["recent_activities"][0]["subject"], "On the deal");
    assert_eq!(o["open_tasks"][0]["title"], "Send quote");
    assert_eq!(o["key_dates"][0]["kind"], "birthday");
    assert_eq!(o["key_dates"][0]["date"], soon.to_string());
    assert_eq!(
        app.get(
            &format!("/api/v1/accounts/{aid}/overview"),
            &app.token(app.org.rep_east2)
        )
        .await
        .status,
        404
    );
    // Presales reads accounts and deals but has no tasks scope beyond its own.
    let ps = app
        .get(
            &format!("/api/v1/accounts/{aid}/overview"),
            &app.token(app.org.presales),
        )
        .await;
    assert_eq!(ps.status, 200);
    assert_eq!(ps.body["open_deals"]["count"], 2);
    assert!(ps.body["open_tasks"].as_array().unwrap().is_empty());

    // A deal in another currency: no mixed sum, one sum per currency instead.
    app.deal(
        &rep,
        json!({"name": "Dollar deal", "account_id": aid, "amount": "10.00", "currency": "USD"}),
    )
    .await;
    let o = app.get(&format!("/api/v1/accounts/{aid}/overview"), &rep).await.body;
    assert_eq!(o["open_deals"]["count"], 3);
    assert!(o["open_deals"]["amount"].is_null(), "{}", o["open_deals"]);
    assert_eq!(
        o["open_deals"]["by_currency"],
        json!([{"currency": "CNY", "count": 2, "amount": "150.25"}, {"currency": "USD", "count": 1, "amount": "10.00"}])
    );
    assert_eq!(o["lost_deals"]["amount"], o["lost_deals"]["by_currency"][0]["amount"]);
}

#[actix_web::test]
async fn task_status_changes_follow_the_task_machine() {
    let app = start().await;
    let rep = app.token(app.org.rep_east1);
    let t = app.post("/api/v1/tasks", &rep, json!({"title": "Call"})).await;
    let id = t.body["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/tasks/{id}");
    let done = app.patch(&path, &rep, 1, json!({"status": "done"})).await;
    assert_eq!(done.status, 200);
    // Done cannot become cancelled: reopen first. Nothing changes.
    let r = app
        .patch(&path, &rep, 2, json!({"status": "cancelled", "title": "Changed"}))
        .await;
    assert_eq!(r.status, 409);
    assert_eq!(r.code(), "invalid_transition");
    assert_eq!(r.body["current_status"], "done");
    let now = app.get(&path, &rep).await;
    assert_eq!(now.body["title"], "Call");
    assert_eq!(now.body["version"], 2);
    // A stale version is refused before anything is checked.
    let r = app.patch(&path, &rep, 1, json!({"status": "open"})).await;
    assert_eq!(r.status, 412);
    let r = app.patch(&path, &rep, 2, json!({"status": "open"})).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        app.patch(&path, &rep, 3, json!({"status": "cancelled"})).await.body["status"],
        "cancelled"
    );
}
