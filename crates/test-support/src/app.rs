//! The real app, in-process, over a test database with the fixture organisation.

use actix_http::Request;
use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::header::HeaderMap;
use actix_web::http::Method;
use actix_web::test::{self, TestRequest};
use crm_db::pool::{build_pool, PoolConfig};
use crm_db::Db;
use crm_http::{AppState, HttpConfig};
use serde_json::Value;
use uuid::Uuid;

use crate::fixtures::{create_org, Org};
use crate::TestDb;

pub const TEST_SECRET: &str = "test-secret-test-secret-test-secret-0123456789";

/// A response, read whole.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
    pub body: Value,
    /// The body as sent (binary answers such as spreadsheets).
    pub bytes: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
    }

    /// The version from the `ETag` header.
    pub fn etag_version(&self) -> i32 {
        self.header("etag")
            .expect("ETag header")
            .trim_matches('"')
            .parse()
            .expect("numeric ETag")
    }

    /// `code` of a problem+json body.
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }

    /// Ids of `items` in a list body.
    pub fn ids(&self) -> Vec<String> {
        self.body["items"]
            .as_array()
            .map(|a| a.iter().filter_map(|i| i["id"].as_str().map(str::to_owned)).collect())
            .unwrap_or_default()
    }
}

/// A request builder, with a bearer token when given.
pub fn request(method: Method, path: &str, token: Option<&str>) -> TestRequest {
    let mut r = TestRequest::default().method(method).uri(path);
    if let Some(t) = token {
        r = r.insert_header(("Authorization", format!("Bearer {t}")));
    }
    r
}

/// The app plus its database and organisation.
pub struct TestApp<S> {
    pub db: TestDb,
    pub state: AppState,
    pub org: Org,
    svc: S,
}

/// Starts an app over a fresh database with the fixture organisation.
pub async fn start(
) -> TestApp<impl Service<Request, Response = ServiceResponse<impl MessageBody>, Error = actix_web::Error>> {
    start_with(|_| {}).await
}

/// Like [`start`], with a chance to adjust the configuration.
pub async fn start_with(
    tweak: impl FnOnce(&mut HttpConfig),
) -> TestApp<impl Service<Request, Response = ServiceResponse<impl MessageBody>, Error = actix_web::Error>> {
    let db = TestDb::new();
    let org = create_org(&mut db.conn());
    let pool = build_pool(
        &db.url,
        &PoolConfig {
            max_size: 4,
            min_idle: Some(1),
            ..PoolConfig::default()
        },
    )
    .unwrap();
    let mut cfg = HttpConfig::with_secret(TEST_SECRET);
    tweak(&mut cfg);
    let state = AppState::new(Db::new(pool), cfg);
    let svc = test::init_service(crm_http::routes::app(state.clone())).await;
    TestApp { db, state, org, svc }
}

