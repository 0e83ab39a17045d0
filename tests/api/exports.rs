//! CSV exports: the list's filters, sort and data scope, the export permission, field
//! permissions (hidden columns absent, masked values masked), custom fields, audit.

use std::collections::HashSet;

use crm_test_support::app::start;
use serde_json::json;

/// Parses RFC 4180 text (quoted fields may hold commas, quotes and line breaks).
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let text = text.strip_prefix('\u{feff}').expect("UTF-8 BOM first");
    let (mut rows, mut row, mut field) = (Vec::new(), Vec::new(), String::new());
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(ch) = chars.next() {
        match (quoted, ch) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => field.push(c),
        }
    }
    assert!(field.is_empty() && row.is_empty(), "every row ends with CRLF");
    rows
}

/// Column `name` of every data row.
fn column(rows: &[Vec<String>], name: &str) -> Vec<String> {
    let i = rows[0]
        .iter()
        .position(|h| h == name)
        .unwrap_or_else(|| panic!("no column {name} in {:?}", rows[0]));
    rows[1..].iter().map(|r| r[i].clone()).collect()
}

#[actix_web::test]
async fn contact_export_respects_scope_permissions_and_field_access() {
    let app = start().await;
    let admin = app.token(app.org.admin);
    let manager = app.token(app.org.manager_east);
    for d in [
        json!({"key": "nickname", "label_zh": "昵称", "label_en": "Nickname", "type": "text", "filterable": true}),
        json!({"key": "salary_band", "label_zh": "薪资段", "label_en": "Salary band", "type": "text"}),
    ] {
        assert_eq!(app.post("/api/v1/admin/fields/contacts", &admin, d).await.status, 201);
    }
    let east_acc = app
        .post(
            "/api/v1/accounts",
            &manager,
            json!({"name": "华东客户", "owner_id": app.org.rep_east1}),
        )
        .await;
    let north_acc = app
        .post(
            "/api/v1/accounts",
            &admin,
            json!({"name": "North Co", "owner_id": app.org.rep_north1}),
        )
        .await;
    let mk = |acc: &serde_json::Value, name: &str, mobile: &str, owner, nick: &str| {
        json!({"account_id": acc["id"], "name": name, "mobile": mobile, "email": format!("{mobile}@mail.cn"),
               "owner_id": owner, "custom": {"nickname": nick, "salary_band": "P7"}})
    };
    for body in [
        mk(
            &east_acc.body,
            "王秘书",
            "13812341234",
            app.org.rep_east1,
            "Xiao, \"Wang\"",
        ),
        mk(
            &east_acc.body,
            "=HYPERLINK(\"http://x\")",
            "13900001111",
            app.org.rep_east2,
            "Li",
        ),
        mk(
            &north_acc.body,
            "North Person",
            "13700002222",
            app.org.rep_north1,
            "Bei",
        ),
    ] {
        let r = app.post("/api/v1/contacts", &admin, body).await;
        assert_eq!(r.status, 201, "{}", r.text);
    }

    // The director (all) exports everything, unmasked, with every column.
    let r = app.get("/api/v1/contacts/export", &app.token(app.org.director)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("content-type").unwrap(), "text/csv; charset=utf-8");
    assert!(r
        .header("content-disposition")
        .unwrap()
        .starts_with("attachment; filename=\"contacts-"));
    assert_eq!(r.header("x-export-rows").unwrap(), "3");
    let rows = parse_csv(&r.text);
    assert_eq!(rows.len(), 4);
    assert!(column(&rows, "mobile").contains(&"13812341234".to_owned()));
    assert!(column(&rows, "custom.nickname").contains(&"Xiao, \"Wang\"".to_owned()));
    // Spreadsheet formulas are neutralised.
    assert!(column(&rows, "name").contains(&"'=HYPERLINK(\"http://x\")".to_owned()));
    assert_eq!(column(&rows, "custom.salary_band"), vec!["P7"; 3]);

    // The manager's export is limited to the team and follows field permissions.
    app.set_field_access(
        &admin,
        "sales_manager",
        json!([
            {"object": "contacts", "field": "mobile", "access": "masked"},
            {"object": "contacts", "field": "email", "access": "hidden"},
            {"object": "contacts", "field": "custom.salary_band", "access": "hidden"}
        ]),
    )
    .await;
    let r = app.get("/api/v1/contacts/export?sort=name", &manager).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let rows = parse_csv(&r.text);
    assert!(!rows[0].contains(&"email".to_owned()) && !rows[0].contains(&"custom.salary_band".to_owned()));
    assert!(rows[0].contains(&"custom.nickname".to_owned()));
    assert_eq!(column(&rows, "mobile"), vec!["139****1111", "138****1234"]);
    assert!(!r.text.contains("North Person") && !r.text.contains("P7") && !r.text.contains("@mail.cn"));
    // Filters are the list's, including custom ones; hidden fields cannot be probed.
    let r = app.get("/api/v1/contacts/export?custom.nickname=Li", &manager).await;
    assert_eq!(parse_csv(&r.text).len(), 2, "{}", r.text);
    let r = app.get("/api/v1/contacts/export?q=%E7%8E%8B", &manager).await;
    assert_eq!(column(&parse_csv(&r.text), "name"), vec!["王秘书"]);
    assert_eq!(
        app.get("/api/v1/contacts/export?custom.salary_band=P7", &manager)
            .await
            .status,
        400
    );
    // Labelled headings.
    let r = app.get("/api/v1/contacts/export?header=zh", &manager).await;
    let rows = parse_csv(&r.text);
    assert!(
        rows[0].contains(&"手机".to_owned()) && rows[0].contains(&"昵称".to_owned()),
        "{:?}",
        rows[0]
    );
    let r = app.get("/api/v1/contacts/export?header=en", &manager).await;
    assert!(parse_csv(&r.text)[0].contains(&"Nickname".to_owned()));

    // Rejections: no export permission, paging parameters, bad options.
    let rep = app.token(app.org.rep_east1);
    let r = app.get("/api/v1/contacts/export", &rep).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.header("content-type").unwrap(), "application/problem+json");
    for q in ["limit=10", "cursor=abc", "header=fr", "color=red", "sort=nope"] {
        let r = app.get(&format!("/api/v1/contacts/export?{q}"), &manager).await;
        assert_eq!(r.status, 400, "{q}: {}", r.text);
    }
    assert_eq!(app.get("/api/v1/contacts/export", "not-a-token").await.status, 401);

    // Every successful export is audited and announced; failed ones are not.
    assert_eq!(
        app.db
            .count("SELECT count(*) FROM audit_log WHERE entity_type = 'contacts' AND action = 'exported'"),
        6
    );
    assert_eq!(
        app.db
            .count("SELECT count(*) FROM outbox_events WHERE event_type = 'contact.exported'"),
        6
    );
}

