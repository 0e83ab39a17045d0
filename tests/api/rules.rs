//! The rule engine end to end: rules through the API, event triggers run by the `rules`
//! subscriber as the worker dispatches, time triggers fired by the timer job with the
//! injectable clock, tests and backtests that write nothing, enrollment, the loop
//! guard, a crashed run, two workers at once, and the seeded scenarios.

use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use crm_test_support::app::{stage_id, start, TestApp};
use diesel::Connection;
use serde_json::{json, Value};

fn setup<S>(app: &TestApp<S>) -> crm_worker::Setup {
    let pool = crm_db::pool::build_pool(&app.db.url, &crm_db::pool::PoolConfig::default()).unwrap();
    crm_worker::Setup {
        pool,
        database_url: app.db.url.clone(),
        registry: crm_worker::builtin::registry(&Default::default()),
        config: crm_worker::WorkerConfig::default(),
        clock: app.state.clock.clone(),
        metrics: Arc::new(crm_worker::WorkerMetrics::default()),
    }
}

/// Runs the rule subscriber over everything committed so far, as a worker would.
fn dispatch<S>(app: &TestApp<S>) -> usize {
    let s = setup(app);
    let mut total = 0;
    loop {
        let n = crm_worker::dispatch::dispatch_once(&s, &crm_worker::builtin::Rules).unwrap();
        if n == 0 {
            return total;
        }
        total += n;
    }
}

/// Runs the timer job once, as the worker would (in its own transaction).
fn fire<S>(app: &TestApp<S>) -> usize {
    let mut c = app.db.app_conn();
    let clock = app.state.clock.clone();
    c.transaction(|c| crm_app::rules::fire_due(c, &clock)).unwrap()
}

/// Runs every `rules.schedule` job waiting (scheduling a rule over every record).
fn schedule<S>(app: &TestApp<S>) {
    use diesel::prelude::*;
    #[derive(QueryableByName)]
    struct J {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        id: i64,
        #[diesel(sql_type = diesel::sql_types::Jsonb)]
        payload: Value,
    }
    let clock = app.state.clock.clone();
    loop {
        let mut c = app.db.app_conn();
        let jobs: Vec<J> = diesel::sql_query("SELECT id, payload FROM background_jobs WHERE kind = 'rules.schedule'")
            .load(&mut c)
            .unwrap();
        if jobs.is_empty() {
            return;
        }
        for j in jobs {
            c.transaction(|c| {
                let rule = j.payload["rule_id"].as_str().unwrap().parse().unwrap();
                let after = j.payload["after"].as_str().unwrap().parse().unwrap();
                if let Some(last) = crm_app::rules::schedule_page(c, &clock, rule, after)? {
                    crm_db::repo::jobs::enqueue(
                        c,
                        &crm_db::repo::jobs::NewJob::new(
                            "default",
                            "rules.schedule",
                            json!({"rule_id": rule, "after": last}),
                        ),
                    )?;
                }
                diesel::sql_query("DELETE FROM background_jobs WHERE id = $1")
                    .bind::<diesel::sql_types::BigInt, _>(j.id)
                    .execute(c)?;
                Ok::<_, crm_app::AppError>(())
            })
            .unwrap();
        }
    }
}

async fn create_rule<S, B>(app: &TestApp<S>, admin: &str, body: Value) -> Value
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let r = app.post("/api/v1/admin/rules", admin, body).await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.body
}

async fn runs<S, B>(app: &TestApp<S>, admin: &str, rule: &Value) -> Vec<Value>
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let r = app
        .get(
            &format!("/api/v1/admin/rules/{}/runs", rule["id"].as_str().unwrap()),
            admin,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["items"].as_array().unwrap().clone()
}

/// A deal of `token`'s user moved into Discovery (its criteria met): (deal id, stage id).
async fn deal_in_discovery<S, B>(app: &TestApp<S>, token: &str) -> String
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let p = app.default_pipeline(token).await;
    let acc = app.account(token, &format!("Rule Co {}", uuid::Uuid::now_v7())).await;
    let d = app
        .deal(
            token,
            json!({"name": "扩容项目", "account_id": acc["id"], "amount": "120000.00"}),
        )
        .await;
    let id = d["id"].as_str().unwrap().to_owned();
    let qual = stage_id(&p, "qualification");
    app.check_task(token, &id, &qual, "confirm_need_budget").await;
    app.check_task(token, &id, &qual, "workshop_agreed").await;
    app.attach(token, &id, "first_call_notes").await;
    let r = app.move_stage(token, &id, &stage_id(&p, "discovery"), None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    id
}

/// Installs the default rules (enabled) and returns the one seeded as `key`.
async fn install_default<S, B>(app: &TestApp<S>, admin: &str, key: &str) -> Value
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let r = app
        .post("/api/v1/admin/rules/defaults", admin, json!({"enabled": true}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["seed_key"] == key)
        .cloned()
        .unwrap_or_else(|| panic!("{key} is a default: {}", r.text))
}

fn tasks_titled(app: &TestApp<impl Sized>, like: &str) -> i64 {
    app.db.count(&format!(
        "SELECT count(*) AS n FROM tasks WHERE origin = 'rule' AND title LIKE '{like}'"
    ))
}

