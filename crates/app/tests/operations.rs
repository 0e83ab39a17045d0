//! Operations called directly, without HTTP, by a rule actor and by the system, against
//! a real test database.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use crm_app::opportunities::{self, NewDeal};
use crm_app::{AppError, Clock, Ctx};
use crm_db::repo::accounts::{self, NewAccount};
use crm_db::repo::opportunities as opps;
use crm_db::repo::{auth, pipelines};
use crm_domain::pipeline::Criterion;
use crm_test_support::fixtures::create_org;
use crm_test_support::TestDb;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text, Uuid as SqlUuid};
use serde_json::json;
use uuid::Uuid;

fn principal(c: &mut PgConnection, user: Uuid) -> Arc<crm_domain::Principal> {
    Arc::new(
        auth::load_principal(c, user, None, chrono::Duration::days(1))
            .unwrap()
            .unwrap()
            .principal,
    )
}

fn account(c: &mut PgConnection, owner: Uuid, team: Option<Uuid>) -> Uuid {
    accounts::insert(
        c,
        &NewAccount {
            id: Uuid::now_v7(),
            name: "Rule Co".into(),
            name_norm: "rule co".into(),
            account_type: "prospect".into(),
            industry: None,
            region: None,
            address: None,
            phone: None,
            email: None,
            website: None,
            tier: None,
            source: None,
            parent_id: None,
            owner_id: owner,
            team_id: team,
            notes: None,
            custom: json!({}),
            created_by: Some(owner),
        },
    )
    .unwrap()
    .id
}

fn deal(c: &mut PgConnection, ctx: &Ctx, account_id: Uuid, owner: Uuid) -> opps::OpportunityRow {
    opportunities::create(
        c,
        ctx,
        NewDeal {
            name: "Automated deal".into(),
            account_id,
            primary_contact_id: None,
            contacts: Vec::new(),
            pipeline_id: None,
            stage_id: None,
            amount: Some(rust_decimal::Decimal::from(5000)),
            currency: "CNY".into(),
            expected_close_date: None,
            probability: None,
            owner_id: owner,
            source_lead_id: None,
            competitors: Vec::new(),
            next_step: None,
            forecast_category: None,
            custom: None,
        },
    )
    .unwrap()
}

#[derive(QueryableByName)]
struct Audit {
    #[diesel(sql_type = Text)]
    action: String,
    #[diesel(sql_type = diesel::sql_types::Nullable<SqlUuid>)]
    actor_id: Option<Uuid>,
}

/// Setup written directly, exempt from the audit requirement for this transaction.
fn unaudited<T>(c: &mut PgConnection, f: impl FnOnce(&mut PgConnection) -> T) -> T {
    diesel::sql_query("SELECT set_config('crm.unaudited_writes', 'allowed', true)")
        .execute(c)
        .unwrap();
    let out = f(c);
    diesel::sql_query("SELECT set_config('crm.unaudited_writes', '', true)")
        .execute(c)
        .unwrap();
    out
}

/// The envelope of the last event of `id`.
fn last_event(c: &mut PgConnection, id: Uuid) -> serde_json::Value {
    crm_db::repo::audit::events_for(c, id).unwrap().pop().unwrap().payload
}

fn audit_of(c: &mut PgConnection, id: Uuid) -> Vec<Audit> {
    diesel::sql_query("SELECT action, actor_id FROM audit_log WHERE entity_id = $1 ORDER BY id")
        .bind::<SqlUuid, _>(id)
        .load(c)
        .unwrap()
}

