//! Extractor failures and transport errors are problem+json too.

use actix_web::http::Method;
use crm_test_support::app::{request, start, start_with};

#[actix_web::test]
async fn malformed_bodies_and_paths() {
    let app = start().await;
    let rep = app.token(app.org.rep_east1);
    let r = app
        .send(
            request(Method::POST, "/api/v1/accounts", Some(&rep))
                .insert_header(("Content-Type", "application/json"))
                .set_payload("{\"name\": \"unterminated"),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.code(), "malformed_json");
    assert_eq!(r.header("content-type").as_deref(), Some("application/problem+json"));
    let r = app
        .send(
            request(Method::POST, "/api/v1/accounts", Some(&rep))
                .insert_header(("Content-Type", "text/plain"))
                .set_payload("name=x"),
        )
        .await;
    assert_eq!(r.status, 415);
    assert_eq!(r.code(), "unsupported_media_type");
    let r = app
        .send(
            request(Method::POST, "/api/v1/accounts", Some(&rep))
                .insert_header(("Content-Type", "application/json"))
                .set_payload("{\"name\": \"a\"} trailing"),
        )
        .await;
    assert_eq!(r.status, 400);
    let r = app.get("/api/v1/accounts/not-a-uuid", &rep).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.code(), "invalid_path");
    assert_eq!(app.db.count("SELECT count(*) FROM accounts"), 0);
}

#[actix_web::test]
async fn oversized_bodies_are_413() {
    let app = start_with(|c| c.body_limit = 256).await;
    let rep = app.token(app.org.rep_east1);
    let r = app
        .send(
            request(Method::POST, "/api/v1/accounts", Some(&rep))
                .set_json(serde_json::json!({"name": "x", "notes": "n".repeat(1000)})),
        )
        .await;
    assert_eq!(r.status, 413);
    assert_eq!(r.code(), "payload_too_large");
    assert_eq!(app.db.count("SELECT count(*) FROM accounts"), 0);
}

#[actix_web::test]
async fn server_errors_reveal_nothing() {
    let app = start().await;
    let rep = app.token(app.org.rep_east1);
    app.account(&rep, "Row To Read").await;
    // Break the table under the app: the client gets a bare 500, the log gets the cause.
    use diesel::RunQueryDsl;
    diesel::sql_query("ALTER TABLE accounts RENAME COLUMN notes TO notes_gone")
        .execute(&mut app.db.conn())
        .unwrap();
    let r = app.get("/api/v1/accounts", &rep).await;
    assert_eq!(r.status, 500);
    assert_eq!(r.code(), "internal_error");
    assert!(!r.text.contains("notes"), "{}", r.text);
    assert!(!r.text.to_lowercase().contains("column"), "{}", r.text);
}