#[actix_web::test]
async fn saving_a_rule_names_every_problem_and_versions_its_changes() {
    let app = start().await;
    let admin = app.token(app.org.admin);
    let rep = app.token(app.org.rep_east1);
    let bad = app
        .post(
            "/api/v1/admin/rules",
            &admin,
            json!({
                "name": "Bad", "object": "contacts",
                "triggers": [{"type": "stage_entered"}, {"type": "field_changed", "field": "nope"}, {"type": "bogus"}],
                "condition": {"field": "no_such", "op": "eq", "value": 1},
                "actions": [{"type": "create_task", "title": "x", "assignee": "someone"},
                            {"type": "update_field", "field": "ghost", "value": 1}]
            }),
        )
        .await;
    assert_eq!(bad.status, 422, "{}", bad.text);
    let fields: Vec<(&str, &str)> = bad.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["field"].as_str().unwrap(), e["code"].as_str().unwrap()))
        .collect();
    for want in [
        ("triggers[0]", "trigger_not_available"),
        ("triggers[1].field", "no_such_field"),
        ("triggers[2]", "invalid_trigger"),
        ("condition", "no_such_field"),
        ("actions[0].assignee", "invalid_party"),
        ("actions[1].field", "no_such_field"),
    ] {
        assert!(fields.contains(&want), "{want:?} missing in {fields:?}");
    }
    // Values of the wrong type, in conditions, trigger values and field updates.
    let bad = app
        .post(
            "/api/v1/admin/rules",
            &admin,
            json!({
                "name": "Mistyped", "object": "opportunities",
                "triggers": [{"type": "field_changed", "field": "amount", "to": "lots"}],
                "condition": {"all": [{"field": "amount", "op": "gt", "value": "a lot"},
                                      {"field": "name", "op": "gte", "value": "M"},
                                      {"field": "expected_close_date", "op": "lt", "value": "next month"},
                                      {"field": "account.industry", "op": "in", "value": ["制造业", 5]},
                                      {"field": "amount", "op": "gte", "value": "100000"},
                                      {"field": "stage.probability", "op": "gte", "value": 50}]},
                "actions": [{"type": "update_field", "field": "expected_close_date", "value": "soon"}]
            }),
        )
        .await;
    assert_eq!(bad.status, 422, "{}", bad.text);
    let errors = bad.body["errors"].as_array().unwrap();
    let typed: Vec<(&str, &str)> = errors
        .iter()
        .filter(|e| e["code"] == "wrong_value_type")
        .map(|e| (e["field"].as_str().unwrap(), e["message"].as_str().unwrap()))
        .collect();
    assert_eq!(typed.len(), 6, "{typed:?} {errors:?}");
    for (field, needle) in [
        ("triggers[0].to", "`amount` holds a number"),
        ("condition", "\"a lot\""),
        ("condition", "`name` holds text and cannot be ordered"),
        ("condition", "`expected_close_date` holds a date"),
        ("condition", "`account.industry` holds text; 5"),
        ("actions[0].value", "\"soon\""),
    ] {
        assert!(
            typed.iter().any(|(f, m)| *f == field && m.contains(needle)),
            "{field} {needle} in {typed:?}"
        );
    }
    // An action the rule's user may not do.
    let r = app
        .post(
            "/api/v1/admin/rules",
            &admin,
            json!({"name": "Rep assigns", "object": "leads", "acts_as": app.org.rep_east1,
                   "triggers": [{"type": "created"}],
                   "actions": [{"type": "assign_owner", "user_id": app.org.rep_east1}]}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(r.body["errors"][0]["code"], "action_not_permitted", "{}", r.text);
    // Only admins manage rules.
    let r = app
        .post(
            "/api/v1/admin/rules",
            &rep,
            json!({"name": "x", "object": "leads", "triggers": [{"type": "created"}],
                   "actions": [{"type": "notify", "to": ["owner"], "message": "hi"}]}),
        )
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(app.db.count("SELECT count(*) AS n FROM rules"), 0);

    let rule = create_rule(
        &app,
        &admin,
        json!({"name": "Big deal alert", "object": "opportunities",
               "triggers": [{"type": "created"}],
               "condition": {"field": "amount", "op": "gte", "value": "100000"},
               "actions": [{"type": "notify", "to": ["manager"], "message": "大单: {{name}}"}]}),
    )
    .await;
    assert_eq!(rule["rule_version"], 1);
    assert_eq!(rule["enabled"], false);
    let id = rule["id"].as_str().unwrap();
    let r = app
        .patch(
            &format!("/api/v1/admin/rules/{id}"),
            &admin,
            1,
            json!({"condition": {"field": "amount", "op": "gte", "value": "500000"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["rule_version"], 2);
    let stale = app
        .patch(&format!("/api/v1/admin/rules/{id}"), &admin, 1, json!({"name": "x"}))
        .await;
    assert_eq!(stale.status, 412);
    let v = app.get(&format!("/api/v1/admin/rules/{id}/versions"), &admin).await;
    assert_eq!(v.body["items"].as_array().unwrap().len(), 2);
    let r = app
        .post(
            &format!("/api/v1/admin/rules/{id}/versions/1/restore"),
            &admin,
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["rule_version"], 3);
    assert_eq!(r.body["condition"]["value"], "100000");
    let r = app
        .post(&format!("/api/v1/admin/rules/{id}/archive"), &admin, json!({}))
        .await;
    assert!(r.body["archived_at"].is_string());
    let r = app
        .post(&format!("/api/v1/admin/rules/{id}/enable"), &admin, json!({}))
        .await;
    assert_eq!(r.status, 409, "{}", r.text);
    assert_eq!(r.code(), "rule_archived");
    let list = app.get("/api/v1/admin/rules", &admin).await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 0);
    let list = app.get("/api/v1/admin/rules?archived=true", &admin).await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
}

#[actix_web::test]
async fn a_stage_entry_creates_a_task_for_the_presales_once_per_event_even_after_a_crash() {
    let app = start().await;
    let admin = app.token(app.org.admin);
    let rep = app.token(app.org.rep_east1);
    let rule = create_rule(
        &app,
        &admin,
        json!({"name": "Discovery: presales", "object": "opportunities", "enabled": true, "re_enroll": true,
               "triggers": [{"type": "stage_entered", "stage": "discovery"}],
               "actions": [{"type": "create_task", "title": "准备演示 {{name}} ({{account.name}})",
                            "assignee": "role:presales", "due_hours": 4, "business_hours": true}]}),
    )
    .await;
    let deal = deal_in_discovery(&app, &rep).await;

    // A worker dies mid-run: its transaction rolls back with everything the rule did.
    {
        let mut c = app.db.app_conn();
        let clock = app.state.clock.clone();
        let events = {
            let mut c2 = app.db.app_conn();
            crm_db::repo::outbox::after(&mut c2, 0, 10_000).unwrap().1
        };
        let stage_event = events
            .iter()
            .find(|e| e.event_type == "opportunity.stage_changed")
            .unwrap()
            .clone();
        let _ = c.transaction(|c| {
            let n = crm_app::rules::on_event(c, &clock, &stage_event, &mut Default::default())?;
            assert_eq!(n, 1);
            Err::<(), _>(crm_app::AppError::internal("killed"))
        });
    }
    assert_eq!(tasks_titled(&app, "准备演示%"), 0);

    dispatch(&app);
    dispatch(&app);
    assert_eq!(tasks_titled(&app, "准备演示%"), 1, "once, not per dispatch");
    let t = app.db.count(&format!(
        "SELECT count(*) AS n FROM tasks WHERE origin = 'rule' AND owner_id = '{}' AND related_id = '{deal}' \
           AND title LIKE '准备演示 扩容项目 (Rule Co%' AND due_at IS NOT NULL",
        app.org.presales
    ));
    assert_eq!(t, 1, "the presales gets it, about the deal, with the title rendered");
    // The audit entry names the rule.
    assert_eq!(
        app.db.count(&format!(
            "SELECT count(*) AS n FROM audit_log WHERE entity_type = 'tasks' AND rule_id = '{}'",
            rule["id"].as_str().unwrap()
        )),
        1
    );
    let log = runs(&app, &admin, &rule).await;
    let done: Vec<&Value> = log.iter().filter(|r| r["status"] == "done").collect();
    assert_eq!(done.len(), 1, "{log:?}");
    assert_eq!(done[0]["rule_version"], 1);
    assert_eq!(done[0]["trigger"], "stage_entered");
    assert_eq!(done[0]["actions"][0]["status"], "done");
    assert!(done[0]["actions"][0]["result"]["task_id"].is_string());
}

#[actix_web::test]
async fn enrollment_fires_on_the_change_to_matching_and_re_enrollment_is_a_setting() {
    let app = start().await;
    let admin = app.token(app.org.admin);
    let rep = app.token(app.org.rep_east1);
    let mk = |re: bool, tag: &str| {
        json!({"name": format!("Large {tag}"), "object": "opportunities", "enabled": true, "re_enroll": re,
               "triggers": [{"type": "updated"}],
               "condition": {"all": [{"field": "amount", "op": "gte", "value": "200000"},
                                     {"field": "changed", "op": "contains", "value": "amount"}]},
               "actions": [{"type": "create_task", "title": format!("{tag} review {{{{amount}}}}"), "assignee": "owner"}]})
    };
    create_rule(&app, &admin, mk(false, "once")).await;
    create_rule(&app, &admin, mk(true, "again")).await;
    let (deal, _) = crate::q2c::deal(&app, &rep).await;
    let mut version = 1;
    for amount in ["250000.00", "260000.00", "50000.00", "300000.00"] {
        let r = app
            .patch(
                &format!("/api/v1/opportunities/{deal}"),
                &rep,
                version,
                json!({"amount": amount}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        version = r.body["version"].as_i64().unwrap() as i32;
        dispatch(&app);
    }
    // 250k enrols both; 260k still matched; 50k stops matching; 300k enrols again only
    // where re-enrollment is on.
    assert_eq!(tasks_titled(&app, "once review%"), 1);
    assert_eq!(tasks_titled(&app, "again review%"), 2);
    assert_eq!(tasks_titled(&app, "again review 300000.00"), 1);
}

#[actix_web::test]
async fn rules_triggering_rules_stop_at_the_loop_guard() {
    let app = start().await;
    let admin = app.token(app.org.admin);
    let rep = app.token(app.org.rep_east1);
    let rule = create_rule(
        &app,
        &admin,
        json!({"name": "Ping-pong", "object": "opportunities", "enabled": true, "re_enroll": true,
               "triggers": [{"type": "event", "action": "updated"}],
               "actions": [{"type": "update_field", "field": "next_step", "value": "again"},
                           {"type": "update_field", "field": "next_step", "value": "and again"}]}),
    )
    .await;
    let (deal, _) = crate::q2c::deal(&app, &rep).await;
    let r = app
        .patch(
            &format!("/api/v1/opportunities/{deal}"),
            &rep,
            1,
            json!({"next_step": "call"}),
        )
        .await;
    assert_eq!(r.status, 200);
    for _ in 0..20 {
        if dispatch(&app) == 0 {
            break;
        }
    }
    let log = runs(&app, &admin, &rule).await;
    let guard: Vec<&Value> = log.iter().filter(|r| r["status"] == "loop_guard").collect();
    assert!(!guard.is_empty(), "{log:?}");
    assert!(guard.iter().all(|r| r["depth"].as_i64().unwrap() > 5));
    assert!(log.iter().all(|r| r["depth"].as_i64().unwrap() <= 6), "the chain ends");
    assert_eq!(dispatch(&app), 0, "nothing left to run: the guard ended the chain");
}

#[actix_web::test]
async fn test_and_backtest_write_nothing() {
    let app = start().await;
    let admin = app.token(app.org.admin);
    let rep = app.token(app.org.rep_east1);
    let (deal, _) = crate::q2c::deal(&app, &rep).await;
    let draft = json!({"name": "Draft", "object": "opportunities",
                       "triggers": [{"type": "created"}],
                       "condition": {"field": "amount", "op": "gte", "value": "50000"},
                       "actions": [{"type": "create_task", "title": "看看 {{name}}", "assignee": "manager", "due_hours": 2},
                                   {"type": "notify", "to": ["owner", "manager"], "message": "大单 {{amount}}"},
                                   {"type": "assign_owner", "team_id": app.org.east1, "strategy": "round_robin"}]});
    let before = |app: &TestApp<_>| {
        app.db.count(
            "SELECT (SELECT count(*) FROM tasks) + (SELECT count(*) FROM notifications) \
                  + (SELECT count(*) FROM background_jobs) + (SELECT count(*) FROM rule_runs) \
                  + (SELECT count(*) FROM audit_log) + (SELECT count(*) FROM outbox_events) \
                  + (SELECT count(*) FROM rule_cursors) + (SELECT count(*) FROM rules) AS n",
        )
    };
    let n0 = before(&app);
    let r = app
        .post(
            "/api/v1/admin/rules/test",
            &admin,
            json!({"rule": draft, "record_id": deal}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["would_enrol"], true);
    assert_eq!(r.body["conditions"][0]["actual"], "100000.00");
    assert_eq!(r.body["conditions"][0]["result"], true);
    let acts = r.body["actions"].as_array().unwrap();
    assert_eq!(acts[0]["arguments"]["owner_id"], json!(app.org.manager_east));
    assert!(acts[0]["arguments"]["title"].as_str().unwrap().starts_with("看看 Q2C"));
    assert_eq!(
        acts[1]["arguments"]["user_ids"],
        json!([app.org.rep_east1, app.org.manager_east])
    );
    assert!(acts[2]["arguments"]["owner_id"].is_string());
    let r = app
        .post(
            "/api/v1/admin/rules/backtest",
            &admin,
            json!({"rule": draft, "from": "2020-01-01T00:00:00Z", "to": "2020-02-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["fired"], 0);
    let now = app.state.clock.now();
    let r = app
        .post(
            "/api/v1/admin/rules/backtest",
            &admin,
            json!({"rule": draft, "from": now - chrono::Duration::days(1), "to": now + chrono::Duration::hours(1)}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["fired"], 1, "{}", r.text);
    assert_eq!(r.body["samples"][0]["record_id"], json!(deal));
    assert_eq!(before(&app), n0, "nothing written, sent or queued");
    // A test names its problems like a save.
    let r = app
        .post("/api/v1/admin/rules/test", &admin, json!({"record_id": deal}))
        .await;
    assert_eq!(r.status, 422);
}

#[actix_web::test]
async fn the_seeded_stalled_deal_rule_alerts_owner_and_manager_once_per_stage_entry() {
    let app = start().await;
    let admin = app.token(app.org.admin);
    let rep = app.token(app.org.rep_east1);
    let r = app
        .post("/api/v1/admin/rules/defaults", &admin, json!({"enabled": true}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["items"].as_array().unwrap().len(), 9);
    let again = app
        .post("/api/v1/admin/rules/defaults", &admin, json!({"enabled": true}))
        .await;
    assert_eq!(again.body["items"].as_array().unwrap().len(), 0, "installed once");
    let deal = deal_in_discovery(&app, &rep).await;
    dispatch(&app);
    let due = app.db.count(&format!(
        "SELECT extract(epoch FROM t.due_at - o.stage_entered_at)::bigint AS n FROM rule_timers t \
         JOIN opportunities o ON o.id = t.record_id WHERE t.record_id = '{deal}' AND t.state = 'pending'"
    ));
    assert_eq!(due, 15 * 86400, "due exactly 15 days after the stage entry");
    assert_eq!(fire(&app), 0, "not yet");
    app.state
        .clock
        .advance(chrono::Duration::days(15) + chrono::Duration::minutes(1));
    assert_eq!(fire(&app), 1);
    let alerts = |user: uuid::Uuid| {
        app.db.count(&format!(
            "SELECT count(*) AS n FROM notifications WHERE kind = 'rule_alert' AND user_id = '{user}' AND object_id = '{deal}'"
        ))
    };
    assert_eq!(alerts(app.org.rep_east1), 1);
    assert_eq!(alerts(app.org.manager_east), 1);
    app.state.clock.advance(chrono::Duration::days(30));
    assert_eq!(fire(&app), 0, "once per stage entry");
    assert_eq!(alerts(app.org.rep_east1), 1);
}

#[actix_web::test]
async fn a_birthday_rule_fires_three_days_before_and_a_date_change_reschedules_it() {
    let app = start().await;
    let admin = app.token(app.org.admin);
    let rep = app.token(app.org.rep_east1);
    let acc = app.account(&rep, "Care Co").await;
    let contact = app.contact(&rep, acc["id"].as_str().unwrap(), "王芳").await;
    let cid = contact["id"].as_str().unwrap().to_owned();
    let today = app.state.clock.today();
    let bday = |days: i64| {
        let d = today + chrono::Duration::days(days);
        format!("1990-{}", d.format("%m-%d"))
    };
    let r = app
        .patch(
            &format!("/api/v1/contacts/{cid}"),
            &rep,
            1,
            json!({"birthday": bday(10)}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // Enabled after the birthday was set: scheduling covers existing records.
    let r = app
        .post("/api/v1/admin/rules/defaults", &admin, json!({"enabled": true}))
        .await;
    assert_eq!(r.status, 200);
    schedule(&app);
    let pending = || {
        app.db.count(&format!(
            "SELECT count(*) AS n FROM rule_timers WHERE record_id = '{cid}' AND state = 'pending'"
        ))
    };
    assert_eq!(pending(), 1);
    // A backtest replays time triggers too: over the coming month the greeting falls
    // due once, never in the past month; nothing is queued.
    let birthday = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["object"] == "contacts")
        .cloned()
        .unwrap();
    let now = app.state.clock.now();
    let jobs0 = app.db.count("SELECT count(*) AS n FROM background_jobs");
    for (from, to, fired) in [
        (now, now + chrono::Duration::days(30), 1),
        (now - chrono::Duration::days(30), now, 0),
    ] {
        let r = app
            .post(
                "/api/v1/admin/rules/backtest",
                &admin,
                json!({"rule_id": birthday["id"], "from": from, "to": to}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.body["fired"], fired, "{}", r.text);
        if fired > 0 {
            assert_eq!(r.body["samples"][0]["record_id"].as_str().unwrap(), cid);
            assert_eq!(r.body["samples"][0]["trigger"], "date_relative");
            assert_eq!(r.body["truncated"], false);
        }
    }
    assert_eq!(
        app.db.count("SELECT count(*) AS n FROM background_jobs"),
        jobs0,
        "nothing queued"
    );
    // The birthday moves nearer: the timer follows.
    let r = app
        .patch(
            &format!("/api/v1/contacts/{cid}"),
            &rep,
            2,
            json!({"birthday": bday(5)}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    dispatch(&app);
    app.state.clock.advance(chrono::Duration::days(3));
    assert_eq!(fire(&app), 1, "5 - 3 = 2 days on, at 09:00 business time, it is due");
    assert_eq!(tasks_titled(&app, "送生日祝福%王芳"), 1);
    // Next year's occurrence waits; the same year never fires twice.
    assert_eq!(pending(), 1);
    assert_eq!(fire(&app), 0);
    assert_eq!(tasks_titled(&app, "送生日祝福%"), 1);
    app.state.clock.advance(chrono::Duration::days(366));
    assert_eq!(fire(&app), 1, "next year's greeting");
    assert_eq!(tasks_titled(&app, "送生日祝福%"), 2);
}

#[actix_web::test]
async fn two_workers_firing_timers_at_once_fire_each_once() {
    let app = start().await;
    let admin = app.token(app.org.admin);
    let rep = app.token(app.org.rep_east1);
    let acc = app.account(&rep, "Timers Co").await;
    let aid = acc["id"].as_str().unwrap().to_owned();
    let due = app.state.clock.now() + chrono::Duration::hours(2);
    for i in 0..30 {
        let r = app
            .post(
                "/api/v1/tasks",
                &rep,
                json!({"title": format!("call {i}"), "due_at": due, "related_type": "account", "related_id": aid}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
    create_rule(
        &app,
        &admin,
        json!({"name": "Due soon", "object": "tasks", "enabled": true,
               "triggers": [{"type": "date_relative", "field": "due_at", "offset_hours": -1}],
               "actions": [{"type": "notify", "to": ["owner"], "message": "快到期: {{title}}"}]}),
    )
    .await;
    schedule(&app);
    assert_eq!(
        app.db
            .count("SELECT count(*) AS n FROM rule_timers WHERE state = 'pending'"),
        30
    );
    app.state.clock.advance(chrono::Duration::minutes(61));
    let (url, clock) = (app.db.url.clone(), app.state.clock.clone());
    let worker = move || {
        let mut c = <diesel::PgConnection as Connection>::establish(&url).unwrap();
        c.transaction(|c| crm_app::rules::fire_due(c, &clock)).unwrap()
    };
    let total: usize = std::thread::scope(|s| {
        let a = s.spawn(worker.clone());
        let b = s.spawn(worker.clone());
        a.join().unwrap() + b.join().unwrap()
    });
    let total = total + fire(&app);
    assert_eq!(total, 30);
    assert_eq!(
        app.db
            .count("SELECT count(*) AS n FROM notifications WHERE kind = 'rule_alert'"),
        30
    );
    assert_eq!(app.db.count("SELECT count(*) AS n FROM rule_runs"), 30);
}

#[actix_web::test]
async fn a_new_lead_assigned_gets_a_todo_and_a_failed_action_can_be_retried() {
    let app = start().await;
    let admin = app.token(app.org.admin);
    let mkt = app.token(app.org.marketing);
    app.post("/api/v1/admin/rules/defaults", &admin, json!({"enabled": true}))
        .await;
    let lead = app
        .post(
            "/api/v1/leads",
            &mkt,
            json!({"person_name": "刘强", "company": "深圳云帆科技", "mobile": "13900001111", "source": "website"}),
        )
        .await;
    let lead_id = lead.body["id"].as_str().unwrap().to_owned();
    let r = app
        .post(
            "/api/v1/leads/assign",
            &mkt,
            json!({"lead_ids": [lead_id], "owner_id": app.org.rep_east1}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    dispatch(&app);
    assert_eq!(
        app.db.count(&format!(
            "SELECT count(*) AS n FROM tasks WHERE origin = 'rule' AND owner_id = '{}' AND related_id = '{lead_id}' \
             AND title LIKE '跟进新线索%刘强%'",
            app.org.rep_east1
        )),
        1
    );
    // The SLA timer waits an hour from the assignment.
    assert_eq!(
        app.db.count(&format!(
            "SELECT count(*) AS n FROM rule_timers WHERE record_id = '{lead_id}' AND state = 'pending'"
        )),
        1
    );

    // A rule whose action fails (the assignee is deactivated meanwhile): the run is
    // failed, other rules are unaffected, and a retry after the fix completes it.
    let rule = create_rule(
        &app,
        &admin,
        json!({"name": "To presales", "object": "leads", "enabled": true,
               "triggers": [{"type": "event", "action": "assigned"}],
               "actions": [{"type": "notify", "to": ["owner"], "message": "first"},
                           {"type": "create_task", "title": "demo for {{company}}", "assignee": format!("user:{}", app.org.presales)}]}),
    )
    .await;
    let mut c = app.db.conn();
    use diesel::RunQueryDsl;
    diesel::sql_query(format!(
        "UPDATE users SET is_active = false WHERE id = '{}'",
        app.org.presales
    ))
    .execute(&mut c)
    .unwrap();
    let r = app
        .post(
            "/api/v1/leads/assign",
            &mkt,
            json!({"lead_ids": [lead_id], "owner_id": app.org.rep_east1b}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    dispatch(&app);
    let log = runs(&app, &admin, &rule).await;
    assert_eq!(log[0]["status"], "failed", "{log:?}");
    assert_eq!(log[0]["actions"][0]["status"], "done");
    assert_eq!(log[0]["actions"][1]["status"], "failed");
    assert_eq!(tasks_titled(&app, "跟进新线索%"), 2, "the other rule still ran");
    diesel::sql_query(format!(
        "UPDATE users SET is_active = true WHERE id = '{}'",
        app.org.presales
    ))
    .execute(&mut c)
    .unwrap();
    let run_id = log[0]["id"].as_i64().unwrap();
    let id = rule["id"].as_str().unwrap();
    let r = app
        .post(
            &format!("/api/v1/admin/rules/{id}/runs/{run_id}/retry"),
            &admin,
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["status"], "done", "{}", r.text);
    assert_eq!(tasks_titled(&app, "demo for 深圳云帆科技"), 1);
    assert_eq!(
        app.db
            .count("SELECT count(*) AS n FROM notifications WHERE kind = 'rule_alert'"),
        1,
        "the action done before the failure is not repeated"
    );
    let r = app
        .post(
            &format!("/api/v1/admin/rules/{id}/runs/{run_id}/retry"),
            &admin,
            json!({}),
        )
        .await;
    assert_eq!(r.status, 409);
}

#[actix_web::test]
async fn a_rule_firing_more_than_its_threshold_pauses_itself_and_the_backlog_is_shown() {
    let app = start().await;
    let admin = app.token(app.org.admin);
    let rep = app.token(app.org.rep_east1);
    let due = app.state.clock.now() + chrono::Duration::hours(1);
    for i in 0..12 {
        let r = app
            .post("/api/v1/tasks", &rep, json!({"title": format!("t{i}"), "due_at": due}))
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
    let rule = create_rule(
        &app,
        &admin,
        json!({"name": "Noisy", "object": "tasks", "enabled": true, "max_runs_per_hour": 5,
               "triggers": [{"type": "date_relative", "field": "due_at"}],
               "actions": [{"type": "notify", "to": ["owner"], "message": "due {{title}}"}]}),
    )
    .await;
    schedule(&app);
    let jobs = app.get("/api/v1/admin/jobs", &admin).await;
    assert_eq!(jobs.status, 200, "{}", jobs.text);
    assert_eq!(jobs.body["rule_timers"], json!({"pending": 12, "due": 0}));
    assert!(jobs.body["subscribers"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["name"] == "rules"));
    app.state.clock.advance(chrono::Duration::hours(2));
    fire(&app);
    let r = app
        .get(&format!("/api/v1/admin/rules/{}", rule["id"].as_str().unwrap()), &admin)
        .await;
    assert_eq!(r.body["enabled"], false, "{}", r.text);
    assert!(r.body["paused_reason"].as_str().unwrap().contains("5 runs"));
    assert_eq!(
        app.db
            .count("SELECT count(*) AS n FROM notifications WHERE kind = 'rule_alert'"),
        5
    );
    assert_eq!(
        app.db
            .count("SELECT count(*) AS n FROM rule_timers WHERE state = 'pending'"),
        0
    );
    // Enabling again clears the pause.
    let r = app
        .post(
            &format!("/api/v1/admin/rules/{}/enable", rule["id"].as_str().unwrap()),
            &admin,
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200);
    assert!(r.body["paused_reason"].is_null());
}

#[actix_web::test]
async fn a_rule_firing_far_above_its_backtest_pauses_itself() {
    let app = start().await;
    let admin = app.token(app.org.admin);
    let rep = app.token(app.org.rep_east1);
    let due = app.state.clock.now() + chrono::Duration::hours(1);
    for i in 0..30 {
        let r = app
            .post("/api/v1/tasks", &rep, json!({"title": format!("b{i}"), "due_at": due}))
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
    let bad = app
        .post(
            "/api/v1/admin/rules",
            &admin,
            json!({"name": "x", "object": "tasks", "pause_factor": 1,
                   "triggers": [{"type": "created"}], "actions": [{"type": "notify", "to": ["owner"], "message": "x"}]}),
        )
        .await;
    assert_eq!(bad.status, 422, "{}", bad.text);
    let rule = create_rule(
        &app,
        &admin,
        json!({"name": "Burst", "object": "tasks", "enabled": true, "pause_factor": 3,
               "triggers": [{"type": "date_relative", "field": "due_at"}],
               "actions": [{"type": "notify", "to": ["owner"], "message": "due {{title}}"}]}),
    )
    .await;
    schedule(&app);
    app.state.clock.advance(chrono::Duration::hours(2));
    fire(&app);
    let r = app
        .get(&format!("/api/v1/admin/rules/{}", rule["id"].as_str().unwrap()), &admin)
        .await;
    assert_eq!(r.body["enabled"], false, "{}", r.text);
    let reason = r.body["paused_reason"].as_str().unwrap();
    assert!(
        reason.contains("3 x the") && reason.contains("per hour its backtest"),
        "{reason}"
    );
    assert!(r.body["baseline_per_hour"].as_f64().unwrap() < 1.0, "{}", r.text);
    assert_eq!(
        app.db
            .count("SELECT count(*) AS n FROM notifications WHERE kind = 'rule_alert'"),
        20,
        "below 20 runs an hour nothing is compared; then 3 x max(rate, 1) under the floor of 20"
    );
}

#[actix_web::test]
async fn the_business_calendar_is_data_and_due_times_follow_it() {
    let app = start().await;
    let admin = app.token(app.org.admin);
    let rep = app.token(app.org.rep_east1);
    let r = app.get("/api/v1/admin/settings/calendar", &admin).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["weekdays"], json!(["mon", "tue", "wed", "thu", "fri"]));
    let bad = app
        .send(
            crm_test_support::app::request(
                actix_web::http::Method::PUT,
                "/api/v1/admin/settings/calendar",
                Some(&admin),
            )
            .set_json(
                json!({"utc_offset_hours": 8, "weekdays": ["mon"], "hours": [{"start": "18:00:00", "end": "09:00:00"}],
                                 "holidays": [], "workdays": []}),
            ),
        )
        .await;
    assert_eq!(bad.status, 422, "{}", bad.text);
    assert_eq!(bad.body["errors"][0]["code"], "invalid_calendar");
    // Every day a holiday for a year except make-up days far away: "in 1 business hour"
    // then lands on the first working day.
    let today = app.state.clock.today();
    let holidays: Vec<String> = (0..30)
        .map(|d| (today + chrono::Duration::days(d)).to_string())
        .collect();
    let r = app
        .send(
            crm_test_support::app::request(actix_web::http::Method::PUT, "/api/v1/admin/settings/calendar", Some(&admin))
                .set_json(json!({"utc_offset_hours": 8, "weekdays": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
                                 "hours": [{"start": "09:00:00", "end": "18:00:00"}], "holidays": holidays, "workdays": []})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let (deal, _) = crate::q2c::deal(&app, &rep).await;
    let r = app
        .post(
            "/api/v1/admin/rules/test",
            &admin,
            json!({"record_id": deal, "rule": {"name": "SLA", "object": "opportunities", "triggers": [{"type": "created"}],
                   "actions": [{"type": "create_task", "title": "x", "due_hours": 1, "business_hours": true}]}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let due: chrono::DateTime<chrono::Utc> = r.body["actions"][0]["arguments"]["due_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let first_working = (today + chrono::Duration::days(30))
        .and_hms_opt(1, 0, 0)
        .unwrap()
        .and_utc();
    assert_eq!(
        due,
        first_working + chrono::Duration::hours(1),
        "10:00 business time on the first working day"
    );
}

#[actix_web::test]
async fn rule_endpoints_refuse_what_they_must() {
    let app = start().await;
    let admin = app.token(app.org.admin);
    let rep = app.token(app.org.rep_east1);
    let missing = uuid::Uuid::now_v7();
    assert_eq!(
        app.get(&format!("/api/v1/admin/rules/{missing}"), &admin).await.status,
        404
    );
    assert_eq!(app.get("/api/v1/admin/rules", &rep).await.status, 403);
    let rule = create_rule(
        &app,
        &admin,
        json!({"name": "R", "object": "opportunities", "triggers": [{"type": "created"}],
               "actions": [{"type": "notify", "to": ["owner"], "message": "m"}]}),
    )
    .await;
    let id = rule["id"].as_str().unwrap();
    // PATCH needs If-Match.
    let r = app
        .send(
            crm_test_support::app::request(
                actix_web::http::Method::PATCH,
                &format!("/api/v1/admin/rules/{id}"),
                Some(&admin),
            )
            .set_json(json!({"name": "x"})),
        )
        .await;
    assert_eq!(r.status, 428, "{}", r.text);
    let r = app
        .post(
            &format!("/api/v1/admin/rules/{id}/versions/9/restore"),
            &admin,
            json!({}),
        )
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(
        app.get(&format!("/api/v1/admin/rules/{id}/runs/1"), &admin)
            .await
            .status,
        404
    );
    assert_eq!(
        app.get(&format!("/api/v1/admin/rules/{id}/runs?before=0"), &admin)
            .await
            .status,
        400
    );
    let r = app
        .post(
            "/api/v1/admin/rules/test",
            &admin,
            json!({"rule_id": id, "record_id": missing}),
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.text);
    let r = app
        .post(
            "/api/v1/admin/rules/backtest",
            &admin,
            json!({"rule_id": id, "from": "2026-01-01T00:00:00Z", "to": "2025-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(
        app.post(&format!("/api/v1/admin/rules/{id}/enable"), &rep, json!({}))
            .await
            .status,
        403
    );
    let r = app
        .send(
            crm_test_support::app::request(
                actix_web::http::Method::PUT,
                "/api/v1/admin/settings/calendar",
                Some(&rep),
            )
            .set_json(
                json!({"utc_offset_hours": 8, "weekdays": ["mon"], "hours": [{"start": "09:00:00", "end": "18:00:00"}],
                                 "holidays": [], "workdays": []}),
            ),
        )
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(
        app.post("/api/v1/admin/rules/defaults", &rep, json!({})).await.status,
        403
    );
    assert_eq!(
        app.db.count("SELECT count(*) AS n FROM rules"),
        1,
        "nothing installed by the refused calls"
    );
}

/// Runs a waiting run's continuation as its job would.
fn continue_from<S>(app: &TestApp<S>, run_id: i64, from: usize) {
    let mut c = app.db.app_conn();
    let clock = app.state.clock.clone();
    c.transaction(|c| crm_app::rules::continue_run(c, &clock, run_id, from))
        .unwrap();
}

#[actix_web::test]
async fn the_lead_sla_is_stored_filterable_and_its_ladder_reminds_alerts_and_reassigns() {
    let app = start().await;
    let admin = app.token(app.org.admin);
    let mkt = app.token(app.org.marketing);
    let rep = app.token(app.org.rep_east1);
    // A two-hour wall-clock SLA, so due times do not depend on the test's weekday.
    let r = app
        .put(
            "/api/v1/admin/settings/lead-sla",
            &admin,
            json!({"hours": 2, "business_hours": false}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let bad = app
        .put(
            "/api/v1/admin/settings/lead-sla",
            &admin,
            json!({"hours": 0, "business_hours": false}),
        )
        .await;
    assert_eq!(bad.status, 422, "{}", bad.text);
    // Only admins read or set it; a refused change changes nothing.
    assert_eq!(app.get("/api/v1/admin/settings/lead-sla", &rep).await.status, 403);
    let r = app
        .put(
            "/api/v1/admin/settings/lead-sla",
            &rep,
            json!({"hours": 9, "business_hours": true}),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text);
    let r = app.get("/api/v1/admin/settings/lead-sla", &admin).await;
    assert_eq!(r.body, json!({"hours": 2, "business_hours": false}));
    let ladder = install_default(&app, &admin, "lead_sla_reminder").await;
    assert_eq!(ladder["actions"].as_array().map(Vec::len), Some(5), "the SLA ladder");
    let new_lead = |name: &'static str, mobile: &'static str| {
        let (app, mkt) = (&app, &mkt);
        async move {
            let lead = app
                .post(
                    "/api/v1/leads",
                    mkt,
                    json!({"person_name": name, "source": "website", "mobile": mobile}),
                )
                .await;
            assert_eq!(lead.status, 201, "{}", lead.text);
            let id = lead.body["id"].as_str().unwrap().to_owned();
            assert!(lead.body["sla_status"].is_null(), "no SLA before assignment");
            let r = app
                .post(
                    "/api/v1/leads/assign",
                    mkt,
                    json!({"lead_ids": [id], "owner_id": app.org.rep_east1}),
                )
                .await;
            assert_eq!(r.status, 200, "{}", r.text);
            assert_eq!(r.body["items"][0]["sla_status"], "pending");
            id
        }
    };
    let late = new_lead("迟到", "13900002001").await;
    let answered = new_lead("及时", "13900002002").await;
    dispatch(&app);
    let got = app.get(&format!("/api/v1/leads/{late}"), &rep).await;
    let due: chrono::DateTime<chrono::Utc> = got.body["sla_due_at"].as_str().unwrap().parse().unwrap();
    let left = due - app.state.clock.now();
    assert!(
        left <= chrono::Duration::hours(2) && left > chrono::Duration::minutes(119),
        "{left}"
    );
    let sla = |q: &'static str| {
        let (app, rep) = (&app, &rep);
        async move {
            let mut ids = app.get(&format!("/api/v1/leads?sla={q}"), rep).await.ids();
            ids.sort();
            ids
        }
    };
    let mut both = vec![late.clone(), answered.clone()];
    both.sort();
    assert_eq!(sla("pending").await, both);

    // One is answered in time: met, with its response minutes.
    app.state.clock.advance(chrono::Duration::minutes(30));
    let r = app
        .post(
            "/api/v1/activities",
            &rep,
            json!({"type": "call", "subject": "首次电话", "lead_id": answered}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let got = app.get(&format!("/api/v1/leads/{answered}"), &rep).await;
    assert_eq!(got.body["sla_status"], "met");
    assert_eq!(got.body["response_minutes"], 30);
    assert_eq!(sla("met").await, vec![answered.clone()]);

    // The other passes its due time: breached at once in the filter, stored by the sweep.
    app.state.clock.advance(chrono::Duration::minutes(91));
    assert_eq!(sla("breached").await, vec![late.clone()]);
    assert!(sla("pending").await.is_empty());
    assert_eq!(fire(&app), 1, "the ladder's first step, for the unanswered lead only");
    let alerts = |user: uuid::Uuid| {
        app.db.count(&format!(
            "SELECT count(*) AS n FROM notifications WHERE kind = 'rule_alert' AND user_id = '{user}' AND object_id = '{late}'"
        ))
    };
    assert_eq!(alerts(app.org.rep_east1), 1);
    assert_eq!(alerts(app.org.manager_east), 0, "the manager only after the wait");
    {
        let mut c = app.db.app_conn();
        let ctx = crm_app::Ctx::system(app.state.clock.clone());
        let swept = c.transaction(|c| crm_app::approvals::sweep(c, &ctx)).unwrap();
        assert_eq!(swept.sla_breached, 1);
    }
    let got = app.get(&format!("/api/v1/leads/{late}"), &rep).await;
    assert_eq!(got.body["sla_status"], "breached");
    assert_eq!(
        app.db.count(&format!(
            "SELECT count(*) AS n FROM outbox_events WHERE event_type = 'lead.sla_breached' AND aggregate_id = '{late}'"
        )),
        1
    );
    let log = runs(&app, &admin, &ladder).await;
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0]["status"], "waiting");
    let run_id = log[0]["id"].as_i64().unwrap();
    // After the wait: the manager; after the next wait: another member of the team.
    continue_from(&app, run_id, 2);
    assert_eq!(alerts(app.org.manager_east), 1);
    continue_from(&app, run_id, 4);
    let got = app.get(&format!("/api/v1/leads/{late}"), &admin).await;
    let owner = got.body["owner_id"].as_str().unwrap().to_owned();
    assert_ne!(owner, app.org.rep_east1.to_string(), "reassigned");
    assert_eq!(got.body["sla_status"], "pending", "the new owner's SLA starts");
    let log = runs(&app, &admin, &ladder).await;
    assert_eq!(log[0]["status"], "done", "{log:?}");
    assert_eq!(log[0]["actions"][4]["result"]["owner_id"].as_str().unwrap(), owner);

    // A ladder stops once the lead is answered: a new owner answers during the wait.
    dispatch(&app);
    let due: chrono::DateTime<chrono::Utc> = got.body["sla_due_at"].as_str().unwrap().parse().unwrap();
    app.state
        .clock
        .advance(due - app.state.clock.now() + chrono::Duration::minutes(1));
    assert_eq!(fire(&app), 1, "the new owner's reminder");
    let owner_token = app.token(owner.parse().unwrap());
    let r = app
        .post(
            "/api/v1/activities",
            &owner_token,
            json!({"type": "call", "subject": "回电", "lead_id": late}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let log = runs(&app, &admin, &ladder).await;
    let second = log.iter().find(|r| r["status"] == "waiting").expect("a waiting run");
    let manager_alerts = alerts(app.org.manager_east);
    continue_from(&app, second["id"].as_i64().unwrap(), 2);
    assert_eq!(alerts(app.org.manager_east), manager_alerts, "no alert once answered");
    let log = runs(&app, &admin, &ladder).await;
    let done = log.iter().find(|r| r["id"] == second["id"]).unwrap();
    assert_eq!(done["status"], "done");
    assert!(done["reason"].as_str().unwrap().contains("no longer matches"), "{done}");
}

#[actix_web::test]
async fn quote_approval_routing_is_a_rule_through_the_approval_engine() {
    use crate::q2c::{approvals_of, deal, product, quote};
    let app = start().await;
    let admin = app.token(app.org.admin);
    let rep = app.token(app.org.rep_east1);
    let r = app
        .post("/api/v1/admin/rules/defaults", &admin, json!({"enabled": true}))
        .await;
    let routing = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["triggers"][0]["type"] == "approval_requested")
        .cloned()
        .expect("the seeded routing rule");
    let p = product(&app, &admin, "P-R", "1000.00", "400.00").await;
    let (deal_id, _) = deal(&app, &rep).await;
    let submit = |discount: &'static str| {
        let (app, rep, deal_id, p) = (&app, &rep, &deal_id, &p);
        async move {
            let q = quote(
                app,
                rep,
                deal_id,
                json!([{"product_id": p["id"], "quantity": "1", "discount_pct": discount}]),
                "0",
            )
            .await;
            let id = q["id"].as_str().unwrap().to_owned();
            let r = app.post(&format!("/api/v1/quotes/{id}/submit"), rep, json!({})).await;
            assert_eq!(r.status, 200, "{}", r.text);
            (id, r.body["status"].as_str().unwrap().to_owned())
        }
    };
    // Above 15%: the rule routes it to the sales director's definition, at once.
    let (high, status) = submit("20").await;
    assert_eq!(status, "pending_approval");
    let a = approvals_of(&app, &rep, "quote", &high).await;
    assert_eq!(a[0]["status"], "pending");
    let director = app.token(app.org.director);
    let inbox = app.get("/api/v1/me/approvals", &director).await;
    assert_eq!(inbox.body["items"][0]["object_id"].as_str().unwrap(), high);
    let log = runs(&app, &admin, &routing).await;
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0]["trigger"], "approval_requested");
    assert_eq!(log[0]["status"], "done");
    assert_eq!(log[0]["conditions"][0]["result"], true);
    // At or below: no routing rule holds and no definition matches: approved at once.
    let (_, status) = submit("15").await;
    assert_eq!(status, "approved");
    assert_eq!(
        runs(&app, &admin, &routing).await.len(),
        1,
        "not run when it does not match"
    );

    // Editing the rule changes the routing: now it approves automatically.
    let id = routing["id"].as_str().unwrap();
    let r = app
        .patch(
            &format!("/api/v1/admin/rules/{id}"),
            &admin,
            routing["version"].as_i64().unwrap() as i32,
            json!({"actions": [{"type": "start_approval", "auto_approve": true}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let (auto, status) = submit("20").await;
    assert_eq!(status, "approved");
    let a = approvals_of(&app, &rep, "quote", &auto).await;
    assert_eq!(a[0]["status"], "auto_approved");
    let reason = a[0]["history"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["action"] == "auto_approved")
        .unwrap()["comment"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(reason.contains("报价审批路由"), "{reason}");

    // Only one action, and only for approvable objects.
    let r = app
        .post(
            "/api/v1/admin/rules",
            &admin,
            json!({"name": "bad", "object": "leads", "triggers": [{"type": "approval_requested"}],
                   "actions": [{"type": "start_approval"}, {"type": "notify", "to": ["owner"], "message": "x"}]}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
    let fields: Vec<&str> = r.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert!(
        fields.contains(&"triggers[0]") && fields.contains(&"actions[0]") && fields.contains(&"actions"),
        "{fields:?}"
    );
}

#[actix_web::test]
async fn payments_are_a_rule_object_and_the_first_contract_sets_the_anniversary() {
    use crate::q2c::{deal, product, quote, signed};
    let app = start().await;
    let admin = app.token(app.org.admin);
    let rep = app.token(app.org.rep_east1);
    let finance = app.token(app.org.finance);
    app.post("/api/v1/admin/rules/defaults", &admin, json!({"enabled": true}))
        .await;
    let thanks = create_rule(
        &app,
        &admin,
        json!({"name": "回款致谢 Thank for the payment", "object": "payments", "enabled": true,
               "triggers": [{"type": "event", "action": "received"}],
               "condition": {"field": "amount", "op": "gte", "value": "100"},
               "actions": [{"type": "create_task", "title": "回款致谢 {{amount}}", "assignee": "owner"}]}),
    )
    .await;
    let p = product(&app, &admin, "P-A", "1000.00", "400.00").await;
    let (deal_id, _) = deal(&app, &rep).await;
    let q = quote(
        &app,
        &rep,
        &deal_id,
        json!([{"product_id": p["id"], "quantity": "1", "discount_pct": "0"}]),
        "0",
    )
    .await;
    let qid = q["id"].as_str().unwrap();
    app.post(&format!("/api/v1/quotes/{qid}/submit"), &rep, json!({})).await;
    app.post(&format!("/api/v1/quotes/{qid}/send"), &rep, json!({})).await;
    app.post(&format!("/api/v1/quotes/{qid}/accept"), &rep, json!({})).await;
    let k = app.post("/api/v1/contracts", &rep, json!({"quote_id": qid})).await;
    assert_eq!(k.status, 201, "{}", k.text);
    let kid = k.body["id"].as_str().unwrap().to_owned();
    let account = k.body["account_id"].as_str().unwrap().to_owned();
    dispatch(&app);
    let pending = || {
        app.db.count(&format!(
            "SELECT count(*) AS n FROM rule_timers WHERE record_id = '{account}' AND state = 'pending'"
        ))
    };
    assert_eq!(pending(), 0, "no contract signed yet: no anniversary");
    signed(&app, &rep, &kid).await;
    dispatch(&app);
    assert_eq!(pending(), 1, "the signature schedules the account's anniversary");
    let due = app.db.count(&format!(
        "SELECT extract(epoch FROM t.due_at)::bigint AS n FROM rule_timers t WHERE t.record_id = '{account}'"
    ));
    let signed_at = app.db.count(&format!(
        "SELECT extract(epoch FROM min(signed_at))::bigint AS n FROM contracts WHERE account_id = '{account}'"
    ));
    let days = (due - signed_at) as f64 / 86400.0;
    assert!(
        (358.0..=366.0).contains(&days),
        "about a year less three days after signing: {days}"
    );

    let invoiced = create_rule(
        &app,
        &admin,
        json!({"name": "开票通知 Invoice issued", "object": "invoices", "enabled": true,
               "triggers": [{"type": "event", "action": "issued"}],
               "actions": [{"type": "notify", "to": ["owner"], "message": "发票 {{number}} 已开具"}]}),
    )
    .await;
    let r = app
        .post(
            "/api/v1/invoices",
            &finance,
            json!({"contract_id": kid, "amount": "500.00"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = app
        .post(
            "/api/v1/payments",
            &finance,
            json!({"contract_id": kid, "amount": "500.00", "method": "bank_transfer", "received_on": app.state.clock.today()}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    dispatch(&app);
    let log = runs(&app, &admin, &invoiced).await;
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0]["status"], "done", "{log:?}");
    let log = runs(&app, &admin, &thanks).await;
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0]["status"], "done", "{log:?}");
    assert_eq!(tasks_titled(&app, "回款致谢 500.00"), 1);
}

/// Runs every `rules.sweep` job waiting (a schedule occurrence over the records).
fn sweep<S>(app: &TestApp<S>) {
    use diesel::prelude::*;
    #[derive(QueryableByName)]
    struct J {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        id: i64,
        #[diesel(sql_type = diesel::sql_types::Jsonb)]
        payload: Value,
    }
    let clock = app.state.clock.clone();
    let mut c = app.db.app_conn();
    let jobs: Vec<J> = diesel::sql_query("SELECT id, payload FROM background_jobs WHERE kind = 'rules.sweep'")
        .load(&mut c)
        .unwrap();
    for j in jobs {
        c.transaction(|c| {
            let rule = j.payload["rule_id"].as_str().unwrap().parse().unwrap();
            let index = j.payload["trigger_index"].as_i64().unwrap() as i32;
            let occurrence = j.payload["occurrence"].as_str().unwrap();
            let mut after = uuid::Uuid::nil();
            // The same page twice, as a crashed worker's retry would.
            crm_app::rules::sweep_page(c, &clock, rule, index, occurrence, after)?;
            while let Some(last) = crm_app::rules::sweep_page(c, &clock, rule, index, occurrence, after)? {
                after = last;
            }
            diesel::sql_query("DELETE FROM background_jobs WHERE id = $1")
                .bind::<diesel::sql_types::BigInt, _>(j.id)
                .execute(c)?;
            Ok::<_, crm_app::AppError>(())
        })
        .unwrap();
    }
}

#[actix_web::test]
async fn a_scheduled_rule_runs_over_the_matching_records_at_each_occurrence() {
    let app = start().await;
    let admin = app.token(app.org.admin);
    let mkt = app.token(app.org.marketing);
    for (name, mobile) in [("甲", "13900003001"), ("乙", "13900003002"), ("丙", "13900003003")] {
        let r = app
            .post(
                "/api/v1/leads",
                &mkt,
                json!({"person_name": name, "source": "website", "mobile": mobile}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        if name == "丙" {
            let id = r.body["id"].as_str().unwrap();
            app.post(
                "/api/v1/leads/assign",
                &mkt,
                json!({"lead_ids": [id], "owner_id": app.org.rep_east1}),
            )
            .await;
        }
    }
    let bad = app
        .post(
            "/api/v1/admin/rules",
            &admin,
            json!({"name": "bad", "object": "leads", "triggers": [{"type": "schedule", "cron": "0 25 * * *"}],
                   "actions": [{"type": "notify", "to": ["owner"], "message": "x"}]}),
        )
        .await;
    assert_eq!(bad.status, 422, "{}", bad.text);
    assert_eq!(bad.body["errors"][0]["field"], "triggers[0].cron");
    let rule = create_rule(
        &app,
        &admin,
        json!({"name": "每日未分配线索提醒 Daily: unassigned leads", "object": "leads", "enabled": true,
               "triggers": [{"type": "schedule", "cron": "0 9 * * *"}],
               "condition": {"field": "status", "op": "eq", "value": "new"},
               "actions": [{"type": "notify", "to": ["owner"], "message": "线索 {{person_name}} 仍未分配"}],
               "re_enroll": true}),
    )
    .await;
    schedule(&app);
    let id = rule["id"].as_str().unwrap();
    let due: chrono::DateTime<chrono::Utc> = {
        use diesel::prelude::*;
        #[derive(QueryableByName)]
        struct D {
            #[diesel(sql_type = diesel::sql_types::Timestamptz)]
            due_at: chrono::DateTime<chrono::Utc>,
        }
        let d: D = diesel::sql_query(format!(
            "SELECT due_at FROM rule_timers WHERE rule_id = '{id}' AND record_id = '00000000-0000-0000-0000-000000000000'"
        ))
        .get_result(&mut app.db.conn())
        .unwrap();
        d.due_at
    };
    let local = due.with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).unwrap());
    assert_eq!(local.format("%H:%M").to_string(), "09:00", "09:00 business time");
    assert!(due > app.state.clock.now() && due - app.state.clock.now() <= chrono::Duration::days(1));
    let notices = || {
        app.db
            .count("SELECT count(*) AS n FROM notifications WHERE kind = 'rule_alert'")
    };
    app.state
        .clock
        .advance(due - app.state.clock.now() + chrono::Duration::minutes(1));
    fire(&app);
    sweep(&app);
    assert_eq!(
        notices(),
        2,
        "the two new leads, not the assigned one; once each though swept twice"
    );
    let log = runs(&app, &admin, &rule).await;
    assert_eq!(log.iter().filter(|r| r["status"] == "done").count(), 2, "{log:?}");
    assert!(log.iter().all(|r| r["trigger"] == "schedule"));
    // The next day's occurrence runs again (re-enrollment on).
    fire(&app);
    sweep(&app);
    assert_eq!(notices(), 2, "not before its time");
    app.state.clock.advance(chrono::Duration::days(1));
    fire(&app);
    sweep(&app);
    assert_eq!(notices(), 4);
}

#[actix_web::test]
async fn members_who_pause_their_assignments_are_skipped_until_they_resume() {
    let app = start().await;
    let admin = app.token(app.org.admin);
    let mkt = app.token(app.org.marketing);
    let b = app.token(app.org.rep_east1b);
    let now = app.state.clock.now();
    let r = app
        .put(
            "/api/v1/me/assignment-pause",
            &b,
            json!({"until": now - chrono::Duration::hours(1)}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
    let r = app
        .put(
            "/api/v1/me/assignment-pause",
            &b,
            json!({"until": now + chrono::Duration::days(1), "reason": "年假 annual leave"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let got = app.get("/api/v1/me/assignment-pause", &b).await;
    assert_eq!(got.body["reason"], "年假 annual leave");
    assert!(got.body["until"].is_string());
    assert!(app.get("/api/v1/me/assignment-pause", &mkt).await.body["until"].is_null());
    create_rule(
        &app,
        &admin,
        json!({"name": "Round robin in East 1", "object": "leads", "enabled": true,
               "triggers": [{"type": "created"}],
               "condition": {"field": "status", "op": "eq", "value": "new"},
               "actions": [{"type": "assign_owner", "team_id": app.org.east1, "strategy": "round_robin"}]}),
    )
    .await;
    let lead = |mobile: &'static str| {
        let (app, mkt) = (&app, &mkt);
        async move {
            let r = app
                .post(
                    "/api/v1/leads",
                    mkt,
                    json!({"person_name": "轮转", "company": mobile, "source": "website", "mobile": mobile}),
                )
                .await;
            assert_eq!(r.status, 201, "{}", r.text);
            r.body["id"].as_str().unwrap().to_owned()
        }
    };
    let owner = |id: String| {
        let (app, admin) = (&app, &admin);
        async move { app.get(&format!("/api/v1/leads/{id}"), admin).await.body["owner_id"].clone() }
    };
    let (l1, l2) = (lead("13900004001").await, lead("13900004002").await);
    dispatch(&app);
    assert_eq!(owner(l1).await, json!(app.org.rep_east1));
    assert_eq!(
        owner(l2).await,
        json!(app.org.rep_east1),
        "the paused member is skipped"
    );
    let r = app.put("/api/v1/me/assignment-pause", &b, json!({"until": null})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(app.get("/api/v1/me/assignment-pause", &b).await.body["until"].is_null());
    let l3 = lead("13900004003").await;
    dispatch(&app);
    assert_eq!(owner(l3).await, json!(app.org.rep_east1b), "back in the rotation");
    assert_eq!(
        app.db.count(&format!(
            "SELECT count(*) AS n FROM outbox_events WHERE event_type = 'user.assignment_paused' AND aggregate_id = '{}'",
            app.org.rep_east1b
        )),
        2
    );
    // An integration's API key has nobody's assignments to pause: 403, nothing stored.
    let svc = app
        .post(
            "/api/v1/admin/users",
            &admin,
            json!({"email": "robot@test.local", "name": "Robot", "is_service": true, "team_id": app.org.east1}),
        )
        .await;
    assert_eq!(svc.status, 201, "{}", svc.text);
    let key = app
        .post(
            "/api/v1/admin/api-keys",
            &admin,
            json!({"name": "robot", "user_id": svc.body["id"], "role": "sales_rep"}),
        )
        .await;
    assert_eq!(key.status, 201, "{}", key.text);
    let key = key.body["key"].as_str().unwrap().to_owned();
    let r = app
        .put(
            "/api/v1/me/assignment-pause",
            &key,
            json!({"until": now + chrono::Duration::days(1)}),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(
        app.db
            .count("SELECT count(*) AS n FROM assignment_pauses WHERE until > now()"),
        0
    );
}

#[actix_web::test]
async fn the_default_territory_rule_routes_new_leads_to_the_team_covering_their_region() {
    let app = start().await;
    let admin = app.token(app.org.admin);
    let mkt = app.token(app.org.marketing);
    // Teams say which region they cover; the fixture's region teams cover east / north.
    let teams = app.get("/api/v1/teams", &admin).await;
    let east = teams.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == json!(app.org.east))
        .cloned()
        .unwrap();
    assert_eq!(east["region"], "east");
    let r = app
        .post(
            "/api/v1/admin/teams",
            &admin,
            json!({"name": "South", "kind": "region", "parent_id": app.org.company, "region": "x".repeat(101)}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
    let rule = install_default(&app, &admin, "new_lead_territory").await;
    let rows = rule["actions"][0]["territories"].as_array().unwrap().clone();
    assert_eq!(
        rows,
        vec![
            json!({"region": "east", "team_id": app.org.east}),
            json!({"region": "north", "team_id": app.org.north})
        ]
    );
    let lead = |region: &'static str, mobile: &'static str| {
        let (app, mkt) = (&app, &mkt);
        async move {
            let r = app
                .post(
                    "/api/v1/leads",
                    mkt,
                    json!({"person_name": "区域", "company": mobile, "source": "website", "mobile": mobile, "region": region}),
                )
                .await;
            assert_eq!(r.status, 201, "{}", r.text);
            r.body["id"].as_str().unwrap().to_owned()
        }
    };
    let owner = |id: String| {
        let (app, admin) = (&app, &admin);
        async move { app.get(&format!("/api/v1/leads/{id}"), admin).await.body["owner_id"].clone() }
    };
    let (e1, e2, n1, w1) = (
        lead("east", "13900005001").await,
        lead("East", "13900005002").await,
        lead("north", "13900005003").await,
        lead("west", "13900005004").await,
    );
    dispatch(&app);
    // Round robin over the region's whole team (its sub-teams' members too), in turn.
    let east_people = [
        app.org.manager_east,
        app.org.rep_east1,
        app.org.rep_east1b,
        app.org.rep_east2,
    ]
    .map(|u| json!(u));
    let (o1, o2) = (owner(e1.clone()).await, owner(e2).await);
    assert!(east_people.contains(&o1), "{o1}");
    assert!(east_people.contains(&o2), "{o2}");
    assert_ne!(o1, o2, "in turn");
    assert_eq!(owner(n1).await, json!(app.org.rep_north1));
    assert_eq!(
        owner(w1).await,
        json!(app.org.marketing),
        "no territory covers west: left as it was"
    );
    // The routed lead's owner gets the new-lead to-do.
    assert_eq!(
        app.db.count(&format!(
            "SELECT count(*) AS n FROM tasks WHERE origin = 'rule' AND related_id = '{e1}' AND owner_id = '{}'",
            o1.as_str().unwrap()
        )),
        1
    );
    // A team's region can be changed and cleared (audited like any team change).
    let path = format!("/api/v1/admin/teams/{}", app.org.north);
    let rep = app.token(app.org.rep_north1);
    assert_eq!(app.patch(&path, &rep, 1, json!({"region": "x"})).await.status, 403);
    let r = app.patch(&path, &admin, 1, json!({"region": "x".repeat(101)})).await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(r.body["errors"][0]["field"], "region");
    assert_eq!(
        app.patch(&path, &admin, 7, json!({"region": "x"})).await.status,
        412,
        "stale version"
    );
    let r = app.patch(&path, &admin, 1, json!({"region": "north-west"})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["region"], "north-west");
    let r = app.patch(&path, &admin, 2, json!({"region": null})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.body["region"].is_null());
    assert_eq!(r.body["name"], "North");
}

/// Disabling a rule while a worker holds one of its timers (firing it) does not wait
/// for that worker: the worker may be waiting on the rule's row to pause it, and
/// each waiting on the other was a deadlock. The held timer is left to its worker,
/// which drops it when it comes due, since the rule is off by then.
#[actix_web::test]
async fn disabling_a_rule_leaves_the_timers_a_worker_holds_to_it() {
    let app = start().await;
    let admin = app.token(app.org.admin);
    let rep = app.token(app.org.rep_east1);
    let due = app.state.clock.now() + chrono::Duration::hours(1);
    for i in 0..3 {
        let r = app
            .post(
                "/api/v1/tasks",
                &rep,
                json!({"title": format!("held{i}"), "due_at": due}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
    let rule = create_rule(
        &app,
        &admin,
        json!({"name": "Held", "object": "tasks", "enabled": true,
               "triggers": [{"type": "date_relative", "field": "due_at"}],
               "actions": [{"type": "notify", "to": ["owner"], "message": "due {{title}}"}]}),
    )
    .await;
    let id = rule["id"].as_str().unwrap().to_owned();
    schedule(&app);
    let pending = || {
        app.db.count(&format!(
            "SELECT count(*) AS n FROM rule_timers WHERE rule_id = '{id}' AND state = 'pending'"
        ))
    };
    assert_eq!(pending(), 3);
    // A "worker" holds one timer for two seconds.
    let (locked, is_locked) = std::sync::mpsc::channel();
    let mut held = app.db.conn();
    let rule_id = id.clone();
    let worker = std::thread::spawn(move || {
        use diesel::RunQueryDsl;
        held.transaction::<_, diesel::result::Error, _>(|c| {
            diesel::sql_query(format!(
                "SELECT id FROM rule_timers WHERE rule_id = '{rule_id}' ORDER BY id LIMIT 1 FOR UPDATE"
            ))
            .execute(c)?;
            locked.send(()).unwrap();
            std::thread::sleep(std::time::Duration::from_secs(2));
            Ok(())
        })
        .unwrap();
    });
    is_locked.recv().unwrap();
    let r = app
        .post(&format!("/api/v1/admin/rules/{id}/disable"), &admin, json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // Decided without waiting: had the delete waited for the held timer, it would
    // have removed it too.
    assert_eq!(pending(), 1);
    worker.join().unwrap();
    app.state.clock.advance(chrono::Duration::hours(2));
    assert_eq!(fire(&app), 0);
    assert_eq!(pending(), 0);
}