#[test]
fn a_rule_moves_a_deal_under_the_stage_criteria_as_its_user() {
    let db = TestDb::new();
    // Like a request: one transaction (rolled back here), audit enforced.
    let mut c = db.app_conn();
    c.begin_test_transaction().unwrap();
    let org = unaudited(&mut c, create_org);
    let rule_id = Uuid::now_v7();
    let ctx = Ctx::rule(rule_id, principal(&mut c, org.rep_east1), Clock::default());
    let acc = unaudited(&mut c, |c| account(c, org.rep_east1, Some(org.east1)));
    let row = deal(&mut c, &ctx, acc, org.rep_east1);
    let stages = pipelines::stages_of(&mut c, &[row.pipeline_id], false).unwrap();
    let stage = |code: &str| stages.iter().find(|s| s.code == code).unwrap().clone();

    // The same criteria as through the API, as a typed error.
    let locked = opps::find(
        &mut c,
        &crm_domain::access::ScopeFilter::All,
        row.id,
        accounts::Liveness::Live,
        true,
    )
    .unwrap()
    .unwrap();
    let err = opportunities::move_deal(&mut c, &ctx, locked, stage("discovery").id, None).unwrap_err();
    let AppError::CriteriaUnmet { stage_code, unmet, .. } = err else {
        panic!("expected unmet criteria, got {err:?}");
    };
    assert_eq!(stage_code, "discovery");
    assert!(unmet.contains(&Criterion::OutputAttached {
        output: "first_call_notes".into()
    }));

    let qual = stage("qualification");
    for task in ["confirm_need_budget", "workshop_agreed"] {
        opps::set_task_done(&mut c, row.id, qual.id, task, true, org.rep_east1).unwrap();
    }
    opps::insert_output(
        &mut c,
        &opps::NewOutput {
            id: Uuid::now_v7(),
            opportunity_id: row.id,
            stage_id: qual.id,
            output_code: Some("first_call_notes".into()),
            title: "notes".into(),
            notes: None,
            url: None,
            file_ref: None,
            author_id: None,
        },
    )
    .unwrap();
    let locked = opps::find(
        &mut c,
        &crm_domain::access::ScopeFilter::All,
        row.id,
        accounts::Liveness::Live,
        true,
    )
    .unwrap()
    .unwrap();
    let moved = opportunities::move_deal(&mut c, &ctx, locked, stage("discovery").id, None).unwrap();
    assert_eq!(moved.stage_id, stage("discovery").id);
    assert_eq!(moved.probability, stage("discovery").probability);
    // Recorded as the rule's user, with the stage event.
    let audit = audit_of(&mut c, row.id);
    assert_eq!(
        audit.iter().map(|a| a.action.as_str()).collect::<Vec<_>>(),
        ["created", "stage_changed"]
    );
    assert!(audit.iter().all(|a| a.actor_id == Some(org.rep_east1)));
    // The event: the rule as actor, the storage-form change, the move as detail.
    let ev = last_event(&mut c, row.id);
    assert_eq!(ev["schema_version"], 1);
    assert_eq!(ev["type"], "opportunity.stage_changed");
    assert_eq!(ev["actor"]["kind"], "rule");
    assert_eq!(ev["actor"]["rule_id"], json!(rule_id));
    assert_eq!(ev["actor"]["user_id"], json!(org.rep_east1));
    assert_eq!(ev["object"]["id"], json!(row.id));
    assert_eq!(ev["object"]["version"], json!(moved.version));
    assert_eq!(ev["changes"]["stage_id"]["before"], json!(qual.id));
    assert_eq!(ev["changes"]["stage_id"]["after"], json!(moved.stage_id));
    assert_eq!(ev["state"]["stage_id"], json!(moved.stage_id));
    assert_eq!(ev["detail"]["move"], "forward");
    assert_eq!(ev["detail"]["to_stage"]["code"], "discovery");
    assert!(ev["detail"].get("opportunity").is_none(), "no API representation");

    // A rule acting as a rep may not reopen a lost deal either.
    let lost = stage("lost");
    let locked = opps::find(
        &mut c,
        &crm_domain::access::ScopeFilter::All,
        row.id,
        accounts::Liveness::Live,
        true,
    )
    .unwrap()
    .unwrap();
    opportunities::move_deal(&mut c, &ctx, locked, lost.id, Some("no budget".into())).unwrap();
    let locked = opps::find(
        &mut c,
        &crm_domain::access::ScopeFilter::All,
        row.id,
        accounts::Liveness::Live,
        true,
    )
    .unwrap()
    .unwrap();
    let err = opportunities::move_deal(&mut c, &ctx, locked, stage("discovery").id, Some("back".into())).unwrap_err();
    assert!(matches!(err, AppError::Forbidden(_)), "{err:?}");
}

