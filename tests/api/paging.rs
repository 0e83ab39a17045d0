//! Keyset pagination, sorting, search and list parameter errors.

use std::collections::HashSet;

use crm_test_support::app::start;
use serde_json::json;

async fn walk<S, B>(app: &crm_test_support::TestApp<S>, token: &str, base: &str) -> Vec<serde_json::Value>
where
    S: actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse<B>,
        Error = actix_web::Error,
    >,
    B: actix_web::body::MessageBody,
{
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = match &cursor {
            Some(c) => format!("{base}{sep}cursor={c}"),
            None => base.to_owned(),
        };
        let r = app.get(&url, token).await;
        assert_eq!(r.status, 200, "{}", r.text);
        out.extend(r.body["items"].as_array().unwrap().iter().cloned());
        match r.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
        assert!(out.len() < 10_000, "runaway pagination");
    }
    out
}

#[actix_web::test]
async fn walking_every_page_returns_every_row_once_in_order() {
    let app = start().await;
    let rep = app.token(app.org.rep_east1);
    // Duplicate names make ties that the id must break.
    for i in 0..23 {
        let r = app
            .post(
                "/api/v1/accounts?allow_duplicate=true",
                &rep,
                json!({"name": format!("Company {:02}", i % 9)}),
            )
            .await;
        assert_eq!(r.status, 201);
    }
    for sort in [
        "name",
        "-name",
        "-created_at",
        "updated_at",
        "-name,created_at",
        "name,-created_at",
    ] {
        let rows = walk(&app, &rep, &format!("/api/v1/accounts?limit=4&sort={sort}")).await;
        assert_eq!(rows.len(), 23, "sort {sort}");
        let ids: HashSet<&str> = rows.iter().map(|r| r["id"].as_str().unwrap()).collect();
        assert_eq!(ids.len(), 23, "sort {sort}: duplicates");
        let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
        let mut expected = names.clone();
        if sort.starts_with("-name") {
            expected.sort_by(|a, b| b.cmp(a));
        } else if sort.starts_with("name") {
            expected.sort();
        }
        if sort.contains("name") {
            assert_eq!(names, expected, "sort {sort}");
        }
        if sort == "name,-created_at" {
            for w in rows.windows(2) {
                if w[0]["name"] == w[1]["name"] {
                    assert!(w[0]["created_at"].as_str() >= w[1]["created_at"].as_str());
                }
            }
        }
    }
}

#[actix_web::test]
async fn rows_inserted_while_paging_do_not_duplicate_or_hide_others() {
    let app = start().await;
    let rep = app.token(app.org.rep_east1);
    for i in 0..10 {
        app.account(&rep, &format!("Before {i:02}")).await;
    }
    let first = app.get("/api/v1/accounts?limit=3&sort=name", &rep).await;
    let mut seen: Vec<String> = first.ids();
    let mut cursor = first.body["next_cursor"].as_str().map(str::to_owned);
    let mut n = 0;
    while let Some(c) = cursor {
        // Insert rows that sort both before and after the current position.
        app.account(&rep, &format!("AAA inserted {n}")).await;
        app.account(&rep, &format!("Zzz inserted {n}")).await;
        n += 1;
        let r = app
            .get(&format!("/api/v1/accounts?limit=3&sort=name&cursor={c}"), &rep)
            .await;
        seen.extend(r.ids());
        cursor = r.body["next_cursor"].as_str().map(str::to_owned);
    }
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "a row came twice");
    let all = app.get("/api/v1/accounts?limit=200", &rep).await;
    let before: Vec<String> = all.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["name"].as_str().unwrap().starts_with("Before"))
        .map(|a| a["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(before.len(), 10);
    assert!(before.iter().all(|id| seen.contains(id)), "an existing row was skipped");
}

#[actix_web::test]
async fn bad_list_parameters_are_400_with_a_reason() {
    let app = start().await;
    let rep = app.token(app.org.rep_east1);
    let r = app.get("/api/v1/accounts?sort=password_hash", &rep).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.code(), "invalid_sort");
    assert!(r.body["detail"]
        .as_str()
        .unwrap()
        .contains("allowed: name, created_at, updated_at"));
    for q in ["limit=0", "limit=201"] {
        let r = app.get(&format!("/api/v1/accounts?{q}"), &rep).await;
        assert_eq!(r.status, 400);
        assert_eq!(r.code(), "invalid_limit");
    }
    let r = app.get("/api/v1/accounts?cursor=garbage!", &rep).await;
    assert_eq!(r.code(), "invalid_cursor");
    // A cursor from one sort order is refused for another.
    for i in 0..3 {
        app.account(&rep, &format!("C {i}")).await;
    }
    let c = app.get("/api/v1/accounts?limit=1&sort=name", &rep).await.body["next_cursor"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app
        .get(&format!("/api/v1/accounts?limit=1&sort=-created_at&cursor={c}"), &rep)
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.code(), "invalid_cursor");
    let r = app.get("/api/v1/accounts?colour=red", &rep).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.code(), "invalid_query");
    assert!(r.body["detail"].as_str().unwrap().contains("owner_id"), "{}", r.text);
    let r = app.get("/api/v1/accounts?owner_id=not-a-uuid", &rep).await;
    assert_eq!(r.code(), "invalid_query");
    let r = app.get("/api/v1/accounts?type=friend", &rep).await;
    assert_eq!(r.code(), "invalid_query");
    let r = app
        .get("/api/v1/accounts?updated_since=2020-01-01T00:00:00Z&sort=name", &rep)
        .await;
    assert_eq!(r.code(), "invalid_sort");
}

