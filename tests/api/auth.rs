//! Login, refresh rotation, logout, throttling, disabled users, tokens, API keys.

use actix_web::http::Method;
use crm_test_support::app::{request, start, start_with, TEST_SECRET};
use crm_test_support::fixtures::PASSWORD;
use serde_json::json;

#[actix_web::test]
async fn login_returns_tokens_that_work() {
    let app = start().await;
    let r = app.login("REP.East1@test.local ", PASSWORD).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["token_type"], "Bearer");
    assert_eq!(r.body["expires_in"], 900);
    assert_eq!(r.header("cache-control").as_deref(), Some("no-store"));
    let access = r.body["access_token"].as_str().unwrap();
    assert_eq!(access.split('.').count(), 3);
    let me = app.get("/api/v1/me", access).await;
    assert_eq!(me.status, 200);
    assert_eq!(me.body["email"], "rep.east1@test.local");
    assert_eq!(me.body["roles"], json!(["sales_rep"]));
    assert_eq!(me.body["data_scope"]["accounts"], "own");
    assert!(me.body["permissions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["resource"] == "accounts" && p["action"] == "create"));
    assert!(!me.text.contains("password"));
}

#[actix_web::test]
async fn wrong_password_and_unknown_email_answer_the_same() {
    let app = start().await;
    let wrong = app.login("rep.east1@test.local", "nope-nope").await;
    let unknown = app.login("nobody@test.local", "nope-nope").await;
    assert_eq!(wrong.status, 401);
    assert_eq!(unknown.status, 401);
    assert_eq!(wrong.body, unknown.body);
    assert_eq!(wrong.code(), "invalid_credentials");
    let blank = app.login("", "").await;
    assert_eq!(blank.status, 422);
}

#[actix_web::test]
async fn repeated_failures_for_one_account_are_throttled() {
    let app = start().await;
    for _ in 0..5 {
        assert_eq!(app.login("rep.east1@test.local", "wrong-password").await.status, 401);
    }
    let r = app.login("rep.east1@test.local", "wrong-password").await;
    assert_eq!(r.status, 429);
    assert_eq!(r.code(), "too_many_attempts");
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!(retry > 0 && retry <= 900);
    // Locked even with the right password, and an unknown e-mail is throttled the same way.
    assert_eq!(app.login("rep.east1@test.local", PASSWORD).await.status, 429);
    for _ in 0..5 {
        app.login("ghost@test.local", "x").await;
    }
    assert_eq!(app.login("ghost@test.local", "x").await.status, 429);
    // Another account from the same address is not locked by these.
    assert_eq!(app.login("rep.east2@test.local", PASSWORD).await.status, 200);
}

#[actix_web::test]
async fn repeated_failures_from_one_address_are_throttled() {
    let app = start_with(|c| c.ip_throttle.max_failures = 3).await;
    for i in 0..3 {
        assert_eq!(app.login(&format!("user{i}@test.local"), "x").await.status, 401);
    }
    let r = app.login("rep.east1@test.local", PASSWORD).await;
    assert_eq!(r.status, 429);
    assert!(r.header("retry-after").is_some());
}

#[actix_web::test]
async fn refresh_rotates_and_reuse_revokes_the_session() {
    let app = start_with(|c| c.refresh_reuse_grace = std::time::Duration::ZERO).await;
    let login = app.login("rep.east1@test.local", PASSWORD).await;
    let first = login.body["refresh_token"].as_str().unwrap().to_owned();
    let r = app
        .send(request(Method::POST, "/api/v1/auth/refresh", None).set_json(json!({"refresh_token": first})))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let second = r.body["refresh_token"].as_str().unwrap().to_owned();
    let access = r.body["access_token"].as_str().unwrap().to_owned();
    assert_ne!(first, second);
    assert_eq!(app.get("/api/v1/me", &access).await.status, 200);

    // The first token again: treated as theft, the whole family is revoked.
    let r = app
        .send(request(Method::POST, "/api/v1/auth/refresh", None).set_json(json!({"refresh_token": first})))
        .await;
    assert_eq!(r.status, 401);
    assert_eq!(r.code(), "refresh_token_reused");
    let r = app
        .send(request(Method::POST, "/api/v1/auth/refresh", None).set_json(json!({"refresh_token": second})))
        .await;
    assert_eq!(r.status, 401);
    let r = app.get("/api/v1/me", &access).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.code(), "session_revoked");

    let r = app
        .send(request(Method::POST, "/api/v1/auth/refresh", None).set_json(json!({"refresh_token": "made-up"})))
        .await;
    assert_eq!(r.status, 401);
    assert_eq!(r.code(), "invalid_refresh_token");
}