#[test]
fn the_system_closes_deals_on_its_own_time() {
    let db = TestDb::new();
    // Like a request: one transaction (rolled back here), audit enforced.
    let mut c = db.app_conn();
    c.begin_test_transaction().unwrap();
    let org = unaudited(&mut c, create_org);
    let clock = Clock::default();
    clock.advance(chrono::Duration::days(3));
    let system = Ctx::system(clock.clone());
    let acc = unaudited(&mut c, |c| account(c, org.rep_east1, Some(org.east1)));
    // The system may create a deal for any owner (it holds every permission).
    let row = deal(&mut c, &system, acc, org.rep_east1);
    assert_eq!(row.created_by, None);

    // Won needs the Won criteria: nothing happens yet.
    assert!(opportunities::close_deal(&mut c, &system, row.id, true, None)
        .unwrap()
        .is_none());
    // Lost always closes an open deal, at the clock's time.
    let lost = opportunities::close_deal(&mut c, &system, row.id, false, Some("contract terminated".into()))
        .unwrap()
        .expect("closed");
    assert_eq!(lost.status, "lost");
    assert_eq!(lost.lost_reason.as_deref(), Some("contract terminated"));
    let closed_at = lost.closed_at.unwrap();
    assert!(
        closed_at > Clock::default().now() + chrono::Duration::days(2),
        "the injected clock"
    );
    // A closed deal is not closed again.
    assert!(opportunities::close_deal(&mut c, &system, row.id, false, None)
        .unwrap()
        .is_none());

    // Recorded with no user; the stage history says the system moved it.
    let audit = audit_of(&mut c, row.id);
    assert!(audit.iter().all(|a| a.actor_id.is_none()));
    let ev = last_event(&mut c, row.id);
    assert_eq!(ev["actor"]["kind"], "system");
    assert_eq!(ev["actor"]["user_id"], serde_json::Value::Null);
    assert_eq!(ev["state"]["status"], "lost");
    assert_eq!(ev["changes"]["status"], json!({"before": "open", "after": "lost"}));
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let n: N =
        diesel::sql_query("SELECT count(*) AS n FROM stage_history WHERE opportunity_id = $1 AND changed_by IS NULL")
            .bind::<SqlUuid, _>(row.id)
            .get_result(&mut c)
            .unwrap();
    assert_eq!(n.n, 2);
}

#[test]
fn conditions_read_a_record_view_built_from_storage_and_the_catalogue() {
    let db = TestDb::new();
    let mut c = db.app_conn();
    c.begin_test_transaction().unwrap();
    let org = unaudited(&mut c, create_org);
    let system = Ctx::system(Clock::default());
    let acc = unaudited(&mut c, |c| account(c, org.rep_east1, Some(org.east1)));
    unaudited(&mut c, |c| {
        diesel::sql_query("UPDATE accounts SET industry = 'manufacturing' WHERE id = $1")
            .bind::<SqlUuid, _>(acc)
            .execute(c)
            .unwrap()
    });
    let row = deal(&mut c, &system, acc, org.rep_east1);
    let v = crm_app::record::view(&mut c, "opportunities", row.id).unwrap().unwrap();
    // Own fields as stored, decimals exact, integers numbers.
    assert_eq!(v["name"], "Automated deal");
    assert_eq!(v["amount"], "5000.00");
    assert!(v["probability"].is_i64());
    assert_eq!(
        v["weighted_amount"],
        json!(crm_app::record::weighted_amount(row.amount, row.probability))
    );
    assert_eq!(v["custom"], json!({}));
    assert_eq!(v["contacts"], json!([]));
    // Related records by path.
    assert_eq!(v["stage"]["code"], "qualification");
    assert_eq!(v["account"]["industry"], "manufacturing");
    assert_eq!(v["account"]["type"], "prospect", "catalogue key, not the column name");
    assert!(v["account"].get("account_type").is_none() && v["account"].get("name_norm").is_none());
    assert_eq!(v["owner"]["id"], json!(org.rep_east1));
    assert!(v["owner"].get("password_hash").is_none());
    // A condition over the view, as stage criteria and approval definitions write them.
    let expr: crm_domain::expr::Expr = serde_json::from_value(json!({"all": [
        {"field": "account.industry", "op": "eq", "value": "manufacturing"},
        {"field": "amount", "op": "gte", "value": "5000"}
    ]}))
    .unwrap();
    assert!(expr.eval(&v));
    assert!(crm_app::record::view(&mut c, "opportunities", Uuid::now_v7())
        .unwrap()
        .is_none());
}

