//! Customer tiering: rules over each account's figures place it in A-D, the daily job
//! and related changes recompute it, amounts of other currencies never count, and every
//! change is audited and kept in the account's tier history.

use std::sync::Arc;

use crm_test_support::app::{start, TestApp};
use diesel::{Connection, RunQueryDsl};
use serde_json::{json, Value};
use uuid::Uuid;

/// Runs the tiering subscriber over everything committed so far, as a worker would.
fn dispatch<S>(app: &TestApp<S>) -> usize {
    let pool = crm_db::pool::build_pool(&app.db.url, &crm_db::pool::PoolConfig::default()).unwrap();
    let setup = crm_worker::Setup {
        pool,
        database_url: app.db.url.clone(),
        registry: crm_worker::builtin::registry(&Default::default()),
        config: crm_worker::WorkerConfig::default(),
        clock: app.state.clock.clone(),
        metrics: Arc::new(crm_worker::WorkerMetrics::default()),
    };
    let mut total = 0;
    loop {
        let n = crm_worker::dispatch::dispatch_once(&setup, &crm_worker::builtin::Tiering).unwrap();
        if n == 0 {
            return total;
        }
        total += n;
    }
}

/// One page of the daily job, as the worker runs it; the tiers it changed.
fn recompute<S>(app: &TestApp<S>) -> usize {
    let mut c = app.db.app_conn();
    let mut after = Uuid::nil();
    let mut changed = 0;
    loop {
        let (n, next) = c
            .transaction(|c| {
                crm_app::tiering::recompute_page(c, &app.state.clock, after)
                    .map_err(|e| diesel::result::Error::QueryBuilderError(e.to_string().into()))
            })
            .unwrap();
        changed += n;
        match next {
            Some(n) => after = n,
            None => return changed,
        }
    }
}

async fn tier_of<S, B>(app: &TestApp<S>, token: &str, id: &str) -> Value
where
    S: actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse<B>,
        Error = actix_web::Error,
    >,
    B: actix_web::body::MessageBody,
{
    let r = app.get(&format!("/api/v1/accounts/{id}"), token).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["tier"].clone()
}

fn config(enabled: bool) -> Value {
    json!({
        "enabled": enabled, "currency": "CNY", "value_days": 365, "activity_days": 30,
        "rules": [
            {"tier": "A", "condition": {"field": "open_pipeline", "op": "gte", "value": "1000000"}},
            {"tier": "B", "condition": {"any": [{"field": "open_pipeline", "op": "gte", "value": "100000"},
                                                 {"field": "contract_amount", "op": "gte", "value": "100000"}]}},
            {"tier": "C", "condition": {"field": "follow_ups", "op": "gte", "value": 2}}
        ],
        "default_tier": "D"
    })
}

