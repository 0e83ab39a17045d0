//! The recycle bin through the API: every refusal of a delete or restore changes
//! nothing, and each accepted one is recorded.

use actix_web::http::Method;
use crm_test_support::app::request;
use serde_json::json;

use crate::q2c::{deal, product, quote};
use crate::start;

#[actix_web::test]
async fn deletes_and_restores_are_checked_and_recorded() {
    let app = start().await;
    let rep = app.token(app.org.rep_east1);
    let other = app.token(app.org.rep_north1);
    let acc = app.account(&rep, "Recycle Co").await;
    let aid = acc["id"].as_str().unwrap().to_owned();
    let lead = app
        .post(
            "/api/v1/leads",
            &rep,
            json!({"person_name": "回收 Lead", "source": "website"}),
        )
        .await;
    assert_eq!(lead.status, 201, "{}", lead.text);
    let lid = lead.body["id"].as_str().unwrap().to_owned();

    // Outside the data scope: 404, the lead stays.
    assert_eq!(app.delete(&format!("/api/v1/leads/{lid}"), &other).await.status, 404);
    // A stale If-Match: 412, the lead stays at its version.
    let r = app
        .send(request(Method::DELETE, &format!("/api/v1/leads/{lid}"), Some(&rep)).insert_header(("If-Match", "\"9\"")))
        .await;
    assert_eq!(r.status, 412, "{}", r.text);
    let same = app.get(&format!("/api/v1/leads/{lid}"), &rep).await;
    assert_eq!((same.status, same.etag_version()), (200, 1));
    // The current version: deleted, then restored, each an event.
    let r = app
        .send(request(Method::DELETE, &format!("/api/v1/leads/{lid}"), Some(&rep)).insert_header(("If-Match", "\"1\"")))
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(app.get(&format!("/api/v1/leads/{lid}"), &rep).await.status, 404);
    let r = app
        .send(request(
            Method::POST,
            &format!("/api/v1/leads/{lid}/restore"),
            Some(&rep),
        ))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["person_name"], "回收 Lead");
    let r = app
        .send(request(
            Method::POST,
            &format!("/api/v1/leads/{lid}/restore"),
            Some(&rep),
        ))
        .await;
    assert_eq!(r.status, 404, "only a deleted lead is restored");
    assert_eq!(
        app.db.count(&format!(
            "SELECT count(*) FROM outbox_events WHERE aggregate_id = '{lid}' \
             AND event_type IN ('lead.deleted', 'lead.restored') AND payload->'actor'->>'kind' = 'user'"
        )),
        2
    );

    // A deal comes back only under a live account.
    let d = app
        .deal(&rep, json!({"name": "Recycled deal", "account_id": aid}))
        .await;
    let did = d["id"].as_str().unwrap().to_owned();
    assert_eq!(
        app.delete(&format!("/api/v1/opportunities/{did}"), &rep).await.status,
        204
    );
    assert_eq!(app.delete(&format!("/api/v1/accounts/{aid}"), &rep).await.status, 204);
    let r = app
        .send(request(
            Method::POST,
            &format!("/api/v1/opportunities/{did}/restore"),
            Some(&rep),
        ))
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(r.code(), "account_deleted");
    assert_eq!(
        app.db.count(&format!(
            "SELECT count(*) FROM opportunities WHERE id = '{did}' AND deleted_at IS NOT NULL"
        )),
        1
    );

    // Only a draft or rejected quote is deleted.
    let admin = app.token(app.org.admin);
    let p = product(&app, &admin, "RC-1", "1000.00", "400.00").await;
    let (deal_id, _) = deal(&app, &rep).await;
    let q = quote(
        &app,
        &rep,
        &deal_id,
        json!([{"product_id": p["id"], "quantity": "1"}]),
        "0",
    )
    .await;
    let qid = q["id"].as_str().unwrap().to_owned();
    let r = app.post(&format!("/api/v1/quotes/{qid}/submit"), &rep, json!({})).await;
    assert_eq!(r.body["status"], "approved", "{}", r.text);
    let r = app.delete(&format!("/api/v1/quotes/{qid}"), &rep).await;
    assert_eq!(r.status, 409, "{}", r.text);
    assert_eq!(r.code(), "not_draft");
    assert_eq!(
        app.get(&format!("/api/v1/quotes/{qid}"), &rep).await.body["status"],
        "approved"
    );
}
