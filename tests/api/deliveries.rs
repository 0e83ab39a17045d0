//! Scheduled delivery of saved reports and dashboards, and threshold alerts: the
//! scheduler queues due occurrences once, a delivery runs once per occurrence, each
//! recipient gets the report over their own scope, the channel over the owner's.

use chrono::{Datelike, Duration, NaiveDate, Utc};
use diesel::{Connection, RunQueryDsl};
use serde_json::{json, Value};
use uuid::Uuid;

use crm_test_support::app::{stage_id, start, TestApp};

fn exec(app_db: &crm_test_support::TestDb, sql: &str) {
    diesel::sql_query(sql)
        .execute(&mut app_db.conn())
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

fn count(app_db: &crm_test_support::TestDb, sql: &str) -> i64 {
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    diesel::sql_query(sql)
        .get_result::<N>(&mut app_db.conn())
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .n
}

/// Makes the subscription due now, runs the scheduler; the occurrences it queued.
fn run_scheduler<S>(app: &TestApp<S>, id: &str) -> Vec<(Uuid, chrono::DateTime<Utc>)> {
    exec(
        &app.db,
        &format!(
            "UPDATE report_schedules SET next_run_at = now() - interval '1 minute' WHERE subscription_id = '{id}'"
        ),
    );
    let mut c = app.db.app_conn();
    let n = c
        .transaction(|c| {
            crm_app::reports::delivery::queue_due(c, &app.state.clock, 200)
                .map_err(|e| diesel::result::Error::QueryBuilderError(e.to_string().into()))
        })
        .unwrap();
    assert!(n >= 1);
    queued(app)
}

/// The delivery jobs waiting, by subscription and occurrence.
fn queued<S>(app: &TestApp<S>) -> Vec<(Uuid, chrono::DateTime<Utc>)> {
    #[derive(diesel::QueryableByName)]
    struct J {
        #[diesel(sql_type = diesel::sql_types::Jsonb)]
        payload: Value,
    }
    let jobs: Vec<J> = diesel::sql_query(
        "SELECT payload FROM background_jobs WHERE kind = 'reports.deliver' AND state = 'waiting' ORDER BY id",
    )
    .load(&mut app.db.conn())
    .unwrap();
    jobs.into_iter()
        .map(|j| {
            (
                j.payload["subscription_id"].as_str().unwrap().parse().unwrap(),
                j.payload["occurrence"].as_str().unwrap().parse().unwrap(),
            )
        })
        .collect()
}

/// Runs one delivery job's work, as the worker would.
fn deliver<S>(
    app: &TestApp<S>,
    id: Uuid,
    at: chrono::DateTime<Utc>,
) -> Option<crm_db::repo::report_subscriptions::DeliveryRow> {
    let mut c = app.db.app_conn();
    c.transaction(|c| {
        crm_app::reports::delivery::deliver(c, &app.state.clock, id, at)
            .map_err(|e| diesel::result::Error::QueryBuilderError(e.to_string().into()))
    })
    .unwrap()
}

fn week_monday<S>(app: &TestApp<S>) -> NaiveDate {
    let cst = (app.state.clock.now() + Duration::hours(8)).date_naive();
    cst - Duration::days(i64::from(cst.weekday().num_days_from_monday()))
}

#[actix_web::test]
async fn a_proposal_conversion_alert_fires_below_sixty_percent_of_four_weeks_once_per_occurrence_and_per_scope() {
    let app = start().await;
    let admin = app.token(app.org.admin);
    let mgr = app.token(app.org.manager_east);
    let rep = app.token(app.org.rep_east1);
    let rep_n = app.token(app.org.rep_north1);
    let pipeline = app.default_pipeline(&admin).await;
    let st = |code: &str| stage_id(&pipeline, code);
    let acc = app.account(&rep, "预警客户").await["id"].as_str().unwrap().to_owned();
    let mut deals = Vec::new();
    for i in 0..6 {
        let d = app
            .deal(&rep, json!({"name": format!("预警 {i}"), "account_id": acc}))
            .await;
        deals.push(d["id"].as_str().unwrap().to_owned());
    }
    exec(&app.db, "DELETE FROM stage_history");
    let monday = week_monday(&app);
    let at = |day: NaiveDate, hour: u32| format!("{day}T{hour:02}:00:00Z");
    // One deal a week through Proposal to Negotiation in each of the four weeks before
    // (100% each week); this week two enter Proposal, one goes on, one is lost (50%).
    let mut visits: Vec<(usize, &str, String, Option<String>)> = Vec::new();
    for k in 1..=4usize {
        let day = monday - Duration::days(7 * k as i64);
        visits.push((k - 1, "proposal", at(day, 2), Some(at(day, 4))));
        visits.push((k - 1, "negotiation", at(day, 4), None));
    }
    visits.push((4, "proposal", at(monday, 1), Some(at(monday, 2))));
    visits.push((4, "negotiation", at(monday, 2), None));
    visits.push((5, "proposal", at(monday, 1), Some(at(monday, 3))));
    visits.push((5, "lost", at(monday, 3), None));
    let mut prev: Option<(usize, &str)> = None;
    for (deal, code, entered, left) in &visits {
        let from = match prev {
            Some((d, c)) if d == *deal => format!("'{}'", st(c)),
            _ => "NULL".to_owned(),
        };
        let left = left.as_ref().map_or("NULL".to_owned(), |l| format!("'{l}'"));
        exec(
            &app.db,
            &format!(
                "INSERT INTO stage_history (opportunity_id, from_stage_id, to_stage_id, entered_at, left_at) \
                 VALUES ('{}', {from}, '{}', '{entered}', {left})",
                deals[*deal],
                st(code)
            ),
        );
        prev = Some((*deal, code));
    }

    let r = app
        .post(
            "/api/v1/saved-reports",
            &mgr,
            json!({"name": "本周漏斗", "report": "funnel", "params": {"period": "this_week"},
                   "shared_with_roles": ["sales_rep"]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let saved = r.body["id"].as_str().unwrap().to_owned();
    let r = app
        .post(
            "/api/v1/admin/channels",
            &admin,
            json!({"kind": "wecom", "name": "华东销售群", "secret": "robot-key"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let channel = r.body["id"].as_str().unwrap().to_owned();
    let alert =
        json!({"kpi": "conversion_to_next", "stage": "proposal", "op": "below", "ratio": "0.6", "baseline_periods": 4});

    // Refusals name the part: an unknown figure or stage, a funnel figure without its
    // stage, a schedule too often, a recipient who may not see the report, no target.
    let body = |extra: Value| {
        let mut b = json!({"name": "方案转化预警", "saved_report_id": saved, "schedule": "0 9 * * 1-5",
                           "recipients": [app.org.manager_east, app.org.rep_north1], "channel_id": channel,
                           "alert": alert});
        for (k, v) in extra.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    };
    for (extra, field, code) in [
        (
            json!({"alert": {"kpi": "no_such_figure", "stage": "proposal", "op": "below", "threshold": "1"}}),
            "alert.kpi",
            "unknown_figure",
        ),
        (
            json!({"alert": {"kpi": "conversion_to_next", "stage": "nowhere", "op": "below", "threshold": "1"}}),
            "alert.stage",
            "unknown_figure",
        ),
        (
            json!({"alert": {"kpi": "conversion_to_next", "op": "below", "threshold": "1"}}),
            "alert.stage",
            "required",
        ),
        (
            json!({"alert": {"kpi": "conversion_to_next", "stage": "proposal", "op": "below", "threshold": "1", "ratio": "0.5"}}),
            "alert.ratio",
            "conflict",
        ),
        (json!({"schedule": "*/5 * * * *"}), "schedule", "too_frequent"),
        (json!({"schedule": "every monday"}), "schedule", "invalid_schedule"),
        (json!({"recipients": [app.org.legal]}), "recipients[0]", "not_found"),
        (json!({"saved_report_id": null}), "saved_report_id", "required"),
    ] {
        let r = app
            .post("/api/v1/report-subscriptions", &mgr, body(extra.clone()))
            .await;
        assert_eq!(r.status, 422, "{extra}: {}", r.text);
        let errs = r.body["errors"].as_array().unwrap();
        assert!(
            errs.iter().any(|e| e["field"] == field && e["code"] == code),
            "{extra}: {}",
            r.text
        );
    }
    assert_eq!(count(&app.db, "SELECT count(*) AS n FROM report_subscriptions"), 0);

    let r = app.post("/api/v1/report-subscriptions", &mgr, body(json!({}))).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert!(r.body["next_run_at"].is_string(), "{}", r.text);
    assert_eq!(r.body["alert"]["ratio"], "0.6");

    // Test before trusting: this week 50% against 100% on average, threshold 60.
    let r = app
        .post(&format!("/api/v1/report-subscriptions/{id}/preview"), &mgr, json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["send"], true, "{}", r.text);
    let check = &r.body["alert"];
    assert_eq!(check["triggered"], true);
    assert_eq!(check["value"], "50.00");
    assert_eq!(check["baseline"], "100.00");
    assert_eq!(check["threshold"], "60.00");
    assert!(r.body["body"].as_str().unwrap().contains("方案 Proposal"), "{}", r.text);
    // Another user's subscription is not theirs to see.
    let r = app
        .post(&format!("/api/v1/report-subscriptions/{id}/preview"), &rep_n, json!({}))
        .await;
    assert_eq!(r.status, 404, "{}", r.text);
    let r = app.get("/api/v1/report-subscriptions", &rep_n).await;
    assert!(r.body["items"].as_array().unwrap().is_empty());

    // The scheduler queues the occurrence once and moves on.
    let jobs = run_scheduler(&app, &id);
    assert_eq!(jobs.len(), 1);
    let (sub, occurrence) = jobs[0];
    assert_eq!(sub.to_string(), id);
    let mut c = app.db.app_conn();
    let again = c
        .transaction(|c| {
            crm_app::reports::delivery::queue_due(c, &app.state.clock, 200)
                .map_err(|e| diesel::result::Error::QueryBuilderError(e.to_string().into()))
        })
        .unwrap();
    assert_eq!(again, 0, "the schedule moved on to a later occurrence");

    let d = deliver(&app, sub, occurrence).expect("delivered");
    assert_eq!(d.status, "sent");
    // The manager's scope has the east deals: alerted. The north rep's has none: no
    // value, no alert.
    assert_eq!(d.notified, 1, "{}", d.detail);
    let north = &d.detail["recipients"][app.org.rep_north1.to_string()];
    assert_eq!(north["sent"], false, "{}", d.detail);
    assert_eq!(north["alert"]["reason"], "no value this period");
    assert!(d.channel_queued);
    assert_eq!(d.detail["channel"]["alert"]["triggered"], true);
    // A second run of the same occurrence sends nothing.
    assert!(deliver(&app, sub, occurrence).is_none());
    let r = app.get("/api/v1/me/notifications", &mgr).await;
    let alerts: Vec<&Value> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["kind"] == "report_alert")
        .collect();
    assert_eq!(alerts.len(), 1, "{}", r.text);
    assert!(alerts[0]["title_zh"].as_str().unwrap().contains("50"), "{}", r.text);
    assert_eq!(alerts[0]["object_id"], saved);
    let r = app.get("/api/v1/me/notifications", &rep_n).await;
    assert!(!r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n["kind"] == "report_alert"));
    assert_eq!(
        count(
            &app.db,
            &format!("SELECT count(*) AS n FROM channel_messages WHERE channel_id = '{channel}'")
        ),
        1
    );
    let r = app
        .get(&format!("/api/v1/report-subscriptions/{id}/deliveries"), &mgr)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body.as_array().unwrap().len(), 1);
    assert_eq!(r.body[0]["status"], "sent");

    // A fixed threshold the figure is above: the next occurrence is logged, not sent.
    let r = app.get(&format!("/api/v1/report-subscriptions/{id}"), &mgr).await;
    let version = r.body["version"].as_i64().unwrap() as i32;
    let r = app
        .patch(
            &format!("/api/v1/report-subscriptions/{id}"),
            &mgr,
            version,
            json!({"alert": {"kpi": "conversion_to_next", "stage": "proposal", "op": "below", "threshold": "40"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    exec(&app.db, "DELETE FROM background_jobs WHERE kind = 'reports.deliver'");
    let jobs = run_scheduler(&app, &id);
    let d = deliver(&app, jobs[0].0, jobs[0].1).expect("ran");
    assert_eq!(d.status, "not_triggered", "{}", d.detail);
    assert_eq!(d.notified, 0);
    assert!(!d.channel_queued);

    // Disabled: no next run. Deleting the saved report takes its subscriptions along.
    let version = r.body["version"].as_i64().unwrap() as i32;
    // A stale version is refused and changes nothing; another user cannot reach it.
    let r2 = app
        .patch(
            &format!("/api/v1/report-subscriptions/{id}"),
            &mgr,
            version - 1,
            json!({"enabled": false}),
        )
        .await;
    assert_eq!(r2.status, 412, "{}", r2.text);
    let r2 = app
        .patch(
            &format!("/api/v1/report-subscriptions/{id}"),
            &rep_n,
            version,
            json!({"enabled": false}),
        )
        .await;
    assert_eq!(r2.status, 404, "{}", r2.text);
    let r2 = app.delete(&format!("/api/v1/report-subscriptions/{id}"), &rep_n).await;
    assert_eq!(r2.status, 404, "{}", r2.text);
    let r2 = app.get(&format!("/api/v1/report-subscriptions/{id}"), &mgr).await;
    assert_eq!(r2.body["enabled"], true, "{}", r2.text);
    let r = app
        .patch(
            &format!("/api/v1/report-subscriptions/{id}"),
            &mgr,
            version,
            json!({"enabled": false}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.body["next_run_at"].is_null());
    let r = app.delete(&format!("/api/v1/saved-reports/{saved}"), &mgr).await;
    assert_eq!(r.status, 204, "{}", r.text);
    let r = app.get(&format!("/api/v1/report-subscriptions/{id}"), &mgr).await;
    assert_eq!(r.status, 404, "{}", r.text);
    assert_eq!(
        count(
            &app.db,
            &format!("SELECT count(*) AS n FROM audit_log WHERE entity_type = 'report_subscriptions' AND entity_id = '{id}' AND action = 'deleted'")
        ),
        1
    );
}

#[actix_web::test]
async fn a_dashboard_digest_reaches_each_recipient_over_their_own_scope() {
    let app = start().await;
    let rep = app.token(app.org.rep_east1);
    let mgr = app.token(app.org.manager_east);
    let rep_n = app.token(app.org.rep_north1);
    for (token, name, amount) in [(&rep, "推送东", "1000"), (&rep_n, "推送北", "400")] {
        let acc = app.account(token, name).await["id"].as_str().unwrap().to_owned();
        let d = app
            .deal(token, json!({"name": name, "account_id": acc, "amount": amount}))
            .await;
        exec(
            &app.db,
            &format!(
                "UPDATE opportunities SET status = 'won', closed_at = now() WHERE id = '{}'",
                d["id"].as_str().unwrap()
            ),
        );
    }
    // The seeded sales dashboard, daily at 08:00, to the owner and a manager.
    let dashboard = "00000000-0000-7000-8000-000000000201";
    let r = app
        .post(
            "/api/v1/report-subscriptions",
            &rep,
            json!({"name": "每日看板", "dashboard_id": dashboard, "schedule": "0 8 * * *",
                   "recipients": [app.org.rep_east1, app.org.manager_east]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.body["id"].as_str().unwrap().to_owned();
    // An alert watches a saved report, not a dashboard.
    let version = r.body["version"].as_i64().unwrap() as i32;
    let r2 = app
        .patch(
            &format!("/api/v1/report-subscriptions/{id}"),
            &rep,
            version,
            json!({"alert": {"kpi": "win_rate", "op": "below", "threshold": "10"}}),
        )
        .await;
    assert_eq!(r2.status, 422, "{}", r2.text);
    // A manager sees only their own subscriptions (this is the rep's).
    let r = app.get(&format!("/api/v1/report-subscriptions/{id}"), &mgr).await;
    assert_eq!(r.status, 404);

    let r = app
        .post(&format!("/api/v1/report-subscriptions/{id}/preview"), &rep, json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let body = r.body["body"].as_str().unwrap().to_owned();
    assert!(body.contains("1000"), "{body}");
    assert!(
        !body.contains("400"),
        "the north deal is outside the rep's scope: {body}"
    );

    let jobs = run_scheduler(&app, &id);
    let d = deliver(&app, jobs[0].0, jobs[0].1).expect("delivered");
    assert_eq!(d.status, "sent");
    assert_eq!(d.notified, 2, "{}", d.detail);
    for token in [&rep, &mgr] {
        let r = app.get("/api/v1/me/notifications", token).await;
        let n: Vec<&Value> = r.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["kind"] == "report_delivery")
            .collect();
        assert_eq!(n.len(), 1, "{}", r.text);
        assert_eq!(n[0]["object_type"], "dashboard");
    }
    // Muted kinds are respected like any other notification.
    let r = app
        .put(
            "/api/v1/me/notification-settings",
            &mgr,
            json!({"muted": ["report_delivery"]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    exec(&app.db, "DELETE FROM background_jobs WHERE kind = 'reports.deliver'");
    let jobs = run_scheduler(&app, &id);
    let d = deliver(&app, jobs[0].0, jobs[0].1).expect("delivered");
    assert_eq!(d.notified, 1, "{}", d.detail);
    let r = app.delete(&format!("/api/v1/report-subscriptions/{id}"), &rep).await;
    assert_eq!(r.status, 204, "{}", r.text);
}