#[test]
fn quotes_are_priced_by_the_operation_without_http() {
    use crm_app::quotes::{price_lines, LineInput};
    use crm_db::repo::products::{self, NewProduct};
    use rust_decimal::Decimal;
    let d = |s: &str| s.parse::<Decimal>().unwrap();
    let db = TestDb::new();
    let mut c = db.app_conn();
    c.begin_test_transaction().unwrap();
    let product = unaudited(&mut c, |c| {
        products::insert(
            c,
            &NewProduct {
                id: Uuid::now_v7(),
                code: "OPS-1".into(),
                name: "Ops product".into(),
                unit: "套".into(),
                category: None,
                list_price: d("10000.00"),
                standard_cost: d("6000.00"),
                tax_rate: d("13.00"),
                active: true,
            },
        )
        .unwrap()
    });
    let line = |product_id: Option<Uuid>, qty: &str, price: Option<&str>, discount: Option<&str>, tax: Option<&str>| {
        LineInput {
            product_id,
            description: product_id.is_none().then(|| "实施服务 Implementation".to_owned()),
            unit: None,
            quantity: d(qty),
            unit_price: price.map(d),
            discount_pct: discount.map(d),
            tax_rate: tax.map(d),
        }
    };
    let quote_id = Uuid::now_v7();
    let lines = [
        line(Some(product.id), "2", None, Some("10"), None),
        line(None, "1", Some("5000.00"), None, Some("6")),
    ];
    let (rows, t) = price_lines(&mut c, quote_id, None, "CNY", &lines, d("5")).unwrap();
    // The same figures the API test checks: subtotal 23000, header 5% spread 900 / 250.
    assert_eq!(rows[0].description, "Ops product");
    assert_eq!(rows[0].unit.as_deref(), Some("套"));
    assert_eq!(rows[0].unit_cost, d("6000.00"));
    assert_eq!(rows[0].net_amount, d("17100.00"));
    assert_eq!(rows[1].net_amount, d("4750.00"));
    assert_eq!(t.list_total, d("25000.00"));
    assert_eq!(t.net_amount, d("21850.00"));
    assert_eq!(t.effective_discount_pct, d("12.60"));
    assert_eq!(t.total, d("24358.00"));
    assert_eq!(t.cost_total, d("12000.00"));

    // Bad lines: typed field errors for each, nothing priced.
    let bad = [
        line(Some(Uuid::now_v7()), "1", None, None, None),
        line(None, "1", None, Some("150"), None),
        line(Some(product.id), "999999999999", Some("9999999999999.00"), None, None),
    ];
    let err = price_lines(&mut c, quote_id, None, "CNY", &bad, Decimal::ZERO).unwrap_err();
    let AppError::Validation(errors) = err else {
        panic!("expected field errors, got {err:?}");
    };
    let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "lines[0].product_id",
            "lines[1].discount_pct",
            "lines[1].unit_price",
            "lines[2].quantity"
        ]
    );
    // Another currency needs a price book entry.
    let err = price_lines(&mut c, quote_id, None, "USD", &lines[..1], Decimal::ZERO).unwrap_err();
    assert!(
        matches!(&err, AppError::Validation(e) if e[0].code == "not_in_price_book"),
        "{err:?}"
    );
}

