//! Pipelines, stage entry criteria, stage moves and history, board, timeline.

use actix_web::http::Method;
use crm_test_support::app::{request, stage_id, start};
use serde_json::json;

#[actix_web::test]
async fn the_default_b2b_pipeline_is_seeded() {
    let app = start().await;
    let rep = app.token(app.org.rep_east1);
    let p = app.default_pipeline(&rep).await;
    let codes: Vec<&str> = p["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["code"].as_str().unwrap())
        .collect();
    assert_eq!(
        codes,
        [
            "qualification",
            "discovery",
            "proposal",
            "negotiation",
            "closing",
            "won",
            "lost"
        ]
    );
    let discovery = &p["stages"][1];
    assert_eq!(discovery["name"], "需求确认 Discovery");
    assert_eq!(discovery["stalled_after_days"], 15);
    assert!(discovery["entry_criteria"]
        .as_array()
        .unwrap()
        .contains(&json!({"kind": "output_attached", "output": "first_call_notes"})));
    assert_eq!(
        p["stages"][0]["required_outputs"][0]["title"],
        "《首次沟通纪要》 First-call notes"
    );
    let r = app
        .get(&format!("/api/v1/pipelines/{}", p["id"].as_str().unwrap()), &rep)
        .await;
    assert_eq!(r.status, 200);
    assert!(r.header("etag").is_some());
}

#[actix_web::test]
async fn entering_a_stage_requires_its_criteria() {
    let app = start().await;
    let rep = app.token(app.org.rep_east1);
    let p = app.default_pipeline(&rep).await;
    let acc = app.account(&rep, "Criteria Co").await;
    let aid = acc["id"].as_str().unwrap();
    let contact = app.contact(&rep, aid, "张经理").await;
    let deal = app
        .deal(
            &rep,
            json!({"name": "ERP rollout", "account_id": aid, "primary_contact_id": contact["id"]}),
        )
        .await;
    let id = deal["id"].as_str().unwrap();
    assert_eq!(deal["stage_id"].as_str().unwrap(), stage_id(&p, "qualification"));
    assert_eq!(deal["probability"], 10);
    assert_eq!(deal["status"], "open");

    let discovery = stage_id(&p, "discovery");
    let r = app.move_stage(&rep, id, &discovery, None).await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(r.code(), "stage_criteria_unmet");
    assert_eq!(
        r.body["unmet"],
        json!([
            {"kind": "task_done", "stage": "qualification", "task": "confirm_need_budget"},
            {"kind": "task_done", "stage": "qualification", "task": "workshop_agreed"},
            {"kind": "output_attached", "output": "first_call_notes"}
        ])
    );
    // Skipping ahead is checked against the later stage's own criteria.
    let r = app.move_stage(&rep, id, &stage_id(&p, "proposal"), None).await;
    assert_eq!(r.code(), "stage_criteria_unmet");
    assert!(r.body["unmet"]
        .as_array()
        .unwrap()
        .contains(&json!({"kind": "field_required", "field": "amount"})));

    let qual = stage_id(&p, "qualification");
    app.check_task(&rep, id, &qual, "confirm_need_budget").await;
    let r = app.move_stage(&rep, id, &discovery, None).await;
    assert_eq!(r.body["unmet"].as_array().unwrap().len(), 2, "{}", r.text);
    app.check_task(&rep, id, &qual, "workshop_agreed").await;
    app.attach(&rep, id, "first_call_notes").await;
    let r = app.move_stage(&rep, id, &discovery, None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["stage_id"].as_str().unwrap(), discovery);
    assert_eq!(r.body["probability"], 20);
    assert_eq!(r.body["version"], 2);

    let checklist = app.get(&format!("/api/v1/opportunities/{id}/checklist"), &rep).await;
    let q = &checklist.body["stages"][0];
    assert_eq!(q["stage_code"], "qualification");
    let done: Vec<bool> = q["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["done"].as_bool().unwrap())
        .collect();
    assert_eq!(done, [false, true, true]);
    assert_eq!(
        q["tasks"][1]["changed_by"].as_str().unwrap(),
        app.org.rep_east1.to_string()
    );
    assert_eq!(q["outputs"][0]["attached"], true);

    let hist = app
        .get(&format!("/api/v1/opportunities/{id}/stage-history"), &rep)
        .await;
    let visits = hist.body["items"].as_array().unwrap();
    assert_eq!(visits.len(), 2);
    assert!(visits[0]["from_stage_id"].is_null());
    assert_eq!(visits[0]["to_stage_id"].as_str().unwrap(), qual);
    assert!(visits[0]["left_at"].is_string());
    assert!(visits[0]["dwell_seconds"].as_i64().unwrap() >= 0);
    assert_eq!(visits[1]["from_stage_id"].as_str().unwrap(), qual);
    assert!(visits[1]["left_at"].is_null());
    // An event for the rule engine, with the stage codes.
    assert_eq!(
        app.db.count(&format!(
            "SELECT count(*) FROM outbox_events WHERE aggregate_id = '{id}' AND event_type = 'opportunity.stage_changed' \
             AND payload->'detail'->'to_stage'->>'code' = 'discovery' AND payload->'detail'->>'move' = 'forward'"
        )),
        1
    );
    // Unknown task codes and foreign stages are refused.
    let r = app
        .send(
            request(
                Method::PUT,
                &format!("/api/v1/opportunities/{id}/checklist/{qual}/no_such_task"),
                Some(&rep),
            )
            .set_json(json!({"done": true})),
        )
        .await;
    assert_eq!(r.status, 404);
}

#[actix_web::test]
async fn moves_backwards_losing_and_reopening_need_a_reason() {
    let app = start().await;
    let rep = app.token(app.org.rep_east1);
    let p = app.default_pipeline(&rep).await;
    let acc = app.account(&rep, "Moves Co").await;
    let deal = app
        .deal(
            &rep,
            json!({"name": "Deal", "account_id": acc["id"], "amount": "1000.00"}),
        )
        .await;
    let id = deal["id"].as_str().unwrap();
    let qual = stage_id(&p, "qualification");
    app.check_task(&rep, id, &qual, "confirm_need_budget").await;
    app.check_task(&rep, id, &qual, "workshop_agreed").await;
    app.attach(&rep, id, "first_call_notes").await;
    assert_eq!(
        app.move_stage(&rep, id, &stage_id(&p, "discovery"), None).await.status,
        200
    );

    let r = app.move_stage(&rep, id, &qual, None).await;
    assert_eq!(r.status, 422);
    assert_eq!(r.body["errors"][0]["field"], "reason");
    let r = app.move_stage(&rep, id, &qual, Some("budget frozen")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app.move_stage(&rep, id, &qual, Some("again")).await;
    assert_eq!(r.status, 409);
    assert_eq!(r.code(), "same_stage");

    let lost = stage_id(&p, "lost");
    let r = app.move_stage(&rep, id, &lost, None).await;
    assert_eq!(r.status, 422);
    let r = app
        .move_stage(&rep, id, &lost, Some("竞争对手价格更低 competitor cheaper"))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["status"], "lost");
    assert_eq!(r.body["lost_reason"], "竞争对手价格更低 competitor cheaper");
    assert!(r.body["closed_at"].is_string());
    assert_eq!(r.body["probability"], 0);

    let disc = stage_id(&p, "discovery");
    assert_eq!(app.move_stage(&rep, id, &disc, None).await.status, 422);
    // Reopening is the manager's call (opportunities:reopen), under Discovery's criteria.
    let r = app.move_stage(&rep, id, &disc, Some("customer came back")).await;
    assert_eq!(r.status, 403, "{}", r.text);
    let manager = app.token(app.org.manager_east);
    let r = app.move_stage(&manager, id, &disc, Some("customer came back")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["status"], "open");
    assert!(r.body["closed_at"].is_null());
    assert!(r.body["lost_reason"].is_null());

    // Winning needs the contract: criteria of the won stage.
    let won = stage_id(&p, "won");
    let r = app.move_stage(&rep, id, &won, None).await;
    assert_eq!(r.code(), "stage_criteria_unmet");
    app.check_task(&rep, id, &stage_id(&p, "closing"), "contract_signed")
        .await;
    app.attach(&rep, id, "signed_contract").await;
    let r = app.move_stage(&rep, id, &won, None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["status"], "won");
    assert_eq!(r.body["probability"], 100);

    let hist = app
        .get(&format!("/api/v1/opportunities/{id}/stage-history"), &rep)
        .await;
    let reasons: Vec<Option<&str>> = hist.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["reason"].as_str())
        .collect();
    assert_eq!(
        reasons,
        [
            None,
            None,
            Some("budget frozen"),
            Some("竞争对手价格更低 competitor cheaper"),
            Some("customer came back"),
            None
        ]
    );
    // A stage of another pipeline, or a made-up one, is not a target.
    let r = app
        .move_stage(&rep, id, &uuid::Uuid::now_v7().to_string(), Some("x"))
        .await;
    assert_eq!(r.status, 422);
    assert_eq!(r.body["errors"][0]["field"], "stage_id");
}

#[actix_web::test]
async fn no_other_path_changes_the_stage() {
    let app = start().await;
    let rep = app.token(app.org.rep_east1);
    let p = app.default_pipeline(&rep).await;
    let acc = app.account(&rep, "Path Co").await;
    let deal = app.deal(&rep, json!({"name": "Deal", "account_id": acc["id"]})).await;
    let id = deal["id"].as_str().unwrap();
    for body in [
        json!({"stage_id": stage_id(&p, "won")}),
        json!({"status": "won"}),
        json!({"closed_at": "2026-01-01T00:00:00Z"}),
    ] {
        let r = app.patch(&format!("/api/v1/opportunities/{id}"), &rep, 1, body).await;
        assert_eq!(r.status, 422, "{}", r.text);
        assert_eq!(r.body["errors"][0]["code"], "unknown_field");
    }
    // Creating straight into a later stage is checked against that stage's criteria.
    let r = app
        .post(
            "/api/v1/opportunities",
            &rep,
            json!({"name": "Late", "account_id": acc["id"], "stage_id": stage_id(&p, "proposal")}),
        )
        .await;
    assert_eq!(r.code(), "stage_criteria_unmet");
    let r = app
        .post(
            "/api/v1/opportunities",
            &rep,
            json!({"name": "Won", "account_id": acc["id"], "stage_id": stage_id(&p, "won")}),
        )
        .await;
    assert_eq!(r.status, 422);
    assert_eq!(app.db.count("SELECT count(*) FROM opportunities"), 1);
}

#[actix_web::test]
async fn deals_validate_money_contacts_and_ownership() {
    let app = start().await;
    let rep = app.token(app.org.rep_east1);
    let acc = app.account(&rep, "Money Co").await;
    let other_acc = app.account(&rep, "Other Co").await;
    let other_contact = app.contact(&rep, other_acc["id"].as_str().unwrap(), "Elsewhere").await;
    let base = |extra: serde_json::Value| {
        let mut b = json!({"name": "Deal", "account_id": acc["id"]});
        for (k, v) in extra.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    };
    for (extra, field) in [
        (json!({"amount": "-1"}), "amount"),
        (json!({"amount": "10.005"}), "amount"),
        (json!({"currency": "yuan"}), "currency"),
        (json!({"probability": 101}), "probability"),
        (json!({"primary_contact_id": other_contact["id"]}), "primary_contact_id"),
        (
            json!({"contacts": [{"contact_id": uuid::Uuid::now_v7(), "role": "champion"}]}),
            "contacts[0].contact_id",
        ),
        (json!({"account_id": uuid::Uuid::now_v7()}), "account_id"),
    ] {
        let r = app.post("/api/v1/opportunities", &rep, base(extra.clone())).await;
        assert_eq!(r.status, 422, "{extra}: {}", r.text);
        assert_eq!(r.body["errors"][0]["field"], field, "{extra}");
    }
    let d = app
        .deal(&rep, base(json!({"amount": "123456.7", "currency": "usd", "probability": 35, "expected_close_date": "2027-03-31",
            "contacts": [{"contact_id": other_contact["id"], "role": "champion"}], "competitors": ["Salesforce", "Salesforce", "HubSpot"]})))
        .await;
    assert_eq!(d["amount"], "123456.70");
    assert_eq!(d["weighted_amount"], "43209.85");
    assert_eq!(d["currency"], "USD");
    assert_eq!(d["probability"], 35);
    assert_eq!(
        d["contacts"],
        json!([{"contact_id": other_contact["id"], "role": "champion"}])
    );
    assert_eq!(d["competitors"], json!(["Salesforce", "HubSpot"]));
    let id = d["id"].as_str().unwrap();
    let r = app
        .patch(
            &format!("/api/v1/opportunities/{id}"),
            &rep,
            1,
            json!({"amount": "99.99", "contacts": []}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["amount"], "99.99");
    assert_eq!(r.body["contacts"], json!([]));
    let hist = app.get(&format!("/api/v1/opportunities/{id}/history"), &rep).await;
    assert_eq!(
        hist.body["items"][0]["changes"]["amount"],
        json!({"before": "123456.70", "after": "99.99"})
    );
    assert_eq!(
        app.patch(&format!("/api/v1/opportunities/{id}"), &rep, 1, json!({"amount": "1"}))
            .await
            .status,
        412
    );
    assert_eq!(
        app.patch(
            &format!("/api/v1/opportunities/{id}"),
            &rep,
            2,
            json!({"owner_id": app.org.rep_east2})
        )
        .await
        .status,
        403
    );
    let m = app.token(app.org.manager_east);
    let r = app
        .patch(
            &format!("/api/v1/opportunities/{id}"),
            &m,
            2,
            json!({"owner_id": app.org.rep_east2}),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["team_id"].as_str().unwrap(), app.org.east2.to_string());
    assert_eq!(app.get(&format!("/api/v1/opportunities/{id}"), &rep).await.status, 404);
}

#[actix_web::test]
async fn admins_configure_pipelines_with_checked_criteria() {
    let app = start().await;
    let admin = app.token(app.org.admin);
    let bad = app
        .post(
            "/api/v1/admin/pipelines",
            &admin,
            json!({"name": "Renewals", "stages": [
                {"code": "open_renewal", "name": "Open", "kind": "open", "probability": 50,
                 "key_tasks": [{"code": "call", "title": "Call"}]},
                {"code": "won", "name": "Won", "kind": "won", "probability": 100,
                 "entry_criteria": [{"kind": "task_done", "stage": "open_renewal", "task": "nope"},
                                    {"kind": "field_required", "field": "password_hash"},
                                    {"kind": "condition", "expr": {"field": "amount", "op": "in", "value": 5}}]}
            ]}),
        )
        .await;
    assert_eq!(bad.status, 422, "{}", bad.text);
    let fields: Vec<&str> = bad.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        [
            "stages[1].entry_criteria[0]",
            "stages[1].entry_criteria[1]",
            "stages[1].entry_criteria[2]"
        ]
    );

    let r = app
        .post(
            "/api/v1/admin/pipelines",
            &admin,
            json!({"name": "Renewals", "stages": [
                {"code": "open_renewal", "name": "Open", "kind": "open", "probability": 50, "key_tasks": [{"code": "call", "title": "Call"}]},
                {"code": "quoted", "name": "Quoted", "kind": "open", "probability": 70,
                 "entry_criteria": [{"kind": "condition", "expr": {"all": [{"field": "amount", "op": "gte", "value": "10000"}]}}]},
                {"code": "won", "name": "Won", "kind": "won", "probability": 100},
                {"code": "lost", "name": "Lost", "kind": "lost", "probability": 0}
            ]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let pid = r.body["id"].as_str().unwrap().to_owned();
    let quoted = stage_id(&r.body, "quoted");
    let rep = app.token(app.org.rep_east1);
    let acc = app.account(&rep, "Renewal Co").await;
    let deal = app
        .deal(
            &rep,
            json!({"name": "Renewal", "account_id": acc["id"], "pipeline_id": pid, "amount": "5000"}),
        )
        .await;
    let id = deal["id"].as_str().unwrap();
    let r = app.move_stage(&rep, id, &quoted, None).await;
    assert_eq!(r.code(), "stage_criteria_unmet");
    assert_eq!(r.body["unmet"][0]["kind"], "condition");
    assert_eq!(
        app.patch(
            &format!("/api/v1/opportunities/{id}"),
            &rep,
            1,
            json!({"amount": "12000"})
        )
        .await
        .status,
        200
    );
    assert_eq!(app.move_stage(&rep, id, &quoted, None).await.status, 200);

    // Archiving a stage with an open deal is refused; an empty one is archived and drops
    // off the board, while history keeps pointing at it.
    let stage = app.get(&format!("/api/v1/pipelines/{pid}"), &admin).await.body["stages"][1].clone();
    let r = app
        .patch(
            &format!("/api/v1/admin/stages/{quoted}"),
            &admin,
            stage["version"].as_i64().unwrap() as i32,
            json!({"archived": true}),
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.text);
    assert_eq!(r.code(), "stage_in_use");
    let open = stage_id(
        &app.get(&format!("/api/v1/pipelines/{pid}"), &admin).await.body,
        "open_renewal",
    );
    let v = app.get(&format!("/api/v1/pipelines/{pid}"), &admin).await.body["stages"][0]["version"]
        .as_i64()
        .unwrap() as i32;
    let r = app
        .patch(
            &format!("/api/v1/admin/stages/{open}"),
            &admin,
            v,
            json!({"archived": true}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let live: Vec<&str> = r.body["stages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["archived"] == false)
        .map(|s| s["code"].as_str().unwrap())
        .collect();
    assert_eq!(live, ["quoted", "won", "lost"]);
    let board = app.get(&format!("/api/v1/pipelines/{pid}/board"), &rep).await;
    assert_eq!(board.body["columns"].as_array().unwrap().len(), 3);
    let hist = app
        .get(&format!("/api/v1/opportunities/{id}/stage-history"), &rep)
        .await;
    assert_eq!(hist.body["items"][0]["to_stage_id"].as_str().unwrap(), open);

    // Reorder: every live stage exactly once.
    let live_ids: Vec<String> = ["lost", "won", "quoted"].iter().map(|c| stage_id(&r.body, c)).collect();
    let bad = app
        .post(
            &format!("/api/v1/admin/pipelines/{pid}/stages/order"),
            &admin,
            json!({"stage_ids": &live_ids[..2]}),
        )
        .await;
    assert_eq!(bad.status, 422);
    let ok = app
        .post(
            &format!("/api/v1/admin/pipelines/{pid}/stages/order"),
            &admin,
            json!({"stage_ids": live_ids}),
        )
        .await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    assert_eq!(ok.body["stages"][0]["code"], "lost");
    // Add a stage in the middle.
    let r = app
        .post(
            &format!("/api/v1/admin/pipelines/{pid}/stages"),
            &admin,
            json!({"code": "negotiating", "name": "Negotiating", "kind": "open", "probability": 80, "position": 2}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let order: Vec<&str> = r.body["stages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["archived"] == false)
        .map(|s| s["code"].as_str().unwrap())
        .collect();
    assert_eq!(order, ["lost", "negotiating", "won", "quoted"]);
    let dup = app
        .post(
            &format!("/api/v1/admin/pipelines/{pid}/stages"),
            &admin,
            json!({"code": "won", "name": "x", "kind": "won", "probability": 1}),
        )
        .await;
    assert_eq!(dup.status, 422);
    // Default pipeline switch.
    let v = app
        .get(&format!("/api/v1/pipelines/{pid}"), &admin)
        .await
        .etag_version();
    assert_eq!(
        app.patch(
            &format!("/api/v1/admin/pipelines/{pid}"),
            &admin,
            v,
            json!({"is_default": true})
        )
        .await
        .status,
        200
    );
    assert_eq!(app.default_pipeline(&rep).await["id"].as_str().unwrap(), pid);
}

#[actix_web::test]
async fn the_board_sums_per_stage_within_scope_and_pages_cards() {
    let app = start().await;
    let e1 = app.token(app.org.rep_east1);
    let e2 = app.token(app.org.rep_east2);
    let n1 = app.token(app.org.rep_north1);
    let p = app.default_pipeline(&e1).await;
    let pid = p["id"].as_str().unwrap();
    let acc1 = app.account(&e1, "Board One").await;
    let acc2 = app.account(&e2, "Board Two").await;
    let acc3 = app.account(&n1, "Board Three").await;
    for i in 0..5 {
        app.deal(
            &e1,
            json!({"name": format!("E1 {i}"), "account_id": acc1["id"], "amount": "1000.00"}),
        )
        .await;
    }
    app.deal(&e2, json!({"name": "E2", "account_id": acc2["id"], "amount": "500.50"}))
        .await;
    app.deal(
        &n1,
        json!({"name": "N1", "account_id": acc3["id"], "amount": "7777.00"}),
    )
    .await;
    app.deal(&e1, json!({"name": "No amount", "account_id": acc1["id"]}))
        .await;

    let board = app.get(&format!("/api/v1/pipelines/{pid}/board?limit=2"), &e1).await;
    assert_eq!(board.status, 200, "{}", board.text);
    let col = &board.body["columns"][0];
    assert_eq!(col["stage"]["code"], "qualification");
    assert_eq!(col["count"], 6);
    assert_eq!(col["amount"], "5000.00");
    assert_eq!(col["weighted_amount"], "500.00");
    assert_eq!(col["cards"].as_array().unwrap().len(), 2);
    assert_eq!(board.body["total_count"], 6);
    assert_eq!(board.body["columns"].as_array().unwrap().len(), 7);
    assert_eq!(board.body["columns"][1]["count"], 0);
    // The column cursor continues with the list endpoint: every card exactly once.
    let mut seen: Vec<String> = col["cards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect();
    let mut cursor = col["next_cursor"].as_str().map(str::to_owned);
    let qual = stage_id(&p, "qualification");
    while let Some(c) = cursor {
        let r = app
            .get(
                &format!("/api/v1/opportunities?stage_id={qual}&sort=-updated_at&limit=2&cursor={c}"),
                &e1,
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        seen.extend(r.ids());
        cursor = r.body["next_cursor"].as_str().map(str::to_owned);
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 6);

    let m = app
        .get(
            &format!("/api/v1/pipelines/{pid}/board"),
            &app.token(app.org.manager_east),
        )
        .await;
    assert_eq!(m.body["columns"][0]["count"], 7);
    assert_eq!(m.body["columns"][0]["amount"], "5500.50");
    let d = app
        .get(
            &format!("/api/v1/pipelines/{pid}/board?amount_gte=1000"),
            &app.token(app.org.director),
        )
        .await;
    assert_eq!(d.body["columns"][0]["count"], 6);
    let d = app
        .get(
            &format!("/api/v1/pipelines/{pid}/board?owner_id={}", app.org.rep_north1),
            &app.token(app.org.director),
        )
        .await;
    assert_eq!(d.body["columns"][0]["amount"], "7777.00");
    let r = app.get(&format!("/api/v1/pipelines/{pid}/board?limit=0"), &e1).await;
    assert_eq!(r.status, 400);
    let r = app
        .get(&format!("/api/v1/pipelines/{}/board", uuid::Uuid::now_v7()), &e1)
        .await;
    assert_eq!(r.status, 404);
}

#[actix_web::test]
async fn the_timeline_merges_everything_newest_first() {
    let app = start().await;
    let rep = app.token(app.org.rep_east1);
    let p = app.default_pipeline(&rep).await;
    let acc = app.account(&rep, "Timeline Co").await;
    let deal = app.deal(&rep, json!({"name": "Deal", "account_id": acc["id"]})).await;
    let id = deal["id"].as_str().unwrap();
    assert_eq!(
        app.patch(
            &format!("/api/v1/opportunities/{id}"),
            &rep,
            1,
            json!({"next_step": "send deck"})
        )
        .await
        .status,
        200
    );
    let act = app
        .post(
            "/api/v1/activities",
            &rep,
            json!({"type": "call", "subject": "Intro call", "opportunity_id": id}),
        )
        .await;
    assert_eq!(act.status, 201, "{}", act.text);
    let task = app
        .post(
            "/api/v1/tasks",
            &rep,
            json!({"title": "Prepare deck", "related_type": "opportunity", "related_id": id}),
        )
        .await;
    assert_eq!(task.status, 201, "{}", task.text);
    app.attach(&rep, id, "first_call_notes").await;
    let qual = stage_id(&p, "qualification");
    app.check_task(&rep, id, &qual, "confirm_need_budget").await;
    app.check_task(&rep, id, &qual, "workshop_agreed").await;
    assert_eq!(
        app.move_stage(&rep, id, &stage_id(&p, "discovery"), None).await.status,
        200
    );

    let t = app
        .get(&format!("/api/v1/opportunities/{id}/timeline?limit=200"), &rep)
        .await;
    assert_eq!(t.status, 200, "{}", t.text);
    let items = t.body["items"].as_array().unwrap();
    let ats: Vec<&str> = items.iter().map(|i| i["at"].as_str().unwrap()).collect();
    let mut sorted = ats.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(ats, sorted, "newest first");
    let kinds: std::collections::HashSet<&str> = items.iter().map(|i| i["kind"].as_str().unwrap()).collect();
    for k in ["stage_change", "field_change", "activity", "task", "output"] {
        assert!(kinds.contains(k), "missing {k}: {kinds:?}");
    }
    assert_eq!(items[0]["kind"], "stage_change");
    // Pages of 3 give the same entries in the same order.
    let mut paged = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            Some(c) => format!("/api/v1/opportunities/{id}/timeline?limit=3&cursor={c}"),
            None => format!("/api/v1/opportunities/{id}/timeline?limit=3"),
        };
        let r = app.get(&url, &rep).await;
        paged.extend(
            r.body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["id"].as_str().unwrap().to_owned()),
        );
        match r.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let all: Vec<String> = items.iter().map(|i| i["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(paged, all);
    // Deals outside the scope are invisible on every path.
    let other = app.token(app.org.rep_east2);
    for path in ["", "/timeline", "/stage-history", "/checklist", "/outputs", "/history"] {
        assert_eq!(
            app.get(&format!("/api/v1/opportunities/{id}{path}"), &other)
                .await
                .status,
            404,
            "{path}"
        );
    }
    assert_eq!(app.move_stage(&other, id, &qual, Some("x")).await.status, 404);
}

#[actix_web::test]
async fn stalled_deals_are_those_idle_past_their_stage_threshold() {
    let app = start().await;
    let rep = app.token(app.org.rep_east1);
    let acc = app.account(&rep, "Stalled Co").await;
    let idle = app.deal(&rep, json!({"name": "Idle", "account_id": acc["id"]})).await;
    let busy = app.deal(&rep, json!({"name": "Busy", "account_id": acc["id"]})).await;
    let fresh = app.deal(&rep, json!({"name": "Fresh", "account_id": acc["id"]})).await;
    // Qualification stalls after 7 days: push two deals' stage entry 10 days back.
    use diesel::RunQueryDsl;
    diesel::sql_query(format!(
        "UPDATE opportunities SET stage_entered_at = now() - interval '10 days' WHERE id IN ('{}', '{}')",
        idle["id"].as_str().unwrap(),
        busy["id"].as_str().unwrap()
    ))
    .execute(&mut app.db.conn())
    .unwrap();
    let r = app
        .post(
            "/api/v1/activities",
            &rep,
            json!({"type": "call", "subject": "Still alive", "opportunity_id": busy["id"]}),
        )
        .await;
    assert_eq!(r.status, 201);
    let stalled = app.get("/api/v1/opportunities?stalled=true", &rep).await;
    assert_eq!(stalled.ids(), vec![idle["id"].as_str().unwrap().to_owned()]);
    let mut active = app.get("/api/v1/opportunities?stalled=false", &rep).await.ids();
    active.sort();
    let mut expected = vec![
        busy["id"].as_str().unwrap().to_owned(),
        fresh["id"].as_str().unwrap().to_owned(),
    ];
    expected.sort();
    assert_eq!(active, expected);
}

/// The board's rollup (kept by trigger) always equals a live count over the deals.
#[actix_web::test]
async fn board_rollup_matches_a_live_aggregate_through_every_change() {
    let app = start().await;
    let e1 = app.token(app.org.rep_east1);
    let m = app.token(app.org.manager_east);
    let p = app.default_pipeline(&e1).await;
    let pid = p["id"].as_str().unwrap().to_owned();
    let acc = app.account(&e1, "Rollup Co").await;
    let a = app
        .deal(&e1, json!({"name": "A", "account_id": acc["id"], "amount": "100.10"}))
        .await;
    let b = app
        .deal(
            &e1,
            json!({"name": "B", "account_id": acc["id"], "amount": "33.33", "probability": 33}),
        )
        .await;
    let c = app.deal(&e1, json!({"name": "C", "account_id": acc["id"]})).await;
    let (a, b, c) = (
        a["id"].as_str().unwrap().to_owned(),
        b["id"].as_str().unwrap().to_owned(),
        c["id"].as_str().unwrap().to_owned(),
    );
    // amount and probability change, lost (probability 0), reassigned, deleted, restored
    assert_eq!(
        app.patch(
            &format!("/api/v1/opportunities/{a}"),
            &e1,
            1,
            json!({"amount": "250.55", "probability": 45})
        )
        .await
        .status,
        200
    );
    assert_eq!(
        app.move_stage(&e1, &b, &stage_id(&p, "lost"), Some("price"))
            .await
            .status,
        200
    );
    assert_eq!(
        app.patch(
            &format!("/api/v1/opportunities/{c}"),
            &m,
            1,
            json!({"owner_id": app.org.rep_east2})
        )
        .await
        .status,
        200
    );
    assert_eq!(app.delete(&format!("/api/v1/opportunities/{a}"), &e1).await.status, 204);
    let r = app
        .send(request(
            Method::POST,
            &format!("/api/v1/opportunities/{a}/restore"),
            Some(&e1),
        ))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(app.delete(&format!("/api/v1/opportunities/{b}"), &e1).await.status, 204);

    // A is back (250.55 at 45%), B is deleted, C moved to rep_east2 without an amount.
    let board = app.get(&format!("/api/v1/pipelines/{pid}/board"), &m).await;
    let qual = &board.body["columns"][0];
    assert_eq!(
        (
            qual["count"].clone(),
            qual["amount"].clone(),
            qual["weighted_amount"].clone()
        ),
        (json!(2), json!("250.55"), json!("112.75"))
    );
    assert_eq!(board.body["columns"][6]["count"], 0, "the deleted lost deal is gone");
    let mine = app.get(&format!("/api/v1/pipelines/{pid}/board"), &e1).await;
    assert_eq!(mine.body["columns"][0]["count"], 1);
    let theirs = app
        .get(
            &format!("/api/v1/pipelines/{pid}/board?owner_id={}", app.org.rep_east2),
            &m,
        )
        .await;
    assert_eq!(
        (
            theirs.body["columns"][0]["count"].clone(),
            theirs.body["columns"][0]["amount"].clone()
        ),
        (json!(1), json!("0.00"))
    );
    // Against SQL directly: every rollup row equals the live group.
    assert_eq!(
        app.db.count(
            "SELECT count(*) FROM (SELECT stage_id, owner_id, coalesce(team_id, '00000000-0000-0000-0000-000000000000'::uuid) t, \
             currency, count(*) n, coalesce(sum(amount), 0) a, coalesce(sum(amount * probability), 0) ap \
             FROM opportunities WHERE deleted_at IS NULL GROUP BY 1, 2, 3, 4) live \
             FULL JOIN (SELECT * FROM opportunity_stage_totals WHERE deals <> 0) r \
             ON r.stage_id = live.stage_id AND r.owner_id = live.owner_id AND r.team_id = live.t \
             AND r.currency = live.currency \
             WHERE r.deals IS DISTINCT FROM live.n OR r.amount IS DISTINCT FROM live.a OR r.amount_x_prob IS DISTINCT FROM live.ap"
        ),
        0
    );
}

/// Per-stage and currency totals straight from SQL, for comparison with the board.
fn live_totals(app_db: &crm_test_support::TestDb, extra: &str) -> Vec<(String, String, i64, String, String)> {
    use diesel::sql_types::{BigInt, Text};
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = Text)]
        stage_id: String,
        #[diesel(sql_type = Text)]
        currency: String,
        #[diesel(sql_type = BigInt)]
        n: i64,
        #[diesel(sql_type = Text)]
        amount: String,
        #[diesel(sql_type = Text)]
        weighted: String,
    }
    let rows: Vec<Row> = diesel::RunQueryDsl::load(
        diesel::sql_query(format!(
            "SELECT stage_id::text AS stage_id, currency, count(*) AS n, round(coalesce(sum(amount), 0), 2)::text AS amount, \
             round(coalesce(sum(amount * probability / 100.0), 0), 2)::text AS weighted \
             FROM opportunities WHERE deleted_at IS NULL {extra} GROUP BY 1, 2 ORDER BY 1, 2"
        )),
        &mut app_db.conn(),
    )
    .unwrap();
    rows.into_iter()
        .map(|r| (r.stage_id, r.currency, r.n, r.amount, r.weighted))
        .collect()
}

/// A board's totals per stage and currency; checks that a column's single amount is
/// there exactly when it holds one currency, and that the board's totals per currency
/// add up the columns'.
fn board_totals(board: &serde_json::Value) -> Vec<(String, String, i64, String, String)> {
    let mut out = Vec::new();
    let mut per_currency = std::collections::BTreeMap::<String, i64>::new();
    for c in board["columns"].as_array().unwrap() {
        let totals = c["totals"].as_array().unwrap();
        assert_eq!(
            c["count"].as_i64().unwrap(),
            totals.iter().map(|t| t["count"].as_i64().unwrap()).sum::<i64>()
        );
        match totals.as_slice() {
            [] => assert_eq!(c["amount"], "0.00"),
            [one] => assert_eq!(c["amount"], one["amount"]),
            _ => assert!(c["amount"].is_null() && c["weighted_amount"].is_null(), "{c}"),
        }
        for t in totals {
            *per_currency
                .entry(t["currency"].as_str().unwrap().to_owned())
                .or_default() += t["count"].as_i64().unwrap();
            out.push((
                c["stage"]["id"].as_str().unwrap().to_owned(),
                t["currency"].as_str().unwrap().to_owned(),
                t["count"].as_i64().unwrap(),
                t["amount"].as_str().unwrap().to_owned(),
                t["weighted_amount"].as_str().unwrap().to_owned(),
            ));
        }
    }
    let board_level: std::collections::BTreeMap<String, i64> = board["totals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["currency"].as_str().unwrap().to_owned(), t["count"].as_i64().unwrap()))
        .collect();
    assert_eq!(board_level, per_currency);
    assert_eq!(
        board["total_amount"].is_null(),
        per_currency.len() > 1,
        "{}",
        board["total_amount"]
    );
    out.sort();
    out
}

/// Close-date filtered board totals (monthly rollup plus live edges) equal a live
/// aggregate, for whole and partial months, open ends, scope and owner filters, and
/// through changes of close date, owner, amount, stage and deletion.
#[actix_web::test]
async fn close_date_board_totals_match_a_live_aggregate() {
    let app = start().await;
    let e1 = app.token(app.org.rep_east1);
    let e2 = app.token(app.org.rep_east2);
    let m = app.token(app.org.manager_east);
    let p = app.default_pipeline(&e1).await;
    let pid = p["id"].as_str().unwrap().to_owned();
    let acc1 = app.account(&e1, "Close Co").await;
    let acc2 = app.account(&e2, "Close Co 2").await;
    let dates = [
        "2027-01-01",
        "2027-01-15",
        "2027-01-31",
        "2027-02-01",
        "2027-02-14",
        "2027-02-28",
        "2027-03-01",
        "2027-03-09",
        "2027-03-31",
        "2027-04-01",
        "2027-05-20",
    ];
    let mut ids = Vec::new();
    for (i, d) in dates.iter().enumerate() {
        let (token, acc) = if i % 3 == 0 { (&e2, &acc2) } else { (&e1, &acc1) };
        let deal = app
            .deal(
                token,
                json!({"name": format!("D{i}"), "account_id": acc["id"], "expected_close_date": d,
                       "amount": format!("{}.{:02}", 1000 * (i + 1), i * 7 % 100), "probability": 5 + i * 8,
                       "currency": if i % 4 == 1 { "USD" } else { "CNY" }}),
            )
            .await;
        ids.push(deal["id"].as_str().unwrap().to_owned());
    }
    app.deal(
        &e1,
        json!({"name": "No date", "account_id": acc1["id"], "amount": "77.00"}),
    )
    .await;
    // Changes the rollup must follow.
    for (i, body) in [
        (1, json!({"expected_close_date": "2027-03-15"})),
        (2, json!({"owner_id": app.org.rep_east2, "amount": "5.55"})),
        (4, json!({"expected_close_date": null})),
        (6, json!({"currency": "USD"})),
    ] {
        let path = format!("/api/v1/opportunities/{}", ids[i]);
        let v = app.get(&path, &m).await.etag_version();
        assert_eq!(app.patch(&path, &m, v, body).await.status, 200);
    }
    assert_eq!(
        app.move_stage(&e1, &ids[5], &stage_id(&p, "lost"), Some("budget"))
            .await
            .status,
        200
    );
    assert_eq!(
        app.delete(&format!("/api/v1/opportunities/{}", ids[7]), &e1)
            .await
            .status,
        204
    );

    // Edges read as days or as their month less the days outside them, whichever is
    // fewer; a range across a month end without a whole month is two edges.
    let ranges: [(Option<&str>, Option<&str>); 8] = [
        (Some("2027-01-01"), Some("2027-04-01")),
        (Some("2027-01-15"), Some("2027-03-10")),
        (None, Some("2027-02-20")),
        (Some("2027-02-02"), None),
        (Some("2027-02-05"), Some("2027-02-25")),
        (Some("2027-03-01"), Some("2027-03-02")),
        (Some("2027-06-01"), Some("2027-05-01")),
        (Some("2027-01-20"), Some("2027-02-10")),
    ];
    for (after, before) in ranges {
        let mut query = String::new();
        let mut sql = String::new();
        if let Some(a) = after {
            query.push_str(&format!("&close_after={a}"));
            sql.push_str(&format!(" AND expected_close_date >= '{a}'"));
        }
        if let Some(b) = before {
            query.push_str(&format!("&close_before={b}"));
            sql.push_str(&format!(" AND expected_close_date < '{b}'"));
        }
        for (token, owner, scope_sql) in [
            (&m, None, String::new()),
            (&e1, None, format!(" AND owner_id = '{}'", app.org.rep_east1)),
            (
                &m,
                Some(app.org.rep_east2),
                format!(" AND owner_id = '{}'", app.org.rep_east2),
            ),
        ] {
            let owner_q = owner.map(|o| format!("&owner_id={o}")).unwrap_or_default();
            let board = app
                .get(&format!("/api/v1/pipelines/{pid}/board?limit=1{query}{owner_q}"), token)
                .await;
            assert_eq!(board.status, 200, "{}", board.text);
            assert_eq!(
                board_totals(&board.body),
                live_totals(&app.db, &format!("{sql}{scope_sql}")),
                "{after:?}..{before:?} {owner:?}"
            );
        }
    }
    // And the monthly rollup itself equals the live grouping, row by row.
    assert_eq!(
        app.db.count(
            "SELECT count(*) FROM (SELECT stage_id, opportunity_close_month(expected_close_date) m, owner_id, \
             coalesce(team_id, '00000000-0000-0000-0000-000000000000'::uuid) t, currency, count(*) n, \
             coalesce(sum(amount), 0) a, coalesce(sum(amount * probability), 0) ap \
             FROM opportunities WHERE deleted_at IS NULL GROUP BY 1, 2, 3, 4, 5) live \
             FULL JOIN (SELECT * FROM opportunity_month_totals WHERE deals <> 0) r \
             ON r.stage_id = live.stage_id AND r.close_month = live.m AND r.owner_id = live.owner_id AND r.team_id = live.t \
             AND r.currency = live.currency \
             WHERE r.deals IS DISTINCT FROM live.n OR r.amount IS DISTINCT FROM live.a OR r.amount_x_prob IS DISTINCT FROM live.ap"
        ),
        0
    );
    // And the daily one.
    assert_eq!(
        app.db.count(
            "SELECT count(*) FROM (SELECT expected_close_date d, stage_id, owner_id, \
             coalesce(team_id, '00000000-0000-0000-0000-000000000000'::uuid) t, currency, count(*) n, \
             coalesce(sum(amount), 0) a, coalesce(sum(amount * probability), 0) ap \
             FROM opportunities WHERE deleted_at IS NULL AND expected_close_date IS NOT NULL GROUP BY 1, 2, 3, 4, 5) live \
             FULL JOIN (SELECT * FROM opportunity_day_totals WHERE deals <> 0) r \
             ON r.close_date = live.d AND r.stage_id = live.stage_id AND r.owner_id = live.owner_id AND r.team_id = live.t \
             AND r.currency = live.currency \
             WHERE r.deals IS DISTINCT FROM live.n OR r.amount IS DISTINCT FROM live.a OR r.amount_x_prob IS DISTINCT FROM live.ap"
        ),
        0
    );
}