impl<S, B> TestApp<S>
where
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    /// An access token for a user (as if logged in), without the password round trip.
    pub fn token(&self, user_id: Uuid) -> String {
        self.state.jwt.issue(user_id, Uuid::now_v7()).unwrap().0
    }

    pub async fn send(&self, req: TestRequest) -> Resp {
        self.send_from(req, "10.1.2.3").await
    }

    /// Sends a request from a client address.
    pub async fn send_from(&self, req: TestRequest, ip: &str) -> Resp {
        let req = req.peer_addr(format!("{ip}:5555").parse().unwrap()).to_request();
        let resp = test::call_service(&self.svc, req).await;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = test::read_body(resp).await;
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Resp {
            status,
            headers,
            text,
            body,
            bytes: bytes.to_vec(),
        }
    }

    pub async fn get(&self, path: &str, token: &str) -> Resp {
        self.send(request(Method::GET, path, Some(token))).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Resp {
        self.send(request(Method::POST, path, Some(token)).set_json(body)).await
    }

    pub async fn put(&self, path: &str, token: &str, body: Value) -> Resp {
        self.send(request(Method::PUT, path, Some(token)).set_json(body)).await
    }

    pub async fn patch(&self, path: &str, token: &str, version: i32, body: Value) -> Resp {
        self.send(
            request(Method::PATCH, path, Some(token))
                .insert_header(("If-Match", format!("\"{version}\"")))
                .set_json(body),
        )
        .await
    }

    pub async fn delete(&self, path: &str, token: &str) -> Resp {
        self.send(request(Method::DELETE, path, Some(token))).await
    }

    pub async fn login(&self, email: &str, password: &str) -> Resp {
        self.send(
            request(Method::POST, "/api/v1/auth/login", None)
                .set_json(serde_json::json!({"email": email, "password": password})),
        )
        .await
    }

    /// Logs in from a client address.
    pub async fn login_from(&self, email: &str, password: &str, ip: &str) -> Resp {
        self.send_from(
            request(Method::POST, "/api/v1/auth/login", None)
                .set_json(serde_json::json!({"email": email, "password": password})),
            ip,
        )
        .await
    }

    /// Creates an account as `token`'s user and returns the response body.
    pub async fn account(&self, token: &str, name: &str) -> Value {
        let r = self
            .post("/api/v1/accounts", token, serde_json::json!({"name": name}))
            .await;
        assert_eq!(r.status, 201, "create account: {}", r.text);
        r.body
    }

    /// Creates a contact at an account and returns its body.
    pub async fn contact(&self, token: &str, account_id: &str, name: &str) -> Value {
        let r = self
            .post(
                "/api/v1/contacts",
                token,
                serde_json::json!({"account_id": account_id, "name": name}),
            )
            .await;
        assert_eq!(r.status, 201, "create contact: {}", r.text);
        r.body
    }

    /// Creates a deal with the given body and returns its body.
    pub async fn deal(&self, token: &str, body: Value) -> Value {
        let r = self.post("/api/v1/opportunities", token, body).await;
        assert_eq!(r.status, 201, "create opportunity: {}", r.text);
        r.body
    }

    /// The default pipeline (with stages).
    pub async fn default_pipeline(&self, token: &str) -> Value {
        let r = self.get("/api/v1/pipelines", token).await;
        assert_eq!(r.status, 200, "{}", r.text);
        r.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["is_default"] == true)
            .cloned()
            .expect("a default pipeline")
    }

    /// Moves a deal; returns the response.
    pub async fn move_stage(&self, token: &str, deal_id: &str, stage_id: &str, reason: Option<&str>) -> Resp {
        let mut body = serde_json::json!({"stage_id": stage_id});
        if let Some(r) = reason {
            body["reason"] = serde_json::json!(r);
        }
        self.post(&format!("/api/v1/opportunities/{deal_id}/stage"), token, body)
            .await
    }

    /// Marks a key task done.
    pub async fn check_task(&self, token: &str, deal_id: &str, stage_id: &str, task: &str) {
        let r = self
            .send(
                request(
                    Method::PUT,
                    &format!("/api/v1/opportunities/{deal_id}/checklist/{stage_id}/{task}"),
                    Some(token),
                )
                .set_json(serde_json::json!({"done": true})),
            )
            .await;
        assert_eq!(r.status, 200, "check {task}: {}", r.text);
    }

    /// Attaches an output with a code.
    pub async fn attach(&self, token: &str, deal_id: &str, code: &str) {
        let r = self
            .post(
                &format!("/api/v1/opportunities/{deal_id}/outputs"),
                token,
                serde_json::json!({"output_code": code, "title": code}),
            )
            .await;
        assert_eq!(r.status, 201, "attach {code}: {}", r.text);
    }

    /// Replaces the field permissions of the built-in role `role_key` (as admin).
    pub async fn set_field_access(&self, admin: &str, role_key: &str, items: Value) {
        let roles = self.get("/api/v1/admin/roles", admin).await;
        let role = roles.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["key"] == role_key)
            .unwrap_or_else(|| panic!("role {role_key}"))["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let r = self
            .send(
                request(
                    Method::PUT,
                    &format!("/api/v1/admin/roles/{role}/field-permissions"),
                    Some(admin),
                )
                .set_json(serde_json::json!({ "items": items })),
            )
            .await;
        assert_eq!(r.status, 200, "field permissions: {}", r.text);
    }
}

/// The id of the stage with `code` in a pipeline body.
pub fn stage_id(pipeline: &Value, code: &str) -> String {
    pipeline["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["code"] == code)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}
