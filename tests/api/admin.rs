//! Admin endpoints: users, teams, roles, the permission catalogue, the directory.

use crm_test_support::app::start;
use crm_test_support::fixtures::PASSWORD;
use serde_json::json;

#[actix_web::test]
async fn admins_manage_users_and_changes_apply_at_once() {
    let app = start().await;
    let admin = app.token(app.org.admin);
    let r = app
        .post(
            "/api/v1/admin/users",
            &admin,
            json!({"email": "New.Rep@Test.local", "name": "新销售", "password": "s3cret-pass", "team_id": app.org.north1,
                   "manager_id": app.org.director, "roles": ["sales_rep"]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["email"], "new.rep@test.local");
    assert_eq!(r.body["roles"], json!(["sales_rep"]));
    assert!(!r.text.contains("s3cret") && !r.text.contains("argon2"));
    let new_id = r.body["id"].as_str().unwrap().to_owned();
    let login = app.login("new.rep@test.local", "s3cret-pass").await;
    assert_eq!(login.status, 200);
    let token = login.body["access_token"].as_str().unwrap().to_owned();

    // Validation and conflicts.
    let dup = app
        .post(
            "/api/v1/admin/users",
            &admin,
            json!({"email": "new.rep@test.local", "name": "x", "password": "12345678"}),
        )
        .await;
    assert_eq!(dup.status, 409);
    let bad = app
        .post(
            "/api/v1/admin/users",
            &admin,
            json!({"email": "x@test.local", "name": "x", "password": "short", "roles": ["wizard"]}),
        )
        .await;
    assert_eq!(bad.status, 422);
    assert_eq!(bad.body["errors"][0]["field"], "password");
    let bad = app
        .post(
            "/api/v1/admin/users",
            &admin,
            json!({"email": "x@test.local", "name": "x", "password": "longenough", "roles": ["wizard"]}),
        )
        .await;
    assert_eq!(bad.status, 422);
    assert_eq!(bad.body["errors"][0]["field"], "roles");
    let bad = app
        .post(
            "/api/v1/admin/users",
            &admin,
            json!({"email": "x@test.local", "name": "x"}),
        )
        .await;
    assert_eq!(bad.body["errors"][0]["code"], "required");

    // Promote to director: the new permissions apply to the very next request.
    app.account(&app.token(app.org.rep_east1), "Somebody Else's").await;
    assert!(app.get("/api/v1/accounts", &token).await.ids().is_empty());
    let v = app
        .get(&format!("/api/v1/admin/users/{new_id}"), &admin)
        .await
        .etag_version();
    let r = app
        .patch(
            &format!("/api/v1/admin/users/{new_id}"),
            &admin,
            v,
            json!({"roles": ["sales_director"]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(app.get("/api/v1/accounts", &token).await.ids().len(), 1);
    let hist = app.db.count(&format!(
        "SELECT count(*) FROM audit_log WHERE entity_id = '{new_id}' AND action = 'updated' AND changes ? 'roles'"
    ));
    assert_eq!(hist, 1);

    // Manager cycles are refused.
    let r = app
        .patch(
            &format!("/api/v1/admin/users/{}", app.org.director),
            &admin,
            app.get(&format!("/api/v1/admin/users/{}", app.org.director), &admin)
                .await
                .etag_version(),
            json!({"manager_id": app.org.manager_east}),
        )
        .await;
    assert_eq!(r.status, 422);
    assert_eq!(r.body["errors"][0]["code"], "cycle");

    // A password change ends existing sessions.
    let v = app
        .get(&format!("/api/v1/admin/users/{new_id}"), &admin)
        .await
        .etag_version();
    assert_eq!(
        app.patch(
            &format!("/api/v1/admin/users/{new_id}"),
            &admin,
            v,
            json!({"password": "another-pass"})
        )
        .await
        .status,
        200
    );
    assert_eq!(app.get("/api/v1/me", &token).await.status, 401);
    assert_eq!(app.login("new.rep@test.local", "another-pass").await.status, 200);
    assert!(
        app.db
            .count("SELECT count(*) FROM audit_log WHERE changes::text LIKE '%another-pass%'")
            == 0
    );

    // Admins cannot lock themselves out; non-admins cannot administer.
    let v = app
        .get(&format!("/api/v1/admin/users/{}", app.org.admin), &admin)
        .await
        .etag_version();
    let r = app
        .patch(
            &format!("/api/v1/admin/users/{}", app.org.admin),
            &admin,
            v,
            json!({"is_active": false}),
        )
        .await;
    assert_eq!(r.status, 422);
    let rep = app.token(app.org.rep_east1);
    assert_eq!(app.get("/api/v1/admin/users", &rep).await.status, 403);
    assert_eq!(
        app.post(
            "/api/v1/admin/users",
            &rep,
            json!({"email": "a@b.cd", "name": "x", "password": "12345678"})
        )
        .await
        .status,
        403
    );
    let list = app.get("/api/v1/admin/users?role=sales_rep&limit=2", &admin).await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 2);
    assert!(list.body["next_cursor"].is_string());
    assert!(!list.text.contains("password"));
    assert_eq!(app.login("rep.east1@test.local", PASSWORD).await.status, 200);
}

#[actix_web::test]
async fn the_team_tree_is_managed_safely() {
    let app = start().await;
    let admin = app.token(app.org.admin);
    let r = app
        .post(
            "/api/v1/admin/teams",
            &admin,
            json!({"name": "East 3", "kind": "team", "parent_id": app.org.east}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.body["id"].as_str().unwrap().to_owned();
    let dup = app
        .post(
            "/api/v1/admin/teams",
            &admin,
            json!({"name": "east 3", "kind": "team", "parent_id": app.org.east}),
        )
        .await;
    assert_eq!(dup.status, 409);
    // A region cannot move under its own sub-team.
    let v = 1;
    let r = app
        .patch(
            &format!("/api/v1/admin/teams/{}", app.org.east),
            &admin,
            v,
            json!({"parent_id": id}),
        )
        .await;
    assert_eq!(r.status, 422);
    assert_eq!(r.body["errors"][0]["code"], "cycle");
    // Teams in use cannot be deleted; empty ones can.
    let r = app
        .delete(&format!("/api/v1/admin/teams/{}", app.org.east1), &admin)
        .await;
    assert_eq!(r.status, 409);
    assert_eq!(r.code(), "in_use");
    assert_eq!(
        app.delete(&format!("/api/v1/admin/teams/{id}"), &admin).await.status,
        204
    );
    // Moving east1 under north changes what the east manager sees, at once.
    let rep = app.token(app.org.rep_east1);
    let acc = app.account(&rep, "Moving Co").await;
    let m = app.token(app.org.manager_east);
    assert_eq!(
        app.get(&format!("/api/v1/accounts/{}", acc["id"].as_str().unwrap()), &m)
            .await
            .status,
        200
    );
    let r = app
        .patch(
            &format!("/api/v1/admin/teams/{}", app.org.east1),
            &admin,
            1,
            json!({"parent_id": app.org.north}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        app.get(&format!("/api/v1/accounts/{}", acc["id"].as_str().unwrap()), &m)
            .await
            .status,
        404
    );
    let teams = app.get("/api/v1/teams", &rep).await;
    assert_eq!(teams.body["items"].as_array().unwrap().len(), 6);
}

#[actix_web::test]
async fn custom_roles_grant_exactly_their_permissions() {
    let app = start().await;
    let admin = app.token(app.org.admin);
    let cat = app.get("/api/v1/admin/permissions", &admin).await;
    assert_eq!(cat.status, 200);
    assert!(cat.body["resources"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["resource"] == "accounts"));
    let bad = app
        .post(
            "/api/v1/admin/roles",
            &admin,
            json!({"key": "auditor", "name": "Auditor", "permissions": [
                {"resource": "accounts", "action": "read", "scope": "all"},
                {"resource": "spaceships", "action": "read", "scope": "all"},
                {"resource": "accounts", "action": "read", "scope": "own"}
            ]}),
        )
        .await;
    assert_eq!(bad.status, 422);
    let fields: Vec<&str> = bad.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["permissions[1]", "permissions[2]"]);
    let bad = app
        .post(
            "/api/v1/admin/roles",
            &admin,
            json!({"key": "Bad Key", "name": "x", "permissions": []}),
        )
        .await;
    assert_eq!(bad.body["errors"][0]["field"], "key");

    let r = app
        .post(
            "/api/v1/admin/roles",
            &admin,
            json!({"key": "auditor", "name": "Auditor", "permissions": [{"resource": "accounts", "action": "read", "scope": "all"}]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let role_id = r.body["id"].as_str().unwrap().to_owned();
    let v = app
        .get(&format!("/api/v1/admin/users/{}", app.org.marketing), &admin)
        .await
        .etag_version();
    let r = app
        .patch(
            &format!("/api/v1/admin/users/{}", app.org.marketing),
            &admin,
            v,
            json!({"roles": ["auditor"]}),
        )
        .await;
    assert_eq!(r.status, 200);
    let auditor = app.token(app.org.marketing);
    app.account(&app.token(app.org.rep_north1), "Audited Co").await;
    assert_eq!(app.get("/api/v1/accounts", &auditor).await.ids().len(), 1);
    assert_eq!(
        app.post("/api/v1/accounts", &auditor, json!({"name": "x"}))
            .await
            .status,
        403
    );
    assert_eq!(app.get("/api/v1/contacts", &auditor).await.status, 403);

    // Built-in roles are fixed; used roles cannot be deleted.
    let roles = app.get("/api/v1/admin/roles", &admin).await;
    let builtin = roles.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"] == "sales_rep")
        .unwrap()
        .clone();
    let r = app
        .patch(
            &format!("/api/v1/admin/roles/{}", builtin["id"].as_str().unwrap()),
            &admin,
            1,
            json!({"name": "x"}),
        )
        .await;
    assert_eq!(r.code(), "builtin_role");
    assert_eq!(
        app.delete(
            &format!("/api/v1/admin/roles/{}", builtin["id"].as_str().unwrap()),
            &admin
        )
        .await
        .code(),
        "builtin_role"
    );
    assert_eq!(
        app.delete(&format!("/api/v1/admin/roles/{role_id}"), &admin)
            .await
            .code(),
        "in_use"
    );
    // Changing the role's permissions applies immediately.
    let r = app
        .patch(
            &format!("/api/v1/admin/roles/{role_id}"),
            &admin,
            1,
            json!({"permissions": [{"resource": "contacts", "action": "read", "scope": "all"}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(app.get("/api/v1/accounts", &auditor).await.status, 403);
    assert_eq!(app.get("/api/v1/contacts", &auditor).await.status, 200);
}

#[actix_web::test]
async fn the_user_directory_follows_users_read_scope() {
    let app = start().await;
    let rep = app.token(app.org.rep_east1);
    let r = app.get("/api/v1/users?limit=200", &rep).await;
    assert_eq!(r.status, 200);
    let mut ids = r.ids();
    ids.sort();
    let mut expected = vec![app.org.rep_east1.to_string(), app.org.rep_east1b.to_string()];
    expected.sort();
    assert_eq!(ids, expected);
    let m = app
        .get("/api/v1/users?limit=200", &app.token(app.org.manager_east))
        .await;
    assert_eq!(m.ids().len(), 4);
    let d = app
        .get("/api/v1/users?limit=200&q=rep.", &app.token(app.org.director))
        .await;
    assert_eq!(d.ids().len(), 4);
}
