//! Accounts: CRUD, normalisation, duplicates, versions, idempotency, ownership, audit.

use actix_web::http::Method;
use crm_test_support::app::{request, start};
use serde_json::json;

#[actix_web::test]
async fn account_lifecycle_with_history_and_events() {
    let app = start().await;
    let rep = app.token(app.org.rep_east1);
    let r = app
        .post(
            "/api/v1/accounts",
            &rep,
            json!({
                "name": "  上海 华信科技　有限公司 ", "type": "customer", "industry": "software",
                "phone": "+86 138-0013-8000", "email": " Info@HuaXin.CN ", "website": "huaxin.cn",
                "tier": "A", "source": "referral", "notes": "首次接触"
            }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(r.header("location").unwrap(), format!("/api/v1/accounts/{id}"));
    assert_eq!(r.header("etag").as_deref(), Some("\"1\""));
    assert_eq!(r.body["name"], "上海 华信科技 有限公司");
    assert_eq!(r.body["phone"], "13800138000");
    assert_eq!(r.body["email"], "info@huaxin.cn");
    assert_eq!(r.body["website"], "https://huaxin.cn");
    assert_eq!(r.body["owner_id"].as_str().unwrap(), app.org.rep_east1.to_string());
    assert_eq!(r.body["team_id"].as_str().unwrap(), app.org.east1.to_string());
    assert_eq!(r.body["version"], 1);

    let got = app.get(&format!("/api/v1/accounts/{id}"), &rep).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.etag_version(), 1);
    assert_eq!(got.body, r.body);

    let upd = app
        .patch(
            &format!("/api/v1/accounts/{id}"),
            &rep,
            1,
            json!({"tier": "B", "notes": null, "region": "east"}),
        )
        .await;
    assert_eq!(upd.status, 200, "{}", upd.text);
    assert_eq!(upd.body["tier"], "B");
    assert!(upd.body["notes"].is_null());
    assert_eq!(upd.body["region"], "east");
    assert_eq!(upd.body["industry"], "software", "absent fields stay");
    assert_eq!(upd.etag_version(), 2);

    // A PATCH that changes nothing writes nothing.
    let same = app
        .patch(&format!("/api/v1/accounts/{id}"), &rep, 2, json!({"tier": "B"}))
        .await;
    assert_eq!(same.status, 200);
    assert_eq!(same.etag_version(), 2);

    assert_eq!(app.delete(&format!("/api/v1/accounts/{id}"), &rep).await.status, 204);
    assert_eq!(app.get(&format!("/api/v1/accounts/{id}"), &rep).await.status, 404);
    let list = app.get("/api/v1/accounts", &rep).await;
    assert!(!list.ids().contains(&id));
    assert_eq!(app.delete(&format!("/api/v1/accounts/{id}"), &rep).await.status, 404);

    let restored = app
        .send(request(
            Method::POST,
            &format!("/api/v1/accounts/{id}/restore"),
            Some(&rep),
        ))
        .await;
    assert_eq!(restored.status, 200, "{}", restored.text);
    assert_eq!(restored.body["version"], 4);
    assert_eq!(app.get(&format!("/api/v1/accounts/{id}"), &rep).await.status, 200);
    let again = app
        .send(request(
            Method::POST,
            &format!("/api/v1/accounts/{id}/restore"),
            Some(&rep),
        ))
        .await;
    assert_eq!(again.status, 404);

    let hist = app.get(&format!("/api/v1/accounts/{id}/history"), &rep).await;
    assert_eq!(hist.status, 200);
    let items = hist.body["items"].as_array().unwrap();
    let actions: Vec<&str> = items.iter().map(|i| i["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["restored", "deleted", "updated", "created"]);
    let updated = &items[2];
    assert_eq!(updated["changes"]["tier"], json!({"before": "A", "after": "B"}));
    assert_eq!(
        updated["changes"]["notes"],
        json!({"before": "首次接触", "after": null})
    );
    assert_eq!(updated["changes"]["region"], json!({"before": null, "after": "east"}));
    assert!(updated["changes"].get("industry").is_none());
    assert_eq!(updated["actor_id"].as_str().unwrap(), app.org.rep_east1.to_string());
    assert!(updated["request_id"].as_str().is_some());
    assert_eq!(items[3]["changes"]["name"]["after"], "上海 华信科技 有限公司");

    let events = app.db.count(&format!(
        "SELECT count(*) FROM outbox_events WHERE aggregate_id = '{id}' AND event_type IN ('account.created','account.updated','account.deleted','account.restored')"
    ));
    assert_eq!(events, 4);
    // The audit log is append-only.
    use diesel::RunQueryDsl;
    assert!(diesel::sql_query("UPDATE audit_log SET action = 'x'")
        .execute(&mut app.db.conn())
        .is_err());
    assert!(diesel::sql_query("DELETE FROM audit_log")
        .execute(&mut app.db.conn())
        .is_err());
}

#[actix_web::test]
async fn validation_errors_name_every_field_and_change_nothing() {
    let app = start().await;
    let rep = app.token(app.org.rep_east1);
    let r = app
        .post(
            "/api/v1/accounts",
            &rep,
            json!({"name": "   ", "email": "not-an-email", "phone": "call me", "website": "no spaces allowed"}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(r.code(), "validation_failed");
    assert_eq!(r.header("content-type").as_deref(), Some("application/problem+json"));
    let fields: Vec<&str> = r.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["email", "name", "phone", "website"]);
    assert_eq!(r.body["status"], 422);
    assert!(r.body["type"].as_str().unwrap().contains("validation-failed"));

    let r = app
        .post("/api/v1/accounts", &rep, json!({"name": "x".repeat(201)}))
        .await;
    assert_eq!(r.status, 422);
    assert_eq!(r.body["errors"][0]["field"], "name");
    assert_eq!(r.body["errors"][0]["code"], "length");

    let r = app
        .post("/api/v1/accounts", &rep, json!({"name": "Acme", "colour": "red"}))
        .await;
    assert_eq!(r.status, 422);
    assert_eq!(r.body["errors"][0]["field"], "colour");
    assert_eq!(r.body["errors"][0]["code"], "unknown_field");

    let r = app
        .post("/api/v1/accounts", &rep, json!({"name": "Acme", "type": "friend"}))
        .await;
    assert_eq!(r.status, 422);
    assert_eq!(r.body["errors"][0]["field"], "type");

    let r = app.post("/api/v1/accounts", &rep, json!({"name": 42})).await;
    assert_eq!(r.status, 422);
    assert_eq!(r.body["errors"][0]["field"], "name");

    let r = app.post("/api/v1/accounts", &rep, json!({"type": "customer"})).await;
    assert_eq!(r.status, 422);
    assert_eq!(r.body["errors"][0]["field"], "name");
    assert_eq!(r.body["errors"][0]["code"], "required");

    let r = app
        .post(
            "/api/v1/accounts",
            &rep,
            json!({"name": "Acme", "parent_id": uuid::Uuid::now_v7()}),
        )
        .await;
    assert_eq!(r.status, 422);
    assert_eq!(r.body["errors"][0]["field"], "parent_id");

    assert_eq!(app.db.count("SELECT count(*) FROM accounts"), 0);
    assert_eq!(app.db.count("SELECT count(*) FROM audit_log"), 0);
}

#[actix_web::test]
async fn duplicates_are_refused_unless_allowed() {
    let app = start().await;
    let rep = app.token(app.org.rep_east1);
    let first = app
        .post(
            "/api/v1/accounts",
            &rep,
            json!({"name": "ACME Trading", "phone": "021-6000 1234", "email": "sales@acme.cn"}),
        )
        .await;
    assert_eq!(first.status, 201);
    let id = first.body["id"].clone();

    for (body, on) in [
        (json!({"name": "ａｃｍｅ  trading "}), "name"),
        (json!({"name": "Other", "phone": "02160001234"}), "phone"),
        (json!({"name": "Other 2", "email": "SALES@acme.cn"}), "email"),
    ] {
        let r = app.post("/api/v1/accounts", &rep, body).await;
        assert_eq!(r.status, 409, "{}", r.text);
        assert_eq!(r.code(), "duplicate");
        assert_eq!(r.body["existing"]["id"], id);
        assert_eq!(r.body["existing"]["matched_on"], on);
    }
    let r = app
        .post(
            "/api/v1/accounts?allow_duplicate=true",
            &rep,
            json!({"name": "ACME Trading"}),
        )
        .await;
    assert_eq!(r.status, 201);
    // A record the caller cannot see is not revealed as a duplicate.
    let other = app.token(app.org.rep_north1);
    let r = app
        .post("/api/v1/accounts", &other, json!({"name": "Acme Trading"}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
}

#[actix_web::test]
async fn updates_need_the_current_version() {
    let app = start().await;
    let rep = app.token(app.org.rep_east1);
    let id = app.account(&rep, "Versioned Ltd").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/api/v1/accounts/{id}");

    let r = app
        .send(request(Method::PATCH, &path, Some(&rep)).set_json(json!({"tier": "A"})))
        .await;
    assert_eq!(r.status, 428);
    assert_eq!(r.code(), "precondition_required");
    let r = app
        .send(
            request(Method::PATCH, &path, Some(&rep))
                .insert_header(("If-Match", "yesterday"))
                .set_json(json!({"tier": "A"})),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(app.patch(&path, &rep, 1, json!({"tier": "A"})).await.status, 200);
    let stale = app.patch(&path, &rep, 1, json!({"tier": "C"})).await;
    assert_eq!(stale.status, 412);
    assert_eq!(stale.code(), "stale_version");
    assert_eq!(app.get(&path, &rep).await.body["tier"], "A");
    let r = app
        .send(
            request(Method::PATCH, &path, Some(&rep))
                .insert_header(("If-Match", "W/\"2\""))
                .set_json(json!({"tier": "D"})),
        )
        .await;
    assert_eq!(r.status, 200);
    let r = app
        .send(request(Method::DELETE, &path, Some(&rep)).insert_header(("If-Match", "\"1\"")))
        .await;
    assert_eq!(r.status, 412);
}

#[actix_web::test]
async fn concurrent_updates_never_lose_a_write() {
    let app = start().await;
    let rep = app.token(app.org.rep_east1);
    let id = app.account(&rep, "Race Ltd").await["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/accounts/{id}");
    let tiers = ["A", "B", "C", "D", "A", "B"];
    let results =
        futures_util::future::join_all(tiers.iter().map(|t| app.patch(&path, &rep, 1, json!({"tier": t})))).await;
    let ok = results.iter().filter(|r| r.status == 200).count();
    let stale = results.iter().filter(|r| r.status == 412).count();
    assert_eq!((ok, stale), (1, tiers.len() - 1));
    let winner = results.iter().find(|r| r.status == 200).unwrap();
    let now = app.get(&path, &rep).await;
    assert_eq!(now.body["tier"], winner.body["tier"]);
    assert_eq!(now.body["version"], 2);
}

#[actix_web::test]
async fn idempotency_key_replays_the_first_response() {
    let app = start().await;
    let rep = app.token(app.org.rep_east1);
    let send = |key: &'static str, body: serde_json::Value, token: String| {
        app.send(
            request(Method::POST, "/api/v1/accounts", Some(&token))
                .insert_header(("Idempotency-Key", key))
                .set_json(body),
        )
    };
    let a = send("k-1", json!({"name": "Flaky Network Ltd"}), rep.clone()).await;
    let b = send("k-1", json!({"name": "Flaky Network Ltd"}), rep.clone()).await;
    assert_eq!(a.status, 201);
    assert_eq!(b.status, 201);
    assert_eq!(a.body, b.body);
    assert_eq!(b.header("idempotent-replayed").as_deref(), Some("true"));
    assert_eq!(b.header("location"), a.header("location"));
    assert_eq!(app.db.count("SELECT count(*) FROM accounts"), 1);
    assert_eq!(app.db.count("SELECT count(*) FROM audit_log"), 1);

    let c = send("k-1", json!({"name": "Something Else"}), rep.clone()).await;
    assert_eq!(c.status, 422);
    assert_eq!(c.code(), "idempotency_key_reused");
    // Keys are per caller.
    let other = app.token(app.org.rep_east2);
    let d = send("k-1", json!({"name": "Flaky Network Ltd"}), other).await;
    assert_eq!(d.status, 201);
    assert_ne!(d.body["id"], a.body["id"]);
    // A failed request does not burn the key.
    let e = send("k-2", json!({"name": ""}), rep.clone()).await;
    assert_eq!(e.status, 422);
    let f = send("k-2", json!({"name": "Now Valid"}), rep.clone()).await;
    assert_eq!(f.status, 201);
    // Concurrent retries: one effect.
    let results =
        futures_util::future::join_all((0..4).map(|_| send("k-3", json!({"name": "Concurrent Retry"}), rep.clone())))
            .await;
    assert!(
        results.iter().all(|r| r.status == 201),
        "{:?}",
        results.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert_eq!(
        app.db
            .count("SELECT count(*) FROM accounts WHERE name = 'Concurrent Retry'"),
        1
    );
    let bad = app
        .send(
            request(Method::POST, "/api/v1/accounts", Some(&rep))
                .insert_header(("Idempotency-Key", ""))
                .set_json(json!({"name": "x"})),
        )
        .await;
    assert_eq!(bad.status, 400);
}

#[actix_web::test]
async fn reassigning_an_owner_is_its_own_permission() {
    let app = start().await;
    let rep = app.token(app.org.rep_east1);
    let manager = app.token(app.org.manager_east);
    // A rep cannot give a new account to someone else.
    let r = app
        .post(
            "/api/v1/accounts",
            &rep,
            json!({"name": "Gift", "owner_id": app.org.rep_east2}),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text);
    let acc = app.account(&rep, "Handover Ltd").await;
    let id = acc["id"].as_str().unwrap();
    let path = format!("/api/v1/accounts/{id}");
    let r = app.patch(&path, &rep, 1, json!({"owner_id": app.org.rep_east2})).await;
    assert_eq!(r.status, 403);
    // The manager may move it inside the east region; the team follows the owner.
    let r = app
        .patch(&path, &manager, 1, json!({"owner_id": app.org.rep_east2}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["team_id"].as_str().unwrap(), app.org.east2.to_string());
    let hist = app.get(&format!("{path}/history"), &manager).await;
    assert_eq!(
        hist.body["items"][0]["changes"]["owner_id"]["after"].as_str().unwrap(),
        app.org.rep_east2.to_string()
    );
    // ...but not hand it to the north region.
    let r = app
        .patch(&path, &manager, 2, json!({"owner_id": app.org.rep_north1}))
        .await;
    assert_eq!(r.status, 403);
    // Unknown owner.
    let r = app
        .patch(&path, &manager, 2, json!({"owner_id": uuid::Uuid::now_v7()}))
        .await;
    assert_eq!(r.status, 422);
    assert_eq!(r.body["errors"][0]["field"], "owner_id");
    // rep_east1 no longer sees it.
    assert_eq!(app.get(&path, &rep).await.status, 404);
}

#[actix_web::test]
async fn parent_accounts_cannot_form_a_cycle() {
    let app = start().await;
    let rep = app.token(app.org.rep_east1);
    let group = app.account(&rep, "Group HQ").await;
    let sub = app
        .post(
            "/api/v1/accounts",
            &rep,
            json!({"name": "Group Subsidiary", "parent_id": group["id"]}),
        )
        .await;
    assert_eq!(sub.status, 201);
    let r = app
        .patch(
            &format!("/api/v1/accounts/{}", group["id"].as_str().unwrap()),
            &rep,
            1,
            json!({"parent_id": sub.body["id"]}),
        )
        .await;
    assert_eq!(r.status, 422);
    assert_eq!(r.body["errors"][0]["code"], "cycle");
    let r = app
        .patch(
            &format!("/api/v1/accounts/{}", group["id"].as_str().unwrap()),
            &rep,
            1,
            json!({"parent_id": group["id"]}),
        )
        .await;
    assert_eq!(r.status, 422);
    let list = app
        .get(
            &format!("/api/v1/accounts?parent_id={}", group["id"].as_str().unwrap()),
            &rep,
        )
        .await;
    assert_eq!(list.ids(), vec![sub.body["id"].as_str().unwrap().to_owned()]);
}

#[actix_web::test]
async fn deleting_an_account_takes_its_contacts_and_restore_brings_them_back() {
    let app = start().await;
    let rep = app.token(app.org.rep_east1);
    let acc = app.account(&rep, "Cascade Ltd").await;
    let aid = acc["id"].as_str().unwrap();
    let c1 = app
        .post("/api/v1/contacts", &rep, json!({"account_id": aid, "name": "张三"}))
        .await;
    let c2 = app
        .post("/api/v1/contacts", &rep, json!({"account_id": aid, "name": "李四"}))
        .await;
    assert_eq!((c1.status, c2.status), (201, 201));
    // c2 was deleted on its own before: it must stay deleted after the restore.
    let c2id = c2.body["id"].as_str().unwrap();
    assert_eq!(app.delete(&format!("/api/v1/contacts/{c2id}"), &rep).await.status, 204);
    assert_eq!(app.delete(&format!("/api/v1/accounts/{aid}"), &rep).await.status, 204);
    let contacts = app.get(&format!("/api/v1/contacts?account_id={aid}"), &rep).await;
    assert!(contacts.ids().is_empty());
    let r = app
        .send(request(
            Method::POST,
            &format!("/api/v1/contacts/{}/restore", c1.body["id"].as_str().unwrap()),
            Some(&rep),
        ))
        .await;
    assert_eq!(r.status, 422);
    assert_eq!(r.code(), "account_deleted");
    let r = app
        .send(request(
            Method::POST,
            &format!("/api/v1/accounts/{aid}/restore"),
            Some(&rep),
        ))
        .await;
    assert_eq!(r.status, 200);
    let contacts = app.get(&format!("/api/v1/contacts?account_id={aid}"), &rep).await;
    assert_eq!(contacts.ids(), vec![c1.body["id"].as_str().unwrap().to_owned()]);
}
