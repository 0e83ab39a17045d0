//! Form engine: custom field definitions, values, filters and sorts, field-level
//! permissions and masking, definition changes against existing data, layouts, meta.

use crm_test_support::app::{stage_id, start};
use serde_json::json;

#[actix_web::test]
async fn custom_values_are_validated_stored_and_audited() {
    let app = start().await;
    let admin = app.token(app.org.admin);
    let rep = app.token(app.org.rep_east1);
    let defs = [
        json!({"key": "region_code", "label_zh": "区域代码", "label_en": "Region code", "type": "single_select", "filterable": true,
               "settings": {"options": [{"key": "east", "label_zh": "华东", "label_en": "East", "color": "#f00"},
                                        {"key": "west", "label_zh": "西部", "label_en": "West"}]}}),
        json!({"key": "employees", "label_zh": "员工数", "label_en": "Employees", "type": "integer", "settings": {"min": 1, "max": 1000000}}),
        json!({"key": "credit_limit", "label_zh": "信用额度", "label_en": "Credit limit", "type": "money", "default_value": "10000"}),
        json!({"key": "tax_no", "label_zh": "税号", "label_en": "Tax no", "type": "text", "settings": {"pattern": "[0-9A-Z]{15,20}"}}),
        json!({"key": "vip", "label_zh": "VIP", "label_en": "VIP", "type": "boolean"}),
        json!({"key": "founded", "label_zh": "成立日期", "label_en": "Founded", "type": "date"}),
        json!({"key": "channels", "label_zh": "渠道", "label_en": "Channels", "type": "multi_select",
               "settings": {"options": [{"key": "web", "label_zh": "网站", "label_en": "Web"}, {"key": "shop", "label_zh": "门店", "label_en": "Shop"}]}}),
        json!({"key": "ceo_email", "label_zh": "CEO 邮箱", "label_en": "CEO e-mail", "type": "email"}),
        json!({"key": "key_person", "label_zh": "关键人", "label_en": "Key person", "type": "user_ref"}),
        json!({"key": "sister", "label_zh": "关联客户", "label_en": "Sister company", "type": "record_ref", "settings": {"target": "account"}}),
        json!({"key": "per_head", "label_zh": "人均额度", "label_en": "Credit per head", "type": "formula",
               "settings": {"expr": "custom.credit_limit / custom.employees"}}),
    ];
    for d in &defs {
        let r = app.post("/api/v1/admin/fields/accounts", &admin, d.clone()).await;
        assert_eq!(r.status, 201, "{d}: {}", r.text);
    }
    let r = app.get("/api/v1/admin/fields/accounts", &admin).await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), defs.len());
    // A second field with the same key, a bad formula, a built-in name.
    assert_eq!(
        app.post("/api/v1/admin/fields/accounts", &admin, defs[0].clone())
            .await
            .status,
        409
    );
    let r = app
        .post("/api/v1/admin/fields/accounts", &admin, json!({"key": "bad", "label_zh": "x", "label_en": "x", "type": "formula", "settings": {"expr": "custom.tax_no * 2"}}))
        .await;
    assert_eq!(r.status, 422);
    assert_eq!(r.body["errors"][0]["field"], "settings.expr");
    let r = app
        .post(
            "/api/v1/admin/fields/accounts",
            &admin,
            json!({"key": "phone", "label_zh": "x", "label_en": "x", "type": "text"}),
        )
        .await;
    assert_eq!(r.body["errors"][0]["code"], "reserved");
    assert_eq!(
        app.post("/api/v1/admin/fields/quotes", &admin, defs[1].clone())
            .await
            .status,
        404
    );
    assert_eq!(
        app.post("/api/v1/admin/fields/accounts", &rep, defs[1].clone())
            .await
            .status,
        403
    );

    // Every kind of bad value is named by its path.
    let other = app.account(&app.token(app.org.rep_north1), "Invisible Sister").await;
    let r = app
        .post(
            "/api/v1/accounts",
            &rep,
            json!({"name": "Bad Values", "custom": {
                "region_code": "north", "employees": 0, "tax_no": "abc", "vip": "yes", "founded": "2026-13-01",
                "channels": ["web", "tv"], "ceo_email": "nope", "key_person": uuid::Uuid::now_v7(), "sister": other["id"],
                "per_head": "1", "unknown_thing": 1
            }}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
    let got: Vec<(String, String)> = r.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["field"].as_str().unwrap().to_owned(),
                e["code"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected = [
        ("custom.ceo_email", "invalid_format"),
        ("custom.channels", "invalid_option"),
        ("custom.employees", "out_of_range"),
        ("custom.founded", "invalid_format"),
        ("custom.key_person", "not_found"),
        ("custom.per_head", "read_only"),
        ("custom.region_code", "invalid_option"),
        ("custom.sister", "not_found"),
        ("custom.tax_no", "invalid_format"),
        ("custom.unknown_thing", "unknown_field"),
        ("custom.vip", "invalid_type"),
    ];
    assert_eq!(
        got,
        expected
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect::<Vec<_>>()
    );
    assert_eq!(app.db.count("SELECT count(*) FROM accounts"), 1);

    let sister = app.account(&rep, "Visible Sister").await;
    let r = app
        .post(
            "/api/v1/accounts",
            &rep,
            json!({"name": "Good Values", "custom": {
                "region_code": "east", "employees": "250", "tax_no": "91310000MA1FL0000X", "vip": true, "founded": "2001-05-20",
                "channels": ["shop", "web", "shop"], "ceo_email": " CEO@Good.CN ", "key_person": app.org.rep_east2, "sister": sister["id"]
            }}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let c = &r.body["custom"];
    // An integer field's value is a JSON integer, as /meta and the spec say.
    assert_eq!(c["employees"], 250);
    assert_eq!(c["credit_limit"], "10000.00", "default applied");
    assert_eq!(c["channels"], json!(["shop", "web"]));
    assert_eq!(c["ceo_email"], "ceo@good.cn");
    assert_eq!(c["per_head"], "40", "formula computed: 10000 / 250");
    let id = r.body["id"].as_str().unwrap().to_owned();
    // Update: null clears, formulas follow their inputs, history records each field.
    let r = app
        .patch(
            &format!("/api/v1/accounts/{id}"),
            &rep,
            1,
            json!({"custom": {"employees": 400, "vip": null}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["custom"]["per_head"], "25");
    assert!(r.body["custom"].get("vip").is_none());
    let hist = app.get(&format!("/api/v1/accounts/{id}/history"), &rep).await;
    let changes = &hist.body["items"][0]["changes"];
    assert_eq!(changes["custom.employees"], json!({"before": 250, "after": 400}));
    assert_eq!(changes["custom.vip"], json!({"before": true, "after": null}));
    assert_eq!(changes["custom.per_head"], json!({"before": "40", "after": "25"}));
}

#[actix_web::test]
async fn custom_fields_filter_and_sort_like_built_in_ones() {
    let app = start().await;
    let admin = app.token(app.org.admin);
    let rep = app.token(app.org.rep_east1);
    for d in [
        json!({"key": "segment", "label_zh": "细分", "label_en": "Segment", "type": "single_select", "filterable": true,
               "settings": {"options": [{"key": "smb", "label_zh": "小", "label_en": "SMB"}, {"key": "ent", "label_zh": "大", "label_en": "Enterprise"}]}}),
        json!({"key": "score", "label_zh": "评分", "label_en": "Score", "type": "decimal", "filterable": true}),
        json!({"key": "renewal", "label_zh": "续约日", "label_en": "Renewal", "type": "date", "filterable": true}),
        json!({"key": "tags", "label_zh": "标签", "label_en": "Tags", "type": "multi_select",
               "settings": {"options": [{"key": "hot", "label_zh": "热", "label_en": "Hot"}, {"key": "cold", "label_zh": "冷", "label_en": "Cold"}]}}),
    ] {
        assert_eq!(
            app.post("/api/v1/admin/fields/opportunities", &admin, d).await.status,
            201
        );
    }
    // The filterable fields got their own indexes.
    assert_eq!(
        app.db
            .count("SELECT count(*) FROM pg_indexes WHERE indexname LIKE 'opportunities_cf_%'"),
        3
    );
    let acc = app.account(&rep, "Filter Co").await;
    let mut ids = Vec::new();
    for (i, (seg, score, date, tag)) in [
        ("smb", "1.5", "2027-01-10", "hot"),
        ("ent", "99", "2027-03-01", "cold"),
        ("ent", "42.25", "2027-02-15", "hot"),
        ("smb", "-3", "2026-12-31", "cold"),
    ]
    .iter()
    .enumerate()
    {
        let d = app
            .deal(
                &rep,
                json!({"name": format!("D{i}"), "account_id": acc["id"],
                "custom": {"segment": seg, "score": score, "renewal": date, "tags": [tag]}}),
            )
            .await;
        ids.push(d["id"].as_str().unwrap().to_owned());
    }
    app.deal(&rep, json!({"name": "No custom", "account_id": acc["id"]}))
        .await;
    let names = |r: &crm_test_support::Resp| -> Vec<String> {
        r.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let r = app
        .get("/api/v1/opportunities?custom.segment=ent&sort=name", &rep)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(names(&r), ["D1", "D2"]);
    let r = app
        .get(
            "/api/v1/opportunities?custom.score_gte=0&custom.score_lte=50&sort=name",
            &rep,
        )
        .await;
    assert_eq!(names(&r), ["D0", "D2"]);
    let r = app.get("/api/v1/opportunities?custom.score_lte=0", &rep).await;
    assert_eq!(names(&r), ["D3"], "missing values are not 'below zero'");
    let r = app
        .get(
            "/api/v1/opportunities?custom.renewal_gte=2027-01-01&custom.renewal_lte=2027-02-28&sort=name",
            &rep,
        )
        .await;
    assert_eq!(names(&r), ["D0", "D2"]);
    let r = app
        .get("/api/v1/opportunities?custom.tags=hot&custom.segment=smb", &rep)
        .await;
    assert_eq!(names(&r), ["D0"]);
    let r = app.get("/api/v1/opportunities?sort=-custom.score&limit=2", &rep).await;
    assert_eq!(names(&r), ["D1", "D2"]);
    let next = r.body["next_cursor"].as_str().unwrap();
    let r = app
        .get(
            &format!("/api/v1/opportunities?sort=-custom.score&limit=2&cursor={next}"),
            &rep,
        )
        .await;
    assert_eq!(names(&r), ["D0", "D3"]);
    let next = r.body["next_cursor"].as_str().unwrap();
    let r = app
        .get(
            &format!("/api/v1/opportunities?sort=-custom.score&limit=2&cursor={next}"),
            &rep,
        )
        .await;
    assert_eq!(names(&r), ["No custom"]);
    assert!(r.body["next_cursor"].is_null());
    // Unknown filters and bad values are 400s that say what is allowed.
    let r = app.get("/api/v1/opportunities?custom.colour=red", &rep).await;
    assert_eq!(r.status, 400);
    assert!(
        r.body["detail"].as_str().unwrap().contains("custom.segment"),
        "{}",
        r.text
    );
    assert_eq!(
        app.get("/api/v1/opportunities?custom.score_gte=high", &rep)
            .await
            .status,
        400
    );
    assert_eq!(
        app.get("/api/v1/opportunities?custom.segment_gte=a", &rep).await.status,
        400
    );
    assert_eq!(
        app.get("/api/v1/opportunities?sort=custom.tags", &rep).await.status,
        400
    );
    // Custom filters work on the board too, through the list cursor.
    let _ = ids;
}

#[actix_web::test]
async fn field_permissions_hide_mask_and_protect() {
    let app = start().await;
    let admin = app.token(app.org.admin);
    for d in [
        json!({"key": "salary_band", "label_zh": "薪资段", "label_en": "Salary band", "type": "text"}),
        json!({"key": "hobby", "label_zh": "爱好", "label_en": "Hobby", "type": "text"}),
        json!({"key": "nickname", "label_zh": "昵称", "label_en": "Nickname", "type": "text", "filterable": true}),
    ] {
        assert_eq!(app.post("/api/v1/admin/fields/contacts", &admin, d).await.status, 201);
    }
    let roles = app.get("/api/v1/admin/roles", &admin).await;
    let role_id = |key: &str| {
        roles.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["key"] == key)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let rep_role = role_id("sales_rep");
    let r = app
        .send(
            crm_test_support::app::request(
                actix_web::http::Method::PUT,
                &format!("/api/v1/admin/roles/{rep_role}/field-permissions"),
                Some(&admin),
            )
            .set_json(json!({"items": [
                {"object": "contacts", "field": "mobile", "access": "masked"},
                {"object": "contacts", "field": "email", "access": "hidden"},
                {"object": "contacts", "field": "custom.salary_band", "access": "hidden"},
                {"object": "contacts", "field": "custom.hobby", "access": "read_only"},
                {"object": "contacts", "field": "custom.nickname", "access": "masked"}
            ]})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let bad = app
        .send(
            crm_test_support::app::request(
                actix_web::http::Method::PUT,
                &format!("/api/v1/admin/roles/{rep_role}/field-permissions"),
                Some(&admin),
            )
            .set_json(json!({"items": [{"object": "contacts", "field": "shoe_size", "access": "hidden"}]})),
        )
        .await;
    assert_eq!(bad.status, 422);

    // The manager (not restricted) creates the contact with every value.
    let m = app.token(app.org.manager_east);
    let acc = app
        .post(
            "/api/v1/accounts",
            &m,
            json!({"name": "Masked Co", "owner_id": app.org.rep_east1}),
        )
        .await;
    assert_eq!(acc.status, 201, "{}", acc.text);
    let ct = app
        .post(
            "/api/v1/contacts",
            &m,
            json!({"account_id": acc.body["id"], "name": "王秘书", "mobile": "13812341234", "email": "wang@masked.cn",
                   "owner_id": app.org.rep_east1, "custom": {"salary_band": "P7", "hobby": "golf", "nickname": "Xiao Wang"}}),
        )
        .await;
    assert_eq!(ct.status, 201, "{}", ct.text);
    let id = ct.body["id"].as_str().unwrap().to_owned();

    let rep = app.token(app.org.rep_east1);
    let r = app.get(&format!("/api/v1/contacts/{id}"), &rep).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["mobile"], "138****1234");
    assert!(r.body.get("email").is_none(), "hidden built-in field is absent");
    assert!(
        r.body["custom"].get("salary_band").is_none(),
        "hidden custom field is absent"
    );
    assert_eq!(r.body["custom"]["hobby"], "golf");
    assert_eq!(r.body["custom"]["nickname"], "X***");
    assert!(!r.text.contains("P7") && !r.text.contains("wang@masked.cn") && !r.text.contains("13812341234"));
    let list = app.get("/api/v1/contacts", &rep).await;
    assert_eq!(list.body["items"][0]["mobile"], "138****1234");
    assert!(list.body["items"][0].get("email").is_none());
    let ov = app
        .get(
            &format!("/api/v1/accounts/{}/overview", acc.body["id"].as_str().unwrap()),
            &rep,
        )
        .await;
    assert_eq!(ov.body["contacts"][0]["mobile"], "138****1234");
    // A hidden field cannot be probed by filtering or sorting on it.
    let r = app.get("/api/v1/contacts?custom.salary_band=P7", &rep).await;
    assert_eq!(r.status, 400);
    let allowed = r.body["detail"]
        .as_str()
        .unwrap()
        .split("filter on:")
        .nth(1)
        .unwrap()
        .to_owned();
    assert!(!allowed.contains("salary_band"), "{}", r.text);
    let ghost = app.get("/api/v1/contacts?custom.no_such_field=P7", &rep).await;
    assert_eq!(
        ghost.body["detail"]
            .as_str()
            .unwrap()
            .replace("no_such_field", "salary_band"),
        r.body["detail"].as_str().unwrap()
    );
    assert_eq!(
        app.get("/api/v1/contacts?sort=custom.salary_band", &rep).await.status,
        400
    );
    // Nor can a masked one (one guess at a time would reveal it).
    for q in ["custom.nickname=Xiao%20Wang", "sort=custom.nickname"] {
        assert_eq!(app.get(&format!("/api/v1/contacts?{q}"), &rep).await.status, 400, "{q}");
    }
    assert_eq!(
        app.get("/api/v1/contacts?custom.hobby=golf", &rep).await.ids(),
        vec![id.clone()]
    );
    // Read-only and masked fields cannot be written; others can.
    for body in [
        json!({"custom": {"hobby": "chess"}}),
        json!({"mobile": "13900000000"}),
        json!({"email": "x@y.cn"}),
        json!({"custom": {"salary_band": "P1"}}),
    ] {
        let r = app
            .patch(&format!("/api/v1/contacts/{id}"), &rep, 1, body.clone())
            .await;
        assert_eq!(r.status, 422, "{body}: {}", r.text);
        assert_eq!(r.body["errors"][0]["code"], "read_only");
    }
    let r = app
        .patch(&format!("/api/v1/contacts/{id}"), &rep, 1, json!({"title": "秘书"}))
        .await;
    assert_eq!(r.status, 200);
    // The unrestricted manager still sees everything, and the values were not touched.
    let full = app.get(&format!("/api/v1/contacts/{id}"), &m).await;
    assert_eq!(full.body["mobile"], "13812341234");
    assert_eq!(full.body["custom"]["salary_band"], "P7");
    // Meta tells the client what it may do.
    let meta = app.get("/api/v1/meta/contacts", &rep).await;
    let field = |k: &str| {
        meta.body["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["key"] == k)
            .cloned()
    };
    assert!(field("email").is_none());
    assert!(field("custom.salary_band").is_none());
    assert_eq!(field("mobile").unwrap()["access"], "masked");
    assert_eq!(
        field("mobile").unwrap()["searchable"],
        false,
        "q does not look in masked values"
    );
    assert_eq!(field("custom.nickname").unwrap()["filterable"], false);
    assert_eq!(field("custom.hobby").unwrap()["access"], "read_only");
    assert_eq!(field("custom.hobby").unwrap()["filterable"], true);
    assert_eq!(field("name").unwrap()["access"], "full");
    assert_eq!(field("created_at").unwrap()["access"], "read_only");
    // A second role without restrictions lifts them (most permissive wins).
    let v = app
        .get(&format!("/api/v1/admin/users/{}", app.org.rep_east1), &admin)
        .await
        .etag_version();
    let r = app
        .patch(
            &format!("/api/v1/admin/users/{}", app.org.rep_east1),
            &admin,
            v,
            json!({"roles": ["sales_rep", "presales"]}),
        )
        .await;
    assert_eq!(r.status, 200);
    let r = app.get(&format!("/api/v1/contacts/{id}"), &rep).await;
    assert_eq!(r.body["mobile"], "13812341234");
    assert_eq!(r.body["custom"]["salary_band"], "P7");
}

#[actix_web::test]
async fn definition_changes_are_checked_against_existing_data() {
    let app = start().await;
    let admin = app.token(app.org.admin);
    let rep = app.token(app.org.rep_east1);
    assert_eq!(
        app.post(
            "/api/v1/admin/fields/accounts",
            &admin,
            json!({"key": "size", "label_zh": "规模", "label_en": "Size", "type": "text"})
        )
        .await
        .status,
        201
    );
    let a = app
        .post(
            "/api/v1/accounts",
            &rep,
            json!({"name": "A", "custom": {"size": "120"}}),
        )
        .await;
    let b = app
        .post(
            "/api/v1/accounts",
            &rep,
            json!({"name": "B", "custom": {"size": "big"}}),
        )
        .await;
    let c = app.post("/api/v1/accounts", &rep, json!({"name": "C"})).await;
    let (b_id, c_id) = (
        b.body["id"].as_str().unwrap().to_owned(),
        c.body["id"].as_str().unwrap().to_owned(),
    );

    // Narrowing text -> integer breaks "big": refused with a count, nothing changes.
    let v = app
        .get("/api/v1/admin/fields/accounts/size", &admin)
        .await
        .etag_version();
    let r = app
        .patch(
            "/api/v1/admin/fields/accounts/size",
            &admin,
            v,
            json!({"type": "integer"}),
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.text);
    assert_eq!(r.code(), "definition_conflicts_with_data");
    assert_eq!(r.body["breaking"]["invalid"], 1);
    assert_eq!(r.body["breaking"]["sample_record_ids"], json!([b_id]));
    assert_eq!(
        app.get("/api/v1/admin/fields/accounts/size", &admin).await.body["type"],
        "text"
    );
    // With flag_invalid the type changes and "big" is listed.
    let r = app
        .patch(
            "/api/v1/admin/fields/accounts/size",
            &admin,
            v,
            json!({"type": "integer", "migration": {"strategy": "flag_invalid"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let flagged = app.get("/api/v1/admin/fields/accounts/size/flagged", &admin).await;
    assert_eq!(flagged.body["items"][0]["record_id"], json!(b_id));
    assert_eq!(flagged.body["items"][0]["value"], "big");
    // Writing a valid value clears the flag.
    let r = app
        .patch(
            &format!("/api/v1/accounts/{b_id}"),
            &rep,
            1,
            json!({"custom": {"size": 9}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        app.get("/api/v1/admin/fields/accounts/size/flagged", &admin).await.body["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // Making it required: C has no value.
    let v = app
        .get("/api/v1/admin/fields/accounts/size", &admin)
        .await
        .etag_version();
    let r = app
        .patch(
            "/api/v1/admin/fields/accounts/size",
            &admin,
            v,
            json!({"required": true}),
        )
        .await;
    assert_eq!(r.status, 409);
    assert_eq!(r.body["breaking"]["missing"], 1);
    let r = app
        .patch(
            "/api/v1/admin/fields/accounts/size",
            &admin,
            v,
            json!({"required": true, "migration": {"strategy": "set_default", "value": 1}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        app.get(&format!("/api/v1/accounts/{c_id}"), &rep).await.body["custom"]["size"],
        1
    );
    // Required is enforced on create and when clearing.
    let r = app.post("/api/v1/accounts", &rep, json!({"name": "D"})).await;
    assert_eq!(r.body["errors"][0]["field"], "custom.size");
    assert_eq!(r.body["errors"][0]["code"], "required");
    let r = app
        .patch(
            &format!("/api/v1/accounts/{c_id}"),
            &rep,
            1,
            json!({"custom": {"size": null}}),
        )
        .await;
    assert_eq!(r.body["errors"][0]["code"], "required");

    // Archive hides the values; restore brings them back.
    assert_eq!(
        app.delete("/api/v1/admin/fields/accounts/size", &admin).await.status,
        204
    );
    let got = app.get(&format!("/api/v1/accounts/{c_id}"), &rep).await;
    assert!(got.body["custom"].get("size").is_none());
    let r = app
        .post(
            "/api/v1/accounts?allow_duplicate=true",
            &rep,
            json!({"name": "E", "custom": {"size": 3}}),
        )
        .await;
    assert_eq!(r.body["errors"][0]["code"], "unknown_field");
    let r = app
        .post("/api/v1/admin/fields/accounts/size/restore", &admin, json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        app.get(&format!("/api/v1/accounts/{c_id}"), &rep).await.body["custom"]["size"],
        1
    );
    let _ = a;

    // Retiring an option keeps old values valid but refuses new ones.
    let opts = |retired: bool| json!({"options": [{"key": "gold", "label_zh": "金", "label_en": "Gold", "retired": retired}, {"key": "silver", "label_zh": "银", "label_en": "Silver"}]});
    assert_eq!(app.post("/api/v1/admin/fields/accounts", &admin, json!({"key": "level", "label_zh": "级别", "label_en": "Level", "type": "single_select", "settings": opts(false)})).await.status, 201);
    let g = app
        .post(
            "/api/v1/accounts",
            &rep,
            json!({"name": "Gold Co", "custom": {"level": "gold", "size": 5}}),
        )
        .await;
    assert_eq!(g.status, 201, "{}", g.text);
    let v = app
        .get("/api/v1/admin/fields/accounts/level", &admin)
        .await
        .etag_version();
    assert_eq!(
        app.patch(
            "/api/v1/admin/fields/accounts/level",
            &admin,
            v,
            json!({"settings": opts(true)})
        )
        .await
        .status,
        200
    );
    let gid = g.body["id"].as_str().unwrap();
    assert_eq!(
        app.get(&format!("/api/v1/accounts/{gid}"), &rep).await.body["custom"]["level"],
        "gold"
    );
    let r = app
        .patch(
            &format!("/api/v1/accounts/{gid}"),
            &rep,
            1,
            json!({"notes": "still gold"}),
        )
        .await;
    assert_eq!(
        r.status, 200,
        "untouched retired values do not block other edits: {}",
        r.text
    );
    let r = app
        .post(
            "/api/v1/accounts",
            &rep,
            json!({"name": "New Gold", "custom": {"level": "gold", "size": 5}}),
        )
        .await;
    assert_eq!(r.body["errors"][0]["code"], "retired_option");
    // Removing an option in use is a narrowing change.
    let v = app
        .get("/api/v1/admin/fields/accounts/level", &admin)
        .await
        .etag_version();
    let r = app
        .patch(
            "/api/v1/admin/fields/accounts/level",
            &admin,
            v,
            json!({"settings": {"options": [{"key": "silver", "label_zh": "银", "label_en": "Silver"}]}}),
        )
        .await;
    assert_eq!(r.status, 409);
}

#[actix_web::test]
async fn a_field_can_be_required_from_a_stage_on() {
    let app = start().await;
    let admin = app.token(app.org.admin);
    let rep = app.token(app.org.rep_east1);
    let p = app.default_pipeline(&rep).await;
    let r = app
        .post(
            "/api/v1/admin/fields/opportunities",
            &admin,
            json!({"key": "budget_source", "label_zh": "预算来源", "label_en": "Budget source", "type": "text",
                   "required_from_stage_id": stage_id(&p, "discovery")}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = app.post("/api/v1/admin/fields/accounts", &admin,
        json!({"key": "x", "label_zh": "x", "label_en": "x", "type": "text", "required_from_stage_id": stage_id(&p, "discovery")})).await;
    assert_eq!(r.status, 422);
    let acc = app.account(&rep, "Stage Field Co").await;
    let deal = app.deal(&rep, json!({"name": "Deal", "account_id": acc["id"]})).await;
    let id = deal["id"].as_str().unwrap();
    let qual = stage_id(&p, "qualification");
    app.check_task(&rep, id, &qual, "confirm_need_budget").await;
    app.check_task(&rep, id, &qual, "workshop_agreed").await;
    app.attach(&rep, id, "first_call_notes").await;
    let r = app.move_stage(&rep, id, &stage_id(&p, "discovery"), None).await;
    assert_eq!(r.code(), "stage_criteria_unmet");
    assert_eq!(
        r.body["unmet"],
        json!([{"kind": "field_required", "field": "custom.budget_source"}])
    );
    // Losing is not blocked by it.
    assert_eq!(
        app.patch(
            &format!("/api/v1/opportunities/{id}"),
            &rep,
            1,
            json!({"custom": {"budget_source": "年度IT预算"}})
        )
        .await
        .status,
        200
    );
    let r = app.move_stage(&rep, id, &stage_id(&p, "discovery"), None).await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[actix_web::test]
async fn layouts_and_meta_describe_the_forms() {
    let app = start().await;
    let admin = app.token(app.org.admin);
    let rep = app.token(app.org.rep_east1);
    assert_eq!(
        app.post(
            "/api/v1/admin/fields/opportunities",
            &admin,
            json!({"key": "deal_type", "label_zh": "类型", "label_en": "Deal type", "type": "single_select",
               "settings": {"options": [{"key": "new", "label_zh": "新签", "label_en": "New"}]}})
        )
        .await
        .status,
        201
    );
    let meta = app.get("/api/v1/meta/opportunities", &rep).await;
    assert_eq!(meta.status, 200);
    let keys: Vec<&str> = meta.body["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["key"].as_str().unwrap())
        .collect();
    assert!(keys.contains(&"amount") && keys.contains(&"custom.deal_type") && keys.contains(&"stage_id"));
    let dt = meta.body["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["key"] == "custom.deal_type")
        .unwrap();
    assert_eq!(dt["options"][0]["key"], "new");
    assert_eq!(dt["custom"], true);
    assert_eq!(app.get("/api/v1/meta/spaceships", &rep).await.status, 404);

    assert_eq!(app.get("/api/v1/layouts/opportunities", &rep).await.status, 404);
    let put = |body: serde_json::Value| {
        app.send(
            crm_test_support::app::request(
                actix_web::http::Method::PUT,
                "/api/v1/admin/layouts/opportunities",
                Some(&admin),
            )
            .set_json(body),
        )
    };
    let r = put(json!({"name": "Default", "sections": [{"title_zh": "基本", "title_en": "Basics", "fields": ["name", "amount", "nope"]}]})).await;
    assert_eq!(r.status, 422);
    assert_eq!(r.body["errors"][0]["field"], "sections[0].fields[2]");
    let r = put(json!({"name": "Default", "sections": [
        {"title_zh": "基本", "title_en": "Basics", "fields": ["name", "account_id", "amount", "custom.deal_type"]},
        {"title_zh": "其他", "title_en": "Other", "fields": ["next_step"]}
    ]}))
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let p = app.default_pipeline(&rep).await;
    let r = put(json!({"pipeline_id": p["id"], "name": "B2B", "sections": [{"title_zh": "B2B", "title_en": "B2B", "fields": ["name", "expected_close_date"]}]})).await;
    assert_eq!(r.status, 200);
    let general = app.get("/api/v1/layouts/opportunities", &rep).await;
    assert_eq!(general.body["name"], "Default");
    assert_eq!(
        general.body["sections"][0]["fields"],
        json!(["name", "account_id", "amount", "custom.deal_type"])
    );
    let b2b = app
        .get(
            &format!(
                "/api/v1/layouts/opportunities?pipeline_id={}",
                p["id"].as_str().unwrap()
            ),
            &rep,
        )
        .await;
    assert_eq!(b2b.body["name"], "B2B");
    let other = app
        .get(
            &format!("/api/v1/layouts/opportunities?pipeline_id={}", uuid::Uuid::now_v7()),
            &rep,
        )
        .await;
    assert_eq!(other.body["name"], "Default", "falls back to the general layout");
    // Replacing keeps one layout per scope.
    let r = put(
        json!({"name": "Default v2", "sections": [{"title_zh": "基本", "title_en": "Basics", "fields": ["name"]}]}),
    )
    .await;
    assert_eq!(r.body["version"], 2);
    assert_eq!(app.db.count("SELECT count(*) FROM layouts"), 2);
}

#[actix_web::test]
async fn searchable_fields_join_q_and_withheld_fields_cannot_be_searched() {
    let app = start().await;
    let admin = app.token(app.org.admin);
    let r = app
        .post(
            "/api/v1/admin/fields/contacts",
            &admin,
            json!({"key": "nickname", "label_zh": "昵称", "label_en": "Nickname", "type": "text"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["searchable"], false);
    let r = app
        .post(
            "/api/v1/admin/fields/contacts",
            &admin,
            json!({"key": "secret_code", "label_zh": "暗号", "label_en": "Code", "type": "text", "searchable": true}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = app
        .post(
            "/api/v1/admin/fields/contacts",
            &admin,
            json!({"key": "headcount", "label_zh": "人数", "label_en": "Headcount", "type": "integer", "searchable": true}),
        )
        .await;
    assert_eq!(r.status, 422);
    assert_eq!(r.body["errors"][0]["field"], "searchable");

    let acc = app
        .post(
            "/api/v1/accounts",
            &admin,
            json!({"name": "搜索测试", "owner_id": app.org.rep_east1}),
        )
        .await;
    let ct = app
        .post(
            "/api/v1/contacts",
            &admin,
            json!({"account_id": acc.body["id"], "name": "杨过", "mobile": "13812345678", "email": "yang@gumu.cn",
                   "owner_id": app.org.rep_east1, "custom": {"nickname": "小龙女的徒弟", "secret_code": "ZX-42"}}),
        )
        .await;
    assert_eq!(ct.status, 201, "{}", ct.text);
    let id = ct.body["id"].as_str().unwrap().to_owned();
    let found = |r: &crm_test_support::app::Resp| r.ids().contains(&id);

    // Not searchable yet: q does not look in the field.
    assert!(!found(&app.get("/api/v1/contacts?q=%E5%B0%8F%E9%BE%99", &admin).await));
    let v = app
        .get("/api/v1/admin/fields/contacts/nickname", &admin)
        .await
        .etag_version();
    let r = app
        .patch(
            "/api/v1/admin/fields/contacts/nickname",
            &admin,
            v,
            json!({"searchable": true}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let idx = "SELECT count(*) FROM pg_indexes WHERE indexname = 'contacts_cfs_nickname_idx'";
    assert_eq!(app.db.count(idx), 1);
    assert!(found(&app.get("/api/v1/contacts?q=%E5%B0%8F%E9%BE%99", &admin).await));
    // Meta says what q covers, built-in and custom.
    let meta = app.get("/api/v1/meta/contacts", &admin).await;
    let searchable: Vec<&str> = meta.body["fields"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["searchable"] == true)
        .map(|f| f["key"].as_str().unwrap())
        .collect();
    assert_eq!(
        searchable,
        vec![
            "name",
            "mobile",
            "phone",
            "email",
            "custom.nickname",
            "custom.secret_code"
        ]
    );

    // A rep who sees the mobile masked, the e-mail and the code hidden cannot find
    // the contact through them, only through what it may read.
    app.set_field_access(
        &admin,
        "sales_rep",
        json!([
            {"object": "contacts", "field": "mobile", "access": "masked"},
            {"object": "contacts", "field": "email", "access": "hidden"},
            {"object": "contacts", "field": "custom.secret_code", "access": "hidden"}
        ]),
    )
    .await;
    let rep = app.token(app.org.rep_east1);
    for q in ["13812345678", "yang%40gumu", "ZX-42"] {
        let r = app.get(&format!("/api/v1/contacts?q={q}"), &rep).await;
        assert_eq!(r.status, 200);
        assert!(!found(&r), "{q} must not match through a withheld field");
        assert!(found(&app.get(&format!("/api/v1/contacts?q={q}"), &admin).await), "{q}");
    }
    assert!(found(&app.get("/api/v1/contacts?q=%E6%9D%A8%E8%BF%87", &rep).await));
    assert!(found(&app.get("/api/v1/contacts?q=%E5%BE%92%E5%BC%9F", &rep).await));
    // A searchable field cannot become a type search does not cover.
    let v = app
        .get("/api/v1/admin/fields/contacts/nickname", &admin)
        .await
        .etag_version();
    let r = app
        .patch(
            "/api/v1/admin/fields/contacts/nickname",
            &admin,
            v,
            json!({"type": "integer"}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(r.body["errors"][0]["field"], "searchable");
    // Turning search off drops the index.
    let v = app
        .get("/api/v1/admin/fields/contacts/nickname", &admin)
        .await
        .etag_version();
    let r = app
        .patch(
            "/api/v1/admin/fields/contacts/nickname",
            &admin,
            v,
            json!({"searchable": false}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(app.db.count(idx), 0);
    assert!(!found(&app.get("/api/v1/contacts?q=%E5%B0%8F%E9%BE%99", &admin).await));
}

#[actix_web::test]
async fn history_and_timeline_follow_field_permissions() {
    let app = start().await;
    let admin = app.token(app.org.admin);
    let r = app
        .post(
            "/api/v1/admin/fields/contacts",
            &admin,
            json!({"key": "salary_band", "label_zh": "薪资段", "label_en": "Salary band", "type": "text"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    app.set_field_access(
        &admin,
        "sales_rep",
        json!([
            {"object": "contacts", "field": "mobile", "access": "masked"},
            {"object": "contacts", "field": "email", "access": "hidden"},
            {"object": "contacts", "field": "custom.salary_band", "access": "hidden"},
            {"object": "opportunities", "field": "amount", "access": "hidden"}
        ]),
    )
    .await;
    let m = app.token(app.org.manager_east);
    let acc = app
        .post(
            "/api/v1/accounts",
            &m,
            json!({"name": "History Co", "owner_id": app.org.rep_east1}),
        )
        .await;
    let ct = app
        .post(
            "/api/v1/contacts",
            &m,
            json!({"account_id": acc.body["id"], "name": "赵敏", "mobile": "13912345678", "email": "zhao@ming.cn",
                   "owner_id": app.org.rep_east1, "custom": {"salary_band": "P9"}}),
        )
        .await;
    assert_eq!(ct.status, 201, "{}", ct.text);
    let cid = ct.body["id"].as_str().unwrap().to_owned();
    let r = app
        .patch(
            &format!("/api/v1/contacts/{cid}"),
            &m,
            1,
            json!({"mobile": "13700001111", "email": "z@ming.cn", "title": "CTO", "custom": {"salary_band": "P10"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);

    let rep = app.token(app.org.rep_east1);
    let h = app.get(&format!("/api/v1/contacts/{cid}/history"), &rep).await;
    assert_eq!(h.status, 200, "{}", h.text);
    for secret in ["13912345678", "13700001111", "zhao@ming.cn", "z@ming.cn", "P9", "P10"] {
        assert!(!h.text.contains(secret), "{secret} leaks through history: {}", h.text);
    }
    let update = &h.body["items"][0]["changes"];
    assert_eq!(update["title"]["after"], "CTO");
    assert_eq!(update["mobile"]["after"], "137****1111");
    assert!(update.get("email").is_none() && update.get("custom.salary_band").is_none());
    // The manager (unrestricted) sees everything.
    let h = app.get(&format!("/api/v1/contacts/{cid}/history"), &m).await;
    assert_eq!(h.body["items"][0]["changes"]["custom.salary_band"]["after"], "P10");

    // A deal whose amount the rep may not see: neither history nor timeline shows it.
    let deal = app
        .deal(
            &m,
            json!({"name": "Hidden amount", "account_id": acc.body["id"], "amount": "987654.32",
                   "owner_id": app.org.rep_east1}),
        )
        .await;
    let did = deal["id"].as_str().unwrap().to_owned();
    let v = app
        .get(&format!("/api/v1/opportunities/{did}"), &m)
        .await
        .etag_version();
    let r = app
        .patch(
            &format!("/api/v1/opportunities/{did}"),
            &m,
            v,
            json!({"amount": "123456.78"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    for path in ["history", "timeline"] {
        let r = app.get(&format!("/api/v1/opportunities/{did}/{path}"), &rep).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert!(
            !r.text.contains("987654.32") && !r.text.contains("123456.78"),
            "amount leaks through {path}: {}",
            r.text
        );
        let m_view = app.get(&format!("/api/v1/opportunities/{did}/{path}"), &m).await;
        assert!(m_view.text.contains("123456.78"), "{path}");
    }
}