#[actix_web::test]
async fn search_and_filters() {
    let app = start().await;
    let rep = app.token(app.org.rep_east1);
    let hx = app
        .post("/api/v1/accounts", &rep, json!({"name": "上海华信科技有限公司", "type": "customer", "industry": "software", "tier": "A", "phone": "13912345678"}))
        .await;
    let bw = app
        .post(
            "/api/v1/accounts",
            &rep,
            json!({"name": "Blue Wave Inc", "type": "prospect", "industry": "retail", "email": "hello@bluewave.io"}),
        )
        .await;
    let _other = app
        .post(
            "/api/v1/accounts",
            &rep,
            json!({"name": "北京天成实业", "type": "partner", "region": "north"}),
        )
        .await;
    let (hx, bw) = (
        hx.body["id"].as_str().unwrap().to_owned(),
        bw.body["id"].as_str().unwrap().to_owned(),
    );
    let q = |s: &str| format!("/api/v1/accounts?q={}", s);
    assert_eq!(
        app.get(&q("%E5%8D%8E%E4%BF%A1%E7%A7%91%E6%8A%80"), &rep).await.ids(),
        vec![hx.clone()]
    ); // 华信科技
    assert_eq!(app.get(&q("%E5%8D%8E"), &rep).await.ids(), vec![hx.clone()]); // one character: 华
    assert_eq!(app.get(&q("blue%20WAVE"), &rep).await.ids(), vec![bw.clone()]);
    assert_eq!(app.get(&q("bluewave.io"), &rep).await.ids(), vec![bw.clone()]);
    assert_eq!(app.get(&q("1234567"), &rep).await.ids(), vec![hx.clone()]);
    assert!(
        app.get(&q("%25"), &rep).await.ids().is_empty(),
        "LIKE wildcards are literal"
    );
    assert_eq!(
        app.get("/api/v1/accounts?type=customer", &rep).await.ids(),
        vec![hx.clone()]
    );
    assert_eq!(
        app.get("/api/v1/accounts?industry=retail", &rep).await.ids(),
        vec![bw.clone()]
    );
    assert_eq!(app.get("/api/v1/accounts?tier=A", &rep).await.ids(), vec![hx.clone()]);
    assert_eq!(app.get("/api/v1/accounts?region=north", &rep).await.ids().len(), 1);
    let future = "2999-01-01T00:00:00Z";
    assert!(app
        .get(&format!("/api/v1/accounts?created_after={future}"), &rep)
        .await
        .ids()
        .is_empty());
    assert_eq!(
        app.get(&format!("/api/v1/accounts?created_before={future}"), &rep)
            .await
            .ids()
            .len(),
        3
    );
    assert_eq!(
        app.get(&format!("/api/v1/accounts?updated_before={future}&type=prospect"), &rep)
            .await
            .ids(),
        vec![bw]
    );
}
