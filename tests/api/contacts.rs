//! Contacts: CRUD, validation, duplicates, scope, delta sync.

use actix_web::http::Method;
use crm_test_support::app::{request, start};
use serde_json::json;

#[actix_web::test]
async fn contact_lifecycle() {
    let app = start().await;
    let rep = app.token(app.org.rep_east1);
    let acc = app.account(&rep, "Contact Co").await;
    let aid = acc["id"].as_str().unwrap();
    let r = app
        .post(
            "/api/v1/contacts",
            &rep,
            json!({
                "account_id": aid, "name": "王　芳", "title": "采购经理", "mobile": "+86 139 1234 5678",
                "email": "Wang.Fang@Contact.CO", "wechat": "wangfang", "birthday": "1988-03-15",
                "decision_role": "decision_maker", "preferences": "微信", "pain_points": "回款慢"
            }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(r.body["name"], "王 芳");
    assert_eq!(r.body["mobile"], "13912345678");
    assert_eq!(r.body["email"], "wang.fang@contact.co");
    assert_eq!(r.body["decision_role"], "decision_maker");
    assert_eq!(r.body["team_id"].as_str().unwrap(), app.org.east1.to_string());

    let path = format!("/api/v1/contacts/{id}");
    let upd = app
        .patch(&path, &rep, 1, json!({"birthday": null, "decision_role": "influencer"}))
        .await;
    assert_eq!(upd.status, 200, "{}", upd.text);
    assert!(upd.body["birthday"].is_null());
    assert_eq!(app.patch(&path, &rep, 1, json!({"title": "x"})).await.status, 412);

    // Moving a contact to an account the caller cannot see is refused.
    let foreign = app.account(&app.token(app.org.rep_north1), "Foreign Co").await;
    let r = app.patch(&path, &rep, 2, json!({"account_id": foreign["id"]})).await;
    assert_eq!(r.status, 422);

    let list = app
        .get(
            &format!("/api/v1/contacts?account_id={aid}&decision_role=influencer"),
            &rep,
        )
        .await;
    assert_eq!(list.ids(), vec![id.clone()]);
    let list = app.get("/api/v1/contacts?q=13912345678", &rep).await;
    assert_eq!(list.ids(), vec![id.clone()]);

    assert_eq!(app.delete(&path, &rep).await.status, 204);
    assert_eq!(app.get(&path, &rep).await.status, 404);
    let r = app
        .send(request(Method::POST, &format!("{path}/restore"), Some(&rep)))
        .await;
    assert_eq!(r.status, 200);
    let hist = app.get(&format!("{path}/history"), &rep).await;
    let actions: Vec<&str> = hist.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["restored", "deleted", "updated", "created"]);
    assert_eq!(
        hist.body["items"][2]["changes"]["decision_role"],
        json!({"before": "decision_maker", "after": "influencer"})
    );
    // History pages.
    let page = app.get(&format!("{path}/history?limit=3"), &rep).await;
    assert_eq!(page.body["items"].as_array().unwrap().len(), 3);
    let next = page.body["next_cursor"].as_str().unwrap();
    let rest = app.get(&format!("{path}/history?limit=3&cursor={next}"), &rep).await;
    assert_eq!(rest.body["items"][0]["action"], "created");
    assert!(rest.body["next_cursor"].is_null());
}

#[actix_web::test]
async fn contact_validation_and_duplicates() {
    let app = start().await;
    let rep = app.token(app.org.rep_east1);
    let acc = app.account(&rep, "Dup Co").await;
    let aid = acc["id"].as_str().unwrap();
    let r = app
        .post(
            "/api/v1/contacts",
            &rep,
            json!({"account_id": aid, "name": "", "email": "bad", "mobile": "12", "birthday": "2999-01-01"}),
        )
        .await;
    assert_eq!(r.status, 422);
    let fields: Vec<&str> = r.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["birthday", "email", "mobile", "name"]);
    let r = app
        .post(
            "/api/v1/contacts",
            &rep,
            json!({"account_id": aid, "name": "x", "decision_role": "boss"}),
        )
        .await;
    assert_eq!(r.status, 422);
    let r = app
        .post(
            "/api/v1/contacts",
            &rep,
            json!({"account_id": aid, "name": "x", "birthday": "15/03/1988"}),
        )
        .await;
    assert_eq!(r.status, 422);
    assert_eq!(r.body["errors"][0]["field"], "birthday");
    let r = app.post("/api/v1/contacts", &rep, json!({"name": "x"})).await;
    assert_eq!(r.body["errors"][0]["field"], "account_id");

    let first = app
        .post(
            "/api/v1/contacts",
            &rep,
            json!({"account_id": aid, "name": "Li Lei", "mobile": "13800000001"}),
        )
        .await;
    assert_eq!(first.status, 201);
    let r = app
        .post("/api/v1/contacts", &rep, json!({"account_id": aid, "name": "li  lei"}))
        .await;
    assert_eq!(r.status, 409);
    assert_eq!(r.body["existing"]["matched_on"], "name");
    let other = app.account(&rep, "Other Co").await;
    let r = app
        .post(
            "/api/v1/contacts",
            &rep,
            json!({"account_id": other["id"], "name": "Han Meimei", "phone": "+86 138 0000 0001"}),
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.text);
    assert_eq!(r.body["existing"]["id"], first.body["id"]);
    // Same name at another account is a different person.
    let r = app
        .post(
            "/api/v1/contacts",
            &rep,
            json!({"account_id": other["id"], "name": "Li Lei"}),
        )
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(app.db.count("SELECT count(*) FROM contacts"), 2);
}

#[actix_web::test]
async fn contacts_follow_data_scope_and_sync() {
    let app = start().await;
    let e1 = app.token(app.org.rep_east1);
    let m = app.token(app.org.manager_east);
    let acc = app.account(&e1, "Scoped Co").await;
    let since = (chrono::Utc::now() - chrono::Duration::seconds(5)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let c = app
        .post(
            "/api/v1/contacts",
            &e1,
            json!({"account_id": acc["id"], "name": "可见"}),
        )
        .await;
    let cid = c.body["id"].as_str().unwrap().to_owned();
    assert_eq!(app.get(&format!("/api/v1/contacts/{cid}"), &m).await.status, 200);
    assert_eq!(
        app.get(&format!("/api/v1/contacts/{cid}"), &app.token(app.org.rep_north1))
            .await
            .status,
        404
    );
    assert_eq!(
        app.get(&format!("/api/v1/contacts/{cid}"), &app.token(app.org.rep_east2))
            .await
            .status,
        404
    );
    let r = app.get(&format!("/api/v1/contacts?updated_since={since}"), &e1).await;
    assert_eq!(r.ids(), vec![cid.clone()]);
    assert_eq!(r.body["deleted_ids"], json!([]));
    assert_eq!(app.delete(&format!("/api/v1/contacts/{cid}"), &e1).await.status, 204);
    let r = app.get(&format!("/api/v1/contacts?updated_since={since}"), &e1).await;
    assert!(r.ids().is_empty());
    assert_eq!(r.body["deleted_ids"], json!([cid]));
    let r = app
        .get(
            &format!("/api/v1/contacts?updated_since={since}"),
            &app.token(app.org.rep_north1),
        )
        .await;
    assert_eq!(r.body["deleted_ids"], json!([]));
}
