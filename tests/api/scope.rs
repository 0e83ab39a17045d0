//! Data scope: records outside the caller's scope look exactly like missing ones,
//! through every path.

use actix_web::http::Method;
use crm_test_support::app::{request, start};
use serde_json::json;

#[actix_web::test]
async fn each_role_sees_its_scope() {
    let app = start().await;
    let (e1, e1b, e2, n1) = (
        app.token(app.org.rep_east1),
        app.token(app.org.rep_east1b),
        app.token(app.org.rep_east2),
        app.token(app.org.rep_north1),
    );
    let a_e1 = app.account(&e1, "East One Ltd").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let a_e1b = app.account(&e1b, "East One B Ltd").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let a_e2 = app.account(&e2, "East Two Ltd").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let a_n1 = app.account(&n1, "North One Ltd").await["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    let app = &app;
    let list = |token: String| async move { sorted(app.get("/api/v1/accounts?limit=200", &token).await.ids()) };
    assert_eq!(list(e1.clone()).await, sorted(vec![a_e1.clone()]));
    assert_eq!(
        list(app.token(app.org.manager_east)).await,
        sorted(vec![a_e1.clone(), a_e1b.clone(), a_e2.clone()])
    );
    let all = sorted(vec![a_e1.clone(), a_e1b.clone(), a_e2.clone(), a_n1.clone()]);
    for who in [
        app.org.director,
        app.org.admin,
        app.org.presales,
        app.org.finance,
        app.org.legal,
    ] {
        assert_eq!(list(app.token(who)).await, all);
    }
    // Marketing sees only what it brought in.
    assert!(list(app.token(app.org.marketing)).await.is_empty());

    // Every path to another rep's record is a 404, indistinguishable from a missing id.
    let missing = uuid::Uuid::now_v7();
    for id in [a_e1b.clone(), missing.to_string()] {
        let get = app.get(&format!("/api/v1/accounts/{id}"), &e1).await;
        assert_eq!(get.status, 404);
        assert_eq!(get.body["detail"], "account not found");
        assert_eq!(
            app.patch(&format!("/api/v1/accounts/{id}"), &e1, 1, json!({"tier": "A"}))
                .await
                .status,
            404
        );
        assert_eq!(app.delete(&format!("/api/v1/accounts/{id}"), &e1).await.status, 404);
        assert_eq!(
            app.get(&format!("/api/v1/accounts/{id}/history"), &e1).await.status,
            404
        );
        let r = app
            .send(request(
                Method::POST,
                &format!("/api/v1/accounts/{id}/restore"),
                Some(&e1),
            ))
            .await;
        assert_eq!(r.status, 404);
    }
    // Filters and search cannot reach it either.
    let r = app
        .get(&format!("/api/v1/accounts?owner_id={}", app.org.rep_east1b), &e1)
        .await;
    assert!(r.ids().is_empty());
    let r = app.get("/api/v1/accounts?q=East%20One%20B", &e1).await;
    assert!(r.ids().is_empty());
    let r = app
        .get(&format!("/api/v1/accounts?team_id={}", app.org.east1), &e1)
        .await;
    assert_eq!(r.ids(), vec![a_e1.clone()]);
    // Nor can a contact be attached to it.
    let r = app
        .post("/api/v1/contacts", &e1, json!({"account_id": a_e1b, "name": "Sneaky"}))
        .await;
    assert_eq!(r.status, 422);
    assert_eq!(r.body["errors"][0]["field"], "account_id");
    // The manager can change records in the region but not in the north.
    let m = app.token(app.org.manager_east);
    assert_eq!(
        app.patch(&format!("/api/v1/accounts/{a_e2}"), &m, 1, json!({"tier": "A"}))
            .await
            .status,
        200
    );
    assert_eq!(
        app.patch(&format!("/api/v1/accounts/{a_n1}"), &m, 1, json!({"tier": "A"}))
            .await
            .status,
        404
    );
}

#[actix_web::test]
async fn read_only_roles_cannot_write() {
    let app = start().await;
    let presales = app.token(app.org.presales);
    let r = app.post("/api/v1/accounts", &presales, json!({"name": "Nope"})).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.code(), "forbidden");
    let rep = app.token(app.org.rep_east1);
    let id = app.account(&rep, "Read Only Target").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(app.get(&format!("/api/v1/accounts/{id}"), &presales).await.status, 200);
    assert_eq!(
        app.patch(&format!("/api/v1/accounts/{id}"), &presales, 1, json!({"tier": "A"}))
            .await
            .status,
        403
    );
    assert_eq!(
        app.delete(&format!("/api/v1/accounts/{id}"), &presales).await.status,
        403
    );
    assert_eq!(app.db.count("SELECT count(*) FROM accounts WHERE tier IS NOT NULL"), 0);
}

#[actix_web::test]
async fn cursors_cannot_widen_the_scope() {
    let app = start().await;
    let director = app.token(app.org.director);
    let e1 = app.token(app.org.rep_east1);
    for i in 0..3 {
        app.account(&e1, &format!("Mine {i}")).await;
        app.account(&app.token(app.org.rep_north1), &format!("Theirs {i}"))
            .await;
    }
    let page = app.get("/api/v1/accounts?limit=1&sort=name", &director).await;
    let cursor = page.body["next_cursor"].as_str().unwrap().to_owned();
    // A cursor taken from the director's list, replayed by the rep, still only shows the rep's rows.
    let r = app
        .get(&format!("/api/v1/accounts?limit=200&sort=name&cursor={cursor}"), &e1)
        .await;
    assert_eq!(r.status, 200);
    assert!(r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|a| a["owner_id"].as_str().unwrap() == app.org.rep_east1.to_string()));
    // A forged cursor pointing anywhere is just a position, never a filter.
    let forged = "eyJzIjoibGlzdHxuYW1lIiwidiI6WyIiXSwiaWQiOiIwMDAwMDAwMC0wMDAwLTAwMDAtMDAwMC0wMDAwMDAwMDAwMDAifQ";
    let r = app
        .get(&format!("/api/v1/accounts?limit=200&sort=name&cursor={forged}"), &e1)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.ids().len(), 3);
}

#[actix_web::test]
async fn delta_sync_respects_scope() {
    let app = start().await;
    let e1 = app.token(app.org.rep_east1);
    let n1 = app.token(app.org.rep_north1);
    let since = chrono::Utc::now() - chrono::Duration::seconds(5);
    let mine = app.account(&e1, "Synced Mine").await["id"].as_str().unwrap().to_owned();
    let gone = app.account(&e1, "Synced Gone").await["id"].as_str().unwrap().to_owned();
    let theirs = app.account(&n1, "Synced Theirs").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(app.delete(&format!("/api/v1/accounts/{gone}"), &e1).await.status, 204);
    assert_eq!(app.delete(&format!("/api/v1/accounts/{theirs}"), &n1).await.status, 204);
    let ts = since
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
        .replace('+', "%2B");
    let r = app.get(&format!("/api/v1/accounts?updated_since={ts}"), &e1).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.ids(), vec![mine]);
    assert_eq!(r.body["deleted_ids"], json!([gone]));
}