#[test]
fn a_rule_assigns_a_lead_and_creates_a_follow_up_task() {
    use crm_db::repo::leads::{self, NewLead};
    let db = TestDb::new();
    let mut c = db.app_conn();
    c.begin_test_transaction().unwrap();
    let org = unaudited(&mut c, create_org);
    let clock = Clock::default();
    let lead = unaudited(&mut c, |c| {
        leads::insert(
            c,
            &NewLead {
                id: Uuid::now_v7(),
                person_name: "王芳".into(),
                company: Some("Web Form Co".into()),
                title: None,
                mobile: None,
                phone: None,
                email: Some("wang@webform.example".into()),
                source: "website".into(),
                campaign: None,
                region: Some("east".into()),
                industry: None,
                tags: Vec::new(),
                estimated_budget: None,
                notes: None,
                owner_id: org.manager_east,
                team_id: Some(org.east),
                status: "new".into(),
                assigned_at: None,
                custom: json!({}),
                created_by: None,
            },
        )
        .unwrap()
    });
    // The rule acts as the east manager: it may assign within the east region only.
    let rule_id = Uuid::now_v7();
    let ctx = Ctx::rule(rule_id, principal(&mut c, org.manager_east), clock.clone());
    let err = crm_app::leads::assign(&mut c, &ctx, &[lead.id], org.rep_north1).unwrap_err();
    assert!(matches!(err, AppError::Forbidden(_)), "{err:?}");
    let assigned = crm_app::leads::assign(&mut c, &ctx, &[lead.id], org.rep_east1).unwrap();
    assert_eq!(assigned[0].owner_id, org.rep_east1);
    assert_eq!(assigned[0].team_id, Some(org.east1));
    assert_eq!(assigned[0].status, "assigned");
    assert!(assigned[0].assigned_at.is_some(), "the response clock starts");
    let ev = last_event(&mut c, lead.id);
    assert_eq!(ev["type"], "lead.assigned");
    assert_eq!(ev["actor"]["rule_id"], json!(rule_id));
    assert_eq!(ev["changes"]["owner_id"]["after"], json!(org.rep_east1));
    assert_eq!(ev["changes"]["status"], json!({"before": "new", "after": "assigned"}));

    // A follow-up task for the new owner, about the lead.
    let task = crm_app::tasks::create(
        &mut c,
        &ctx,
        crm_app::tasks::TaskInput {
            title: "  Call back  ".into(),
            description: None,
            due_at: Some(clock.now() + chrono::Duration::hours(4)),
            reminder_at: None,
            priority: "high".into(),
            owner_id: Some(org.rep_east1),
            related: Some(("lead".into(), lead.id)),
            origin: "rule".into(),
        },
    )
    .unwrap();
    assert_eq!(task.title, "Call back");
    assert_eq!(task.team_id, Some(org.east1));
    assert_eq!(task.origin, "rule");
    assert_eq!(last_event(&mut c, task.id)["type"], "task.created");
    // Not about a record the actor cannot see.
    let err = crm_app::tasks::create(
        &mut c,
        &ctx,
        crm_app::tasks::TaskInput {
            title: "Peek".into(),
            description: None,
            due_at: None,
            reminder_at: None,
            priority: "normal".into(),
            owner_id: None,
            related: Some(("opportunity".into(), Uuid::now_v7())),
            origin: "rule".into(),
        },
    )
    .unwrap_err();
    assert!(
        matches!(&err, AppError::Validation(e) if e[0].field == "related_id"),
        "{err:?}"
    );
}

fn fields(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    v.as_object().cloned().unwrap()
}