#[actix_web::test]
async fn tiers_follow_the_rules_per_currency_on_schedule_and_on_change_with_history() {
    let app = start().await;
    let admin = app.token(app.org.admin);
    let rep = app.token(app.org.rep_east1);
    let rep_n = app.token(app.org.rep_north1);

    // Off by default, with starting rules; only settings admins read or set it.
    let r = app.get("/api/v1/admin/settings/account-tiering", &admin).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["enabled"], false);
    assert_eq!(r.body["rules"].as_array().unwrap().len(), 3);
    let r = app.get("/api/v1/admin/settings/account-tiering", &rep).await;
    assert_eq!(r.status, 403, "{}", r.text);
    let r = app
        .post("/api/v1/admin/settings/account-tiering/recompute", &admin, json!({}))
        .await;
    assert_eq!(r.status, 409, "{}", r.text);
    assert_eq!(r.body["code"], "tiering_disabled");
    // A rule reads tiering figures only.
    let mut bad = config(true);
    bad["rules"][1]["condition"] = json!({"field": "amount", "op": "gte", "value": "1"});
    let r = app.put("/api/v1/admin/settings/account-tiering", &admin, bad).await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(r.body["errors"][0]["field"], "rules[1].condition");
    assert_eq!(r.body["errors"][0]["code"], "unknown_figure");
    // The currency is an active ISO 4217 code, as the document lists them.
    let mut bad = config(true);
    bad["currency"] = json!("AAA");
    let r = app.put("/api/v1/admin/settings/account-tiering", &admin, bad).await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(r.body["errors"][0]["field"], "currency");

    let mut ids = std::collections::BTreeMap::new();
    for key in ["big", "mid", "worked", "quiet", "usd"] {
        let a = app.account(&rep, &format!("分级 {key}")).await;
        ids.insert(key, a["id"].as_str().unwrap().to_owned());
    }
    for (key, amount, currency) in [
        ("big", "1200000", "CNY"),
        ("mid", "200000", "CNY"),
        ("usd", "5000000", "USD"),
    ] {
        app.deal(
            &rep,
            json!({"name": format!("分级 {key}"), "account_id": ids[key], "amount": amount, "currency": currency}),
        )
        .await;
    }
    let now = app.state.clock.now();
    for days in [1, 3, 45] {
        let at = (now - chrono::Duration::days(days)).to_rfc3339();
        let r = app
            .post(
                "/api/v1/activities",
                &rep,
                json!({"type": "call", "subject": "跟进", "account_id": ids["worked"], "occurred_at": at}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
    // Events so far happened while tiering was off: they change nothing.
    dispatch(&app);

    let r = app
        .put("/api/v1/admin/settings/account-tiering", &admin, config(true))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(recompute(&app) >= 5);
    assert_eq!(tier_of(&app, &rep, &ids["big"]).await, "A");
    assert_eq!(tier_of(&app, &rep, &ids["mid"]).await, "B");
    // Two follow-ups in the last 30 days (the third is older).
    assert_eq!(tier_of(&app, &rep, &ids["worked"]).await, "C");
    assert_eq!(tier_of(&app, &rep, &ids["quiet"]).await, "D");
    // Five million dollars are not yuan: nothing converts, nothing adds up.
    assert_eq!(tier_of(&app, &rep, &ids["usd"]).await, "D");
    // A second run changes nothing.
    assert_eq!(recompute(&app), 0);

    let r = app
        .get(&format!("/api/v1/accounts/{}/tier-history", ids["big"]), &rep)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let h = r.body.as_array().unwrap();
    assert_eq!(h.len(), 1, "{}", r.text);
    assert_eq!(h[0]["tier_to"], "A");
    assert!(h[0]["tier_from"].is_null());
    assert_eq!(h[0]["cause"], "schedule");
    assert_eq!(h[0]["rule_index"], 0);
    assert_eq!(h[0]["metrics"]["open_pipeline"], "1200000.00");
    assert_eq!(h[0]["metrics"]["open_deals"], 1);
    let r = app
        .get(&format!("/api/v1/accounts/{}/tier-history", ids["big"]), &rep_n)
        .await;
    assert_eq!(r.status, 404, "{}", r.text);
    // Written as the system, with an audit entry.
    let r = app
        .get(&format!("/api/v1/accounts/{}/history", ids["big"]), &admin)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        r.text.contains("\"tier\""),
        "the tier change is in the account's audit history: {}",
        r.text
    );

    // A new deal on the quiet account moves it when the event is handled.
    app.deal(
        &rep,
        json!({"name": "分级 quiet 2", "account_id": ids["quiet"], "amount": "150000", "currency": "CNY"}),
    )
    .await;
    dispatch(&app);
    assert_eq!(tier_of(&app, &rep, &ids["quiet"]).await, "B");
    let r = app
        .get(&format!("/api/v1/accounts/{}/tier-history", ids["quiet"]), &rep)
        .await;
    let h = r.body.as_array().unwrap();
    assert_eq!(h[0]["cause"], "change", "{}", r.text);
    assert_eq!(h[0]["tier_from"], "D");
    assert_eq!(h[0]["tier_to"], "B");
    // The tier reports group by follows.
    let r = app
        .post("/api/v1/admin/settings/account-tiering/recompute", &admin, json!({}))
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let n: N = diesel::sql_query(
        "SELECT count(*) AS n FROM background_jobs WHERE kind = 'accounts.tiering' AND state = 'waiting'",
    )
    .get_result(&mut app.db.conn())
    .unwrap();
    assert!(n.n >= 1);
}
