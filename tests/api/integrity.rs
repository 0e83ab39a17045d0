//! The holes an outside security test found (issue 9): each test here failed before
//! the fix it covers.

use actix_web::http::Method;
use crm_test_support::app::{request, stage_id, start, start_with};
use crm_test_support::fixtures::PASSWORD;
use diesel::RunQueryDsl;
use serde_json::json;

use crate::q2c::{deal, product, quote, signed};

/// A deal with the Qualification work done, moved to Lost by its rep.
async fn lost_deal<S, B>(app: &crm_test_support::TestApp<S>, rep: &str, pipeline: &serde_json::Value) -> String
where
    S: actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse<B>,
        Error = actix_web::Error,
    >,
    B: actix_web::body::MessageBody,
{
    let acc = app.account(rep, &format!("Lost Co {}", uuid::Uuid::now_v7())).await;
    let d = app
        .deal(
            rep,
            json!({"name": "Deal", "account_id": acc["id"], "amount": "50000.00"}),
        )
        .await;
    let id = d["id"].as_str().unwrap().to_owned();
    let r = app
        .move_stage(rep, &id, &stage_id(pipeline, "lost"), Some("budget cut"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    id
}

#[actix_web::test]
async fn a_lost_deal_is_not_won_or_reopened_around_the_criteria() {
    let app = start().await;
    let rep = app.token(app.org.rep_east1);
    let manager = app.token(app.org.manager_east);
    let p = app.default_pipeline(&rep).await;
    let (won, closing, discovery) = (stage_id(&p, "won"), stage_id(&p, "closing"), stage_id(&p, "discovery"));
    let id = lost_deal(&app, &rep, &p).await;

    // The reported trick: Lost, then Won (or back to Closing) with a reason.
    let r = app.move_stage(&rep, &id, &won, Some("actually won")).await;
    assert_eq!(r.status, 403, "a rep may not reopen: {}", r.text);
    let r = app.move_stage(&rep, &id, &closing, Some("back")).await;
    assert_eq!(r.status, 403, "{}", r.text);
    // Whoever may reopen still meets the target stage's criteria.
    let r = app.move_stage(&manager, &id, &won, Some("actually won")).await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(r.code(), "stage_criteria_unmet");
    let r = app.move_stage(&manager, &id, &closing, Some("back")).await;
    assert_eq!(r.code(), "stage_criteria_unmet", "{}", r.text);
    let r = app.move_stage(&manager, &id, &discovery, Some("back")).await;
    assert_eq!(r.code(), "stage_criteria_unmet", "{}", r.text);
    let d = app.get(&format!("/api/v1/opportunities/{id}"), &rep).await;
    assert_eq!(d.body["status"], "lost");
    assert_eq!(d.body["probability"], 0);

    // With Discovery's criteria met the manager reopens it there; the event says so.
    let qual = stage_id(&p, "qualification");
    app.check_task(&rep, &id, &qual, "confirm_need_budget").await;
    app.check_task(&rep, &id, &qual, "workshop_agreed").await;
    app.attach(&rep, &id, "first_call_notes").await;
    let r = app
        .move_stage(&manager, &id, &discovery, Some("customer came back"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["status"], "open");
    assert_eq!(
        app.db.count(&format!(
            "SELECT count(*) FROM outbox_events WHERE aggregate_id = '{id}' \
             AND event_type = 'opportunity.stage_changed' AND payload->'detail'->>'reopened' = 'true'"
        )),
        1
    );

    // A won deal: leaving Won is a reopening too.
    app.check_task(&rep, &id, &closing, "contract_signed").await;
    app.attach(&rep, &id, "signed_contract").await;
    assert_eq!(app.move_stage(&rep, &id, &won, None).await.status, 200);
    let r = app
        .move_stage(&rep, &id, &stage_id(&p, "lost"), Some("changed mind"))
        .await;
    assert_eq!(r.status, 403, "{}", r.text);
    // The permission is listed for managers (team and below), not for reps.
    let me = app.get("/api/v1/me", &manager).await;
    assert!(me.body["permissions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|g| g["resource"] == "opportunities" && g["action"] == "reopen" && g["scope"] == "team_and_below"));
    let me = app.get("/api/v1/me", &rep).await;
    assert!(!me.text.contains("\"reopen\""));
}

#[actix_web::test]
async fn a_hidden_amount_is_not_readable_through_derived_values_totals_history_filters_or_sorts() {
    let app = start().await;
    let admin = app.token(app.org.admin);
    let rep = app.token(app.org.rep_east1);
    let manager = app.token(app.org.manager_east);
    let p = app.default_pipeline(&rep).await;
    let pid = p["id"].as_str().unwrap();
    // A formula over the amount would give it away too.
    let r = app
        .post(
            "/api/v1/admin/fields/opportunities",
            &admin,
            json!({"key": "commission", "label_zh": "佣金", "label_en": "Commission", "type": "formula",
                   "settings": {"expr": "amount * 0.1"}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let acc = app.account(&rep, "Hidden Amount Co").await;
    let aid = acc["id"].as_str().unwrap();
    let d = app
        .deal(
            &rep,
            json!({"name": "Big one", "account_id": aid, "amount": "123456.00", "probability": 50}),
        )
        .await;
    let id = d["id"].as_str().unwrap();
    assert_eq!(d["custom"]["commission"], "12345.6", "{d}");
    app.set_field_access(
        &admin,
        "sales_manager",
        json!([{"object": "opportunities", "field": "amount", "access": "hidden"}]),
    )
    .await;
    let secret = ["123456.00", "61728.00", "12345.6"];
    let leaks = |text: &str| secret.iter().any(|s| text.contains(s));

    let r = app.get(&format!("/api/v1/opportunities/{id}"), &manager).await;
    assert_eq!(r.status, 200);
    assert!(
        r.body.get("amount").is_none() && r.body.get("weighted_amount").is_none(),
        "{}",
        r.text
    );
    assert!(r.body["custom"].get("commission").is_none(), "{}", r.text);
    assert!(!leaks(&r.text), "{}", r.text);
    let r = app.get("/api/v1/opportunities", &manager).await;
    assert!(!leaks(&r.text), "{}", r.text);
    let r = app
        .get(&format!("/api/v1/opportunities/{id}/stage-history"), &manager)
        .await;
    assert!(r.body["items"][0]["amount"].is_null(), "{}", r.text);
    assert!(!leaks(&r.text));
    let r = app.get(&format!("/api/v1/pipelines/{pid}/board"), &manager).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.body["total_amount"].is_null() && r.body["total_weighted_amount"].is_null());
    assert!(r.body["columns"][0]["amount"].is_null());
    assert!(!leaks(&r.text), "{}", r.text);
    let r = app.get(&format!("/api/v1/accounts/{aid}/overview"), &manager).await;
    assert!(r.body["open_deals"]["amount"].is_null(), "{}", r.text);
    assert!(!leaks(&r.text));
    let r = app.get("/api/v1/opportunities/export", &manager).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let heading = r.text.lines().next().unwrap().to_owned();
    assert!(
        !heading.contains("amount") && !heading.contains("commission"),
        "{heading}"
    );
    assert!(!leaks(&r.text));
    let r = app.get(&format!("/api/v1/opportunities/{id}/history"), &manager).await;
    assert!(!leaks(&r.text), "{}", r.text);

    // Guessing by filter or by order is refused.
    for path in [
        "/api/v1/opportunities?amount_gte=100000".to_owned(),
        "/api/v1/opportunities?amount_lte=100000".to_owned(),
        "/api/v1/opportunities/export?amount_gte=100000".to_owned(),
        format!("/api/v1/pipelines/{pid}/board?amount_gte=100000"),
    ] {
        let r = app.get(&path, &manager).await;
        assert_eq!(r.status, 400, "{path}: {}", r.text);
        assert_eq!(r.code(), "filter_not_allowed", "{path}");
    }
    let r = app.get("/api/v1/opportunities?sort=-amount", &manager).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.code(), "invalid_sort");
    // Money cannot be "masked" (a masked amount would still order and compare): it is
    // hidden or read-only; identity fields cannot be restricted at all.
    let roles = app.get("/api/v1/admin/roles", &admin).await;
    let role = roles.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"] == "sales_manager")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for (item, code) in [
        (
            json!({"object": "opportunities", "field": "amount", "access": "masked"}),
            "not_maskable",
        ),
        (
            json!({"object": "opportunities", "field": "name", "access": "hidden"}),
            "not_restrictable",
        ),
    ] {
        let r = app
            .send(
                request(
                    Method::PUT,
                    &format!("/api/v1/admin/roles/{role}/field-permissions"),
                    Some(&admin),
                )
                .set_json(json!({"items": [item]})),
            )
            .await;
        assert_eq!(r.status, 422, "{}", r.text);
        assert_eq!(r.body["errors"][0]["code"], code);
    }
    // The rep, unrestricted, still has all of it.
    let r = app
        .get("/api/v1/opportunities?amount_gte=100000&sort=-amount", &rep)
        .await;
    assert_eq!(r.ids(), vec![id.to_owned()]);
    assert_eq!(r.body["items"][0]["weighted_amount"], "61728.00");
}

#[actix_web::test]
async fn costs_and_margins_are_hidden_from_reps_presales_and_legal() {
    let app = start().await;
    let admin = app.token(app.org.admin);
    let rep = app.token(app.org.rep_east1);
    let director = app.token(app.org.director);
    let p = product(&app, &admin, "COST-1", "10000.00", "6000.00").await;
    let pid = p["id"].as_str().unwrap();
    for who in [app.org.rep_east1, app.org.presales, app.org.legal] {
        let t = app.token(who);
        let r = app.get(&format!("/api/v1/products/{pid}"), &t).await;
        assert_eq!(r.status, 200);
        assert!(r.body.get("standard_cost").is_none(), "{}", r.text);
        let r = app.get("/api/v1/products", &t).await;
        assert!(!r.text.contains("6000.00"), "{}", r.text);
    }
    let (deal_id, _) = deal(&app, &rep).await;
    let q = quote(&app, &rep, &deal_id, json!([{"product_id": pid, "quantity": "1"}]), "0").await;
    for key in ["cost_total", "gross_margin", "gross_margin_pct"] {
        assert!(q.get(key).is_none(), "{key} in {q}");
    }
    let qid = q["id"].as_str().unwrap();
    for who in [app.org.rep_east1, app.org.presales, app.org.legal] {
        let r = app.get(&format!("/api/v1/quotes/{qid}"), &app.token(who)).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert!(
            !r.text.contains("6000.00") && !r.text.contains("gross_margin"),
            "{}",
            r.text
        );
    }
    let r = app.get("/api/v1/quotes", &rep).await;
    assert!(!r.text.contains("gross_margin"), "{}", r.text);
    // The director and finance see them.
    let r = app.get(&format!("/api/v1/quotes/{qid}"), &director).await;
    assert_eq!(r.body["cost_total"], "6000.00");
    assert_eq!(r.body["gross_margin"], "4000.00");
    let r = app
        .get(&format!("/api/v1/products/{pid}"), &app.token(app.org.finance))
        .await;
    assert_eq!(r.body["standard_cost"], "6000.00");
    // Admins may restrict product and quote fields like any other.
    let r = app
        .get(
            &format!(
                "/api/v1/admin/roles/{}/field-permissions",
                app.get("/api/v1/admin/roles", &admin).await.body["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|r| r["key"] == "sales_rep")
                    .unwrap()["id"]
                    .as_str()
                    .unwrap()
            ),
            &admin,
        )
        .await;
    assert!(r.body["items"]
        .as_array()
        .unwrap()
        .contains(&json!({"object": "products", "field": "standard_cost", "access": "hidden"})));
}

#[actix_web::test]
async fn free_text_prices_need_the_directors_approval() {
    let app = start().await;
    let rep = app.token(app.org.rep_east1);
    let director = app.token(app.org.director);
    let (deal_id, _) = deal(&app, &rep).await;
    // The reported quote: "Sales Cloud Enterprise" for 1.13, no product, 0% discount.
    let q = quote(
        &app,
        &rep,
        &deal_id,
        json!([{"description": "Sales Cloud Enterprise", "quantity": "1", "unit_price": "1.00"}]),
        "0",
    )
    .await;
    assert_eq!(q["effective_discount_pct"], "0.00");
    assert_eq!(q["free_text_lines"], 1);
    let id = q["id"].as_str().unwrap();
    let r = app.post(&format!("/api/v1/quotes/{id}/submit"), &rep, json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["status"], "pending_approval");
    let inbox = app.get("/api/v1/me/approvals", &director).await;
    let item = inbox.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["object_id"] == id)
        .cloned()
        .expect("the director decides");
    assert_eq!(item["record"]["free_text_lines"], 1);
    // It cannot be sent (nor contracted) before the decision.
    let r = app.post(&format!("/api/v1/quotes/{id}/send"), &rep, json!({})).await;
    assert_eq!(r.status, 409, "{}", r.text);
    // The rule is an ordinary condition admins can see and change.
    let defs = app
        .get("/api/v1/admin/approval-definitions", &app.token(app.org.admin))
        .await;
    assert!(defs.text.contains("free_text_lines"), "{}", defs.text);
}

#[actix_web::test]
async fn payments_are_bounded_and_prepayments_follow_the_rule() {
    let app = start().await;
    let rep = app.token(app.org.rep_east1);
    let finance = app.token(app.org.finance);
    let admin = app.token(app.org.admin);
    let (deal_id, _) = deal(&app, &rep).await;
    let r = app
        .post(
            "/api/v1/contracts",
            &rep,
            json!({"opportunity_id": deal_id, "amount": "1.13"}),
        )
        .await;
    let kid = r.body["id"].as_str().unwrap().to_owned();
    let pay = |amount: &str| json!({"contract_id": kid, "amount": amount, "method": "bank_transfer"});
    // The reported payment: a million against a draft contract of 1.13.
    let r = app.post("/api/v1/payments", &finance, pay("1000000.00")).await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(r.code(), "exceeds_contract");
    assert_eq!(r.body["remaining"], "1.13");
    assert_eq!(app.db.count("SELECT count(*) FROM payments"), 0);
    // A prepayment on the draft is explicit credit: unapplied, not allocatable yet.
    let mut with_alloc = pay("0.05");
    with_alloc["allocations"] = json!([]);
    let r = app.post("/api/v1/payments", &finance, with_alloc).await;
    assert_eq!(r.status, 422, "{}", r.text);
    let r = app.post("/api/v1/payments", &finance, pay("0.05")).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["prepayment"], true);
    assert_eq!(r.body["unapplied"], "0.05");
    let pid = r.body["id"].as_str().unwrap().to_owned();
    let r = app
        .post(&format!("/api/v1/payments/{pid}/allocate"), &finance, json!({}))
        .await;
    assert_eq!(r.code(), "contract_not_signed", "{}", r.text);
    // 0.05 of 1.13 is below the 10% prepayment rule: the deal stays open.
    let deal_path = format!("/api/v1/opportunities/{deal_id}");
    assert_eq!(app.get(&deal_path, &rep).await.body["status"], "open");
    // With the rule turned off, no prepayment wins a deal.
    let r = app
        .send(
            request(Method::PUT, "/api/v1/admin/settings/payments", Some(&admin)).set_json(json!({
                "overpayment_tolerance": "0.00", "accept_prepayments": true, "prepayment_wins_pct": null
            })),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app.post("/api/v1/payments", &finance, pay("1.00")).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(app.get(&deal_path, &rep).await.body["status"], "open");
    // Beyond the amount is refused; with a tolerance it is held as credit.
    let r = app.post("/api/v1/payments", &finance, pay("0.10")).await;
    assert_eq!(r.code(), "exceeds_contract");
    assert_eq!(r.body["remaining"], "0.08");
    let r = app
        .send(
            request(Method::PUT, "/api/v1/admin/settings/payments", Some(&admin)).set_json(json!({
                "overpayment_tolerance": "1.00", "accept_prepayments": false, "prepayment_wins_pct": "10"
            })),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app.post("/api/v1/payments", &finance, pay("0.10")).await;
    assert_eq!(r.status, 409, "prepayments are off now: {}", r.text);
    assert_eq!(r.code(), "contract_not_signed");
    assert_eq!(
        app.get("/api/v1/admin/settings/payments", &admin).await.body["prepayment_wins_pct"],
        "10.00"
    );
    // Once signed, payments apply normally and the tolerance holds the excess.
    signed(&app, &rep, &kid).await;
    let r = app.post("/api/v1/payments", &finance, pay("0.10")).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["prepayment"], false);
    let r = app
        .get(&format!("/api/v1/receivables?contract_id={kid}"), &finance)
        .await;
    assert_eq!(r.body["items"][0]["received"], "1.15", "{}", r.text);
}

#[actix_web::test]
async fn a_prepayment_reaching_the_rule_wins_the_deal() {
    let app = start().await;
    let rep = app.token(app.org.rep_east1);
    let finance = app.token(app.org.finance);
    let (deal_id, _) = deal(&app, &rep).await;
    let r = app
        .post(
            "/api/v1/contracts",
            &rep,
            json!({"opportunity_id": deal_id, "amount": "5000.00"}),
        )
        .await;
    let kid = r.body["id"].as_str().unwrap().to_owned();
    let r = app
        .post(
            "/api/v1/payments",
            &finance,
            json!({"contract_id": kid, "amount": "499.99", "method": "alipay"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let status = app.get(&format!("/api/v1/opportunities/{deal_id}"), &rep).await.body["status"].clone();
    assert_eq!(status, "open", "below 10% of the contract");
    let r = app
        .post(
            "/api/v1/payments",
            &finance,
            json!({"contract_id": kid, "amount": "0.01", "method": "alipay"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let status = app.get(&format!("/api/v1/opportunities/{deal_id}"), &rep).await.body["status"].clone();
    assert_eq!(status, "won", "10% of the contract prepaid");
}

#[actix_web::test]
async fn nul_characters_are_refused_as_bad_input() {
    let app = start().await;
    let rep = app.token(app.org.rep_east1);
    let r = app.login("a\u{0}b@test.local", "x").await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(r.body["errors"][0]["field"], "email");
    assert_eq!(r.body["errors"][0]["code"], "invalid_character");
    for path in [
        "/api/v1/accounts?q=a%00b",
        "/api/v1/opportunities?q=%00",
        "/api/v1/leads?q=x%00",
    ] {
        let r = app.get(path, &rep).await;
        assert_eq!(r.status, 400, "{path}: {}", r.text);
        assert_eq!(r.code(), "invalid_character");
    }
    let r = app.post("/api/v1/accounts", &rep, json!({"name": "Evil\u{0}Co"})).await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(r.body["errors"][0]["field"], "name");
    let r = app
        .post(
            "/api/v1/accounts",
            &rep,
            json!({"name": "Co", "custom": {"k\u{0}": "v"}}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(app.db.count("SELECT count(*) FROM accounts"), 0);
}

#[actix_web::test]
async fn an_attacker_cannot_lock_the_owner_out() {
    let app = start_with(|c| c.account_throttle.max_failures = 8).await;
    let email = "rep.east1@test.local";
    let (owner_ip, attacker) = ("10.0.0.7", "10.9.9.9");
    assert_eq!(app.login_from(email, PASSWORD, owner_ip).await.status, 200);
    for _ in 0..5 {
        assert_eq!(app.login_from(email, "guess", attacker).await.status, 401);
    }
    let r = app.login_from(email, "guess", attacker).await;
    assert_eq!(r.status, 429, "{}", r.text);
    let first: i64 = r.header("retry-after").unwrap().parse().unwrap();
    // The owner, from another address, is not held by the attacker's failures.
    let r = app.login_from(email, PASSWORD, owner_ip).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["failed_logins_since_last"], 5);
    assert!(r.body["last_failed_login_at"].is_string());
    // Each further failure after a lock doubles it.
    diesel::sql_query("UPDATE login_throttle SET locked_until = now() - interval '1 second'")
        .execute(&mut app.db.conn())
        .unwrap();
    assert_eq!(app.login_from(email, "guess", attacker).await.status, 401);
    let r = app.login_from(email, "guess", attacker).await;
    let second: i64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!(second > first + 30, "{first} then {second}");
    // A guess spread over many addresses locks the account for strangers only.
    for i in 0..3 {
        app.login_from(email, "guess", &format!("10.5.0.{i}")).await;
    }
    assert_eq!(app.login_from(email, PASSWORD, "10.6.6.6").await.status, 429);
    assert_eq!(app.login_from(email, PASSWORD, owner_ip).await.status, 200);
    // The locks are recorded for the user's and admins' attention.
    let user = app.org.rep_east1;
    assert!(
        app.db.count(&format!(
            "SELECT count(*) FROM outbox_events WHERE event_type = 'user.login_locked' AND aggregate_id = '{user}'"
        )) >= 2
    );
    let admin = app.token(app.org.admin);
    let u = app.get(&format!("/api/v1/admin/users/{user}"), &admin).await;
    assert!(u.body["login_security"].is_object(), "{}", u.text);
    // An administrator's password reset lets the owner in from anywhere.
    let r = app
        .patch(
            &format!("/api/v1/admin/users/{user}"),
            &admin,
            u.etag_version(),
            json!({"password": "new-password-1"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(app.login_from(email, "new-password-1", "10.6.6.6").await.status, 200);
}

#[actix_web::test]
async fn metrics_need_a_token_or_their_own_listener() {
    let app = start().await;
    assert_eq!(app.send(request(Method::GET, "/metrics", None)).await.status, 404);
    let app = start_with(|c| c.metrics_token = Some("scrape-token-0123456789".into())).await;
    let r = app.send(request(Method::GET, "/metrics", None)).await;
    assert_eq!(r.status, 401, "{}", r.text);
    assert_eq!(
        app.send(request(Method::GET, "/metrics", Some("wrong"))).await.status,
        401
    );
    // A user's access token is not the metrics token either.
    let rep = app.token(app.org.rep_east1);
    assert_eq!(app.get("/metrics", &rep).await.status, 401);
    let r = app
        .send(request(Method::GET, "/metrics", Some("scrape-token-0123456789")))
        .await;
    assert_eq!(r.status, 200);
    assert!(r.text.contains("http_requests_total"), "{}", r.text);
    let svc = actix_web::test::init_service(crm_http::routes::metrics_app(app.state.clone())).await;
    let resp =
        actix_web::test::call_service(&svc, actix_web::test::TestRequest::get().uri("/metrics").to_request()).await;
    assert_eq!(resp.status(), 200);
}

#[actix_web::test]
async fn responses_carry_security_headers_and_get_routes_answer_head() {
    let app = start().await;
    let rep = app.token(app.org.rep_east1);
    for r in [
        app.send(request(Method::GET, "/healthz", None)).await,
        app.send(request(Method::GET, "/api/v1/nowhere", None)).await,
        app.get("/api/v1/accounts", &rep).await,
        app.get("/api/v1/accounts", "bad-token").await,
    ] {
        assert_eq!(
            r.header("x-content-type-options").as_deref(),
            Some("nosniff"),
            "{}",
            r.status
        );
    }
    let r = app.get("/api/v1/accounts", &rep).await;
    assert_eq!(r.header("cache-control").as_deref(), Some("no-store"));
    let r = app.send(request(Method::HEAD, "/api/v1/accounts", Some(&rep))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("cache-control").as_deref(), Some("no-store"));
    assert_eq!(app.send(request(Method::HEAD, "/healthz", None)).await.status, 200);
}

#[actix_web::test]
async fn delta_sync_reports_records_that_left_the_callers_scope() {
    let app = start().await;
    let rep = app.token(app.org.rep_east1);
    let other = app.token(app.org.rep_east1b);
    let north = app.token(app.org.rep_north1);
    let manager = app.token(app.org.manager_east);
    let since = (chrono::Utc::now() - chrono::Duration::seconds(5)).to_rfc3339();
    let acc = app.account(&rep, "Moving Co").await;
    let aid = acc["id"].as_str().unwrap().to_owned();
    let d = app.deal(&rep, json!({"name": "Moving deal", "account_id": aid})).await;
    let did = d["id"].as_str().unwrap().to_owned();
    let sync = |path: &str| format!("{path}?updated_since={}", since.replace('+', "%2B"));
    let r = app.get(&sync("/api/v1/accounts"), &rep).await;
    assert_eq!(r.ids(), vec![aid.clone()]);
    // The manager hands both to another rep.
    for (path, id) in [("accounts", &aid), ("opportunities", &did)] {
        let cur = app.get(&format!("/api/v1/{path}/{id}"), &manager).await;
        let r = app
            .patch(
                &format!("/api/v1/{path}/{id}"),
                &manager,
                cur.etag_version(),
                json!({"owner_id": app.org.rep_east1b}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    for (path, id) in [("accounts", &aid), ("opportunities", &did)] {
        let r = app.get(&sync(&format!("/api/v1/{path}")), &rep).await;
        assert!(r.ids().is_empty(), "{}", r.text);
        assert_eq!(r.body["deleted_ids"], json!([id]), "{path}: {}", r.text);
        // The new owner gets it as a change; someone who never saw it learns nothing.
        let r = app.get(&sync(&format!("/api/v1/{path}")), &other).await;
        assert_eq!(r.ids(), vec![id.clone()]);
        let r = app.get(&sync(&format!("/api/v1/{path}")), &north).await;
        assert_eq!(r.body["deleted_ids"], json!([]), "{}", r.text);
    }
}

#[actix_web::test]
async fn authorization_comes_before_validation() {
    let app = start().await;
    let rep = app.token(app.org.rep_east1);
    let r = app
        .post(
            "/api/v1/admin/fields/accounts",
            &rep,
            json!({"key": "x", "type": "telepathy"}),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert!(!r.text.contains("single_select"), "no list of valid types: {}", r.text);
    let r = app
        .send(request(Method::POST, "/api/v1/admin/users", Some(&rep)).insert_header(("content-type", "text/plain")))
        .await;
    assert_eq!(r.status, 403, "{}", r.text);
    let r = app.post("/api/v1/payments", &rep, json!({"amount": -1})).await;
    assert_eq!(r.status, 403, "{}", r.text);
    // With the permission the same body is a 422 that names the problem.
    let r = app
        .post(
            "/api/v1/admin/fields/accounts",
            &app.token(app.org.admin),
            json!({"key": "x", "type": "telepathy"}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
}

#[actix_web::test]
async fn values_a_user_would_not_expect_are_refused() {
    let app = start().await;
    let rep = app.token(app.org.rep_east1);
    let acc = app.account(&rep, "Strict Co").await;
    let aid = acc["id"].as_str().unwrap();
    for (body, field) in [
        (json!({"name": "D", "account_id": aid, "currency": "ABC"}), "currency"),
        (
            json!({"name": "D", "account_id": aid, "probability": 100}),
            "probability",
        ),
    ] {
        let r = app.post("/api/v1/opportunities", &rep, body.clone()).await;
        assert_eq!(r.status, 422, "{body}: {}", r.text);
        assert_eq!(r.body["errors"][0]["field"], field);
    }
    let d = app
        .deal(&rep, json!({"name": "D", "account_id": aid, "currency": "usd"}))
        .await;
    let id = d["id"].as_str().unwrap();
    let r = app
        .patch(
            &format!("/api/v1/opportunities/{id}"),
            &rep,
            1,
            json!({"probability": 100}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
    let r = app
        .patch(
            &format!("/api/v1/opportunities/{id}"),
            &rep,
            1,
            json!({"currency": "XYZ"}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
    let r = app
        .post(
            "/api/v1/quotes",
            &rep,
            json!({"opportunity_id": id, "valid_until": "2020-01-01",
                   "lines": [{"description": "svc", "quantity": "1", "unit_price": "10.00"}]}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(r.body["errors"][0]["field"], "valid_until");
    let r = app
        .post(
            "/api/v1/price-books",
            &app.token(app.org.admin),
            json!({"name": "Fake", "currency": "ABC", "entries": []}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
}

#[actix_web::test]
async fn withdrawing_an_approval_one_cannot_see_is_404() {
    let app = start().await;
    let rep = app.token(app.org.rep_east1);
    let (deal_id, _) = deal(&app, &rep).await;
    let q = quote(
        &app,
        &rep,
        &deal_id,
        json!([{"description": "svc", "quantity": "1", "unit_price": "10.00"}]),
        "0",
    )
    .await;
    let id = q["id"].as_str().unwrap();
    app.post(&format!("/api/v1/quotes/{id}/submit"), &rep, json!({})).await;
    let a = crate::q2c::approvals_of(&app, &rep, "quote", id).await;
    let approval = a[0]["id"].as_str().unwrap();
    let stranger = app.token(app.org.rep_north1);
    for action in ["withdraw", "approve"] {
        let r = app
            .post(&format!("/api/v1/approvals/{approval}/{action}"), &stranger, json!({}))
            .await;
        assert_eq!(r.status, 404, "{action}: {}", r.text);
    }
    assert_eq!(
        app.get(&format!("/api/v1/approvals/{approval}"), &stranger)
            .await
            .status,
        404
    );
}

#[actix_web::test]
async fn a_disabled_user_refreshing_is_told_the_account_is_disabled() {
    let app = start().await;
    let login = app.login("rep.east1@test.local", PASSWORD).await;
    let refresh = login.body["refresh_token"].as_str().unwrap().to_owned();
    let admin = app.token(app.org.admin);
    let user = app.org.rep_east1;
    let u = app.get(&format!("/api/v1/admin/users/{user}"), &admin).await;
    let r = app
        .patch(
            &format!("/api/v1/admin/users/{user}"),
            &admin,
            u.etag_version(),
            json!({"is_active": false}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app
        .send(request(Method::POST, "/api/v1/auth/refresh", None).set_json(json!({"refresh_token": refresh})))
        .await;
    assert_eq!(r.status, 401);
    assert_eq!(r.code(), "account_disabled", "{}", r.text);
}