#[test]
fn a_rule_writes_accounts_through_the_one_write_path() {
    let db = TestDb::new();
    let mut c = db.app_conn();
    c.begin_test_transaction().unwrap();
    let org = unaudited(&mut c, create_org);
    let rule_id = Uuid::now_v7();
    let ctx = Ctx::rule(rule_id, principal(&mut c, org.rep_east1), Clock::default());

    // The same validation as the API: every bad field named, nothing written.
    let err = crm_app::accounts::create(
        &mut c,
        &ctx,
        &fields(json!({"name": " ", "type": "friend", "email": "not-an-address", "notes": "x".repeat(10_001)})),
        false,
    )
    .unwrap_err();
    let AppError::Validation(errs) = err else {
        panic!("{err:?}")
    };
    let named: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(named, ["email", "name", "notes", "type"]);
    // Unknown fields are refused, not ignored.
    let err =
        crm_app::accounts::create(&mut c, &ctx, &fields(json!({"name": "A", "colour": "red"})), false).unwrap_err();
    assert!(
        matches!(&err, AppError::Validation(e) if e[0].field == "colour" && e[0].code == "unknown_field"),
        "{err:?}"
    );
    // A wrong type is named by its path.
    let err =
        crm_app::accounts::create(&mut c, &ctx, &fields(json!({"name": "A", "parent_id": 7})), false).unwrap_err();
    assert!(
        matches!(&err, AppError::Validation(e) if e[0].field == "parent_id" && e[0].code == "invalid_type"),
        "{err:?}"
    );

    let row = crm_app::accounts::create(
        &mut c,
        &ctx,
        &fields(json!({"name": "  华信 科技 ", "type": "customer", "phone": "021-5555 0101", "tier": "B"})),
        false,
    )
    .unwrap();
    assert_eq!(row.name, "华信 科技");
    assert_eq!(row.owner_id, org.rep_east1);
    assert_eq!(row.team_id, Some(org.east1));
    let ev = last_event(&mut c, row.id);
    assert_eq!(ev["type"], "account.created");
    assert_eq!(ev["actor"]["kind"], "rule");
    assert_eq!(ev["actor"]["rule_id"], json!(rule_id));
    // A second one with the same phone is a duplicate, with the existing record.
    let err = crm_app::accounts::create(
        &mut c,
        &ctx,
        &fields(json!({"name": "Other", "phone": "02155550101"})),
        false,
    )
    .unwrap_err();
    assert!(
        matches!(&err, AppError::Conflict { code: "duplicate", extra, .. } if extra["existing"]["id"] == json!(row.id)),
        "{err:?}"
    );

    // Update: the version is checked, unchanged fields are no change, the audit entry
    // lists the changed fields by their catalogue keys.
    let stale = crm_app::accounts::update(
        &mut c,
        &ctx,
        row.id,
        Some(row.version + 5),
        &fields(json!({"tier": "A"})),
    );
    assert!(matches!(stale, Err(AppError::Stale { current }) if current == row.version));
    let same =
        crm_app::accounts::update(&mut c, &ctx, row.id, Some(row.version), &fields(json!({"tier": "B"}))).unwrap();
    assert_eq!(same.version, row.version, "nothing to change, no new version");
    let after = crm_app::accounts::update(
        &mut c,
        &ctx,
        row.id,
        Some(row.version),
        &fields(json!({"tier": "A", "type": "partner", "region": null})),
    )
    .unwrap();
    assert_eq!(after.version, row.version + 1);
    let ev = last_event(&mut c, row.id);
    assert_eq!(ev["type"], "account.updated");
    assert_eq!(ev["changes"]["tier"], json!({"before": "B", "after": "A"}));
    assert_eq!(ev["object"]["version"], json!(after.version));
    #[derive(QueryableByName)]
    struct Changes {
        #[diesel(sql_type = diesel::sql_types::Jsonb)]
        changes: serde_json::Value,
    }
    let entry: Changes = diesel::sql_query(
        "SELECT changes FROM audit_log WHERE entity_id = $1 AND action = 'updated' ORDER BY id DESC LIMIT 1",
    )
    .bind::<SqlUuid, _>(row.id)
    .get_result(&mut c)
    .unwrap();
    assert_eq!(entry.changes["type"], json!({"before": "customer", "after": "partner"}));
    assert!(entry.changes.get("name_norm").is_none(), "internal columns stay out");
    assert!(entry.changes.get("region").is_none(), "null to null is no change");

    // Another owner needs accounts:assign reaching them: a rep's rule cannot hand over.
    let err = crm_app::accounts::update(&mut c, &ctx, row.id, None, &fields(json!({"owner_id": org.rep_north1})))
        .unwrap_err();
    assert!(matches!(err, AppError::Forbidden(_)), "{err:?}");
}

