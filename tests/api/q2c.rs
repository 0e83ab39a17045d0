//! Helpers for the quote-to-cash tests.

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use crm_test_support::app::TestApp;
use serde_json::{json, Value};

/// A product created by an admin.
pub async fn product<S, B>(app: &TestApp<S>, admin: &str, code: &str, price: &str, cost: &str) -> Value
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let r = app
        .post(
            "/api/v1/products",
            admin,
            json!({"code": code, "name": format!("产品 {code}"), "list_price": price, "standard_cost": cost}),
        )
        .await;
    assert_eq!(r.status, 201, "create product: {}", r.text);
    r.body
}

/// A fresh account with a deal owned by the token's user: (deal id, account id).
pub async fn deal<S, B>(app: &TestApp<S>, token: &str) -> (String, String)
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let name = format!("Q2C {}", uuid::Uuid::now_v7());
    let a = app.account(token, &name).await;
    let account_id = a["id"].as_str().unwrap().to_owned();
    let d = app
        .deal(
            token,
            json!({"name": format!("{name} deal"), "account_id": account_id, "amount": "100000.00"}),
        )
        .await;
    (d["id"].as_str().unwrap().to_owned(), account_id)
}

/// A draft quote.
pub async fn quote<S, B>(app: &TestApp<S>, token: &str, deal_id: &str, lines: Value, header: &str) -> Value
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let r = app
        .post(
            "/api/v1/quotes",
            token,
            json!({"opportunity_id": deal_id, "lines": lines, "header_discount_pct": header}),
        )
        .await;
    assert_eq!(r.status, 201, "create quote: {}", r.text);
    r.body
}

/// Approvals of a record, newest first.
pub async fn approvals_of<S, B>(app: &TestApp<S>, token: &str, object_type: &str, id: &str) -> Vec<Value>
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let r = app
        .get(
            &format!("/api/v1/approvals?object_type={object_type}&object_id={id}"),
            token,
        )
        .await;
    assert_eq!(r.status, 200, "approvals: {}", r.text);
    r.body["items"].as_array().unwrap().clone()
}

/// Takes a draft contract through legal review to signed (as its rep, legal approving).
pub async fn signed<S, B>(app: &TestApp<S>, rep: &str, contract_id: &str)
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let r = app
        .post(&format!("/api/v1/contracts/{contract_id}/submit"), rep, json!({}))
        .await;
    assert_eq!(r.body["status"], "legal_review", "submit: {}", r.text);
    let legal = app.token(app.org.legal);
    let a = approvals_of(app, rep, "contract", contract_id).await;
    let approval = a[0]["id"].as_str().unwrap();
    let r = app
        .post(&format!("/api/v1/approvals/{approval}/approve"), &legal, json!({}))
        .await;
    assert_eq!(r.body["status"], "approved", "legal: {}", r.text);
    let r = app
        .post(
            &format!("/api/v1/contracts/{contract_id}/sign"),
            rep,
            json!({"signed_copy_ref": "files/signed.pdf"}),
        )
        .await;
    assert_eq!(r.body["status"], "signed", "sign: {}", r.text);
}