#[actix_web::test]
async fn logout_ends_the_session() {
    let app = start().await;
    let login = app.login("rep.east1@test.local", PASSWORD).await;
    let access = login.body["access_token"].as_str().unwrap().to_owned();
    let refresh = login.body["refresh_token"].as_str().unwrap().to_owned();
    let other = app.login("rep.east1@test.local", PASSWORD).await;
    let other_access = other.body["access_token"].as_str().unwrap().to_owned();

    let r = app
        .send(request(Method::POST, "/api/v1/auth/logout", Some(&access)))
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(app.get("/api/v1/me", &access).await.code(), "session_revoked");
    let r = app
        .send(request(Method::POST, "/api/v1/auth/refresh", None).set_json(json!({"refresh_token": refresh})))
        .await;
    assert_eq!(r.status, 401);
    // Another device's session is untouched.
    assert_eq!(app.get("/api/v1/me", &other_access).await.status, 200);
}

#[actix_web::test]
async fn disabled_users_cannot_log_in_and_their_tokens_stop() {
    let app = start().await;
    let rep_token = app.token(app.org.rep_east1);
    assert_eq!(app.get("/api/v1/me", &rep_token).await.status, 200);
    let admin = app.token(app.org.admin);
    let user = app
        .get(&format!("/api/v1/admin/users/{}", app.org.rep_east1), &admin)
        .await;
    let r = app
        .patch(
            &format!("/api/v1/admin/users/{}", app.org.rep_east1),
            &admin,
            user.etag_version(),
            json!({"is_active": false}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["is_active"], false);
    let r = app.get("/api/v1/me", &rep_token).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.code(), "account_disabled");
    assert_eq!(app.login("rep.east1@test.local", PASSWORD).await.status, 401);
}

#[actix_web::test]
async fn bad_tokens_are_rejected() {
    let app = start().await;
    let r = app.send(request(Method::GET, "/api/v1/me", None)).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.code(), "unauthenticated");
    assert_eq!(r.header("www-authenticate").as_deref(), Some("Bearer"));

    let good = app.token(app.org.rep_east1);
    let mut tampered = good.clone();
    tampered.pop();
    tampered.push(if good.ends_with('A') { 'B' } else { 'A' });
    assert_eq!(app.get("/api/v1/me", &tampered).await.code(), "invalid_token");

    use jsonwebtoken::{encode, EncodingKey, Header};
    let now = chrono::Utc::now().timestamp();
    let claims = |exp: i64, aud: &str| json!({"iss": "crm", "aud": aud, "sub": app.org.rep_east1, "sid": uuid::Uuid::now_v7(), "iat": now, "exp": exp, "jti": uuid::Uuid::now_v7()});
    let key = EncodingKey::from_secret(TEST_SECRET.as_bytes());
    let expired = encode(&Header::default(), &claims(now - 120, "crm-api"), &key).unwrap();
    assert_eq!(app.get("/api/v1/me", &expired).await.code(), "token_expired");
    let wrong_aud = encode(&Header::default(), &claims(now + 600, "other"), &key).unwrap();
    assert_eq!(app.get("/api/v1/me", &wrong_aud).await.code(), "invalid_token");
    let hs512 = encode(
        &Header::new(jsonwebtoken::Algorithm::HS512),
        &claims(now + 600, "crm-api"),
        &key,
    )
    .unwrap();
    assert_eq!(app.get("/api/v1/me", &hs512).await.code(), "invalid_token");
    let other_key = encode(
        &Header::default(),
        &claims(now + 600, "crm-api"),
        &EncodingKey::from_secret(b"another-secret-another-secret-xx"),
    )
    .unwrap();
    assert_eq!(app.get("/api/v1/me", &other_key).await.code(), "invalid_token");
    // alg=none
    let none = format!(
        "{}.{}.",
        "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0",
        base64_url(&serde_json::to_vec(&claims(now + 600, "crm-api")).unwrap())
    );
    assert_eq!(app.get("/api/v1/me", &none).await.status, 401);
}

