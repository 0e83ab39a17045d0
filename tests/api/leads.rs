//! Leads: capture, assignment, response tracking, status rules, conversion.

use actix_web::http::Method;
use crm_test_support::app::{request, start};
use serde_json::json;

#[actix_web::test]
async fn a_lead_goes_from_capture_to_contacted() {
    let app = start().await;
    let mkt = app.token(app.org.marketing);
    let m = app.token(app.org.manager_east);
    let rep = app.token(app.org.rep_east1);
    let r = app
        .post(
            "/api/v1/leads",
            &mkt,
            json!({"person_name": "刘强", "company": "深圳云帆科技", "mobile": "+86 139 0000 1111", "source": "event",
                   "campaign": "2026 CIIE", "tags": ["vip", "vip", " iot "], "estimated_budget": "80000", "region": "south"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(r.body["status"], "new");
    assert_eq!(r.body["mobile"], "13900001111");
    assert_eq!(r.body["tags"], json!(["iot", "vip"]));
    assert_eq!(r.body["estimated_budget"], "80000.00");
    assert!(r.body["assigned_at"].is_null());

    // Reps cannot assign; the manager can, to someone in the region.
    let r = app
        .post(
            "/api/v1/leads/assign",
            &rep,
            json!({"lead_ids": [id], "owner_id": app.org.rep_east1}),
        )
        .await;
    assert_eq!(r.status, 403);
    let r = app
        .post(
            "/api/v1/leads/assign",
            &m,
            json!({"lead_ids": [id], "owner_id": app.org.rep_north1}),
        )
        .await;
    assert_eq!(r.status, 422, "the lead is outside the manager's scope: {}", r.text);
    assert_eq!(r.body["errors"][0]["field"], "lead_ids[0]");
    let r = app
        .post(
            "/api/v1/leads/assign",
            &mkt,
            json!({"lead_ids": [id], "owner_id": app.org.rep_east1}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["items"][0]["status"], "assigned");
    assert_eq!(
        r.body["items"][0]["team_id"].as_str().unwrap(),
        app.org.east1.to_string()
    );
    assert!(r.body["items"][0]["assigned_at"].is_string());

    let queue = app.get("/api/v1/leads?unanswered=true", &rep).await;
    assert_eq!(queue.ids(), vec![id.clone()]);
    let r = app
        .post(
            "/api/v1/activities",
            &rep,
            json!({"type": "call", "subject": "首次电话", "lead_id": id}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let lead = app.get(&format!("/api/v1/leads/{id}"), &rep).await;
    assert_eq!(lead.body["status"], "contacted");
    assert!(lead.body["first_response_at"].is_string());
    assert!(lead.body["response_minutes"].as_i64().unwrap() >= 0);
    assert!(lead.body["last_activity_at"].is_string());
    assert!(app.get("/api/v1/leads?unanswered=true", &rep).await.ids().is_empty());
    // A second activity does not move the first response.
    let first = lead.body["first_response_at"].clone();
    app.post(
        "/api/v1/activities",
        &rep,
        json!({"type": "email", "subject": "Follow-up", "lead_id": id}),
    )
    .await;
    assert_eq!(
        app.get(&format!("/api/v1/leads/{id}"), &rep).await.body["first_response_at"],
        first
    );

    let hist = app.get(&format!("/api/v1/leads/{id}/history"), &rep).await;
    let actions: Vec<&str> = hist.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["responded", "assigned", "created"]);
}

#[actix_web::test]
async fn lead_statuses_follow_the_rules() {
    let app = start().await;
    let rep = app.token(app.org.rep_east1);
    let r = app
        .post(
            "/api/v1/leads",
            &rep,
            json!({"person_name": "Lisa", "source": "website", "owner_id": app.org.rep_east1}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["status"], "assigned");
    let id = r.body["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/leads/{id}");
    let r = app.patch(&path, &rep, 1, json!({"status": "qualified"})).await;
    assert_eq!(r.status, 422);
    assert_eq!(r.body["errors"][0]["code"], "invalid_transition");
    let r = app.patch(&path, &rep, 1, json!({"status": "converted"})).await;
    assert!(r.body["errors"][0]["message"].as_str().unwrap().contains("/convert"));
    assert_eq!(
        app.patch(&path, &rep, 1, json!({"status": "contacted"})).await.status,
        200
    );
    assert_eq!(
        app.patch(&path, &rep, 2, json!({"status": "qualified"})).await.status,
        200
    );
    let r = app.patch(&path, &rep, 3, json!({"status": "disqualified"})).await;
    assert_eq!(r.body["errors"][0]["field"], "disqualify_reason");
    let r = app
        .patch(
            &path,
            &rep,
            3,
            json!({"status": "disqualified", "disqualify_reason": "no budget"}),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["disqualify_reason"], "no budget");
    let r = app.post(&format!("{path}/convert"), &rep, json!({})).await;
    assert_eq!(r.status, 422);
    assert_eq!(r.code(), "lead_not_convertible");
    let r = app.patch(&path, &rep, 4, json!({"status": "contacted"})).await;
    assert_eq!(r.status, 200);
    assert!(r.body["disqualify_reason"].is_null());
    // Duplicates among open leads.
    let r = app
        .post(
            "/api/v1/leads",
            &rep,
            json!({"person_name": "lisa", "source": "website"}),
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.text);
    let r = app
        .post(
            "/api/v1/leads?allow_duplicate=true",
            &rep,
            json!({"person_name": "lisa", "source": "website"}),
        )
        .await;
    assert_eq!(r.status, 201);
    let r = app
        .post(
            "/api/v1/leads",
            &rep,
            json!({"person_name": "x", "source": "carrier_pigeon"}),
        )
        .await;
    assert_eq!(r.status, 422);
}

#[actix_web::test]
async fn conversion_creates_everything_once_in_one_transaction() {
    let app = start().await;
    let rep = app.token(app.org.rep_east1);
    let r = app
        .post(
            "/api/v1/leads",
            &rep,
            json!({"person_name": "王芳", "company": "杭州启明软件", "title": "CTO", "email": "wf@qm.cn", "mobile": "13811112222",
                   "source": "referral", "estimated_budget": "150000.00", "owner_id": app.org.rep_east1}),
        )
        .await;
    let id = r.body["id"].as_str().unwrap().to_owned();
    let before = (
        app.db.count("SELECT count(*) FROM accounts"),
        app.db.count("SELECT count(*) FROM contacts"),
    );

    // A failing part rolls everything back.
    let r = app
        .post(
            &format!("/api/v1/leads/{id}/convert"),
            &rep,
            json!({"opportunity": {"pipeline_id": uuid::Uuid::now_v7()}}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(r.body["errors"][0]["field"], "opportunity.pipeline_id");
    assert_eq!(
        (
            app.db.count("SELECT count(*) FROM accounts"),
            app.db.count("SELECT count(*) FROM contacts")
        ),
        before
    );

    let r = app
        .post(
            &format!("/api/v1/leads/{id}/convert"),
            &rep,
            json!({"opportunity": {"expected_close_date": "2027-06-30"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let (acc, contact, deal) = (
        r.body["account_id"].clone(),
        r.body["contact_id"].clone(),
        r.body["opportunity_id"].clone(),
    );
    assert_eq!(r.body["lead"]["status"], "converted");
    let a = app
        .get(&format!("/api/v1/accounts/{}", acc.as_str().unwrap()), &rep)
        .await;
    assert_eq!(a.body["name"], "杭州启明软件");
    let c = app
        .get(&format!("/api/v1/contacts/{}", contact.as_str().unwrap()), &rep)
        .await;
    assert_eq!(c.body["email"], "wf@qm.cn");
    assert_eq!(c.body["account_id"], acc);
    let o = app
        .get(&format!("/api/v1/opportunities/{}", deal.as_str().unwrap()), &rep)
        .await;
    assert_eq!(o.body["amount"], "150000.00");
    assert_eq!(o.body["primary_contact_id"], contact);
    assert_eq!(o.body["source_lead_id"].as_str().unwrap(), id);
    assert_eq!(o.body["name"], "杭州启明软件 - 王芳");

    // Again: same answer, nothing new.
    let counts = || {
        (
            app.db.count("SELECT count(*) FROM accounts"),
            app.db.count("SELECT count(*) FROM contacts"),
            app.db.count("SELECT count(*) FROM opportunities"),
        )
    };
    let after = counts();
    let again = app
        .post(&format!("/api/v1/leads/{id}/convert"), &rep, json!({"opportunity": {}}))
        .await;
    assert_eq!(again.status, 200);
    assert_eq!(
        (
            again.body["account_id"].clone(),
            again.body["contact_id"].clone(),
            again.body["opportunity_id"].clone()
        ),
        (acc.clone(), contact, deal)
    );
    assert_eq!(counts(), after);
    // A converted lead is read-only.
    let v = app.get(&format!("/api/v1/leads/{id}"), &rep).await.etag_version();
    let r = app
        .patch(&format!("/api/v1/leads/{id}"), &rep, v, json!({"title": "CEO"}))
        .await;
    assert_eq!(r.status, 409);
    assert_eq!(r.code(), "lead_converted");
    let r = app
        .post(
            "/api/v1/leads/assign",
            &app.token(app.org.manager_east),
            json!({"lead_ids": [id], "owner_id": app.org.rep_east2}),
        )
        .await;
    assert_eq!(r.status, 422);

    // Converting into an existing account: the caller chooses it, or gets a 409 naming it.
    let r2 = app.post("/api/v1/leads", &rep, json!({"person_name": "李雷", "company": "杭州启明软件", "source": "website", "owner_id": app.org.rep_east1})).await;
    let id2 = r2.body["id"].as_str().unwrap().to_owned();
    let r = app.post(&format!("/api/v1/leads/{id2}/convert"), &rep, json!({})).await;
    assert_eq!(r.status, 409);
    assert_eq!(r.body["existing"]["id"], acc);
    let r = app
        .post(
            &format!("/api/v1/leads/{id2}/convert"),
            &rep,
            json!({"account": {"id": acc}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["account_id"], acc);
    assert!(r.body["opportunity_id"].is_null());
    let events = app.db.count(&format!(
        "SELECT count(*) FROM outbox_events WHERE aggregate_id = '{id}' AND event_type = 'lead.converted'"
    ));
    assert_eq!(events, 1);
    // Out of scope leads cannot be converted.
    let other = app.token(app.org.rep_east2);
    assert_eq!(
        app.send(request(Method::POST, &format!("/api/v1/leads/{id2}/convert"), Some(&other)).set_json(json!({})))
            .await
            .status,
        404
    );
}