#[actix_web::test]
async fn export_scope_is_the_narrower_of_read_and_export() {
    let app = start().await;
    let admin = app.token(app.org.admin);
    let r = app
        .post(
            "/api/v1/admin/roles",
            &admin,
            json!({"key": "own_exporter", "name": "Own exporter", "permissions": [
                {"resource": "accounts", "action": "read", "scope": "own"},
                {"resource": "accounts", "action": "export", "scope": "all"}
            ]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let u = app
        .post(
            "/api/v1/admin/users",
            &admin,
            json!({"email": "exporter@test.local", "name": "Exporter", "password": "longenough1",
                   "team_id": app.org.east1, "roles": ["own_exporter"]}),
        )
        .await;
    assert_eq!(u.status, 201, "{}", u.text);
    let uid: uuid::Uuid = u.body["id"].as_str().unwrap().parse().unwrap();
    for (name, owner) in [("Mine Ltd", uid), ("Theirs Ltd", app.org.rep_east1)] {
        let r = app
            .post("/api/v1/accounts", &admin, json!({"name": name, "owner_id": owner}))
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
    let r = app.get("/api/v1/accounts/export", &app.token(uid)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(column(&parse_csv(&r.text), "name"), vec!["Mine Ltd"]);
}

#[actix_web::test]
async fn deal_export_holds_exactly_the_listed_rows_in_list_order() {
    let app = start().await;
    let director = app.token(app.org.director);
    let acc = app.account(&director, "Big Buyer").await;
    for i in 0..5 {
        app.deal(
            &director,
            json!({"name": format!("Deal {i}"), "account_id": acc["id"], "amount": format!("{}.50", 1000 + i)}),
        )
        .await;
    }
    // Bulk rows through SQL so the export crosses its 1,000-row page boundary.
    let pipeline = app.default_pipeline(&director).await;
    let stage = crm_test_support::app::stage_id(&pipeline, "qualification");
    let n = diesel::RunQueryDsl::execute(
        diesel::sql_query(format!(
            "INSERT INTO opportunities (id, name, account_id, pipeline_id, stage_id, amount, currency, probability,
                                        owner_id, team_id, status, stage_entered_at)
             SELECT gen_random_uuid(), 'Bulk ' || g, '{acc}', '{pipe}', '{stage}', (g % 700) + 0.25, 'CNY', 10,
                    '{owner}', '{team}', 'open', now()
             FROM generate_series(1, 1200) g",
            acc = acc["id"].as_str().unwrap(),
            pipe = pipeline["id"].as_str().unwrap(),
            owner = app.org.rep_east1,
            team = app.org.east1,
        )),
        &mut app.db.conn(),
    )
    .unwrap();
    assert_eq!(n, 1200);

    let r = app.get("/api/v1/opportunities/export?sort=-amount", &director).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let rows = parse_csv(&r.text);
    assert_eq!(rows.len(), 1 + 1205);
    let exported = column(&rows, "id");
    assert_eq!(exported.iter().collect::<HashSet<_>>().len(), 1205, "no duplicates");
    // The same order as walking the list.
    let mut listed = Vec::new();
    let mut url = "/api/v1/opportunities?sort=-amount&limit=200".to_owned();
    loop {
        let page = app.get(&url, &director).await;
        listed.extend(page.ids());
        match page.body["next_cursor"].as_str() {
            Some(c) => url = format!("/api/v1/opportunities?sort=-amount&limit=200&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(exported, listed);
    let amounts: Vec<f64> = column(&rows, "amount").iter().map(|a| a.parse().unwrap()).collect();
    assert!(amounts.windows(2).all(|w| w[0] >= w[1]));
    // A filter narrows the export exactly as it narrows the list.
    let r = app.get("/api/v1/opportunities/export?amount_gte=600", &director).await;
    let big = parse_csv(&r.text).len() - 1;
    let expected = app
        .db
        .count("SELECT count(*) FROM opportunities WHERE amount >= 600 AND deleted_at IS NULL");
    assert_eq!(big as i64, expected);
}

#[actix_web::test]
async fn export_columns_are_the_fields_a_read_returns() {
    let app = start().await;
    let admin = app.token(app.org.admin);
    let acc = app.account(&admin, "Columns Co").await;
    let contact = app.contact(&admin, acc["id"].as_str().unwrap(), "列 测试").await;
    let lead = app
        .post(
            "/api/v1/leads",
            &admin,
            json!({"person_name": "Lead Person", "company": "Lead Co", "source": "website", "tags": ["a", "b"]}),
        )
        .await;
    assert_eq!(lead.status, 201, "{}", lead.text);
    let deal = app
        .deal(
            &admin,
            json!({"name": "Column deal", "account_id": acc["id"], "amount": "1234.56"}),
        )
        .await;
    for (object, record) in [
        ("accounts", acc),
        ("contacts", contact),
        ("leads", lead.body),
        ("opportunities", deal),
    ] {
        let id = record["id"].as_str().unwrap();
        let read = app.get(&format!("/api/v1/{object}/{id}"), &admin).await.body;
        let r = app.get(&format!("/api/v1/{object}/export"), &admin).await;
        assert_eq!(r.status, 200, "{object}: {}", r.text);
        let rows = parse_csv(&r.text);
        let row = rows
            .iter()
            .find(|row| row.contains(&id.to_owned()))
            .unwrap_or_else(|| panic!("{object} row"));
        for (heading, value) in rows[0].iter().zip(row) {
            let field = read
                .get(heading)
                .unwrap_or_else(|| panic!("{object}: column {heading} is not a field of the record"));
            let expected = match field {
                serde_json::Value::Null => String::new(),
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Array(a) => a
                    .iter()
                    .map(|v| v.as_str().unwrap_or_default())
                    .collect::<Vec<_>>()
                    .join("; "),
                other => other.to_string(),
            };
            assert_eq!(value, &expected, "{object}.{heading}");
        }
    }
}

#[actix_web::test]
async fn an_export_over_the_row_limit_is_refused_and_not_recorded() {
    let app = crm_test_support::app::start_with(|c| c.export_max_rows = 2).await;
    let director = app.token(app.org.director);
    for name in ["One Ltd", "Two Ltd"] {
        app.account(&director, name).await;
    }
    let r = app.get("/api/v1/accounts/export", &director).await;
    assert_eq!(r.status, 200, "{}", r.text);
    app.account(&director, "Three Ltd").await;
    let r = app.get("/api/v1/accounts/export", &director).await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(r.code(), "export_too_large");
    assert_eq!(r.body["max_rows"], 2);
    // A narrower filter fits.
    let r = app.get("/api/v1/accounts/export?q=Two", &director).await;
    assert_eq!(r.status, 200);
    assert_eq!(parse_csv(&r.text).len(), 2);
    assert_eq!(
        app.db.count("SELECT count(*) FROM audit_log WHERE action = 'exported'"),
        2
    );
}

#[actix_web::test]
async fn exports_wait_for_a_slot_and_answer_429_when_none_frees() {
    let app = crm_test_support::app::start_with(|c| {
        c.export_slots = 1;
        c.export_wait = std::time::Duration::from_millis(200);
    })
    .await;
    let director = app.token(app.org.director);
    app.account(&director, "Slot Co").await;
    // Another export holds the only slot.
    let held = app.state.exports.clone().acquire_owned().await.unwrap();
    let r = app.get("/api/v1/accounts/export", &director).await;
    assert_eq!(r.status, 429, "{}", r.text);
    assert_eq!(r.code(), "export_busy");
    assert_eq!(r.header("retry-after").as_deref(), Some("1"));
    assert_eq!(
        app.db.count("SELECT count(*) FROM audit_log WHERE action = 'exported'"),
        0
    );
    drop(held);
    let r = app.get("/api/v1/accounts/export", &director).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(parse_csv(&r.text).len(), 2);
}
