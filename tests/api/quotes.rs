//! Products, price books, quotes with server-computed totals, and the approval engine.

use crm_test_support::app::start;
use serde_json::{json, Value};

use crate::q2c::{approvals_of, deal, product, quote};

#[actix_web::test]
async fn products_and_price_books_are_admin_managed() {
    let app = start().await;
    let admin = app.token(app.org.admin);
    let rep = app.token(app.org.rep_east1);
    let r = app
        .post(
            "/api/v1/products",
            &rep,
            json!({"code": "X", "name": "x", "list_price": "1.00"}),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text);
    let p = product(&app, &admin, "CRM-PRO", "9800.00", "4200.00").await;
    assert_eq!(p["tax_rate"], "13.00");
    assert_eq!(p["unit"], "件");
    let r = app
        .post(
            "/api/v1/products",
            &admin,
            json!({"code": "crm-pro", "name": "dup", "list_price": "1.00"}),
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.text);
    assert_eq!(r.body["existing"]["id"], p["id"]);
    let r = app
        .post(
            "/api/v1/products",
            &admin,
            json!({"code": "BAD CODE", "name": " ", "list_price": "-1", "tax_rate": "101"}),
        )
        .await;
    assert_eq!(r.status, 422);
    let fields: Vec<&str> = r.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["code", "list_price", "name", "tax_rate"]);

    // Everyone reads the catalogue.
    let r = app.get("/api/v1/products?q=crm", &rep).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1);

    // A tier-A book; a new default book replaces the old default.
    let r = app
        .post(
            "/api/v1/price-books",
            &admin,
            json!({"name": "A 类客户", "tier": "a", "entries": [{"product_id": p["id"], "unit_price": "8800.00"}]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["tier"], "A");
    assert_eq!(r.body["entries"][0]["unit_price"], "8800.00");
    let book_a = r.body["id"].as_str().unwrap().to_owned();
    let r = app.get("/api/v1/price-books", &rep).await;
    let defaults = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["is_default"] == true)
        .count();
    assert_eq!(defaults, 1);

    // A quote for a tier-A account takes the tier book's price.
    let (deal_id, account_id) = deal(&app, &rep).await;
    let a = app.get(&format!("/api/v1/accounts/{account_id}"), &rep).await;
    let r = app
        .patch(
            &format!("/api/v1/accounts/{account_id}"),
            &rep,
            a.etag_version(),
            json!({"tier": "A"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let q = quote(
        &app,
        &rep,
        &deal_id,
        json!([{"product_id": p["id"], "quantity": "1"}]),
        "0",
    )
    .await;
    assert_eq!(q["price_book_id"].as_str().unwrap(), book_a);
    assert_eq!(q["lines"][0]["unit_list_price"], "8800.00");
    assert_eq!(q["lines"][0]["description"], p["name"]);
}

#[actix_web::test]
async fn quote_totals_are_computed_by_the_server() {
    let app = start().await;
    let admin = app.token(app.org.admin);
    let rep = app.token(app.org.rep_east1);
    let p = product(&app, &admin, "A-1", "10000.00", "6000.00").await;
    let (deal_id, _) = deal(&app, &rep).await;
    let lines = json!([
        {"product_id": p["id"], "quantity": "2", "discount_pct": "10"},
        {"description": "实施服务 Implementation", "quantity": "1", "unit_price": "5000.00", "tax_rate": "6"}
    ]);
    let q = quote(&app, &rep, &deal_id, lines, "5").await;
    assert_eq!(q["status"], "draft");
    assert_eq!(q["revision"], 1);
    assert!(q["number"].as_str().unwrap().starts_with("BJ-"));
    // Subtotal 18000 + 5000; header 5% = 1150 spread 900 / 250.
    assert_eq!(q["lines"][0]["net_amount"], "17100.00");
    assert_eq!(q["lines"][0]["tax_amount"], "2223.00");
    assert_eq!(q["lines"][1]["net_amount"], "4750.00");
    assert_eq!(q["lines"][1]["tax_amount"], "285.00");
    assert_eq!(q["list_total"], "25000.00");
    assert_eq!(q["subtotal"], "23000.00");
    assert_eq!(q["header_discount_amount"], "1150.00");
    assert_eq!(q["net_amount"], "21850.00");
    assert_eq!(q["discount_amount"], "3150.00");
    assert_eq!(q["effective_discount_pct"], "12.60");
    assert_eq!(q["tax_amount"], "2508.00");
    assert_eq!(q["total"], "24358.00");
    // Costs and margins are for the director, not the rep (issue 9).
    assert!(q.get("cost_total").is_none() && q.get("gross_margin").is_none(), "{q}");
    assert_eq!(q["free_text_lines"], 1);
    let full = app
        .get(
            &format!("/api/v1/quotes/{}", q["id"].as_str().unwrap()),
            &app.token(app.org.director),
        )
        .await;
    assert_eq!(full.body["cost_total"], "12000.00");
    assert_eq!(full.body["gross_margin"], "9850.00");

    // Client-sent totals are not accepted; bad lines change nothing.
    let id = q["id"].as_str().unwrap();
    let r = app
        .patch(&format!("/api/v1/quotes/{id}"), &rep, 1, json!({"total": "1.00"}))
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
    let r = app
        .patch(
            &format!("/api/v1/quotes/{id}"),
            &rep,
            1,
            json!({"lines": [{"quantity": "0"}, {"product_id": uuid::Uuid::now_v7(), "quantity": "1", "discount_pct": "150"}]}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
    let fields: Vec<&str> = r.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        [
            "lines[0].description",
            "lines[0].quantity",
            "lines[1].discount_pct",
            "lines[1].product_id"
        ]
    );
    // Amounts that cannot be stored are refused, not overflowed: quantity x price
    // beyond numeric(18, 2), and prices a million times the list price.
    let r = app
        .patch(
            &format!("/api/v1/quotes/{id}"),
            &rep,
            1,
            json!({"lines": [{"product_id": p["id"], "quantity": "999999999999", "unit_price": "9999999999999.00"}]}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(r.body["errors"][0]["field"], "lines[0].quantity", "{}", r.text);
    let r = app
        .patch(
            &format!("/api/v1/quotes/{id}"),
            &rep,
            1,
            json!({"lines": [{"product_id": p["id"], "quantity": "1", "unit_price": "10000000000.00"}]}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(r.body["errors"][0]["field"], "lines", "{}", r.text);
    let same = app.get(&format!("/api/v1/quotes/{id}"), &rep).await;
    assert_eq!(same.body["total"], "24358.00");
    assert_eq!(same.etag_version(), 1);

    // Header change only: lines re-priced as entered.
    let r = app
        .patch(
            &format!("/api/v1/quotes/{id}"),
            &rep,
            1,
            json!({"header_discount_pct": "0"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["net_amount"], "23000.00");
    assert_eq!(r.body["total"], "25640.00");

    // The printable document.
    let d = app.get(&format!("/api/v1/quotes/{id}/document"), &rep).await;
    assert_eq!(d.status, 200, "{}", d.text);
    assert_eq!(d.body["total"], "25640.00");
    assert_eq!(d.body["total_in_words"], "贰万伍仟陆佰肆拾元整");
    assert_eq!(d.body["seller"]["contact_email"], "rep.east1@test.local");
    assert_eq!(d.body["lines"].as_array().unwrap().len(), 2);
    assert!(d.body["customer"]["name"].as_str().unwrap().starts_with("Q2C"));

    // Another rep cannot see it.
    let other = app.token(app.org.rep_east2);
    assert_eq!(app.get(&format!("/api/v1/quotes/{id}"), &other).await.status, 404);
}

#[actix_web::test]
async fn seeded_discount_rule_auto_approves_up_to_15_percent() {
    let app = start().await;
    let admin = app.token(app.org.admin);
    let rep = app.token(app.org.rep_east1);
    let p = product(&app, &admin, "P-1", "1000.00", "400.00").await;
    let (deal_id, _) = deal(&app, &rep).await;
    let q = quote(
        &app,
        &rep,
        &deal_id,
        json!([{"product_id": p["id"], "quantity": "1", "discount_pct": "15"}]),
        "0",
    )
    .await;
    let id = q["id"].as_str().unwrap();
    let r = app.post(&format!("/api/v1/quotes/{id}/submit"), &rep, json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["status"], "approved");
    let a = approvals_of(&app, &rep, "quote", id).await;
    assert_eq!(a[0]["status"], "auto_approved");
    let actions: Vec<&str> = a[0]["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["submitted", "auto_approved"]);
    let h = app.get(&format!("/api/v1/quotes/{id}/status-history"), &rep).await;
    let steps: Vec<&str> = h.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["to_status"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["draft", "pending_approval", "approved"]);

    // Approved is immutable; a revision is a new draft with the next number.
    let r = app
        .patch(
            &format!("/api/v1/quotes/{id}"),
            &rep,
            r.etag_version(),
            json!({"terms": "x"}),
        )
        .await;
    assert_eq!(r.status, 409);
    assert_eq!(r.code(), "immutable");
    let r = app.post(&format!("/api/v1/quotes/{id}/revise"), &rep, json!({})).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["revision"], 2);
    assert_eq!(r.body["status"], "draft");
    assert_eq!(r.body["total"], q["total"]);
    assert_ne!(r.body["number"], q["number"]);
}

#[actix_web::test]
async fn discount_above_15_percent_needs_the_director_and_locks_the_quote() {
    let app = start().await;
    let admin = app.token(app.org.admin);
    let rep = app.token(app.org.rep_east1);
    let director = app.token(app.org.director);
    let p = product(&app, &admin, "P-1", "1000.00", "400.00").await;
    let (deal_id, _) = deal(&app, &rep).await;
    let q = quote(
        &app,
        &rep,
        &deal_id,
        json!([{"product_id": p["id"], "quantity": "1", "discount_pct": "20"}]),
        "0",
    )
    .await;
    let id = q["id"].as_str().unwrap();
    let r = app.post(&format!("/api/v1/quotes/{id}/submit"), &rep, json!({})).await;
    assert_eq!(r.body["status"], "pending_approval", "{}", r.text);
    let v = r.etag_version();

    // Locked while pending; nothing changes.
    let r = app
        .patch(&format!("/api/v1/quotes/{id}"), &rep, v, json!({"terms": "sneaky"}))
        .await;
    assert_eq!(r.status, 409);
    assert_eq!(r.code(), "locked");
    assert_eq!(
        app.post(&format!("/api/v1/quotes/{id}/send"), &rep, json!({}))
            .await
            .code(),
        "invalid_transition"
    );

    // The director's inbox has it, with the record as submitted.
    let inbox = app.get("/api/v1/me/approvals", &director).await;
    assert_eq!(inbox.status, 200, "{}", inbox.text);
    let item = &inbox.body["items"][0];
    assert_eq!(item["object_id"].as_str().unwrap(), id);
    assert_eq!(item["record"]["effective_discount_pct"], "20.00");
    let approval = item["approval_id"].as_str().unwrap().to_owned();
    assert!(app.get("/api/v1/me/approvals", &rep).await.body["items"]
        .as_array()
        .unwrap()
        .is_empty());

    // Not an approver: 404. Reject needs a comment.
    let r = app
        .post(&format!("/api/v1/approvals/{approval}/approve"), &rep, json!({}))
        .await;
    assert_eq!(r.status, 404);
    let r = app
        .post(&format!("/api/v1/approvals/{approval}/reject"), &director, json!({}))
        .await;
    assert_eq!(r.status, 422);
    let r = app
        .post(
            &format!("/api/v1/approvals/{approval}/reject"),
            &director,
            json!({"comment": "太低了 too low"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["status"], "rejected");
    let q2 = app.get(&format!("/api/v1/quotes/{id}"), &rep).await;
    assert_eq!(q2.body["status"], "rejected");
    assert_eq!(
        app.db
            .count("SELECT count(*) FROM outbox_events WHERE event_type = 'approval.decided'"),
        1
    );
    assert_eq!(
        app.db
            .count("SELECT count(*) FROM outbox_events WHERE event_type = 'quote.rejected'"),
        1
    );

    // Deciding again is a conflict.
    let r = app
        .post(&format!("/api/v1/approvals/{approval}/approve"), &director, json!({}))
        .await;
    assert_eq!(r.status, 409);
    assert_eq!(r.code(), "already_decided");

    // Edit after rejection -> draft; resubmit -> a new approval; approve.
    let r = app
        .patch(
            &format!("/api/v1/quotes/{id}"),
            &rep,
            q2.etag_version(),
            json!({"lines": [{"product_id": p["id"], "quantity": "1", "discount_pct": "18"}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["status"], "draft");
    let r = app.post(&format!("/api/v1/quotes/{id}/submit"), &rep, json!({})).await;
    assert_eq!(r.body["status"], "pending_approval");
    let a = approvals_of(&app, &rep, "quote", id).await;
    assert_eq!(a.len(), 2);
    let second = a[0]["id"].as_str().unwrap().to_owned();
    let r = app
        .post(
            &format!("/api/v1/approvals/{second}/approve"),
            &director,
            json!({"comment": "ok"}),
        )
        .await;
    assert_eq!(r.body["status"], "approved", "{}", r.text);
    let actions: Vec<&str> = r.body["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["submitted", "step_opened", "approved", "completed"]);
    assert_eq!(
        app.get(&format!("/api/v1/quotes/{id}"), &rep).await.body["status"],
        "approved"
    );
}

/// Creates a definition for quotes whose terms equal `tag`, ahead of the seeded ones.
async fn definition<S, B>(app: &crm_test_support::app::TestApp<S>, admin: &str, tag: &str, steps: Value) -> Value
where
    S: actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse<B>,
        Error = actix_web::Error,
    >,
    B: actix_web::body::MessageBody,
{
    let r = app
        .post(
            "/api/v1/admin/approval-definitions",
            admin,
            json!({"name": tag, "object_type": "quote", "priority": 1,
                   "condition": {"field": "terms", "op": "eq", "value": tag}, "steps": steps}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.body
}

async fn submit_tagged<S, B>(
    app: &crm_test_support::app::TestApp<S>,
    rep: &str,
    deal_id: &str,
    tag: &str,
    total: &str,
) -> (String, Value)
where
    S: actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse<B>,
        Error = actix_web::Error,
    >,
    B: actix_web::body::MessageBody,
{
    let r = app
        .post(
            "/api/v1/quotes",
            rep,
            json!({"opportunity_id": deal_id, "terms": tag,
                   "lines": [{"description": "svc", "quantity": "1", "unit_price": total}]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.body["id"].as_str().unwrap().to_owned();
    let s = app.post(&format!("/api/v1/quotes/{id}/submit"), rep, json!({})).await;
    assert_eq!(s.status, 200, "{}", s.text);
    let a = approvals_of(app, rep, "quote", &id).await;
    (id, a[0].clone())
}

fn approvers(a: &Value, status: &str) -> Vec<String> {
    let mut v: Vec<String> = a["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["status"] == status)
        .map(|t| t["approver_id"].as_str().unwrap().to_owned())
        .collect();
    v.sort();
    v
}

fn ids(list: &[uuid::Uuid]) -> Vec<String> {
    let mut v: Vec<String> = list.iter().map(|u| u.to_string()).collect();
    v.sort();
    v
}

#[actix_web::test]
async fn every_approver_kind_resolves_to_the_right_people() {
    let app = start().await;
    let admin = app.token(app.org.admin);
    let rep = app.token(app.org.rep_east1);
    let o = &app.org;
    let (deal_id, _) = deal(&app, &rep).await;
    let cases = [
        ("user", json!({"kind": "user", "user_id": o.presales}), vec![o.presales]),
        ("role", json!({"kind": "role", "role": "legal"}), vec![o.legal]),
        (
            "role-team",
            json!({"kind": "role", "role": "sales_rep", "within": "team"}),
            vec![o.rep_east1b],
        ),
        (
            "role-region",
            json!({"kind": "role", "role": "sales_rep", "within": "region"}),
            vec![o.rep_east1b, o.rep_east2],
        ),
        ("manager", json!({"kind": "manager"}), vec![o.manager_east]),
        (
            "chain",
            json!({"kind": "manager_chain", "levels": 2}),
            vec![o.manager_east, o.director],
        ),
        ("lead", json!({"kind": "team_lead"}), vec![o.manager_east]),
    ];
    for (tag, who, expected) in cases {
        definition(&app, &admin, tag, json!([{"name": tag, "approvers": who}])).await;
        let (_, a) = submit_tagged(&app, &rep, &deal_id, tag, "100.00").await;
        assert_eq!(a["status"], "pending", "{tag}");
        assert_eq!(approvers(&a, "pending"), ids(&expected), "{tag}");
    }
    // Invalid definitions are refused.
    let r = app
        .post(
            "/api/v1/admin/approval-definitions",
            &admin,
            json!({"name": "x", "object_type": "quote", "steps": [{"name": "s", "approvers": {"kind": "role", "role": "pope"}}]}),
        )
        .await;
    assert_eq!(r.status, 422);
    assert_eq!(r.body["errors"][0]["field"], "steps[0].approvers.role");
    let r = app
        .post(
            "/api/v1/admin/approval-definitions",
            &admin,
            json!({"name": "x", "object_type": "quote", "condition": {"field": "a", "op": "gt"}, "steps": []}),
        )
        .await;
    assert_eq!(r.status, 422);
    assert_eq!(app.get("/api/v1/admin/approval-definitions", &rep).await.status, 403);
}

#[actix_web::test]
async fn step_conditions_modes_delegation_and_withdrawal() {
    let app = start().await;
    let admin = app.token(app.org.admin);
    let rep = app.token(app.org.rep_east1);
    let manager = app.token(app.org.manager_east);
    let director = app.token(app.org.director);
    let finance = app.token(app.org.finance);
    let (deal_id, _) = deal(&app, &rep).await;
    definition(
        &app,
        &admin,
        "big",
        json!([
            {"name": "经理 Manager", "approvers": {"kind": "manager"}},
            {"name": "CFO", "approvers": {"kind": "role", "role": "finance"},
             "condition": {"field": "amount", "op": "gt", "value": "1000000"}}
        ]),
    )
    .await;
    // Small: only the manager step applies.
    let (_, a) = submit_tagged(&app, &rep, &deal_id, "big", "5000.00").await;
    let id = a["id"].as_str().unwrap();
    let r = app
        .post(&format!("/api/v1/approvals/{id}/approve"), &manager, json!({}))
        .await;
    assert_eq!(r.body["status"], "approved", "{}", r.text);
    // Large: the CFO step follows.
    let (quote_id, a) = submit_tagged(&app, &rep, &deal_id, "big", "2000000.00").await;
    let id = a["id"].as_str().unwrap().to_owned();
    let r = app
        .post(&format!("/api/v1/approvals/{id}/approve"), &manager, json!({}))
        .await;
    assert_eq!(r.body["status"], "pending");
    assert_eq!(r.body["current_step"], 1);
    assert_eq!(approvers(&r.body, "pending"), ids(&[app.org.finance]));
    // Finance delegates to the director, who approves.
    let r = app
        .post(
            &format!("/api/v1/approvals/{id}/delegate"),
            &finance,
            json!({"user_id": app.org.director, "comment": "on leave"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(approvers(&r.body, "pending"), ids(&[app.org.director]));
    assert_eq!(approvers(&r.body, "delegated"), ids(&[app.org.finance]));
    let r = app
        .post(&format!("/api/v1/approvals/{id}/approve"), &finance, json!({}))
        .await;
    assert_eq!(r.status, 409);
    let r = app
        .post(&format!("/api/v1/approvals/{id}/approve"), &director, json!({}))
        .await;
    assert_eq!(r.body["status"], "approved");
    assert_eq!(
        app.get(&format!("/api/v1/quotes/{quote_id}"), &rep).await.body["status"],
        "approved"
    );

    // Mode all: both managers in the chain must approve.
    definition(
        &app,
        &admin,
        "all",
        json!([{"name": "both", "approvers": {"kind": "manager_chain", "levels": 2}, "mode": "all"}]),
    )
    .await;
    let (_, a) = submit_tagged(&app, &rep, &deal_id, "all", "10.00").await;
    let id = a["id"].as_str().unwrap().to_owned();
    let r = app
        .post(&format!("/api/v1/approvals/{id}/approve"), &manager, json!({}))
        .await;
    assert_eq!(r.body["status"], "pending");
    let r = app
        .post(&format!("/api/v1/approvals/{id}/approve"), &director, json!({}))
        .await;
    assert_eq!(r.body["status"], "approved");

    // Withdraw: only the requester; the quote returns to draft; resubmit works.
    let (quote_id, a) = submit_tagged(&app, &rep, &deal_id, "all", "10.00").await;
    let id = a["id"].as_str().unwrap().to_owned();
    let r = app
        .post(&format!("/api/v1/approvals/{id}/withdraw"), &manager, json!({}))
        .await;
    assert_eq!(r.status, 403);
    let r = app
        .post(
            &format!("/api/v1/approvals/{id}/withdraw"),
            &rep,
            json!({"comment": "price change"}),
        )
        .await;
    assert_eq!(r.body["status"], "withdrawn", "{}", r.text);
    assert_eq!(approvers(&r.body, "withdrawn").len(), 2);
    assert_eq!(
        app.get(&format!("/api/v1/quotes/{quote_id}"), &rep).await.body["status"],
        "draft"
    );
    let r = app
        .post(&format!("/api/v1/approvals/{id}/approve"), &manager, json!({}))
        .await;
    assert_eq!(r.status, 409);
    let r = app
        .post(&format!("/api/v1/quotes/{quote_id}/submit"), &rep, json!({}))
        .await;
    assert_eq!(r.body["status"], "pending_approval", "{}", r.text);
}

#[actix_web::test]
async fn overdue_decisions_escalate_to_the_approvers_manager() {
    let app = start().await;
    let admin = app.token(app.org.admin);
    let rep = app.token(app.org.rep_east1);
    let (deal_id, _) = deal(&app, &rep).await;
    definition(
        &app,
        &admin,
        "slow",
        json!([{"name": "peer", "approvers": {"kind": "user", "user_id": app.org.rep_east2}, "due_hours": 4}]),
    )
    .await;
    let (quote_id, a) = submit_tagged(&app, &rep, &deal_id, "slow", "10.00").await;
    let id = a["id"].as_str().unwrap().to_owned();
    // Not yet due: nothing happens.
    let r = app.post("/api/v1/admin/approvals/sweep", &admin, json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["escalated"], 0);
    app.state.clock.advance(chrono::Duration::hours(5));
    let r = app.post("/api/v1/admin/approvals/sweep", &admin, json!({})).await;
    assert_eq!(r.body["escalated"], 1);
    let a = app.get(&format!("/api/v1/approvals/{id}"), &rep).await;
    assert_eq!(approvers(&a.body, "escalated"), ids(&[app.org.rep_east2]));
    assert_eq!(approvers(&a.body, "pending"), ids(&[app.org.manager_east]));
    assert!(a.body["history"]
        .as_array()
        .unwrap()
        .iter()
        .any(|h| h["action"] == "escalated"));
    let r = app.post("/api/v1/admin/approvals/sweep", &admin, json!({})).await;
    assert_eq!(r.body["escalated"], 0, "the new decision has a fresh due time");
    let manager = app.token(app.org.manager_east);
    let r = app
        .post(&format!("/api/v1/approvals/{id}/approve"), &manager, json!({}))
        .await;
    assert_eq!(r.body["status"], "approved", "{}", r.text);
    assert_eq!(
        app.get(&format!("/api/v1/quotes/{quote_id}"), &rep).await.body["status"],
        "approved"
    );
    assert_eq!(
        app.db
            .count("SELECT count(*) FROM outbox_events WHERE event_type = 'approval.escalated'"),
        1
    );
}

#[actix_web::test]
async fn concurrent_approvals_give_one_decision_per_approver_and_one_outcome_per_step() {
    let app = start().await;
    let admin = app.token(app.org.admin);
    let rep = app.token(app.org.rep_east1);
    let (deal_id, _) = deal(&app, &rep).await;
    definition(
        &app,
        &admin,
        "race",
        json!([{"name": "any rep in the region", "approvers": {"kind": "role", "role": "sales_rep", "within": "region"}},
               {"name": "manager", "approvers": {"kind": "manager"}}]),
    )
    .await;
    let (_, a) = submit_tagged(&app, &rep, &deal_id, "race", "10.00").await;
    let id = a["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/approvals/{id}/approve");
    let (t1, t2) = (app.token(app.org.rep_east1b), app.token(app.org.rep_east2));
    // The same approver twice and a second approver, all at once.
    let results = futures_util::future::join_all([
        app.post(&path, &t1, json!({})),
        app.post(&path, &t1, json!({})),
        app.post(&path, &t2, json!({})),
    ])
    .await;
    let ok = results.iter().filter(|r| r.status == 200).count();
    let conflicts = results.iter().filter(|r| r.status == 409).count();
    assert_eq!(
        (ok, conflicts),
        (1, 2),
        "{:?}",
        results.iter().map(|r| &r.text).collect::<Vec<_>>()
    );
    let a = app.get(&format!("/api/v1/approvals/{id}"), &rep).await;
    assert_eq!(a.body["current_step"], 1, "the step completed exactly once");
    assert_eq!(approvers(&a.body, "approved").len(), 1);
    assert_eq!(approvers(&a.body, "pending"), ids(&[app.org.manager_east]));
    assert_eq!(
        app.db.count(&format!(
            "SELECT count(*) FROM approval_tasks WHERE instance_id = '{id}' AND step_index = 1"
        )),
        1
    );
}

#[actix_web::test]
async fn only_one_quote_per_deal_is_accepted_and_declines_can_lose_the_deal() {
    let app = start().await;
    let rep = app.token(app.org.rep_east1);
    let svc = product(&app, &app.token(app.org.admin), "SVC", "100.00", "0").await;
    let (deal_id, _) = deal(&app, &rep).await;
    let mut sent = Vec::new();
    for _ in 0..2 {
        let q = quote(
            &app,
            &rep,
            &deal_id,
            json!([{"product_id": svc["id"], "quantity": "1"}]),
            "0",
        )
        .await;
        let id = q["id"].as_str().unwrap().to_owned();
        assert_eq!(
            app.post(&format!("/api/v1/quotes/{id}/submit"), &rep, json!({}))
                .await
                .body["status"],
            "approved"
        );
        let r = app.post(&format!("/api/v1/quotes/{id}/send"), &rep, json!({})).await;
        assert_eq!(r.body["status"], "sent", "{}", r.text);
        sent.push(id);
    }
    let r = app
        .post(&format!("/api/v1/quotes/{}/accept", sent[0]), &rep, json!({}))
        .await;
    assert_eq!(r.body["status"], "accepted", "{}", r.text);
    let r = app
        .post(&format!("/api/v1/quotes/{}/accept", sent[1]), &rep, json!({}))
        .await;
    assert_eq!(r.status, 409);
    assert_eq!(r.code(), "already_accepted");
    // Declining the other one with mark_lost loses the deal through a stage move.
    let r = app
        .post(
            &format!("/api/v1/quotes/{}/decline", sent[1]),
            &rep,
            json!({"reason": "预算取消 budget cut", "mark_lost": true}),
        )
        .await;
    assert_eq!(r.body["status"], "declined", "{}", r.text);
    let d = app.get(&format!("/api/v1/opportunities/{deal_id}"), &rep).await;
    assert_eq!(d.body["status"], "lost");
    assert_eq!(d.body["lost_reason"], "预算取消 budget cut");
    let h = app
        .get(&format!("/api/v1/opportunities/{deal_id}/stage-history"), &rep)
        .await;
    assert_eq!(
        h.body["items"].as_array().unwrap().last().unwrap()["reason"],
        "预算取消 budget cut"
    );
}

#[actix_web::test]
async fn sent_quotes_expire_after_their_validity() {
    let app = start().await;
    let admin = app.token(app.org.admin);
    let rep = app.token(app.org.rep_east1);
    let svc = product(&app, &admin, "SVC", "100.00", "0").await;
    let (deal_id, _) = deal(&app, &rep).await;
    let q = quote(
        &app,
        &rep,
        &deal_id,
        json!([{"product_id": svc["id"], "quantity": "1"}]),
        "0",
    )
    .await;
    let id = q["id"].as_str().unwrap();
    app.post(&format!("/api/v1/quotes/{id}/submit"), &rep, json!({})).await;
    app.post(&format!("/api/v1/quotes/{id}/send"), &rep, json!({})).await;
    app.state.clock.advance(chrono::Duration::days(31));
    let r = app.post(&format!("/api/v1/quotes/{id}/accept"), &rep, json!({})).await;
    assert_eq!(r.code(), "quote_expired");
    let r = app.post("/api/v1/admin/approvals/sweep", &admin, json!({})).await;
    assert_eq!(r.body["quotes_expired"], 1);
    assert_eq!(
        app.get(&format!("/api/v1/quotes/{id}"), &rep).await.body["status"],
        "expired"
    );
}
