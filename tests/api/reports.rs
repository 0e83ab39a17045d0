//! Fixed reports on small hand-built data sets whose right answers are known: results,
//! process, funnel and pipeline; periods in the business time zone, data scope and
//! field permissions.

use diesel::RunQueryDsl;
use serde_json::{json, Value};

use crate::q2c::{product, quote};
use crm_test_support::app::{stage_id, start};

/// October 2026 in China Standard Time; the previous period is the 31 days before it
/// (2026-08-31 ..= 2026-09-30).
const OCT: &str = "from=2026-10-01&to=2026-10-31";

fn exec(app_db: &crm_test_support::TestDb, sql: &str) {
    diesel::sql_query(sql)
        .execute(&mut app_db.conn())
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// The figure `kpi` (of `currency` / `activity_type` when given) among `figures`.
fn fig<'a>(figures: &'a Value, kpi: &str, split: Option<&str>) -> &'a Value {
    figures
        .as_array()
        .unwrap()
        .iter()
        .find(|f| {
            f["kpi"] == kpi
                && match split {
                    None => f["currency"].is_null() && f["activity_type"].is_null(),
                    Some(s) => f["currency"] == s || f["activity_type"] == s,
                }
        })
        .unwrap_or_else(|| panic!("no figure {kpi} {split:?} in {figures}"))
}

fn has_fig(figures: &Value, kpi: &str) -> bool {
    figures.as_array().unwrap().iter().any(|f| f["kpi"] == kpi)
}

/// (value, previous) of a figure, as strings ("" for null).
fn vp(f: &Value) -> (String, String) {
    let s = |v: &Value| v.as_str().unwrap_or("").to_owned();
    (s(&f["value"]), s(&f["previous"]))
}

#[actix_web::test]
async fn results_and_process_count_each_record_once_in_its_period_and_scope() {
    let app = start().await;
    let admin = app.token(app.org.admin);
    let rep_e = app.token(app.org.rep_east1);
    let rep_n = app.token(app.org.rep_north1);
    let east = app.account(&rep_e, "华东客户").await["id"].as_str().unwrap().to_owned();
    let north = app.account(&rep_n, "华北客户").await["id"].as_str().unwrap().to_owned();
    let mut ids = std::collections::BTreeMap::new();
    for (key, token, account, amount, currency) in [
        ("a", &rep_e, &east, "1000", "CNY"),
        ("b", &rep_e, &east, "700", "CNY"),
        ("c", &rep_n, &north, "400", "CNY"),
        ("d", &rep_n, &north, "50", "USD"),
        ("e", &rep_e, &east, "300", "CNY"),
        ("f", &rep_e, &east, "900", "CNY"),
    ] {
        let d = app
            .deal(
                token,
                json!({"name": format!("deal {key}"), "account_id": account, "amount": amount, "currency": currency}),
            )
            .await;
        ids.insert(key, d["id"].as_str().unwrap().to_owned());
    }
    let set = |key: &str, status: &str, created: &str, closed: Option<&str>| {
        let closed = closed.map_or("NULL".to_owned(), |c| format!("'{c}'"));
        exec(
            &app.db,
            &format!(
                "UPDATE opportunities SET status = '{status}', created_at = '{created}', closed_at = {closed}, \
                 lost_reason = CASE WHEN '{status}' = 'lost' THEN 'price' END WHERE id = '{}'",
                ids[key]
            ),
        );
    };
    // Won on 31 October at 23:59 in Beijing: October.
    set("a", "won", "2026-10-01T00:00:00Z", Some("2026-10-31T15:59:00Z"));
    // Won at midnight of 1 November in Beijing (still 31 October in UTC): not October.
    set("b", "won", "2026-10-01T00:00:00Z", Some("2026-10-31T16:00:00Z"));
    // Won in the previous period.
    set("c", "won", "2026-09-01T02:00:00Z", Some("2026-09-15T02:00:00Z"));
    // Won in October, in dollars, after exactly ten days.
    set("d", "won", "2026-10-10T04:00:00Z", Some("2026-10-20T04:00:00Z"));
    // Lost in October.
    set("e", "lost", "2026-10-01T00:00:00Z", Some("2026-10-05T04:00:00Z"));
    // Won in October, then reopened: open again, it counts nowhere.
    set("f", "open", "2026-10-01T00:00:00Z", None);

    let r = app.get(&format!("/api/v1/reports/results?{OCT}"), &admin).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["period"]["from"], "2026-10-01");
    assert_eq!(r.body["period"]["starts_at"], "2026-09-30T16:00:00Z");
    assert_eq!(r.body["previous_period"]["from"], "2026-08-31");
    assert_eq!(r.body["previous_period"]["to"], "2026-09-30");
    assert_eq!(r.body["utc_offset_hours"], 8);
    let t = &r.body["totals"];
    let won_cny = fig(t, "sales_won_amount", Some("CNY"));
    assert_eq!(vp(won_cny), ("1000.00".into(), "400.00".into()));
    assert_eq!(won_cny["change"], "600.00");
    assert_eq!(won_cny["change_pct"], "150.00");
    assert_eq!(won_cny["unit"], "money");
    // Dollars are reported apart, never added to yuan.
    assert_eq!(
        vp(fig(t, "sales_won_amount", Some("USD"))),
        ("50.00".into(), "0".into())
    );
    assert_eq!(vp(fig(t, "deals_won", None)), ("2".into(), "1".into()));
    assert_eq!(
        vp(fig(t, "average_deal_size", Some("CNY"))),
        ("1000.00".into(), "400.00".into())
    );
    assert!(r.body["withheld"].as_array().unwrap().is_empty());

    // Per owner: each rep's own deals, users named.
    let r = app
        .get(&format!("/api/v1/reports/results?{OCT}&group_by=owner"), &admin)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let rows = r.body["rows"].as_array().unwrap();
    let row = |user: uuid::Uuid| {
        rows.iter()
            .find(|row| row["group"]["key"] == user.to_string())
            .unwrap_or_else(|| panic!("no row for {user}: {rows:?}"))
    };
    let east_row = row(app.org.rep_east1);
    assert!(east_row["group"]["label"].as_str().is_some());
    assert_eq!(
        vp(fig(&east_row["figures"], "deals_won", None)),
        ("1".into(), "0".into())
    );
    let north_row = row(app.org.rep_north1);
    assert_eq!(
        vp(fig(&north_row["figures"], "deals_won", None)),
        ("1".into(), "1".into())
    );
    assert_eq!(
        vp(fig(&north_row["figures"], "sales_won_amount", Some("CNY"))),
        ("0".into(), "400.00".into())
    );

    // Process: win rate over deals closed, sales cycle of the deals won.
    let r = app.get(&format!("/api/v1/reports/process?{OCT}"), &admin).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let t = &r.body["totals"];
    assert_eq!(vp(fig(t, "deals_closed", None)), ("3".into(), "1".into()));
    assert_eq!(vp(fig(t, "win_rate", None)), ("66.67".into(), "100.00".into()));
    // a: 30 days 15:59 (30.67), d: 10 days; c before: 14 days.
    assert_eq!(vp(fig(t, "sales_cycle_avg_days", None)), ("20.3".into(), "14.0".into()));
    assert_eq!(
        vp(fig(t, "sales_cycle_median_days", None)),
        ("20.3".into(), "14.0".into())
    );

    // A rep sees the figures of their own deals only.
    let r = app.get(&format!("/api/v1/reports/results?{OCT}"), &rep_e).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let t = &r.body["totals"];
    assert_eq!(vp(fig(t, "deals_won", None)), ("1".into(), "0".into()));
    assert!(t.as_array().unwrap().iter().all(|f| f["currency"] != "USD"), "{t}");
    // The east manager sees east's deals, not north's.
    let manager = app.token(app.org.manager_east);
    let r = app.get(&format!("/api/v1/reports/process?{OCT}"), &manager).await;
    assert_eq!(
        vp(fig(&r.body["totals"], "deals_closed", None)),
        ("2".into(), "0".into())
    );

    // With deal amounts hidden from reps, their amount figures are withheld, not shown.
    app.set_field_access(
        &admin,
        "sales_rep",
        json!([{"object": "opportunities", "field": "amount", "access": "hidden"}]),
    )
    .await;
    let r = app.get(&format!("/api/v1/reports/results?{OCT}"), &rep_e).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let withheld: Vec<&str> = r.body["withheld"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        withheld.contains(&"sales_won_amount") && withheld.contains(&"average_deal_size"),
        "{withheld:?}"
    );
    assert!(!has_fig(&r.body["totals"], "sales_won_amount"));
    assert!(has_fig(&r.body["totals"], "deals_won"));
    let r = app.get("/api/v1/reports/pipeline", &rep_e).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.body["cells"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["amount"].is_null()));
    // ... and grouping by a field the caller may not read is refused, naming it.
    app.set_field_access(
        &admin,
        "sales_rep",
        json!([{"object": "accounts", "field": "industry", "access": "hidden"}]),
    )
    .await;
    let r = app
        .get(&format!("/api/v1/reports/results?{OCT}&group_by=industry"), &rep_e)
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(r.body["errors"][0]["field"], "group_by");
    assert_eq!(r.body["errors"][0]["code"], "field_not_readable");
}