fn base64_url(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

#[actix_web::test]
async fn api_keys_act_as_a_service_user_with_one_role() {
    let app = start().await;
    let admin = app.token(app.org.admin);
    let svc = app
        .post(
            "/api/v1/admin/users",
            &admin,
            json!({"email": "dingtalk@test.local", "name": "DingTalk", "is_service": true, "team_id": app.org.east}),
        )
        .await;
    assert_eq!(svc.status, 201, "{}", svc.text);
    let svc_id = svc.body["id"].as_str().unwrap().to_owned();

    // Only service users get keys.
    let r = app
        .post(
            "/api/v1/admin/api-keys",
            &admin,
            json!({"name": "x", "user_id": app.org.rep_east1, "role": "sales_manager"}),
        )
        .await;
    assert_eq!(r.status, 422);
    assert_eq!(r.body["errors"][0]["field"], "user_id");

    let created = app
        .send(
            request(Method::POST, "/api/v1/admin/api-keys", Some(&admin))
                .insert_header(("Idempotency-Key", "key-1"))
                .set_json(json!({"name": "DingTalk robot", "user_id": svc_id, "role": "sales_manager"})),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let key = created.body["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with(&format!("crm_{}_", created.body["prefix"].as_str().unwrap())));
    // Stored hashed: the secret is nowhere in the database.
    assert_eq!(
        app.db.count(&format!(
            "SELECT count(*) FROM api_keys WHERE key_hash::text LIKE '%{key}%' OR prefix = '{key}'"
        )),
        0
    );
    assert_eq!(
        app.db.count(&format!(
            "SELECT count(*) FROM idempotency_keys WHERE response_body::text LIKE '%{key}%'"
        )),
        0
    );
    // A replay does not show the secret again.
    let replay = app
        .send(
            request(Method::POST, "/api/v1/admin/api-keys", Some(&admin))
                .insert_header(("Idempotency-Key", "key-1"))
                .set_json(json!({"name": "DingTalk robot", "user_id": svc_id, "role": "sales_manager"})),
        )
        .await;
    assert_eq!(replay.status, 201);
    assert_eq!(replay.body["id"], created.body["id"]);
    assert!(replay.body["key"].is_null());

    let me = app
        .send(request(Method::GET, "/api/v1/me", None).insert_header(("X-API-Key", key.as_str())))
        .await;
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!(me.body["roles"], json!(["sales_manager"]));
    assert_eq!(me.body["api_key_id"], created.body["id"]);
    assert_eq!(me.body["data_scope"]["accounts"], "team_and_below");
    let me = app.get("/api/v1/me", &key).await;
    assert_eq!(me.status, 200);
    let acc = app
        .post("/api/v1/accounts", &key, json!({"name": "From DingTalk"}))
        .await;
    assert_eq!(acc.status, 201, "{}", acc.text);
    assert_eq!(acc.body["owner_id"].as_str().unwrap(), svc_id);

    // last_used_at is recorded (asynchronously).
    for _ in 0..50 {
        if app
            .db
            .count("SELECT count(*) FROM api_keys WHERE last_used_at IS NOT NULL")
            == 1
        {
            break;
        }
        actix_web::rt::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        app.db
            .count("SELECT count(*) FROM api_keys WHERE last_used_at IS NOT NULL"),
        1
    );

    let list = app.get("/api/v1/admin/api-keys", &admin).await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
    assert!(!list.text.contains(&key));
    assert!(list.body["items"][0].get("key").is_none());

    let wrong = format!("{}x", &key[..key.len() - 1]);
    assert_eq!(app.get("/api/v1/me", &wrong).await.code(), "invalid_api_key");
    let id = created.body["id"].as_str().unwrap();
    assert_eq!(
        app.delete(&format!("/api/v1/admin/api-keys/{id}"), &admin).await.status,
        204
    );
    assert_eq!(app.get("/api/v1/me", &key).await.code(), "invalid_api_key");
    // Non-admins cannot manage keys.
    let rep = app.token(app.org.rep_east1);
    assert_eq!(app.get("/api/v1/admin/api-keys", &rep).await.status, 403);
}

#[actix_web::test]
async fn a_retried_refresh_within_the_grace_period_keeps_the_session() {
    let app = start().await;
    let refresh =
        |token: String| request(Method::POST, "/api/v1/auth/refresh", None).set_json(json!({"refresh_token": token}));
    let login = app.login("rep.east1@test.local", PASSWORD).await;
    let first = login.body["refresh_token"].as_str().unwrap().to_owned();
    // The answer to this refresh is "lost"; the client retries with the same token, twice.
    let lost = app.send(refresh(first.clone())).await;
    assert_eq!(lost.status, 200);
    let lost_token = lost.body["refresh_token"].as_str().unwrap().to_owned();
    let retry = app.send(refresh(first.clone())).await;
    assert_eq!(retry.status, 200, "{}", retry.text);
    let retry = app.send(refresh(first.clone())).await;
    assert_eq!(retry.status, 200, "{}", retry.text);
    let current = retry.body["refresh_token"].as_str().unwrap().to_owned();
    let access = retry.body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(app.get("/api/v1/me", &access).await.status, 200);
    // One live refresh token per session: the replaced successors are gone.
    let family_live = "SELECT count(*) FROM refresh_tokens WHERE used_at IS NULL AND revoked_at IS NULL";
    assert_eq!(app.db.count(family_live), 1);
    assert_eq!(app.send(refresh(lost_token)).await.code(), "invalid_refresh_token");
    let r = app.send(refresh(current)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(app.get("/api/v1/me", &access).await.status, 200);

    // A retry after the successor was used is theft too.
    let login = app.login("rep.east1@test.local", PASSWORD).await;
    let a = login.body["refresh_token"].as_str().unwrap().to_owned();
    let b = app.send(refresh(a.clone())).await.body["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(app.send(refresh(b)).await.status, 200);
    assert_eq!(app.send(refresh(a)).await.code(), "refresh_token_reused");

    // And so is a re-use after the grace period.
    let login = app.login("rep.east1@test.local", PASSWORD).await;
    let a = login.body["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(app.send(refresh(a.clone())).await.status, 200);
    diesel::RunQueryDsl::execute(
        diesel::sql_query(
            "UPDATE refresh_tokens SET used_at = used_at - interval '1 minute', \
             created_at = created_at - interval '1 minute' WHERE used_at IS NOT NULL AND revoked_at IS NULL",
        ),
        &mut app.db.conn(),
    )
    .unwrap();
    assert_eq!(app.send(refresh(a)).await.code(), "refresh_token_reused");
}
