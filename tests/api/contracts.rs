//! Contracts, legal review, payment plans, invoices, payments, receivables and the
//! whole lead-to-cash path.

use crm_test_support::app::start;
use diesel::RunQueryDsl;
use serde_json::json;

use crate::q2c::{approvals_of, deal, product, quote, signed};

#[actix_web::test]
async fn the_full_lead_to_cash_path_through_the_api() {
    let app = start().await;
    let admin = app.token(app.org.admin);
    let rep = app.token(app.org.rep_east1);
    let director = app.token(app.org.director);
    let legal = app.token(app.org.legal);
    let finance = app.token(app.org.finance);
    let p = product(&app, &admin, "CRM-ENT", "100000.00", "30000.00").await;

    // Lead -> account, contact and deal.
    let r = app
        .post(
            "/api/v1/leads",
            &rep,
            json!({"person_name": "赵敏", "company": "苏州云帆科技", "source": "referral", "estimated_budget": "200000.00"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let lead = r.body["id"].as_str().unwrap().to_owned();
    let r = app
        .post(
            &format!("/api/v1/leads/{lead}/convert"),
            &rep,
            json!({"opportunity": {"expected_close_date": "2027-03-31"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let deal_id = r.body["opportunity_id"].as_str().unwrap().to_owned();
    let account_id = r.body["account_id"].as_str().unwrap().to_owned();

    // Quote with a 20% discount -> director approval -> sent -> accepted.
    let q = quote(
        &app,
        &rep,
        &deal_id,
        json!([{"product_id": p["id"], "quantity": "2", "discount_pct": "20"}]),
        "0",
    )
    .await;
    let quote_id = q["id"].as_str().unwrap().to_owned();
    assert_eq!(q["total"], "180800.00");
    let r = app
        .post(&format!("/api/v1/quotes/{quote_id}/submit"), &rep, json!({}))
        .await;
    assert_eq!(r.body["status"], "pending_approval", "{}", r.text);
    let approval = approvals_of(&app, &rep, "quote", &quote_id).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app
        .post(
            &format!("/api/v1/approvals/{approval}/approve"),
            &director,
            json!({"comment": "战略客户"}),
        )
        .await;
    assert_eq!(r.body["status"], "approved", "{}", r.text);
    assert_eq!(
        app.post(&format!("/api/v1/quotes/{quote_id}/send"), &rep, json!({}))
            .await
            .body["status"],
        "sent"
    );
    assert_eq!(
        app.post(&format!("/api/v1/quotes/{quote_id}/accept"), &rep, json!({}))
            .await
            .body["status"],
        "accepted"
    );

    // Contract from the accepted quote: amount and lines copied, numbered.
    let r = app.post("/api/v1/contracts", &rep, json!({"quote_id": quote_id})).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let k = r.body.clone();
    let kid = k["id"].as_str().unwrap().to_owned();
    assert_eq!(k["amount"], "180800.00");
    assert_eq!(k["lines"][0]["product_id"], p["id"]);
    assert!(k["number"].as_str().unwrap().starts_with("HT-"));
    let r = app.post("/api/v1/contracts", &rep, json!({"quote_id": quote_id})).await;
    assert_eq!(r.status, 409, "one live contract per quote");

    // Legal review through the approval engine; locked meanwhile.
    let r = app
        .post(&format!("/api/v1/contracts/{kid}/submit"), &rep, json!({}))
        .await;
    assert_eq!(r.body["status"], "legal_review", "{}", r.text);
    let r = app
        .patch(
            &format!("/api/v1/contracts/{kid}"),
            &rep,
            r.etag_version(),
            json!({"terms": "x"}),
        )
        .await;
    assert_eq!(r.code(), "locked");
    let inbox = app.get("/api/v1/me/approvals", &legal).await;
    assert_eq!(inbox.body["items"][0]["object_type"], "contract");
    let approval = inbox.body["items"][0]["approval_id"].as_str().unwrap().to_owned();
    let r = app
        .post(&format!("/api/v1/approvals/{approval}/approve"), &legal, json!({}))
        .await;
    assert_eq!(r.body["status"], "approved", "{}", r.text);
    let r = app.get(&format!("/api/v1/contracts/{kid}"), &rep).await;
    assert_eq!(r.body["status"], "pending_signature");

    // Signing wins the deal through the stage path.
    let r = app
        .post(
            &format!("/api/v1/contracts/{kid}/sign"),
            &rep,
            json!({"signed_copy_ref": "files/ht-signed.pdf"}),
        )
        .await;
    assert_eq!(r.body["status"], "signed", "{}", r.text);
    let d = app.get(&format!("/api/v1/opportunities/{deal_id}"), &rep).await;
    assert_eq!(d.body["status"], "won");
    let h = app
        .get(&format!("/api/v1/opportunities/{deal_id}/stage-history"), &rep)
        .await;
    let last = h.body["items"].as_array().unwrap().last().unwrap().clone();
    let pipeline = app.default_pipeline(&rep).await;
    assert_eq!(
        last["to_stage_id"].as_str().unwrap(),
        crm_test_support::app::stage_id(&pipeline, "won")
    );
    assert_eq!(
        app.db.count(&format!(
            "SELECT count(*) FROM outbox_events WHERE event_type = 'opportunity.stage_changed' AND aggregate_id = '{deal_id}'"
        )),
        1
    );
    assert_eq!(
        app.db
            .count("SELECT count(*) FROM outbox_events WHERE event_type = 'contract.signed'"),
        1
    );

    // Payment plan, invoice, payment, receivables.
    let plan = json!({"installments": [
        {"due_date": "2026-12-01", "amount": "90400.00", "note": "首付款 50%"},
        {"due_date": "2027-03-01", "amount": "90400.00", "note": "验收款 50%"}
    ]});
    let r = app
        .send(
            crm_test_support::app::request(
                actix_web::http::Method::PUT,
                &format!("/api/v1/contracts/{kid}/payment-plan"),
                Some(&rep),
            )
            .set_json(plan),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let first = r.body["installments"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(r.body["balanced"], true);
    let r = app
        .post(
            "/api/v1/invoices",
            &finance,
            json!({"contract_id": kid, "installment_id": first}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["amount"], "90400.00");
    assert_eq!(r.body["tax_amount"], "10400.00");
    let r = app
        .post(
            "/api/v1/payments",
            &finance,
            json!({"contract_id": kid, "amount": "90400.00", "method": "bank_transfer", "reference": "BOC-778812",
                   "received_on": app.state.clock.today()}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["allocations"][0]["installment_id"].as_str().unwrap(), first);
    assert_eq!(r.body["unapplied"], "0.00");
    assert_eq!(
        app.db
            .count("SELECT count(*) FROM outbox_events WHERE event_type = 'payment.received'"),
        1
    );
    let r = app
        .get(&format!("/api/v1/receivables?contract_id={kid}"), &finance)
        .await;
    assert_eq!(r.body["items"][0]["received"], "90400.00", "{}", r.text);
    assert_eq!(r.body["items"][0]["outstanding"], "90400.00");
    assert_eq!(r.body["items"][0]["invoiced"], "90400.00");

    // The timeline and the 360 view show it all.
    let t = app
        .get(&format!("/api/v1/opportunities/{deal_id}/timeline?limit=200"), &rep)
        .await;
    let kinds: Vec<&str> = t.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    for k in ["quote", "contract", "payment", "stage_change"] {
        assert!(kinds.contains(&k), "{k} in {kinds:?}");
    }
    // Presales reads deals and quotes but not contracts or payments: its timeline of
    // the same deal leaves those out.
    let t = app
        .get(
            &format!("/api/v1/opportunities/{deal_id}/timeline?limit=200"),
            &app.token(app.org.presales),
        )
        .await;
    assert_eq!(t.status, 200, "{}", t.text);
    let kinds: Vec<&str> = t.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"quote") && kinds.contains(&"stage_change"), "{kinds:?}");
    assert!(!kinds.contains(&"contract") && !kinds.contains(&"payment"), "{kinds:?}");
    assert!(!t.text.contains("90400.00"), "no payment amount leaks");
    let o = app.get(&format!("/api/v1/accounts/{account_id}/overview"), &rep).await;
    assert_eq!(o.status, 200, "{}", o.text);
    assert_eq!(o.body["recent_quotes"][0]["id"].as_str().unwrap(), quote_id);
    assert_eq!(o.body["contracts"][0]["id"].as_str().unwrap(), kid);
    assert_eq!(o.body["recent_payments"][0]["amount"], "90400.00");
    assert_eq!(o.body["receivable"]["outstanding"], "90400.00");
    assert_eq!(o.body["won_deals"]["count"], 1);
}

#[actix_web::test]
async fn contract_numbers_are_unique_and_gap_free_under_concurrent_creation() {
    let app = start().await;
    let rep = app.token(app.org.rep_east1);
    let (deal_id, _) = deal(&app, &rep).await;
    // A failed create (bad amount) consumes no number.
    let r = app
        .post(
            "/api/v1/contracts",
            &rep,
            json!({"opportunity_id": deal_id, "amount": "-1"}),
        )
        .await;
    assert_eq!(r.status, 422);
    let results = futures_util::future::join_all((0..8).map(|i| {
        app.post(
            "/api/v1/contracts",
            &rep,
            json!({"opportunity_id": deal_id, "amount": format!("{}.00", 1000 + i)}),
        )
    }))
    .await;
    let mut numbers: Vec<String> = results
        .iter()
        .map(|r| {
            assert_eq!(r.status, 201, "{}", r.text);
            r.body["number"].as_str().unwrap().to_owned()
        })
        .collect();
    numbers.sort();
    let year = chrono::Datelike::year(&app.state.clock.today());
    let expected: Vec<String> = (1..=8).map(|n| format!("HT-{year}-{n:05}")).collect();
    assert_eq!(numbers, expected);
}

#[actix_web::test]
async fn payment_plans_allocations_and_receivables() {
    let app = start().await;
    let rep = app.token(app.org.rep_east1);
    let other_rep = app.token(app.org.rep_east2);
    let finance = app.token(app.org.finance);
    let (deal_id, account_id) = deal(&app, &rep).await;
    let r = app
        .post(
            "/api/v1/contracts",
            &rep,
            json!({"opportunity_id": deal_id, "amount": "1000.00"}),
        )
        .await;
    let kid = r.body["id"].as_str().unwrap().to_owned();
    let put = |body: serde_json::Value, tok: String| {
        let path = format!("/api/v1/contracts/{kid}/payment-plan");
        let app = &app;
        async move {
            app.send(crm_test_support::app::request(actix_web::http::Method::PUT, &path, Some(&tok)).set_json(body))
                .await
        }
    };
    // Must add up to the contract amount.
    let r = put(
        json!({"installments": [{"due_date": "2026-10-01", "amount": "300.00"}, {"due_date": "2026-11-01", "amount": "600.00"}]}),
        rep.clone(),
    )
    .await;
    assert_eq!(r.status, 422);
    assert_eq!(r.code(), "plan_total_mismatch");
    assert_eq!(r.body["planned"], "900.00");
    let today = app.state.clock.today();
    let d = |days: i64| (today + chrono::Duration::days(days)).to_string();
    let r = put(
        json!({"installments": [
            {"due_date": d(-45), "amount": "300.00"}, {"due_date": d(-10), "amount": "300.00"}, {"due_date": d(20), "amount": "400.00"}
        ]}),
        rep.clone(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let inst: Vec<String> = r.body["installments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect();
    // Payments apply to installments once the contract is signed (before, they are
    // prepayments held as credit).
    signed(&app, &rep, &kid).await;

    // Reps do not record payments; finance does.
    let r = app
        .post(
            "/api/v1/payments",
            &rep,
            json!({"contract_id": kid, "amount": "10.00", "method": "cash"}),
        )
        .await;
    assert_eq!(r.status, 403);
    // Explicit allocation above what is due: 422 and nothing recorded.
    let r = app
        .post(
            "/api/v1/payments",
            &finance,
            json!({"contract_id": kid, "amount": "500.00", "method": "bank_transfer",
                   "allocations": [{"installment_id": inst[0], "amount": "350.00"}]}),
        )
        .await;
    assert_eq!(r.status, 422);
    assert_eq!(r.code(), "exceeds_due");
    assert_eq!(app.db.count("SELECT count(*) FROM payments"), 0);
    // Partial payment: oldest first, the rest stays outstanding.
    let r = app
        .post(
            "/api/v1/payments",
            &finance,
            json!({"contract_id": kid, "amount": "200.00", "method": "wechat_pay"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    // Receivables: 100 overdue 31-60 days, 300 overdue 0-30 days.
    let r = app
        .get(&format!("/api/v1/receivables?contract_id={kid}"), &finance)
        .await;
    let row = &r.body["items"][0];
    assert_eq!(row["outstanding"], "800.00", "{}", r.text);
    assert_eq!(row["overdue"], true);
    assert_eq!(row["overdue_amount"], "400.00");
    assert_eq!(row["ageing"]["31-60"], "100.00");
    assert_eq!(row["ageing"]["0-30"], "300.00");
    // The broad form (no filter, scope all: hash aggregation) agrees with the narrow one.
    let all = app.get("/api/v1/receivables", &finance).await;
    let same = all.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == kid.as_str())
        .unwrap()
        .clone();
    assert_eq!(&same, row);
    assert_eq!(all.body["total_overdue"], "400.00");
    assert_eq!(all.body["totals"][0]["currency"], "CNY", "{}", all.text);
    assert_eq!(all.body["totals"][0]["overdue"], "400.00");
    // A second currency is never added in: one total per currency, and no single figure.
    diesel::sql_query(format!(
        "INSERT INTO contracts SELECT (jsonb_populate_record(NULL::contracts, to_jsonb(k) || jsonb_build_object(\
         'id', gen_random_uuid(), 'number', k.number || '-USD', 'currency', 'USD', 'quote_id', NULL))).* \
         FROM contracts k WHERE k.id = '{kid}'"
    ))
    .execute(&mut app.db.conn())
    .unwrap();
    let mixed = app.get("/api/v1/receivables", &finance).await;
    let totals = mixed.body["totals"].as_array().unwrap();
    assert_eq!(totals.len(), 2, "{}", mixed.text);
    assert!(totals.iter().any(|t| t["currency"] == "USD"), "{}", mixed.text);
    assert!(mixed.body["total_outstanding"].is_null(), "{}", mixed.text);
    assert!(mixed.body["ageing"].is_null());
    let cny = totals.iter().find(|t| t["currency"] == "CNY").unwrap();
    assert_eq!(cny["overdue"], "400.00");
    diesel::sql_query("DELETE FROM contracts WHERE number LIKE '%-USD' AND currency = 'USD'")
        .execute(&mut app.db.conn())
        .unwrap();
    let plan = app.get(&format!("/api/v1/contracts/{kid}/payment-plan"), &rep).await;
    assert_eq!(plan.body["installments"][0]["ageing"], "31-60");
    assert_eq!(plan.body["installments"][0]["outstanding"], "100.00");
    assert_eq!(plan.body["installments"][2]["overdue"], false);
    // Over-payment: beyond the contract amount only within the configured tolerance,
    // and what is beyond every due stays unapplied.
    let over = json!({"contract_id": kid, "amount": "900.00", "method": "bank_transfer"});
    let r = app.post("/api/v1/payments", &finance, over.clone()).await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(r.code(), "exceeds_contract");
    assert_eq!(r.body["remaining"], "800.00");
    let admin = app.token(app.org.admin);
    let r = app
        .send(
            crm_test_support::app::request(
                actix_web::http::Method::PUT,
                "/api/v1/admin/settings/payments",
                Some(&admin),
            )
            .set_json(
                json!({"overpayment_tolerance": "100.00", "accept_prepayments": true, "prepayment_wins_pct": "10"}),
            ),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app.post("/api/v1/payments", &finance, over).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["unapplied"], "100.00");
    let sum: f64 = r.body["allocations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["amount"].as_str().unwrap().parse::<f64>().unwrap())
        .sum();
    assert_eq!(sum, 800.0);
    let r = app
        .get(
            &format!("/api/v1/receivables?group_by=account&account_id={account_id}"),
            &finance,
        )
        .await;
    assert_eq!(r.body["items"][0]["outstanding"], "0.00", "{}", r.text);
    assert_eq!(r.body["items"][0]["overdue"], false);
    // A plan with payments on it cannot be replaced.
    let r = put(
        json!({"installments": [{"due_date": d(1), "amount": "1000.00"}]}),
        rep.clone(),
    )
    .await;
    assert_eq!(r.code(), "plan_in_use");

    // Scope: the owner sees their deal's payments, another rep sees nothing.
    assert_eq!(
        app.get(&format!("/api/v1/payments?contract_id={kid}"), &rep).await.body["items"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert!(app.get("/api/v1/payments", &other_rep).await.body["items"]
        .as_array()
        .unwrap()
        .is_empty());
    assert!(app.get("/api/v1/receivables", &other_rep).await.body["items"]
        .as_array()
        .unwrap()
        .is_empty());
    assert_eq!(
        app.get(&format!("/api/v1/contracts/{kid}"), &other_rep).await.status,
        404
    );
}

#[actix_web::test]
async fn a_prepayment_wins_the_deal_and_termination_can_lose_one() {
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
            json!({"contract_id": kid, "amount": "1000.00", "method": "alipay"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["unapplied"], "1000.00", "no plan yet");
    assert_eq!(
        app.get(&format!("/api/v1/opportunities/{deal_id}"), &rep).await.body["status"],
        "won"
    );

    // Terminating with mark_lost loses an open deal.
    let (deal2, _) = deal(&app, &rep).await;
    let r = app
        .post(
            "/api/v1/contracts",
            &rep,
            json!({"opportunity_id": deal2, "amount": "5000.00"}),
        )
        .await;
    let k2 = r.body["id"].as_str().unwrap().to_owned();
    let r = app
        .post(
            &format!("/api/v1/contracts/{k2}/terminate"),
            &rep,
            json!({"reason": "客户破产", "mark_lost": true}),
        )
        .await;
    assert_eq!(r.body["status"], "terminated", "{}", r.text);
    assert_eq!(r.body["termination_reason"], "客户破产");
    let d = app.get(&format!("/api/v1/opportunities/{deal2}"), &rep).await;
    assert_eq!(d.body["status"], "lost");
    assert_eq!(d.body["lost_reason"], "客户破产");
    let h = app.get(&format!("/api/v1/contracts/{k2}/status-history"), &rep).await;
    let steps: Vec<&str> = h.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["to_status"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["draft", "terminated"]);
}

#[actix_web::test]
async fn signed_contracts_change_only_by_amendment() {
    let app = start().await;
    let admin = app.token(app.org.admin);
    let rep = app.token(app.org.rep_east1);
    let legal = app.token(app.org.legal);
    let (deal_id, _) = deal(&app, &rep).await;
    let r = app
        .post(
            "/api/v1/contracts",
            &rep,
            json!({"opportunity_id": deal_id, "amount": "5000.00", "title": "年度服务合同"}),
        )
        .await;
    let kid = r.body["id"].as_str().unwrap().to_owned();
    let r = app
        .patch(
            &format!("/api/v1/contracts/{kid}"),
            &rep,
            1,
            json!({"amount": "6000.00"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // Legal rejects, the contract returns to draft; resubmit, approve, sign.
    app.post(&format!("/api/v1/contracts/{kid}/submit"), &rep, json!({}))
        .await;
    let a = approvals_of(&app, &rep, "contract", &kid).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app
        .post(
            &format!("/api/v1/approvals/{a}/reject"),
            &legal,
            json!({"comment": "违约条款缺失"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        app.get(&format!("/api/v1/contracts/{kid}"), &rep).await.body["status"],
        "draft"
    );
    app.post(&format!("/api/v1/contracts/{kid}/submit"), &rep, json!({}))
        .await;
    let a = approvals_of(&app, &rep, "contract", &kid).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.post(&format!("/api/v1/approvals/{a}/approve"), &legal, json!({}))
        .await;
    let r = app
        .post(
            &format!("/api/v1/contracts/{kid}/sign"),
            &rep,
            json!({"signed_copy_ref": "s3://k/1.pdf"}),
        )
        .await;
    assert_eq!(r.body["status"], "signed", "{}", r.text);
    let r = app
        .patch(
            &format!("/api/v1/contracts/{kid}"),
            &rep,
            r.etag_version(),
            json!({"amount": "7000.00"}),
        )
        .await;
    assert_eq!(r.code(), "immutable");
    let r = app
        .post(
            &format!("/api/v1/contracts/{kid}/amendments"),
            &rep,
            json!({"description": "增加培训", "amount": "7000.00"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["changes"]["amount"]["before"], "6000.00");
    assert_eq!(r.body["changes"]["amount"]["after"], "7000.00");
    let list = app.get(&format!("/api/v1/contracts/{kid}/amendments"), &rep).await;
    assert_eq!(list.body["items"][0]["seq"], 1);
    assert_eq!(
        app.get(&format!("/api/v1/contracts/{kid}"), &rep).await.body["amount"],
        "7000.00"
    );
    let plan = app.get(&format!("/api/v1/contracts/{kid}/payment-plan"), &rep).await;
    assert_eq!(plan.body["balanced"], false);
    // Activate and complete.
    assert_eq!(
        app.post(&format!("/api/v1/contracts/{kid}/activate"), &rep, json!({}))
            .await
            .body["status"],
        "active"
    );
    let r = app
        .post(&format!("/api/v1/contracts/{kid}/complete"), &rep, json!({}))
        .await;
    assert_eq!(r.body["status"], "completed", "{}", r.text);
    // Numbering is configurable; the sequence carries on.
    let r = app.get("/api/v1/admin/settings/numbering/contract", &admin).await;
    assert_eq!(r.body["prefix"], "HT", "{}", r.text);
    let r = app
        .send(
            crm_test_support::app::request(
                actix_web::http::Method::PUT,
                "/api/v1/admin/settings/numbering/contract",
                Some(&admin),
            )
            .set_json(json!({"prefix": "SH-HT", "digits": 4, "include_year": false})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["example"], "SH-HT-0001");
    let r = app
        .post(
            "/api/v1/contracts",
            &rep,
            json!({"opportunity_id": deal_id, "amount": "1.00"}),
        )
        .await;
    assert_eq!(r.body["number"], "SH-HT-0002", "{}", r.text);
    let r = app.get("/api/v1/admin/settings/numbering/contract", &rep).await;
    assert_eq!(r.status, 403);
}