#[actix_web::test]
async fn contracts_payments_gross_profit_leads_activities_and_response_times() {
    let app = start().await;
    let admin = app.token(app.org.admin);
    let rep = app.token(app.org.rep_east1);
    let mkt = app.token(app.org.marketing);
    let acc = app.account(&rep, "合同客户").await["id"].as_str().unwrap().to_owned();
    let deal = app
        .deal(&rep, json!({"name": "合同商机", "account_id": acc, "amount": "5000"}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // A quote: two units at 1000 that cost 600 each, so 800 gross profit.
    let p = product(&app, &admin, "RPT-1", "1000.00", "600.00").await;
    let q = quote(
        &app,
        &rep,
        &deal,
        json!([{"product_id": p["id"], "quantity": "2"}]),
        "0",
    )
    .await;
    let mut contracts = Vec::new();
    for amount in ["2260.00", "999.00"] {
        let r = app
            .post(
                "/api/v1/contracts",
                &rep,
                json!({"opportunity_id": deal, "amount": amount}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        contracts.push(r.body["id"].as_str().unwrap().to_owned());
    }
    // One signed in October (from the quote), one in September.
    exec(
        &app.db,
        &format!(
            "UPDATE contracts SET status = 'signed', signed_at = '2026-10-08T02:00:00Z', quote_id = '{}' WHERE id = '{}'",
            q["id"].as_str().unwrap(),
            contracts[0]
        ),
    );
    exec(
        &app.db,
        &format!(
            "UPDATE contracts SET status = 'signed', signed_at = '2026-09-08T02:00:00Z' WHERE id = '{}'",
            contracts[1]
        ),
    );
    // Payments: two in October (one on the last day), one on 1 November (outside).
    for (amount, day) in [
        ("1000.00", "2026-10-01"),
        ("260.00", "2026-10-31"),
        ("1000.00", "2026-11-01"),
    ] {
        exec(
            &app.db,
            &format!(
                "INSERT INTO payments (id, contract_id, account_id, amount, received_on, method, owner_id, team_id) \
                 VALUES (gen_random_uuid(), '{}', '{acc}', {amount}, '{day}', 'bank_transfer', '{}', '{}')",
                contracts[0], app.org.rep_east1, app.org.east1
            ),
        );
    }
    let r = app.get(&format!("/api/v1/reports/results?{OCT}"), &admin).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let t = &r.body["totals"];
    assert_eq!(vp(fig(t, "new_contracts", None)), ("1".into(), "1".into()));
    assert_eq!(
        vp(fig(t, "new_contract_amount", Some("CNY"))),
        ("2260.00".into(), "999.00".into())
    );
    assert_eq!(vp(fig(t, "gross_profit", Some("CNY"))).0, "800.00");
    assert_eq!(
        vp(fig(t, "payments_collected", Some("CNY"))),
        ("1260.00".into(), "0".into())
    );
    assert_eq!(vp(fig(t, "payments_received", None)), ("2".into(), "0".into()));
    // By pipeline, and filtered to it, payments and contracts count under their deal's.
    let pid = app.default_pipeline(&rep).await["id"].as_str().unwrap().to_owned();
    for query in ["group_by=pipeline".to_owned(), format!("pipeline_id={pid}")] {
        let r = app.get(&format!("/api/v1/reports/results?{OCT}&{query}"), &admin).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let figures = match r.body["rows"].as_array().unwrap().as_slice() {
            [] => r.body["totals"].clone(),
            [row] => {
                assert_eq!(row["group"]["key"], pid.as_str(), "{}", r.text);
                row["figures"].clone()
            }
            rows => panic!("{rows:?}"),
        };
        assert_eq!(
            vp(fig(&figures, "payments_collected", Some("CNY"))),
            ("1260.00".into(), "0".into()),
            "{query}"
        );
        assert_eq!(
            vp(fig(&figures, "new_contracts", None)),
            ("1".into(), "1".into()),
            "{query}"
        );
    }
    // Legal reads contracts but not payments, and not quote margins: those figures are
    // withheld, the rest is there.
    let legal = app.token(app.org.legal);
    let r = app.get(&format!("/api/v1/reports/results?{OCT}"), &legal).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let withheld = r.body["withheld"].as_array().unwrap();
    for kpi in ["payments_collected", "payments_received", "gross_profit"] {
        assert!(withheld.iter().any(|w| w == kpi), "{kpi} in {withheld:?}");
        assert!(!has_fig(&r.body["totals"], kpi), "{kpi}");
    }
    assert_eq!(vp(fig(&r.body["totals"], "new_contracts", None)).0, "1");

    // Leads: three created in October (one converted), one in September.
    let mut leads = Vec::new();
    for (name, region) in [("甲", "east"), ("乙", "east"), ("丙", "north"), ("丁", "east")] {
        let r = app
            .post(
                "/api/v1/leads",
                &mkt,
                json!({"person_name": name, "source": "event", "region": region}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        leads.push(r.body["id"].as_str().unwrap().to_owned());
    }
    for (i, (created, converted)) in [
        ("2026-10-02T01:00:00Z", Some("2026-10-20T01:00:00Z")),
        ("2026-10-03T01:00:00Z", None),
        ("2026-10-04T01:00:00Z", None),
        ("2026-09-04T01:00:00Z", None),
    ]
    .iter()
    .enumerate()
    {
        let converted = converted.map_or("NULL".to_owned(), |c| format!("'{c}'"));
        exec(
            &app.db,
            &format!(
                "UPDATE leads SET created_at = '{created}', converted_at = {converted} WHERE id = '{}'",
                leads[i]
            ),
        );
        // Response: 30 and 90 minutes (met, breached), one still pending.
        let (status, minutes) = match i {
            0 => ("met", "30"),
            1 => ("breached", "90"),
            _ => ("pending", "NULL"),
        };
        exec(
            &app.db,
            &format!(
                "INSERT INTO lead_slas (lead_id, assigned_at, due_at, status, response_minutes) \
                 VALUES ('{}', '{created}', '{created}'::timestamptz + interval '1 hour', '{status}', {minutes}) \
                 ON CONFLICT (lead_id) DO UPDATE SET assigned_at = EXCLUDED.assigned_at, status = EXCLUDED.status, \
                 response_minutes = EXCLUDED.response_minutes",
                leads[i]
            ),
        );
    }
    // Activities: two calls and a visit in October, a call in September.
    for (kind, at) in [
        ("call", "2026-10-02T01:00:00Z"),
        ("call", "2026-10-09T01:00:00Z"),
        ("visit", "2026-10-09T03:00:00Z"),
        ("call", "2026-09-09T01:00:00Z"),
    ] {
        let r = app
            .post(
                "/api/v1/activities",
                &rep,
                json!({"type": kind, "subject": "跟进", "account_id": acc, "occurred_at": at}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
    let r = app.get(&format!("/api/v1/reports/process?{OCT}"), &admin).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let t = &r.body["totals"];
    assert_eq!(vp(fig(t, "new_leads", None)), ("3".into(), "1".into()));
    assert_eq!(vp(fig(t, "new_leads_converted", None)), ("1".into(), "0".into()));
    assert_eq!(
        vp(fig(t, "lead_conversion_rate", None)),
        ("33.33".into(), "0.00".into())
    );
    assert_eq!(vp(fig(t, "activities", None)), ("3".into(), "1".into()));
    assert_eq!(vp(fig(t, "activities", Some("call"))), ("2".into(), "1".into()));
    assert_eq!(vp(fig(t, "activities", Some("visit"))), ("1".into(), "0".into()));
    assert_eq!(vp(fig(t, "lead_response_avg_minutes", None)).0, "60.0");
    assert_eq!(vp(fig(t, "lead_response_median_minutes", None)).0, "60.0");
    assert_eq!(vp(fig(t, "lead_sla_attainment", None)), ("50.00".into(), "".into()));

    // Grouped by region: leads by their region.
    let r = app
        .get(&format!("/api/v1/reports/process?{OCT}&group_by=region"), &admin)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let rows = r.body["rows"].as_array().unwrap();
    let east = rows.iter().find(|row| row["group"]["key"] == "east").unwrap();
    assert_eq!(vp(fig(&east["figures"], "new_leads", None)), ("2".into(), "1".into()));
    let north = rows.iter().find(|row| row["group"]["key"] == "north").unwrap();
    assert_eq!(vp(fig(&north["figures"], "new_leads", None)).0, "1");

    // No data at all: counts are zero, rates unknown.
    let r = app
        .get("/api/v1/reports/process?from=2020-01-01&to=2020-01-31", &admin)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let t = &r.body["totals"];
    assert_eq!(vp(fig(t, "new_leads", None)), ("0".into(), "0".into()));
    assert!(fig(t, "win_rate", None)["value"].is_null());
    assert!(fig(t, "win_rate", None)["change"].is_null());
    let r = app
        .get("/api/v1/reports/results?from=2020-01-01&to=2020-01-31", &admin)
        .await;
    assert_eq!(
        vp(fig(&r.body["totals"], "sales_won_amount", None)),
        ("0".into(), "0".into())
    );
}

#[actix_web::test]
async fn the_funnel_follows_stage_history_through_skips_moves_back_and_losses() {
    let app = start().await;
    let admin = app.token(app.org.admin);
    let rep = app.token(app.org.rep_east1);
    let rep_n = app.token(app.org.rep_north1);
    let pipeline = app.default_pipeline(&admin).await;
    let st = |code: &str| stage_id(&pipeline, code);
    let acc = app.account(&rep, "漏斗客户").await["id"].as_str().unwrap().to_owned();
    let acc_n = app.account(&rep_n, "漏斗客户北").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut deals = Vec::new();
    for (token, account) in [(&rep, &acc), (&rep, &acc), (&rep_n, &acc_n)] {
        let d = app.deal(token, json!({"name": "漏斗", "account_id": account})).await;
        deals.push(d["id"].as_str().unwrap().to_owned());
    }
    exec(&app.db, "DELETE FROM stage_history");
    // (deal, stage, entered, left)
    let history = [
        // 1: qualification -> discovery -> proposal -> back to discovery -> proposal (there now).
        (0, "qualification", "2026-10-01T02:00:00Z", Some("2026-10-03T02:00:00Z")),
        (0, "discovery", "2026-10-03T02:00:00Z", Some("2026-10-05T02:00:00Z")),
        (0, "proposal", "2026-10-05T02:00:00Z", Some("2026-10-08T02:00:00Z")),
        (0, "discovery", "2026-10-08T02:00:00Z", Some("2026-10-10T02:00:00Z")),
        (0, "proposal", "2026-10-10T02:00:00Z", None),
        // 2: qualification -> proposal (discovery skipped) -> lost.
        (1, "qualification", "2026-10-02T02:00:00Z", Some("2026-10-04T02:00:00Z")),
        (1, "proposal", "2026-10-04T02:00:00Z", Some("2026-10-06T02:00:00Z")),
        (1, "lost", "2026-10-06T02:00:00Z", None),
        // 3 (north): the previous period, qualification -> discovery.
        (2, "qualification", "2026-09-20T02:00:00Z", Some("2026-09-25T02:00:00Z")),
        (2, "discovery", "2026-09-25T02:00:00Z", None),
    ];
    let mut prev: Option<(usize, &str)> = None;
    for (deal, code, entered, left) in history {
        let from = match prev {
            Some((d, c)) if d == deal => format!("'{}'", st(c)),
            _ => "NULL".to_owned(),
        };
        let left = left.map_or("NULL".to_owned(), |l| format!("'{l}'"));
        exec(
            &app.db,
            &format!(
                "INSERT INTO stage_history (opportunity_id, from_stage_id, to_stage_id, entered_at, left_at) \
                 VALUES ('{}', {from}, '{}', '{entered}', {left})",
                deals[deal],
                st(code)
            ),
        );
        prev = Some((deal, code));
    }
    exec(
        &app.db,
        &format!(
            "UPDATE opportunities SET stage_id = '{}', stage_entered_at = '2026-10-10T02:00:00Z' WHERE id = '{}'",
            st("proposal"),
            deals[0]
        ),
    );
    exec(
        &app.db,
        &format!(
            "UPDATE opportunities SET stage_id = '{}', status = 'lost', lost_reason = 'price', \
             closed_at = '2026-10-06T02:00:00Z' WHERE id = '{}'",
            st("lost"),
            deals[1]
        ),
    );
    exec(
        &app.db,
        &format!(
            "UPDATE opportunities SET stage_id = '{}', stage_entered_at = now() WHERE id = '{}'",
            st("discovery"),
            deals[2]
        ),
    );

    let r = app.get(&format!("/api/v1/reports/funnel?{OCT}"), &admin).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let stage = |body: &Value, code: &str| -> Value {
        body["totals"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["code"] == code)
            .cloned()
            .unwrap()
    };
    let q = stage(&r.body, "qualification");
    assert_eq!(vp(fig(&q["figures"], "entered", None)), ("2".into(), "1".into()));
    assert_eq!(vp(fig(&q["figures"], "advanced", None)), ("2".into(), "1".into()));
    assert_eq!(
        vp(fig(&q["figures"], "conversion_to_next", None)),
        ("100.00".into(), "100.00".into())
    );
    assert_eq!(
        vp(fig(&q["figures"], "dwell_avg_days", None)),
        ("2.0".into(), "5.0".into())
    );
    let d = stage(&r.body, "discovery");
    assert_eq!(vp(fig(&d["figures"], "entered", None)), ("1".into(), "1".into()));
    assert_eq!(vp(fig(&d["figures"], "entries", None)), ("2".into(), "1".into()));
    assert_eq!(vp(fig(&d["figures"], "advanced", None)).0, "2");
    assert_eq!(vp(fig(&d["figures"], "skipped", None)), ("1".into(), "0".into()));
    assert_eq!(vp(fig(&d["figures"], "in_stage_now", None)).0, "1");
    let p = stage(&r.body, "proposal");
    assert_eq!(vp(fig(&p["figures"], "entered", None)).0, "2");
    assert_eq!(vp(fig(&p["figures"], "entries", None)).0, "3");
    assert_eq!(vp(fig(&p["figures"], "advanced", None)).0, "0");
    assert_eq!(vp(fig(&p["figures"], "moved_back", None)).0, "1");
    assert_eq!(vp(fig(&p["figures"], "lost", None)).0, "1");
    assert_eq!(vp(fig(&p["figures"], "conversion_to_next", None)).0, "0.00");
    assert_eq!(vp(fig(&p["figures"], "conversion_to_won", None)).0, "0.00");
    // Entries that left: 3 days (deal 1) and 2 days (deal 2).
    assert_eq!(vp(fig(&p["figures"], "dwell_avg_days", None)).0, "2.5");
    assert_eq!(vp(fig(&p["figures"], "in_stage_now", None)).0, "1");
    // In proposal since 10 October: past its stalled threshold.
    assert_eq!(vp(fig(&p["figures"], "stalled_now", None)).0, "1");
    assert!(fig(&p["figures"], "stalled_now", None)["previous"].is_null());
    let n = stage(&r.body, "negotiation");
    assert_eq!(vp(fig(&n["figures"], "skipped", None)).0, "0");
    assert_eq!(vp(fig(&n["figures"], "entered", None)), ("0".into(), "0".into()));

    // Per rep: the north rep's funnel holds only their deal.
    let r = app
        .get(&format!("/api/v1/reports/funnel?{OCT}&group_by=owner"), &admin)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let groups = r.body["groups"].as_array().unwrap();
    let north = groups
        .iter()
        .find(|g| g["group"]["key"] == app.org.rep_north1.to_string())
        .unwrap();
    let nq = north["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["code"] == "qualification")
        .unwrap();
    assert_eq!(vp(fig(&nq["figures"], "entered", None)), ("0".into(), "1".into()));
    // The north rep's own funnel: the east deals are out of scope.
    let r = app.get(&format!("/api/v1/reports/funnel?{OCT}"), &rep_n).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let q = stage(&r.body, "qualification");
    assert_eq!(vp(fig(&q["figures"], "entered", None)), ("0".into(), "1".into()));
    // A funnel groups by team or owner only.
    let r = app
        .get(&format!("/api/v1/reports/funnel?{OCT}&group_by=industry"), &admin)
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(r.body["errors"][0]["field"], "group_by");
}

#[actix_web::test]
async fn open_pipeline_by_close_month_and_stage_is_weighted_per_currency() {
    let app = start().await;
    let admin = app.token(app.org.admin);
    let rep = app.token(app.org.rep_east1);
    let acc = app.account(&rep, "预测客户").await["id"].as_str().unwrap().to_owned();
    for (amount, currency, close, probability) in [
        ("1000", "CNY", "2027-01-15", 10),
        ("3000", "CNY", "2027-01-20", 30),
        ("200", "USD", "2027-01-20", 50),
        ("500", "CNY", "2027-02-01", 10),
    ] {
        app.deal(
            &rep,
            json!({"name": "预测", "account_id": acc, "amount": amount, "currency": currency,
                   "expected_close_date": close, "probability": probability}),
        )
        .await;
    }
    let r = app.get("/api/v1/reports/pipeline", &admin).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let cells = r.body["cells"].as_array().unwrap();
    let cell = |month: &str, currency: &str| {
        cells
            .iter()
            .find(|c| c["month"] == month && c["currency"] == currency)
            .unwrap_or_else(|| panic!("no {month} {currency}: {cells:?}"))
    };
    let jan = cell("2027-01", "CNY");
    assert_eq!(jan["deals"], 2);
    assert_eq!(jan["amount"], "4000.00");
    assert_eq!(jan["weighted_amount"], "1000.00");
    assert_eq!(jan["stage_code"], "qualification");
    assert!(jan["historical_win_pct"].is_null(), "no closed history yet");
    assert_eq!(cell("2027-01", "USD")["weighted_amount"], "100.00");
    assert_eq!(cell("2027-02", "CNY")["amount"], "500.00");
    // A period limits the expected close dates.
    let r = app
        .get("/api/v1/reports/pipeline?from=2027-02-01&to=2027-02-28", &admin)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["close_from"], "2027-02-01");
    assert_eq!(r.body["cells"].as_array().unwrap().len(), 1);
    // Another rep's pipeline is empty.
    let other = app.token(app.org.rep_north1);
    let r = app.get("/api/v1/reports/pipeline", &other).await;
    assert!(r.body["cells"].as_array().unwrap().is_empty(), "{}", r.text);
}

/// The history forecast: open deals placed in the month their stage's won deals took
/// to close (stage entry plus the average time to won; this month at the earliest),
/// valued at the stage's won share; a stage without won history has no month.
#[actix_web::test]
async fn the_history_forecast_lays_deals_out_by_how_long_their_stage_took_to_win() {
    let app = start().await;
    let admin = app.token(app.org.admin);
    let rep = app.token(app.org.rep_east1);
    let p = app.default_pipeline(&rep).await;
    let acc = app.account(&rep, "历史预测").await["id"].as_str().unwrap().to_owned();
    let mut ids = Vec::new();
    for amount in ["10", "20", "30", "1000", "300", "50"] {
        let d = app
            .deal(&rep, json!({"name": "H", "account_id": acc, "amount": amount}))
            .await;
        ids.push(d["id"].as_str().unwrap().to_owned());
    }
    let proposal = stage_id(&p, "proposal");
    let (w1, w2, l1, o1, o2, o3) = (&ids[0], &ids[1], &ids[2], &ids[3], &ids[4], &ids[5]);
    for sql in [
        // Two deals won 60 days after entering qualification, one lost: 66.67% won.
        format!("UPDATE stage_history SET entered_at = now() - interval '100 days' WHERE opportunity_id = '{w1}'"),
        format!("UPDATE opportunities SET status = 'won', closed_at = now() - interval '40 days' WHERE id = '{w1}'"),
        format!("UPDATE stage_history SET entered_at = now() - interval '80 days' WHERE opportunity_id = '{w2}'"),
        format!("UPDATE opportunities SET status = 'won', closed_at = now() - interval '20 days' WHERE id = '{w2}'"),
        format!("UPDATE stage_history SET entered_at = now() - interval '50 days' WHERE opportunity_id = '{l1}'"),
        format!(
            "UPDATE opportunities SET status = 'lost', lost_reason = 'price', closed_at = now() - interval '10 days' \
             WHERE id = '{l1}'"
        ),
        // Open: in qualification for 30 days (due in 30 days), for 90 days (overdue:
        // this month), and one in proposal, from which nothing was won.
        format!("UPDATE opportunities SET stage_entered_at = now() - interval '30 days' WHERE id = '{o1}'"),
        format!("UPDATE opportunities SET stage_entered_at = now() - interval '90 days' WHERE id = '{o2}'"),
        format!(
            "UPDATE opportunities SET stage_id = '{proposal}', stage_entered_at = now() - interval '5 days' WHERE id = '{o3}'"
        ),
    ] {
        exec(&app.db, &sql);
    }
    let month = |days: i64| {
        (chrono::Utc::now() + chrono::Duration::days(days))
            .with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).unwrap())
            .format("%Y-%m")
            .to_string()
    };
    let r = app.get("/api/v1/reports/pipeline", &admin).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let qual = r.body["cells"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["stage_code"] == "qualification")
        .unwrap()
        .clone();
    assert_eq!(qual["historical_win_pct"], "66.67");
    assert_eq!(
        r.body["by_history"],
        json!([
            {"month": month(0), "currency": "CNY", "deals": 1, "forecast_amount": "200.01"},
            {"month": month(30), "currency": "CNY", "deals": 1, "forecast_amount": "666.70"},
            {"month": null, "currency": "CNY", "deals": 1, "forecast_amount": "0.00"},
        ]),
        "{}",
        r.body["by_history"]
    );
    // A period keeps the deals expected in it; another rep sees none of this.
    let today = chrono::Utc::now().with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).unwrap());
    let r = app
        .get(
            &format!(
                "/api/v1/reports/pipeline?from={}&to={}",
                today.format("%Y-%m-%d"),
                today.format("%Y-%m-%d")
            ),
            &admin,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.body["by_history"].as_array().unwrap().len(),
        1,
        "{}",
        r.body["by_history"]
    );
    assert_eq!(r.body["by_history"][0]["deals"], 1);
    let r = app
        .get("/api/v1/reports/pipeline", &app.token(app.org.rep_north1))
        .await;
    assert!(r.body["by_history"].as_array().unwrap().is_empty(), "{}", r.text);
    // With deal amounts hidden from reps, the rep's history forecast keeps its months
    // and counts and withholds its amounts.
    app.set_field_access(
        &admin,
        "sales_rep",
        json!([{"object": "opportunities", "field": "amount", "access": "hidden"}]),
    )
    .await;
    let r = app.get("/api/v1/reports/pipeline", &rep).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let cells = r.body["by_history"].as_array().unwrap();
    assert_eq!(cells.len(), 3, "{}", r.text);
    assert!(
        cells.iter().all(|c| c["forecast_amount"].is_null() && c["deals"] == 1),
        "{}",
        r.text
    );
    assert!(
        r.body["withheld"]
            .as_array()
            .unwrap()
            .contains(&json!("forecast_amount")),
        "{}",
        r.text
    );
}

/// Rows of a rollup (as text, zero rows left out), for comparing it with a rebuild.
fn rollup_rows(app_db: &crm_test_support::TestDb, table: &str, zero: &str) -> Vec<String> {
    #[derive(diesel::QueryableByName)]
    struct R {
        #[diesel(sql_type = diesel::sql_types::Text)]
        row: String,
    }
    diesel::sql_query(format!(
        "SELECT t::text AS row FROM {table} t WHERE {zero} <> 0 ORDER BY 1"
    ))
    .load::<R>(&mut app_db.conn())
    .unwrap()
    .into_iter()
    .map(|r| r.row)
    .collect()
}

/// The rollups the process and pipeline reports read stay what a rebuild from the
/// records gives, through creates, edits, stage moves, losing, winning, reopening,
/// reassignment, re-dated and added visits, deletes and restores; a new calendar
/// offset rebuilds the activity rollup, whose business days then follow it.
#[actix_web::test]
async fn report_rollups_follow_every_change_and_the_calendar_offset() {
    let app = start().await;
    let admin = app.token(app.org.admin);
    let rep = app.token(app.org.rep_east1);
    let p = app.default_pipeline(&rep).await;
    let acc = app.account(&rep, "汇总客户").await["id"].as_str().unwrap().to_owned();
    let check = |what: &str| {
        let acts = rollup_rows(&app.db, "activity_day_totals", "activities");
        let deals = rollup_rows(&app.db, "opportunity_forecast_totals", "deals");
        let visits = rollup_rows(&app.db, "stage_win_totals", "visits");
        exec(&app.db, "SELECT rebuild_activity_day_totals(NULL)");
        exec(&app.db, "SELECT rebuild_opportunity_forecast_totals()");
        exec(&app.db, "SELECT rebuild_stage_win_totals()");
        assert_eq!(visits, rollup_rows(&app.db, "stage_win_totals", "visits"), "{what}");
        assert_eq!(
            acts,
            rollup_rows(&app.db, "activity_day_totals", "activities"),
            "{what}"
        );
        assert_eq!(
            deals,
            rollup_rows(&app.db, "opportunity_forecast_totals", "deals"),
            "{what}"
        );
    };
    // Activities: 23:30 on 1 October and 00:30 on 2 October in UTC+8 (both on
    // 1 October in UTC), and one more that is retyped and one that is deleted.
    let mut acts = Vec::new();
    for (kind, at) in [
        ("call", "2026-10-01T15:30:00Z"),
        ("visit", "2026-10-01T16:30:00Z"),
        ("note", "2026-10-01T16:45:00Z"),
        ("email", "2026-10-01T17:00:00Z"),
    ] {
        let r = app
            .post(
                "/api/v1/activities",
                &rep,
                json!({"type": kind, "subject": "汇总", "account_id": acc, "occurred_at": at}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        acts.push(r.body.clone());
    }
    let r = app
        .patch(
            &format!("/api/v1/activities/{}", acts[2]["id"].as_str().unwrap()),
            &rep,
            acts[2]["version"].as_i64().unwrap() as i32,
            json!({"type": "meeting"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app
        .delete(&format!("/api/v1/activities/{}", acts[3]["id"].as_str().unwrap()), &rep)
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    exec(
        &app.db,
        &format!(
            "UPDATE activities SET owner_id = '{}', team_id = NULL WHERE id = '{}'",
            app.org.rep_east1b,
            acts[1]["id"].as_str().unwrap()
        ),
    );
    check("activities");
    let day = |r: &crm_test_support::app::Resp, kind: Option<&str>| vp(fig(&r.body["totals"], "activities", kind)).0;
    let r = app
        .get("/api/v1/reports/process?from=2026-10-02&to=2026-10-02", &admin)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(day(&r, None), "2", "{}", r.body["totals"]);
    assert_eq!(day(&r, Some("meeting")), "1");
    // By team: the reassigned visit has no team.
    let r = app
        .get(
            "/api/v1/reports/process?from=2026-10-02&to=2026-10-02&group_by=team",
            &admin,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let rows = r.body["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{}", r.text);
    assert!(rows.iter().any(|row| row["group"]["key"].is_null()), "{}", r.text);

    // Deals: edited, reassigned, lost, deleted and restored.
    let rep_b = app.token(app.org.rep_east1b);
    let mut deals = Vec::new();
    for (amount, close) in [("100", "2027-03-01"), ("200", "2027-03-02"), ("300", "2027-03-03")] {
        deals.push(
            app.deal(
                &rep,
                json!({"name": "汇总", "account_id": acc, "amount": amount, "expected_close_date": close}),
            )
            .await,
        );
    }
    let id = |i: usize| deals[i]["id"].as_str().unwrap().to_owned();
    let r = app
        .patch(
            &format!("/api/v1/opportunities/{}", id(0)),
            &rep,
            deals[0]["version"].as_i64().unwrap() as i32,
            json!({"amount": "150", "forecast_category": "commit", "expected_close_date": "2027-04-02"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    exec(
        &app.db,
        &format!(
            "UPDATE opportunities SET owner_id = '{}', currency = 'USD' WHERE id = '{}'",
            app.org.rep_east1b,
            id(1)
        ),
    );
    let r = app.move_stage(&rep, &id(2), &stage_id(&p, "lost"), Some("price")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        app.delete(&format!("/api/v1/opportunities/{}", id(1)), &rep_b)
            .await
            .status,
        204
    );
    check("deals deleted");
    let r = app
        .send(crm_test_support::app::request(
            actix_web::http::Method::POST,
            &format!("/api/v1/opportunities/{}/restore", id(1)),
            Some(&rep_b),
        ))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    check("deals");
    let r = app.get("/api/v1/reports/pipeline", &admin).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let cells = r.body["cells"].as_array().unwrap();
    let cell = |month: &str| cells.iter().find(|c| c["month"] == month).cloned();
    let april = cell("2027-04").unwrap_or_else(|| panic!("{cells:?}"));
    assert_eq!(
        (april["forecast_category"].clone(), april["amount"].clone()),
        (json!("commit"), json!("150.00"))
    );
    let march = cell("2027-03").unwrap_or_else(|| panic!("{cells:?}"));
    assert_eq!(
        (march["currency"].clone(), march["deals"].clone()),
        (json!("USD"), json!(1))
    );
    assert_eq!(cells.len(), 2, "the lost deal is not in the pipeline: {cells:?}");
    assert!(
        !rollup_rows(&app.db, "stage_win_totals", "visits").is_empty(),
        "the lost deal's visits are rolled up"
    );

    // Closed deals' visits: a deal won, its visits re-dated, one more visit (which
    // links to its earlier entry), the lost deal reassigned; then reopened.
    for sql in [
        format!(
            "UPDATE opportunities SET status = 'won', closed_at = now() WHERE id = '{}'",
            id(0)
        ),
        format!(
            "UPDATE stage_history SET entered_at = entered_at - interval '3 days' WHERE opportunity_id = '{}'",
            id(0)
        ),
        format!(
            "INSERT INTO stage_history (opportunity_id, to_stage_id, entered_at, left_at) \
             VALUES ('{}', '{}', now() - interval '1 day', now())",
            id(0),
            stage_id(&p, "qualification")
        ),
        format!(
            "UPDATE opportunities SET owner_id = '{}' WHERE id = '{}'",
            app.org.rep_east1b,
            id(2)
        ),
    ] {
        exec(&app.db, &sql);
    }
    check("closed deals");
    exec(
        &app.db,
        &format!(
            "UPDATE opportunities SET status = 'open', closed_at = NULL WHERE id = '{}'",
            id(0)
        ),
    );
    check("reopened");

    // UTC: the rollup is rebuilt at the new offset, and all three activities fall on
    // 1 October.
    let mut cal = app.get("/api/v1/admin/settings/calendar", &admin).await.body;
    cal["utc_offset_hours"] = json!(0);
    let r = app
        .send(
            crm_test_support::app::request(
                actix_web::http::Method::PUT,
                "/api/v1/admin/settings/calendar",
                Some(&admin),
            )
            .set_json(cal),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    check("new offset");
    let r = app
        .get("/api/v1/reports/process?from=2026-10-01&to=2026-10-01", &admin)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(day(&r, None), "3", "{}", r.body["totals"]);
    let r = app
        .get("/api/v1/reports/process?from=2026-10-02&to=2026-10-02", &admin)
        .await;
    assert_eq!(day(&r, None), "0", "{}", r.body["totals"]);
}

#[actix_web::test]
async fn report_periods_and_groupings_are_validated() {
    let app = start().await;
    let admin = app.token(app.org.admin);
    for (query, field, code) in [
        ("from=2026-10-31&to=2026-10-01", "to", "before_from"),
        ("from=2026-10-01", "from", "incomplete_period"),
        (
            "period=this_month&from=2026-10-01&to=2026-10-02",
            "from",
            "period_conflict",
        ),
        ("from=2020-01-01&to=2026-10-01", "to", "period_too_long"),
        ("group_by=custom.no_such_field", "group_by", "unknown_grouping"),
    ] {
        let r = app.get(&format!("/api/v1/reports/results?{query}"), &admin).await;
        assert_eq!(r.status, 422, "{query}: {}", r.text);
        assert_eq!(r.body["errors"][0]["field"], field, "{query}");
        assert_eq!(r.body["errors"][0]["code"], code, "{query}");
    }
    let r = app.get("/api/v1/reports/process?group_by=colour", &admin).await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(r.body["errors"][0]["code"], "unknown_grouping");
    for query in ["period=next_month", "colour=red", "from=yesterday"] {
        let r = app.get(&format!("/api/v1/reports/process?{query}"), &admin).await;
        assert_eq!(r.status, 400, "{query}: {}", r.text);
    }
    let r = app.get("/api/v1/reports/pipeline?group_by=owner", &admin).await;
    assert_eq!(r.status, 422, "{}", r.text);
    // A preset resolves in the business time zone and compares with the unit before.
    let r = app.get("/api/v1/reports/results?period=last_month", &admin).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["preset"], "last_month");
    let from: chrono::NaiveDate = r.body["period"]["from"].as_str().unwrap().parse().unwrap();
    let prev_to: chrono::NaiveDate = r.body["previous_period"]["to"].as_str().unwrap().parse().unwrap();
    assert_eq!(prev_to.succ_opt().unwrap(), from);
    // A custom select field of deals is a grouping.
    let r = app
        .post(
            "/api/v1/admin/fields/opportunities",
            &admin,
            json!({"key": "deal_type", "label_zh": "类型", "label_en": "Type", "type": "single_select",
                   "settings": {"options": [{"key": "new", "label_zh": "新购", "label_en": "New"},
                                            {"key": "renewal", "label_zh": "续约", "label_en": "Renewal"}]}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let rep = app.token(app.org.rep_east1);
    let acc = app.account(&rep, "类型客户").await["id"].as_str().unwrap().to_owned();
    let d = app
        .deal(
            &rep,
            json!({"name": "续约", "account_id": acc, "amount": "10", "custom": {"deal_type": "renewal"}}),
        )
        .await;
    exec(
        &app.db,
        &format!(
            "UPDATE opportunities SET status = 'won', closed_at = '2026-10-10T00:00:00Z' WHERE id = '{}'",
            d["id"].as_str().unwrap()
        ),
    );
    let r = app
        .get(
            &format!("/api/v1/reports/results?{OCT}&group_by=custom.deal_type"),
            &admin,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let rows = r.body["rows"].as_array().unwrap();
    let renewal = rows.iter().find(|row| row["group"]["key"] == "renewal").unwrap();
    assert_eq!(vp(fig(&renewal["figures"], "deals_won", None)).0, "1");
}

#[actix_web::test]
async fn ad_hoc_queries_group_filter_bucket_and_keep_to_scope_and_field_permissions() {
    let app = start().await;
    let admin = app.token(app.org.admin);
    let rep = app.token(app.org.rep_east1);
    let rep_n = app.token(app.org.rep_north1);
    let account = |token: String, name: &'static str, industry: &'static str| {
        let app = &app;
        async move {
            let r = app
                .post("/api/v1/accounts", &token, json!({"name": name, "industry": industry}))
                .await;
            assert_eq!(r.status, 201, "{}", r.text);
            r.body["id"].as_str().unwrap().to_owned()
        }
    };
    let energy = account(rep.clone(), "能源甲", "energy").await;
    let finance = account(rep.clone(), "金融乙", "finance").await;
    let energy_n = account(rep_n.clone(), "能源丙", "energy").await;
    for (token, acc, amount, currency) in [
        (&rep, &energy, "100", "CNY"),
        (&rep, &energy, "200", "CNY"),
        (&rep, &finance, "50", "USD"),
        (&rep_n, &energy_n, "1000", "CNY"),
    ] {
        app.deal(
            token,
            json!({"name": "即席", "account_id": acc, "amount": amount, "currency": currency}),
        )
        .await;
    }
    let by_industry = json!({
        "object": "opportunities",
        "measures": [{"agg": "count"}, {"agg": "sum", "field": "amount"}],
        "dimensions": [{"field": "account.industry"}]
    });
    let r = app.post("/api/v1/reports/query", &admin, by_industry.clone()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let keys: Vec<&str> = r.body["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["key"].as_str().unwrap())
        .collect();
    // Sums of amounts are split by currency, and the answer says so.
    assert_eq!(keys, ["account.industry", "currency", "count", "sum:amount"]);
    assert!(!r.body["notes"].as_array().unwrap().is_empty());
    assert_eq!(r.body["columns"][3]["type"], "money");
    assert_eq!(r.body["columns"][0]["label_en"], "Account: Industry");
    assert_eq!(r.body["chart"], "stacked_bar");
    let rows = r.body["rows"].as_array().unwrap().clone();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows.contains(&json!(["energy", "CNY", 3, "1300.00"])), "{rows:?}");
    assert!(rows.contains(&json!(["finance", "USD", 1, "50.00"])), "{rows:?}");
    // Sorted by the sum, largest first, by default.
    assert_eq!(rows[0][3], "1300.00");

    // A filter in the shared expression format; values are bound, not spliced.
    let mut q = by_industry.clone();
    q["filter"] = json!({"all": [{"field": "amount", "op": "gte", "value": "150"},
                                 {"field": "account.name", "op": "ne", "value": "x' OR '1'='1"}]});
    let r = app.post("/api/v1/reports/query", &admin, q).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["rows"], json!([["energy", "CNY", 2, "1200.00"]]));

    // A time bucket in the business time zone: every deal was created this month.
    let r = app
        .post(
            "/api/v1/reports/query",
            &admin,
            json!({"object": "opportunities", "measures": [{"agg": "count"}],
                   "dimensions": [{"field": "created_at", "bucket": "month"}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let today = app.state.clock.today();
    let month = format!("{}", today.format("%Y-%m-01"));
    assert_eq!(r.body["rows"], json!([[month, 4]]));
    assert_eq!(r.body["chart"], "line");

    // The rep's answer holds their own deals only.
    let r = app.post("/api/v1/reports/query", &rep, by_industry.clone()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let rows = r.body["rows"].as_array().unwrap();
    assert!(rows.contains(&json!(["energy", "CNY", 2, "300.00"])), "{rows:?}");

    // A limit cuts the answer and says so.
    let mut q = by_industry.clone();
    q["limit"] = json!(1);
    let r = app.post("/api/v1/reports/query", &admin, q).await;
    assert_eq!(r.body["rows"].as_array().unwrap().len(), 1);
    assert_eq!(r.body["truncated"], true);

    // Stage history and payments are objects too.
    let r = app
        .post(
            "/api/v1/reports/query",
            &rep,
            json!({"object": "stage_history", "measures": [{"agg": "count_distinct", "field": "opportunity_id"}],
                   "dimensions": [{"field": "stage.code"}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["rows"], json!([["qualification", 3]]));

    // Refusals name the field.
    for (body, field, code) in [
        (
            json!({"object": "opportunities", "measures": [{"agg": "sum", "field": "colour"}]}),
            "measures[0].field",
            "unknown_report_field",
        ),
        (
            json!({"object": "opportunities", "measures": [{"agg": "avg", "field": "name"}]}),
            "measures[0].field",
            "not_numeric",
        ),
        (
            json!({"object": "opportunities", "dimensions": [{"field": "name", "bucket": "week"}]}),
            "dimensions[0].bucket",
            "not_a_date",
        ),
        (
            json!({"object": "opportunities", "measures": [{"agg": "count"}], "sort": [{"key": "sum:amount"}]}),
            "sort[0].key",
            "unknown_column",
        ),
        (
            json!({"object": "activities", "measures": [{"agg": "sum", "field": "opportunity.amount"}]}),
            "measures[0].field",
            "related_amount",
        ),
        (
            json!({"object": "opportunities", "measures": [{"agg": "count"}], "filter": {"field": "amount", "op": "gt", "value": "lots"}}),
            "filter.value",
            "invalid_value",
        ),
        (json!({"object": "opportunities"}), "measures", "nothing_to_compute"),
    ] {
        let r = app.post("/api/v1/reports/query", &admin, body.clone()).await;
        assert_eq!(r.status, 422, "{body}: {}", r.text);
        assert_eq!(r.body["errors"][0]["field"], field, "{body}: {}", r.text);
        assert_eq!(r.body["errors"][0]["code"], code, "{body}: {}", r.text);
    }
    let r = app
        .post(
            "/api/v1/reports/query",
            &admin,
            json!({"object": "planets", "measures": [{"agg": "count"}]}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text);

    // Quote margins are hidden from reps by default.
    let r = app
        .post(
            "/api/v1/reports/query",
            &rep,
            json!({"object": "quotes", "measures": [{"agg": "sum", "field": "gross_margin"}]}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
    // A field hidden from the caller cannot be measured, grouped or filtered on.
    app.set_field_access(
        &admin,
        "sales_rep",
        json!([{"object": "opportunities", "field": "amount", "access": "hidden"},
               {"object": "accounts", "field": "industry", "access": "masked"}]),
    )
    .await;
    let r = app.post("/api/v1/reports/query", &rep, by_industry).await;
    assert_eq!(r.status, 422, "{}", r.text);
    let errors = r.body["errors"].as_array().unwrap();
    assert!(errors.iter().all(|e| e["code"] == "field_not_readable"), "{errors:?}");
    assert!(errors.iter().any(|e| e["field"] == "dimensions[0].field"));
    assert!(errors.iter().any(|e| e["field"] == "measures[1].field"));
    let r = app
        .post(
            "/api/v1/reports/query",
            &rep,
            json!({"object": "opportunities", "measures": [{"agg": "count"}],
                   "filter": {"field": "amount", "op": "gt", "value": "150"}}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(r.body["errors"][0]["field"], "filter.field");
}

#[actix_web::test]
async fn forecast_categories_default_per_stage_are_overridden_per_deal_and_snapshotted_daily() {
    let app = start().await;
    let admin = app.token(app.org.admin);
    let rep = app.token(app.org.rep_east1);
    let pipeline = app.default_pipeline(&admin).await;
    let category = |code: &str| {
        pipeline["stages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["code"] == code)
            .unwrap()["forecast_category"]
            .clone()
    };
    assert_eq!(category("qualification"), "pipeline");
    assert_eq!(category("proposal"), "best_case");
    assert_eq!(category("closing"), "commit");
    assert_eq!(category("won"), "closed");
    assert_eq!(category("lost"), "omitted");

    let acc = app.account(&rep, "预测类别客户").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let deal = app
        .deal(
            &rep,
            json!({"name": "承诺", "account_id": acc, "amount": "800", "expected_close_date": "2027-01-10"}),
        )
        .await;
    let id = deal["id"].as_str().unwrap().to_owned();
    assert!(deal["forecast_category"].is_null());
    let other = app
        .deal(&rep, json!({"name": "普通", "account_id": acc, "amount": "200"}))
        .await;
    assert!(other["id"].is_string());
    let r = app
        .patch(
            &format!("/api/v1/opportunities/{id}"),
            &rep,
            deal["version"].as_i64().unwrap() as i32,
            json!({"forecast_category": "commit"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["forecast_category"], "commit");
    let version = r.body["version"].as_i64().unwrap() as i32;
    let r = app
        .patch(
            &format!("/api/v1/opportunities/{id}"),
            &rep,
            version,
            json!({"forecast_category": "maybe"}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text);

    let r = app.get("/api/v1/reports/pipeline", &rep).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let by_category = r.body["by_category"].as_array().unwrap();
    let total = |c: &str| by_category.iter().find(|t| t["category"] == c).cloned();
    assert_eq!(total("commit").unwrap()["amount"], "800.00");
    assert_eq!(total("pipeline").unwrap()["amount"], "200.00");
    assert_eq!(
        by_category[0]["category"], "pipeline",
        "categories in order of certainty"
    );

    // The day's snapshot is taken once, however often the job runs.
    let first = crm_app::reports::forecast::take_snapshot(&mut app.db.conn(), &app.state.clock).unwrap();
    assert_eq!(first, 2);
    assert_eq!(
        crm_app::reports::forecast::take_snapshot(&mut app.db.conn(), &app.state.clock).unwrap(),
        0
    );
    let today = app.state.clock.today();
    let r = app.get("/api/v1/reports/forecast-snapshots", &rep).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["taken_on"], today.to_string());
    let items = r.body["items"].as_array().unwrap();
    let commit = items.iter().find(|i| i["category"] == "commit").unwrap();
    assert_eq!(commit["amount"], "800.00");
    assert_eq!(commit["close_month"], "2027-01-01");

    // Tomorrow the deal falls back to its stage's category; today's snapshot keeps
    // what was committed.
    let r = app
        .patch(
            &format!("/api/v1/opportunities/{id}"),
            &rep,
            version,
            json!({"forecast_category": null}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.body["forecast_category"].is_null());
    app.state.clock.advance(chrono::Duration::days(1));
    // Two rows again: both deals in `pipeline`, one with a close month, one without.
    assert_eq!(
        crm_app::reports::forecast::take_snapshot(&mut app.db.conn(), &app.state.clock).unwrap(),
        2
    );
    let r = app.get("/api/v1/reports/forecast-snapshots", &rep).await;
    let items = r.body["items"].as_array().unwrap();
    assert!(items.iter().all(|i| i["category"] == "pipeline"), "{items:?}");
    let r = app
        .get(&format!("/api/v1/reports/forecast-snapshots?on={today}"), &rep)
        .await;
    assert_eq!(r.body["taken_on"], today.to_string());
    assert!(r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|i| i["category"] == "commit"));
    // Before any snapshot: none. Another rep's scope: nothing.
    let r = app.get("/api/v1/reports/forecast-snapshots?on=2020-01-01", &rep).await;
    assert!(r.body["taken_on"].is_null());
    let other_rep = app.token(app.org.rep_north1);
    let r = app.get("/api/v1/reports/forecast-snapshots", &other_rep).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.body["items"].as_array().unwrap().is_empty());
}

#[actix_web::test]
async fn reports_export_as_csv_and_xlsx_and_render_as_svg_charts() {
    use std::io::Read;
    let app = start().await;
    let admin = app.token(app.org.admin);
    let rep = app.token(app.org.rep_east1);
    let acc = app.account(&rep, "导出客户").await["id"].as_str().unwrap().to_owned();
    let d = app
        .deal(&rep, json!({"name": "导出", "account_id": acc, "amount": "1234.5"}))
        .await;
    exec(
        &app.db,
        &format!(
            "UPDATE opportunities SET status = 'won', closed_at = '2026-10-10T00:00:00Z' WHERE id = '{}'",
            d["id"].as_str().unwrap()
        ),
    );
    let get = |path: String, token: String| {
        let app = &app;
        async move {
            let req = crm_test_support::app::request(actix_web::http::Method::GET, &path, Some(&token));
            app.send(req).await
        }
    };
    // CSV: BOM, header row, one row per figure.
    let r = get(
        format!("/api/v1/reports/results/export?{OCT}&group_by=owner"),
        admin.clone(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.header("content-type").unwrap().starts_with("text/csv"));
    assert!(r.header("content-disposition").unwrap().contains("results-"));
    assert!(r.text.starts_with('\u{feff}'));
    let lines: Vec<&str> = r.text.lines().collect();
    assert!(
        lines[0].contains("Value") && lines[0].contains("Previous"),
        "{}",
        lines[0]
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("合计 Total,") && l.contains("sales_won_amount") && l.contains("1234.50")),
        "{}",
        r.text
    );
    // The file is in the audit trail: who took which report, with what query and rows.
    let export_id = r.header("x-export-id").expect("an export id");
    #[derive(diesel::QueryableByName)]
    struct Exported {
        #[diesel(sql_type = diesel::sql_types::Jsonb)]
        changes: Value,
    }
    let audited: Vec<Exported> = diesel::sql_query(format!(
        "SELECT changes FROM audit_log WHERE entity_type = 'reports' AND action = 'exported' \
         AND entity_id = '{export_id}' AND actor_id = '{}'",
        app.org.admin
    ))
    .load(&mut app.db.conn())
    .unwrap();
    assert_eq!(audited.len(), 1);
    assert_eq!(audited[0].changes["export"]["report"], "results");
    assert_eq!(audited[0].changes["export"]["format"], "csv");
    assert_eq!(
        audited[0].changes["export"]["rows"].as_u64(),
        Some(lines.len() as u64 - 1)
    );
    assert!(audited[0].changes["export"]["query"]
        .as_str()
        .unwrap()
        .contains("group_by=owner"));

    // XLSX: a real workbook with typed number cells and a frozen header row.
    let r = get(
        format!("/api/v1/reports/results/export?{OCT}&format=xlsx"),
        admin.clone(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.header("content-type").unwrap().contains("spreadsheetml"));
    let mut book = zip::ZipArchive::new(std::io::Cursor::new(r.bytes.clone())).unwrap();
    let mut sheet = String::new();
    book.by_name("xl/worksheets/sheet1.xml")
        .unwrap()
        .read_to_string(&mut sheet)
        .unwrap();
    assert!(sheet.contains(r#"<pane ySplit="1""#), "frozen pane: {sheet}");
    assert!(sheet.contains("<v>1234.5</v>"), "a number cell: {sheet}");

    // SVG charts: the results per owner, the funnel, the pipeline; no script.
    for path in [
        format!("/api/v1/reports/results/chart.svg?{OCT}&group_by=owner&kpi=deals_won"),
        format!("/api/v1/reports/funnel/chart.svg?{OCT}"),
        "/api/v1/reports/pipeline/chart.svg".to_owned(),
    ] {
        let r = get(path.clone(), admin.clone()).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text);
        assert_eq!(r.header("content-type").unwrap(), "image/svg+xml");
        assert!(r.text.starts_with("<svg") && r.text.ends_with("</svg>"), "{}", r.text);
        assert!(!r.text.contains("<script"));
    }
    let r = get(
        format!("/api/v1/reports/results/chart.svg?{OCT}&kpi=no_such_kpi"),
        admin.clone(),
    )
    .await;
    assert_eq!(r.status, 422, "{}", r.text);
    let r = get("/api/v1/reports/planets/export".into(), admin.clone()).await;
    assert_eq!(r.status, 400, "{}", r.text);

    // An ad-hoc answer as CSV and as a chart; a rep's export holds their scope only.
    let q = json!({"object": "opportunities", "measures": [{"agg": "count"}], "dimensions": [{"field": "status"}]});
    let r = app.post("/api/v1/reports/query/export", &admin, q.clone()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.text.contains("won,1"), "{}", r.text);
    let r = app.post("/api/v1/reports/query/chart.svg", &admin, q.clone()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.text.contains("<rect"));
    let other = app.token(app.org.rep_north1);
    let r = app.post("/api/v1/reports/query/export", &other, q).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(!r.text.contains("won,"), "{}", r.text);
}

#[actix_web::test]
async fn receivables_age_overdue_installments_at_each_period_end_per_currency_and_scope() {
    let app = start().await;
    let admin = app.token(app.org.admin);
    let rep_e = app.token(app.org.rep_east1);
    let rep_n = app.token(app.org.rep_north1);
    let east = app.account(&rep_e, "应收华东").await["id"].as_str().unwrap().to_owned();
    let north = app.account(&rep_n, "应收华北").await["id"].as_str().unwrap().to_owned();
    let contract = |token: String, acc: String, currency: &'static str, status: &'static str| {
        let app = &app;
        async move {
            let deal = app
                .deal(&token, json!({"name": "应收商机", "account_id": acc, "amount": "5000"}))
                .await;
            let r = app
                .post(
                    "/api/v1/contracts",
                    &token,
                    json!({"opportunity_id": deal["id"], "amount": "5000.00"}),
                )
                .await;
            assert_eq!(r.status, 201, "{}", r.text);
            let id = r.body["id"].as_str().unwrap().to_owned();
            exec(
                &app.db,
                &format!("UPDATE contracts SET status = '{status}', currency = '{currency}' WHERE id = '{id}'"),
            );
            id
        }
    };
    let k1 = contract(rep_e.clone(), east.clone(), "CNY", "signed").await;
    let k2 = contract(rep_n.clone(), north.clone(), "USD", "active").await;
    let k3 = contract(rep_e.clone(), east.clone(), "CNY", "draft").await;
    let inst = |k: &str, seq: i32, due: &str, amount: &str| {
        let id = uuid::Uuid::new_v4();
        exec(
            &app.db,
            &format!(
                "INSERT INTO installments (id, contract_id, seq, due_date, amount) VALUES ('{id}', '{k}', {seq}, '{due}', {amount})"
            ),
        );
        id
    };
    let pay = |k: &str, acc: &str, owner: uuid::Uuid, installment: uuid::Uuid, amount: &str, day: &str| {
        exec(
            &app.db,
            &format!(
                "WITH p AS (INSERT INTO payments (id, contract_id, account_id, amount, received_on, method, owner_id) \
                 VALUES (gen_random_uuid(), '{k}', '{acc}', {amount}, '{day}', 'bank_transfer', '{owner}') RETURNING id) \
                 INSERT INTO payment_allocations (payment_id, installment_id, amount) SELECT id, '{installment}', {amount} FROM p"
            ),
        );
    };
    // CNY: due 15 Sep (300: 100 paid in September, 200 in October), 10 Oct (500,
    // unpaid), 1 Jul (400, unpaid), 20 Nov (600, not yet due at the end of October).
    let i1 = inst(&k1, 1, "2026-09-15", "300");
    inst(&k1, 2, "2026-10-10", "500");
    inst(&k1, 3, "2026-07-01", "400");
    inst(&k1, 4, "2026-11-20", "600");
    pay(&k1, &east, app.org.rep_east1, i1, "100", "2026-09-20");
    pay(&k1, &east, app.org.rep_east1, i1, "200", "2026-10-05");
    // USD: 50 due and paid on 20 October. The draft contract's plan does not count.
    let i5 = inst(&k2, 1, "2026-10-20", "50");
    pay(&k2, &north, app.org.rep_north1, i5, "50", "2026-10-20");
    inst(&k3, 1, "2026-10-15", "999");

    let r = app.get(&format!("/api/v1/reports/receivables?{OCT}"), &admin).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["report"], "receivables");
    let t = &r.body["totals"];
    let cny = |kpi: &str| vp(fig(t, kpi, Some("CNY")));
    let pair = |a: &str, b: &str| (a.to_owned(), b.to_owned());
    assert_eq!(cny("receivable_due"), pair("500.00", "300.00"));
    assert_eq!(cny("receivable_collected"), pair("200.00", "100.00"));
    assert_eq!(cny("collection_rate"), pair("0.00", "33.33"));
    // At 31 October: 500 is 21 days late, 400 is 122 days; at 30 September 200 was 15
    // days late and 400 was 91.
    assert_eq!(cny("receivable_overdue"), pair("900.00", "600.00"));
    assert_eq!(cny("overdue_1_30_days"), pair("500.00", "200.00"));
    assert_eq!(cny("overdue_over_90_days"), pair("400.00", "400.00"));
    // Paid in full: nothing left of the 46-day-old installment.
    assert_eq!(cny("overdue_31_60_days"), pair("0.00", "0"));
    assert_eq!(cny("receivable_not_yet_due"), pair("600.00", "1100.00"));
    assert_eq!(vp(fig(t, "overdue_installments", None)), pair("2", "2"));
    let usd = |kpi: &str| vp(fig(t, kpi, Some("USD")));
    assert_eq!(usd("receivable_due"), pair("50.00", "0"));
    assert_eq!(usd("collection_rate").0, "100.00");
    assert_eq!(usd("receivable_overdue"), pair("0.00", "0"));

    // Per owner and per account, labelled.
    let r = app
        .get(&format!("/api/v1/reports/receivables?{OCT}&group_by=account"), &admin)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let rows = r.body["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    let east_row = rows.iter().find(|r| r["group"]["label"] == "应收华东").unwrap();
    assert_eq!(
        vp(fig(&east_row["figures"], "receivable_overdue", Some("CNY"))).0,
        "900.00"
    );
    assert!(!east_row["figures"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["currency"] == "USD"));
    let r = app
        .get(&format!("/api/v1/reports/receivables?{OCT}&group_by=region"), &admin)
        .await;
    assert_eq!(r.status, 422, "{}", r.text);

    // A rep sees their own contracts only; legal sees what fell due, not collections.
    let r = app.get(&format!("/api/v1/reports/receivables?{OCT}"), &rep_n).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let t = &r.body["totals"];
    assert!(!t.as_array().unwrap().iter().any(|f| f["currency"] == "CNY"), "{t}");
    assert_eq!(vp(fig(t, "overdue_installments", None)), pair("0", "0"));
    let r = app
        .get(&format!("/api/v1/reports/receivables?{OCT}"), &app.token(app.org.legal))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(vp(fig(&r.body["totals"], "receivable_due", Some("CNY"))).0, "500.00");
    assert!(!has_fig(&r.body["totals"], "receivable_overdue"));
    assert!(r.body["withheld"]
        .as_array()
        .unwrap()
        .iter()
        .any(|w| w == "receivable_collected"));
    // Marketing has no contracts permission.
    let r = app
        .get(
            &format!("/api/v1/reports/receivables?{OCT}"),
            &app.token(app.org.marketing),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text);
    // As a spreadsheet too.
    let r = app
        .get(
            &format!("/api/v1/reports/receivables/export?{OCT}&group_by=owner"),
            &admin,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.text.contains("receivable_overdue"), "{}", r.text);
}

#[actix_web::test]
async fn leaderboard_ranks_owners_per_currency_with_ties_within_the_callers_scope() {
    let app = start().await;
    let admin = app.token(app.org.admin);
    let won = |owner: uuid::Uuid, amount: &'static str, currency: &'static str| {
        let app = &app;
        async move {
            let token = app.token(owner);
            let acc = app.account(&token, &format!("榜单{owner}{currency}")).await["id"]
                .as_str()
                .unwrap()
                .to_owned();
            let d = app
                .deal(&token, json!({"name": "榜单", "account_id": acc, "amount": amount}))
                .await;
            exec(
                &app.db,
                &format!(
                    "UPDATE opportunities SET status = 'won', currency = '{currency}', closed_at = '2026-10-12T03:00:00Z' WHERE id = '{}'",
                    d["id"].as_str().unwrap()
                ),
            );
        }
    };
    won(app.org.rep_east1, "1000", "CNY").await;
    won(app.org.rep_east2, "1000", "CNY").await;
    won(app.org.rep_north1, "400", "CNY").await;
    won(app.org.rep_north1, "50", "USD").await;

    let r = app.get(&format!("/api/v1/reports/leaderboard?{OCT}"), &admin).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["kpi"], "sales_won_amount");
    let board: Vec<(String, String, u64, String)> = r.body["standings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["currency"].as_str().unwrap_or("").to_owned(),
                s["group"]["key"].as_str().unwrap().to_owned(),
                s["rank"].as_u64().unwrap(),
                s["value"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let (e1, e2, n1) = (
        app.org.rep_east1.to_string(),
        app.org.rep_east2.to_string(),
        app.org.rep_north1.to_string(),
    );
    assert_eq!(board.len(), 4, "{board:?}");
    assert_eq!(board[0].2, 1);
    assert_eq!(board[1].2, 1);
    assert!([&board[0].1, &board[1].1].contains(&&e1) && [&board[0].1, &board[1].1].contains(&&e2));
    assert_eq!(board[2], ("CNY".into(), n1.clone(), 3, "400.00".into()));
    assert_eq!(board[3], ("USD".into(), n1.clone(), 1, "50.00".into()));

    // Counts add up across currencies: north has two deals, the others one each.
    let r = app
        .get(&format!("/api/v1/reports/leaderboard?{OCT}&kpi=deals_won"), &admin)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let ranks: Vec<(String, u64)> = r.body["standings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["group"]["key"].as_str().unwrap().to_owned(),
                s["rank"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(ranks[0], (n1.clone(), 1));
    assert_eq!((ranks[1].1, ranks[2].1, ranks.len()), (2, 2, 3));
    // One currency only; per team; the east manager sees the east only.
    let r = app
        .get(&format!("/api/v1/reports/leaderboard?{OCT}&currency=USD"), &admin)
        .await;
    assert_eq!(r.body["standings"].as_array().unwrap().len(), 1, "{}", r.text);
    let r = app
        .get(&format!("/api/v1/reports/leaderboard?{OCT}&group_by=team"), &admin)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["group_by"], "team");
    let r = app
        .get(
            &format!("/api/v1/reports/leaderboard?{OCT}"),
            &app.token(app.org.manager_east),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let keys: Vec<&str> = r.body["standings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["group"]["key"].as_str().unwrap())
        .collect();
    assert!(!keys.contains(&n1.as_str()) && keys.contains(&e1.as_str()), "{keys:?}");
    // Bad asks.
    for (q, status) in [
        ("kpi=no_such_figure", 422),
        ("group_by=region", 422),
        ("currency=usd", 400),
        ("format=csv", 400),
    ] {
        let r = app.get(&format!("/api/v1/reports/leaderboard?{OCT}&{q}"), &admin).await;
        assert_eq!(r.status, status, "{q}: {}", r.text);
    }
}

#[actix_web::test]
async fn adoption_counts_entries_follow_ups_idle_and_incomplete_deals_and_late_moves_per_rep() {
    let app = start().await;
    let admin = app.token(app.org.admin);
    let rep = app.token(app.org.rep_east1);
    let acc = app.account(&rep, "采用率客户").await["id"].as_str().unwrap().to_owned();
    let deal = |body: Value| {
        let (app, rep) = (&app, &rep);
        async move { app.deal(rep, body).await["id"].as_str().unwrap().to_owned() }
    };
    // D1: entered in October without an expected close date, never followed up.
    let d1 = deal(json!({"name": "D1", "account_id": acc, "amount": "100"})).await;
    // D2: entered in September, expected 10 October, won on the 20th.
    let d2 = deal(json!({"name": "D2", "account_id": acc, "amount": "100", "expected_close_date": "2026-10-10"})).await;
    // D3: entered in October, followed up on 25 October, left qualification late.
    let d3 = deal(json!({"name": "D3", "account_id": acc, "amount": "100", "expected_close_date": "2026-12-20"})).await;
    let r = app
        .post(
            "/api/v1/leads",
            &rep,
            json!({"person_name": "采用率", "company": "线索公司", "source": "event"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let lead = r.body["id"].as_str().unwrap().to_owned();
    let r = app
        .post(
            "/api/v1/activities",
            &rep,
            json!({"type": "call", "subject": "跟进", "opportunity_id": d3, "occurred_at": "2026-10-25T02:00:00Z"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    for sql in [
        format!("UPDATE accounts SET created_at = '2026-10-05T02:00:00Z' WHERE id = '{acc}'"),
        format!("UPDATE leads SET created_at = '2026-10-03T02:00:00Z' WHERE id = '{lead}'"),
        format!("UPDATE opportunities SET created_at = '2026-10-06T02:00:00Z' WHERE id = '{d1}'"),
        format!(
            "UPDATE opportunities SET created_at = '2026-09-10T02:00:00Z', status = 'won', \
             closed_at = '2026-10-20T02:00:00Z' WHERE id = '{d2}'"
        ),
        format!("UPDATE opportunities SET created_at = '2026-10-02T02:00:00Z' WHERE id = '{d3}'"),
        format!("UPDATE stages SET stalled_after_days = 5 WHERE id = (SELECT stage_id FROM opportunities WHERE id = '{d3}')"),
        format!(
            "INSERT INTO stage_history (opportunity_id, to_stage_id, entered_at, left_at) \
             SELECT id, stage_id, '2026-10-02T02:00:00Z', '2026-10-20T02:00:00Z' FROM opportunities WHERE id = '{d3}'"
        ),
    ] {
        exec(&app.db, &sql);
    }
    let r = app
        .get(&format!("/api/v1/reports/adoption?{OCT}&group_by=owner"), &admin)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let row = r.body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["group"]["key"] == app.org.rep_east1.to_string())
        .unwrap_or_else(|| panic!("no row for the rep: {}", r.text));
    let f = |kpi: &str| vp(fig(&row["figures"], kpi, None));
    let pair = |a: &str, b: &str| (a.to_owned(), b.to_owned());
    // The account, the lead, D1 and D3 in October; D2 in September.
    assert_eq!(f("records_entered"), pair("4", "1"));
    assert_eq!(f("deals_entered"), pair("2", "1"));
    assert_eq!(f("leads_entered"), pair("1", "0"));
    assert_eq!(f("follow_ups_logged"), pair("1", "0"));
    // At 31 October D1 is idle (D3 was called six days before); at 30 September D2 was.
    assert_eq!(f("deals_idle"), pair("1", "1"));
    assert_eq!(f("deals_missing_required"), pair("1", ""));
    assert_eq!(f("stage_moves_late"), pair("1", "0"));
    assert_eq!(f("closed_after_expected"), pair("1", "0"));
    // A shorter idle window makes D3 idle too.
    let r = app
        .get(&format!("/api/v1/reports/adoption?{OCT}&idle_days=3"), &admin)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(vp(fig(&r.body["totals"], "deals_idle", None)).0, "2");
    // Another rep's scope holds none of it.
    let r = app
        .get(
            &format!("/api/v1/reports/adoption?{OCT}"),
            &app.token(app.org.rep_north1),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    for kpi in [
        "records_entered",
        "deals_idle",
        "deals_missing_required",
        "stage_moves_late",
    ] {
        assert_eq!(vp(fig(&r.body["totals"], kpi, None)).0, "0", "{kpi}");
    }
    for q in ["idle_days=0", "group_by=region"] {
        let r = app.get(&format!("/api/v1/reports/adoption?{OCT}&{q}"), &admin).await;
        assert!(r.status == 422 || r.status == 400, "{q}: {}", r.text);
    }
}

#[actix_web::test]
async fn sales_targets_are_set_within_scope_and_report_attainment_over_their_own_dates() {
    let app = start().await;
    let admin = app.token(app.org.admin);
    let mgr = app.token(app.org.manager_east);
    let rep = app.token(app.org.rep_east1);
    let acc = app.account(&rep, "目标客户").await["id"].as_str().unwrap().to_owned();
    for (amount, closed) in [
        ("1000", "2026-10-12T03:00:00Z"),
        ("500", "2026-10-30T03:00:00Z"),
        ("700", "2026-11-02T03:00:00Z"),
    ] {
        let d = app
            .deal(
                &rep,
                json!({"name": format!("目标{amount}"), "account_id": acc, "amount": amount}),
            )
            .await;
        exec(
            &app.db,
            &format!(
                "UPDATE opportunities SET status = 'won', closed_at = '{closed}' WHERE id = '{}'",
                d["id"].as_str().unwrap()
            ),
        );
    }
    let october = json!({"period_from": "2026-10-01", "period_to": "2026-10-31"});
    let body = |extra: Value| {
        let mut b = october.clone();
        b.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        b
    };
    // The east manager sets a target for a rep of the team.
    let r = app
        .post(
            "/api/v1/sales-targets",
            &mgr,
            body(json!({"owner_id": app.org.rep_east1, "metric": "sales_won_amount", "currency": "cny", "target": "2000"})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["team_id"], app.org.east1.to_string());
    assert_eq!(r.body["currency"], "CNY");
    assert_eq!(r.body["target"], "2000.00");
    let rep_target = r.body["id"].as_str().unwrap().to_owned();
    assert!(r.header("location").unwrap().ends_with(&rep_target));
    // The same again is a duplicate; another region's rep is out of scope; a rep may
    // not set targets.
    let again =
        body(json!({"owner_id": app.org.rep_east1, "metric": "sales_won_amount", "currency": "CNY", "target": "1"}));
    let r = app.post("/api/v1/sales-targets", &mgr, again.clone()).await;
    assert_eq!(
        (r.status, r.body["code"].as_str()),
        (409, Some("duplicate")),
        "{}",
        r.text
    );
    let r = app
        .post(
            "/api/v1/sales-targets",
            &mgr,
            body(json!({"owner_id": app.org.rep_north1, "metric": "deals_won", "target": "3"})),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text);
    let r = app
        .post(
            "/api/v1/sales-targets",
            &rep,
            body(json!({"owner_id": app.org.rep_east1, "metric": "deals_won", "target": "3"})),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text);
    for (bad, field) in [
        (
            json!({"owner_id": app.org.rep_east1, "metric": "deals_won", "currency": "CNY", "target": "3"}),
            "currency",
        ),
        (
            json!({"owner_id": app.org.rep_east1, "metric": "payments_collected", "target": "3"}),
            "currency",
        ),
        (json!({"metric": "deals_won", "target": "3"}), "owner_id"),
        (
            json!({"owner_id": app.org.rep_east1, "team_id": app.org.east1, "metric": "deals_won", "target": "3"}),
            "team_id",
        ),
        (
            json!({"owner_id": app.org.rep_east1, "metric": "deals_won", "target": "0"}),
            "target",
        ),
        (
            json!({"owner_id": uuid::Uuid::new_v4(), "metric": "deals_won", "target": "3"}),
            "owner_id",
        ),
    ] {
        let r = app.post("/api/v1/sales-targets", &admin, body(bad.clone())).await;
        assert_eq!(r.status, 422, "{bad}: {}", r.text);
        assert_eq!(r.body["errors"][0]["field"], field, "{bad}: {}", r.text);
    }
    let r = app
        .post(
            "/api/v1/sales-targets",
            &admin,
            json!({"team_id": app.org.east1, "metric": "deals_won", "target": "3",
                   "period_from": "2026-10-01", "period_to": "2026-09-30"}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
    // The team's own target: deals won by the team and its sub-teams.
    let r = app
        .post(
            "/api/v1/sales-targets",
            &admin,
            body(json!({"team_id": app.org.east, "metric": "deals_won", "target": "3"})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);

    let r = app.get(&format!("/api/v1/reports/targets?{OCT}"), &mgr).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let items = r.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{}", r.text);
    let of = |metric: &str| items.iter().find(|i| i["target"]["metric"] == metric).unwrap().clone();
    let won = of("sales_won_amount");
    assert_eq!(won["actual"], "1500.00");
    assert_eq!(won["attainment_pct"], "75.00");
    assert_eq!(won["elapsed_pct"], "100.00");
    assert_eq!(won["met"], false);
    let count = of("deals_won");
    assert_eq!(count["actual"], "2");
    assert_eq!(count["attainment_pct"], "66.67");
    // A rep sees their own target only; nothing overlaps September.
    let r = app.get(&format!("/api/v1/reports/targets?{OCT}"), &rep).await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1, "{}", r.text);
    let r = app
        .get("/api/v1/reports/targets?from=2026-09-01&to=2026-09-30", &mgr)
        .await;
    assert!(r.body["items"].as_array().unwrap().is_empty(), "{}", r.text);

    // Lowered to what was reached, it is met; a stale version is refused.
    let path = format!("/api/v1/sales-targets/{rep_target}");
    let r = app.get(&path, &mgr).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app
        .patch(&path, &mgr, 1, json!({"target": "1500.00", "note": "调整"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["version"], 2);
    let r = app.patch(&path, &mgr, 1, json!({"target": "1400"})).await;
    assert_eq!(r.status, 412, "{}", r.text);
    let r = app
        .get(
            &format!("/api/v1/reports/targets?{OCT}&owner_id={}", app.org.rep_east1),
            &mgr,
        )
        .await;
    assert_eq!(r.body["items"][0]["met"], true, "{}", r.text);
    // Listed in scope; the history has the change; deleted, it is gone.
    let r = app.get("/api/v1/sales-targets?metric=sales_won_amount", &rep).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1);
    let r = app.get("/api/v1/sales-targets", &app.token(app.org.rep_north1)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.body["items"].as_array().unwrap().is_empty());
    let r = app.get("/api/v1/sales-targets?from=2026-10-01", &mgr).await;
    assert_eq!(r.status, 400, "{}", r.text);
    let audited: i64 = {
        use diesel::prelude::*;
        #[derive(QueryableByName)]
        struct N {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        diesel::sql_query(format!(
            "SELECT count(*) AS n FROM audit_log WHERE entity_id = '{rep_target}'"
        ))
        .get_result::<N>(&mut app.db.conn())
        .unwrap()
        .n
    };
    assert_eq!(audited, 2);
    let r = app.delete(&path, &rep).await;
    assert_eq!(r.status, 403, "{}", r.text);
    let r = app.delete(&path, &mgr).await;
    assert_eq!(r.status, 204, "{}", r.text);
    let r = app.get(&path, &mgr).await;
    assert_eq!(r.status, 404, "{}", r.text);
}

#[actix_web::test]
async fn the_pipeline_of_a_past_date_is_rebuilt_from_stage_and_field_history() {
    let app = start().await;
    let admin = app.token(app.org.admin);
    let rep = app.token(app.org.rep_east1);
    let acc = app.account(&rep, "历史管道").await["id"].as_str().unwrap().to_owned();
    let d1 = app
        .deal(
            &rep,
            json!({"name": "历史1", "account_id": acc, "amount": "1500", "expected_close_date": "2026-12-20"}),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let d2 = app
        .deal(
            &rep,
            json!({"name": "历史2", "account_id": acc, "amount": "300", "expected_close_date": "2026-10-30"}),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let stage = |deal: &str, code: &str| {
        format!("(SELECT s.id FROM stages s JOIN opportunities o ON o.pipeline_id = s.pipeline_id WHERE o.id = '{deal}' AND s.code = '{code}')")
    };
    for sql in [
        // D1: qualification from 1 September (1000, 10%), proposal from 5 October (50%);
        // its amount went from 1000 to 1500 and its close date from October to December
        // on 20 October.
        format!("UPDATE opportunities SET created_at = '2026-09-01T02:00:00Z' WHERE id = '{d1}'"),
        format!(
            "UPDATE stage_history SET to_stage_id = {}, entered_at = '2026-09-01T02:00:00Z', \
             left_at = '2026-10-05T02:00:00Z', amount = 1000, probability = 10 WHERE opportunity_id = '{d1}'",
            stage(&d1, "qualification")
        ),
        format!(
            "INSERT INTO stage_history (opportunity_id, from_stage_id, to_stage_id, entered_at, amount, probability) \
             VALUES ('{d1}', {}, {}, '2026-10-05T02:00:00Z', 1000, 50)",
            stage(&d1, "qualification"),
            stage(&d1, "proposal")
        ),
        format!("UPDATE opportunities SET stage_id = {} WHERE id = '{d1}'", stage(&d1, "proposal")),
        format!(
            "INSERT INTO audit_log (occurred_at, entity_type, entity_id, action, changes) VALUES \
             ('2026-09-01T02:00:00Z', 'opportunities', '{d1}', 'created', \
              '{{\"amount\": {{\"before\": null, \"after\": 1000}}, \"expected_close_date\": {{\"before\": null, \"after\": \"2026-10-31\"}}}}'), \
             ('2026-10-20T02:00:00Z', 'opportunities', '{d1}', 'updated', \
              '{{\"amount\": {{\"before\": 1000, \"after\": 1500}}, \"expected_close_date\": {{\"before\": \"2026-10-31\", \"after\": \"2026-12-20\"}}}}')"
        ),
        // D2: entered on 15 October (no recorded changes before), won on the 18th.
        format!("UPDATE opportunities SET created_at = '2026-10-15T02:00:00Z' WHERE id = '{d2}'"),
        format!(
            "UPDATE stage_history SET entered_at = '2026-10-15T02:00:00Z', left_at = '2026-10-18T02:00:00Z', \
             amount = 300, probability = 10 WHERE opportunity_id = '{d2}'"
        ),
        format!(
            "INSERT INTO stage_history (opportunity_id, to_stage_id, entered_at) VALUES ('{d2}', {}, '2026-10-18T02:00:00Z')",
            stage(&d2, "won")
        ),
    ] {
        exec(&app.db, &sql);
    }
    let cells = |on: &'static str| {
        let (app, admin) = (&app, &admin);
        async move {
            let r = app.get(&format!("/api/v1/reports/pipeline?as_of={on}"), admin).await;
            assert_eq!(r.status, 200, "{on}: {}", r.text);
            r.body["cells"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| {
                    (
                        c["month"].as_str().unwrap_or("").to_owned(),
                        c["stage_code"].as_str().unwrap().to_owned(),
                        c["amount"].as_str().unwrap().to_owned(),
                        c["weighted_amount"].as_str().unwrap().to_owned(),
                    )
                })
                .collect::<Vec<_>>()
        }
    };
    let row = |m: &str, s: &str, a: &str, w: &str| (m.to_owned(), s.to_owned(), a.to_owned(), w.to_owned());
    assert_eq!(
        cells("2026-09-30").await,
        vec![row("2026-10", "qualification", "1000", "100.00")]
    );
    assert_eq!(
        cells("2026-10-16").await,
        vec![
            row("2026-10", "qualification", "300.00", "30.00"),
            row("2026-10", "proposal", "1000", "500.00"),
        ]
    );
    assert_eq!(
        cells("2026-10-25").await,
        vec![row("2026-12", "proposal", "1500", "750.00")]
    );
    assert!(cells("2026-08-01").await.is_empty());
    // Scope holds for the past too; tomorrow is not known yet.
    let r = app
        .get(
            "/api/v1/reports/pipeline?as_of=2026-10-16",
            &app.token(app.org.rep_north1),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.body["cells"].as_array().unwrap().is_empty());
    let r = app.get("/api/v1/reports/pipeline?as_of=2999-01-01", &admin).await;
    assert_eq!(r.status, 422, "{}", r.text);
}

#[actix_web::test]
async fn saved_reports_are_shared_by_role_or_team_and_each_viewer_runs_them_in_their_own_scope() {
    let app = start().await;
    let mgr = app.token(app.org.manager_east);
    let rep_e = app.token(app.org.rep_east1);
    let rep_n = app.token(app.org.rep_north1);
    for (token, name, amount) in [(&rep_e, "共享东", "1000"), (&rep_n, "共享北", "400")] {
        let acc = app.account(token, name).await["id"].as_str().unwrap().to_owned();
        let d = app
            .deal(token, json!({"name": name, "account_id": acc, "amount": amount}))
            .await;
        exec(
            &app.db,
            &format!(
                "UPDATE opportunities SET status = 'won', closed_at = '2026-10-12T03:00:00Z' WHERE id = '{}'",
                d["id"].as_str().unwrap()
            ),
        );
    }
    let r = app
        .post(
            "/api/v1/saved-reports",
            &mgr,
            json!({"name": "赢单 Sales won", "report": "results", "params": {"period": "this_quarter", "group_by": "owner"},
                   "shared_with_roles": ["sales_rep", "sales_rep"]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["shared_with_roles"], json!(["sales_rep"]));
    let id = r.body["id"].as_str().unwrap().to_owned();
    // Parameters are read as a run reads them; sharing names real roles and teams.
    for bad in [
        json!({"name": "x", "report": "results", "params": {"group_by": 5}}),
        json!({"name": "x", "report": "results", "params": {"bogus": "1"}}),
        json!({"name": "x", "report": "query", "params": {"object": "planets"}}),
        json!({"name": "x", "report": "results", "shared_with_roles": ["no_such_role"]}),
        json!({"name": "x", "report": "results", "shared_with_teams": [uuid::Uuid::new_v4()]}),
    ] {
        let r = app.post("/api/v1/saved-reports", &mgr, bad.clone()).await;
        assert_eq!(r.status, 422, "{bad}: {}", r.text);
    }
    // Reps see it (shared with their role); marketing does not.
    for token in [&rep_e, &rep_n] {
        let r = app.get("/api/v1/saved-reports", token).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let items = r.body["items"].as_array().unwrap();
        // Besides the built-in reports (no owner) shared with every sales role.
        let owned: Vec<_> = items.iter().filter(|i| !i["owner_id"].is_null()).collect();
        assert_eq!(owned.len(), 1, "{}", r.text);
        assert_eq!(owned[0]["id"], id.as_str());
    }
    let path = format!("/api/v1/saved-reports/{id}");
    let r = app.get(&path, &app.token(app.org.marketing)).await;
    assert_eq!(r.status, 404, "{}", r.text);
    // Each viewer runs it over their own scope; a period replaces the saved one.
    let won = |r: &crm_test_support::app::Resp| vp(fig(&r.body["result"]["totals"], "sales_won_amount", Some("CNY"))).0;
    let r = app.get(&format!("{path}/run?{OCT}"), &mgr).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["saved_report"]["id"], id.as_str());
    assert_eq!(r.body["result"]["period"]["from"], "2026-10-01");
    assert_eq!(won(&r), "1000.00");
    let r = app.get(&format!("{path}/run?{OCT}"), &rep_n).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(won(&r), "400.00");
    let r = app.get(&format!("{path}/run"), &rep_n).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["result"]["preset"], "this_quarter");
    // Only the owner changes it.
    let r = app.patch(&path, &rep_e, 1, json!({"name": "改"})).await;
    assert_eq!(r.status, 403, "{}", r.text);
    let r = app
        .patch(
            &path,
            &mgr,
            1,
            json!({"name": "华东赢单", "shared_with_roles": [], "shared_with_teams": [app.org.east1]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["version"], 2);
    let r = app.patch(&path, &mgr, 1, json!({"name": "旧"})).await;
    assert_eq!(r.status, 412, "{}", r.text);
    // Now shared with the east1 team only.
    let r = app.get(&path, &rep_n).await;
    assert_eq!(r.status, 404, "{}", r.text);
    let r = app.get(&path, &rep_e).await;
    assert_eq!(r.status, 200, "{}", r.text);

    // Ad-hoc queries and leaderboards save too.
    let r = app
        .post(
            "/api/v1/saved-reports",
            &rep_e,
            json!({"name": "我的商机", "report": "query",
                   "params": {"object": "opportunities", "measures": [{"agg": "count"}], "dimensions": [{"field": "status"}]}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let q = r.body["id"].as_str().unwrap().to_owned();
    let r = app.get(&format!("/api/v1/saved-reports/{q}/run"), &rep_e).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.body["result"]["rows"].as_array().is_some(), "{}", r.text);
    let r = app
        .post(
            "/api/v1/saved-reports",
            &mgr,
            json!({"name": "榜", "report": "leaderboard", "params": {"kpi": "deals_won", "from": "2026-10-01", "to": "2026-10-31"}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let lb = r.body["id"].as_str().unwrap().to_owned();
    let r = app.get(&format!("/api/v1/saved-reports/{lb}/run"), &mgr).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["result"]["kpi"], "deals_won");
    assert_eq!(r.body["result"]["standings"].as_array().unwrap().len(), 1, "{}", r.text);
    // Deleted by its owner only.
    let r = app.delete(&path, &rep_e).await;
    assert_eq!(r.status, 403, "{}", r.text);
    let r = app.delete(&path, &mgr).await;
    assert_eq!(r.status, 204, "{}", r.text);
    let r = app.get(&path, &mgr).await;
    assert_eq!(r.status, 404, "{}", r.text);
}

#[actix_web::test]
async fn dashboards_run_every_widget_for_the_viewer_under_one_period_and_seed_a_sales_board_and_a_cockpit() {
    let app = start().await;
    let admin = app.token(app.org.admin);
    let mgr = app.token(app.org.manager_east);
    let rep = app.token(app.org.rep_east1);
    let mkt = app.token(app.org.marketing);
    let names = |token: String| {
        let app = &app;
        async move {
            let r = app.get("/api/v1/dashboards", &token).await;
            assert_eq!(r.status, 200, "{}", r.text);
            r.body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d["name"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    let rep_sees = names(rep.clone()).await;
    assert!(rep_sees.iter().any(|n| n.contains("Sales dashboard")), "{rep_sees:?}");
    assert!(!rep_sees.iter().any(|n| n.contains("cockpit")), "{rep_sees:?}");
    assert!(names(mgr.clone()).await.iter().any(|n| n.contains("cockpit")));
    assert!(names(mkt.clone()).await.is_empty());

    // The cockpit, as the manager, for October: every widget answered.
    let cockpit = "00000000-0000-7000-8000-000000000202";
    let r = app.get(&format!("/api/v1/dashboards/{cockpit}/run?{OCT}"), &mgr).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let widgets = r.body["widgets"].as_array().unwrap();
    assert_eq!(widgets.len(), 8);
    for w in widgets {
        assert!(w["error"].is_null(), "{w}");
    }
    assert_eq!(widgets[0]["result"]["period"]["from"], "2026-10-01");
    assert_eq!(widgets[0]["result"]["report"], "results");
    let r = app.get(&format!("/api/v1/dashboards/{cockpit}/run"), &rep).await;
    assert_eq!(r.status, 404, "{}", r.text);
    let board = "00000000-0000-7000-8000-000000000201";
    let r = app
        .get(&format!("/api/v1/dashboards/{board}/run?period=last_quarter"), &rep)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["widgets"][0]["result"]["preset"], "last_quarter");

    // A rep's own board: widgets must be saved reports the rep may see.
    let leaderboard = "00000000-0000-7000-8000-000000000105";
    let results = "00000000-0000-7000-8000-000000000101";
    let r = app
        .post(
            "/api/v1/dashboards",
            &rep,
            json!({"name": "我的看板", "widgets": [{"saved_report_id": leaderboard, "chart": "bar", "size": "small"}]}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(r.body["errors"][0]["field"], "widgets[0].saved_report_id");
    let r = app
        .post(
            "/api/v1/dashboards",
            &rep,
            json!({"name": "我的看板", "period": "this_year", "widgets": [{"saved_report_id": results, "chart": "number", "size": "small"}]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let mine = format!("/api/v1/dashboards/{}", r.body["id"].as_str().unwrap());
    let r = app.patch(&mine, &rep, 1, json!({"period": "last_month"})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app.patch(&mine, &rep, 1, json!({"period": "this_week"})).await;
    assert_eq!(r.status, 412, "a stale version: {}", r.text);
    let r = app.patch(&mine, &rep, 2, json!({"granularity": "hour"})).await;
    assert_eq!(r.status, 422, "{}", r.text);
    let r = app.get(&mine, &app.token(app.org.rep_north1)).await;
    assert_eq!(r.status, 404, "another rep's board: {}", r.text);
    let r = app.get(&format!("{mine}/run"), &rep).await;
    assert_eq!(r.body["widgets"][0]["result"]["preset"], "last_month", "{}", r.text);
    let r = app
        .patch(&format!("/api/v1/dashboards/{board}"), &rep, 1, json!({"name": "改"}))
        .await;
    assert_eq!(r.status, 403, "{}", r.text);
    let r = app.delete(&mine, &rep).await;
    assert_eq!(r.status, 204, "{}", r.text);

    // A widget the viewer cannot compute carries its error; the others are answered.
    let r = app
        .post(
            "/api/v1/saved-reports",
            &admin,
            json!({"name": "应收", "report": "receivables", "shared_with_roles": ["marketing"]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let recv = r.body["id"].as_str().unwrap().to_owned();
    let r = app
        .post(
            "/api/v1/saved-reports",
            &admin,
            json!({"name": "线索", "report": "query", "shared_with_roles": ["marketing"],
                   "params": {"object": "leads", "measures": [{"agg": "count"}], "dimensions": [{"field": "created_at", "bucket": "day"}]}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let leads = r.body["id"].as_str().unwrap().to_owned();
    let r = app
        .post(
            "/api/v1/dashboards",
            &admin,
            json!({"name": "市场", "granularity": "quarter", "shared_with_roles": ["marketing"], "widgets": [
                {"saved_report_id": recv, "chart": "table", "size": "medium"},
                {"saved_report_id": results, "chart": "number", "size": "small"},
                {"saved_report_id": leads, "chart": "line", "size": "large"}]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = app
        .get(
            &format!("/api/v1/dashboards/{}/run", r.body["id"].as_str().unwrap()),
            &mkt,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let w = r.body["widgets"].as_array().unwrap();
    assert_eq!(w[0]["error"]["status"], 403, "{}", r.text);
    assert_eq!(w[1]["error"]["status"], 404, "{}", r.text);
    assert!(w[1]["saved_report"].is_null());
    assert!(w[2]["error"].is_null(), "{}", r.text);
    let bucket = w[2]["result"]["columns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["key"].as_str().is_some_and(|k| k.contains("created_at")))
        .cloned()
        .unwrap_or_default();
    assert!(bucket.to_string().contains("quarter"), "{}", r.text);
}