#[test]
fn payments_are_received_and_allocated_by_the_operations() {
    use crm_domain::status::ContractStatus;
    let db = TestDb::new();
    let mut c = db.app_conn();
    c.begin_test_transaction().unwrap();
    let org = unaudited(&mut c, create_org);
    let system = Ctx::system(Clock::default());
    let acc = unaudited(&mut c, |c| account(c, org.rep_east1, Some(org.east1)));
    let d = deal(&mut c, &system, acc, org.rep_east1);

    let k = crm_app::contracts::create(
        &mut c,
        &system,
        &fields(json!({"opportunity_id": d.id, "amount": "10000.00", "title": "Annual licence"})),
    )
    .unwrap();
    assert_eq!(k.status, "draft");
    let plan = [("2026-12-31", "6000.00"), ("2027-03-31", "4000.00")]
        .into_iter()
        .map(|(due, amount)| crm_app::contracts::InstallmentInput {
            due_date: due.parse().unwrap(),
            amount: amount.parse().unwrap(),
            note: None,
        })
        .collect::<Vec<_>>();
    // The plan must add up to the contract amount.
    let err = crm_app::contracts::set_plan(&mut c, &system, k.id, &plan[..1]).unwrap_err();
    assert!(
        matches!(
            err,
            AppError::Rule {
                code: "plan_total_mismatch",
                ..
            }
        ),
        "{err:?}"
    );
    crm_app::contracts::set_plan(&mut c, &system, k.id, &plan).unwrap();

    // Before signing a payment is a prepayment, held unapplied.
    let pay = |c: &mut PgConnection, amount: &str| {
        crm_app::payments::receive_payment(
            c,
            &system,
            &fields(json!({"contract_id": k.id, "amount": amount, "method": "bank_transfer"})),
        )
    };
    let pre = pay(&mut c, "1000.00").unwrap();
    assert!(pre.prepayment);
    assert_eq!(
        crm_app::payments::unapplied(&mut c, &pre).unwrap(),
        "1000".parse().unwrap()
    );

    // Signed (the status operation as the system would after the legal review).
    let row = crm_db::repo::contracts::find(&mut c, &crm_domain::access::ScopeFilter::All, k.id, true)
        .unwrap()
        .unwrap();
    crm_app::contracts::set_status(
        &mut c,
        &system.actor(),
        &row,
        ContractStatus::Signed,
        "signed",
        None,
        None,
    )
    .unwrap();

    // Oldest due first: 6000 to the first instalment, 1000 to the second.
    let p = pay(&mut c, "7000.00").unwrap();
    assert!(!p.prepayment);
    let dues = crm_app::payments::dues(&mut c, k.id).unwrap();
    assert_eq!(dues[0].outstanding, "0".parse().unwrap());
    assert_eq!(dues[1].outstanding, "3000".parse().unwrap());
    // The prepayment is applied now, explicitly; never beyond what is due.
    let scope = crm_domain::access::ScopeFilter::All;
    let too_much = [(dues[1].installment_id, "5000".parse().unwrap())];
    let err = crm_app::payments::allocate_payment(&mut c, &system, &scope, pre.id, Some(&too_much)).unwrap_err();
    assert!(
        matches!(
            err,
            AppError::Rule {
                code: "exceeds_payment" | "exceeds_due",
                ..
            }
        ),
        "{err:?}"
    );
    crm_app::payments::allocate_payment(&mut c, &system, &scope, pre.id, None).unwrap();
    assert_eq!(
        crm_app::payments::unapplied(&mut c, &pre).unwrap(),
        "0".parse().unwrap()
    );
    assert_eq!(
        crm_app::payments::dues(&mut c, k.id).unwrap()[1].outstanding,
        "2000".parse().unwrap()
    );
    let ev = last_event(&mut c, pre.id);
    assert_eq!(ev["type"], "payment.allocated");
    assert_eq!(ev["actor"]["kind"], "system");

    // Never beyond the contract amount (no tolerance configured).
    let err = pay(&mut c, "2000.01").unwrap_err();
    assert!(
        matches!(
            err,
            AppError::Rule {
                code: "exceeds_contract",
                ..
            }
        ),
        "{err:?}"
    );
    pay(&mut c, "2000.00").unwrap();
    assert!(crm_app::payments::dues(&mut c, k.id)
        .unwrap()
        .iter()
        .all(|d| d.outstanding.is_zero()));
}
