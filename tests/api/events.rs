//! Outbox events: the versioned envelope in storage form, the catalogue at
//! `/meta/events`, and the database refusing a business write without its audit entry.

use diesel::prelude::*;
use serde_json::{json, Value};

use crate::start;

fn events(app_db: &crm_test_support::TestDb, id: &str) -> Vec<Value> {
    let id: uuid::Uuid = id.parse().unwrap();
    crm_db::repo::audit::events_for(&mut app_db.conn(), id)
        .unwrap()
        .into_iter()
        .map(|e| {
            assert_eq!(
                e.payload["id"],
                json!(e.event_id),
                "the envelope's id is the stored event id"
            );
            e.payload
        })
        .collect()
}

#[actix_web::test]
async fn events_carry_the_record_in_storage_form() {
    let app = start().await;
    let rep = app.token(app.org.rep_east1);
    let acc = app.account(&rep, "Envelope Co").await;
    let id = acc["id"].as_str().unwrap().to_owned();
    let r = app
        .patch(
            &format!("/api/v1/accounts/{id}"),
            &rep,
            1,
            json!({"name": "Envelope Ltd", "phone": "010-12345678"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);

    let evs = events(&app.db, &id);
    assert_eq!(
        evs.iter().map(|e| e["type"].as_str().unwrap()).collect::<Vec<_>>(),
        ["account.created", "account.updated"]
    );
    let created = &evs[0];
    assert_eq!(created["schema_version"], 1);
    assert_eq!(created["actor"]["kind"], "user");
    assert_eq!(created["actor"]["user_id"], json!(app.org.rep_east1));
    assert_eq!(created["object"], json!({"type": "accounts", "id": id, "version": 1}));
    assert_eq!(
        created["changes"]["name"],
        json!({"before": null, "after": "Envelope Co"})
    );
    // Storage form: columns as stored (the normalised name the API never shows).
    assert_eq!(created["state"]["name_norm"], "envelope co");
    let updated = &evs[1];
    assert_eq!(updated["object"]["version"], 2);
    assert_eq!(
        updated["changes"]["name"],
        json!({"before": "Envelope Co", "after": "Envelope Ltd"})
    );
    assert_eq!(
        updated["changes"]["phone"],
        json!({"before": null, "after": "01012345678"})
    );
    assert!(
        updated["changes"].get("version").is_none(),
        "bookkeeping is not a change"
    );
    assert_eq!(updated["state"]["phone"], "01012345678");
    assert!(updated.get("detail").is_none(), "a plain update carries no detail");
    assert!(updated["actor"]["request_id"].is_string());

    // Secrets never leave in an event.
    let admin = app.token(app.org.admin);
    let r = app
        .post(
            "/api/v1/admin/users",
            &admin,
            json!({"email": "evt@test.local", "name": "Evt", "password": "s3cret-pass-1", "roles": ["sales_rep"]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let user = events(&app.db, r.body["id"].as_str().unwrap());
    assert_eq!(user[0]["state"]["email"], "evt@test.local");
    assert!(user[0]["state"].get("password_hash").is_none());
    assert!(user[0]["changes"].get("password_hash").is_none());
    assert!(!user[0].to_string().contains("argon2"));
}

#[actix_web::test]
async fn the_catalogue_lists_every_event_written() {
    let app = start().await;
    let rep = app.token(app.org.rep_east1);
    let acc = app.account(&rep, "Catalogue Co").await;
    let deal = app
        .deal(&rep, json!({"name": "Cat deal", "account_id": acc["id"]}))
        .await;
    let p = app.default_pipeline(&rep).await;
    let lost = crm_test_support::app::stage_id(&p, "lost");
    let r = app
        .move_stage(&rep, deal["id"].as_str().unwrap(), &lost, Some("no budget"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);

    let r = app.get("/api/v1/meta/events", &rep).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["schema_version"], 1);
    assert!(r.body["envelope"]["required"]
        .as_array()
        .unwrap()
        .contains(&json!("changes")));
    let objects = r.body["objects"].as_array().unwrap();
    let types: Vec<&str> = objects
        .iter()
        .flat_map(|o| o["events"].as_array().unwrap())
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    let written: Vec<String> = {
        #[derive(QueryableByName)]
        struct T {
            #[diesel(sql_type = diesel::sql_types::Text)]
            event_type: String,
        }
        diesel::sql_query("SELECT DISTINCT event_type FROM outbox_events")
            .load::<T>(&mut app.db.conn())
            .unwrap()
            .into_iter()
            .map(|t| t.event_type)
            .collect()
    };
    assert!(written.len() >= 3, "{written:?}");
    for t in &written {
        assert!(types.contains(&t.as_str()), "{t} is not documented");
    }
    let opp = objects.iter().find(|o| o["object"] == "opportunities").unwrap();
    let stage_changed = opp["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "opportunity.stage_changed")
        .unwrap();
    assert!(stage_changed["detail"].as_array().unwrap().contains(&json!("to_stage")));
    let cols: Vec<&str> = opp["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(cols.contains(&"stage_id") && cols.contains(&"amount"), "{cols:?}");
    let users = objects.iter().find(|o| o["object"] == "users").unwrap();
    assert!(!users.to_string().contains("password_hash"));

    // The stage event's detail has only its documented members.
    let evs = events(&app.db, deal["id"].as_str().unwrap());
    let moved = evs.iter().find(|e| e["type"] == "opportunity.stage_changed").unwrap();
    let documented: Vec<&str> = stage_changed["detail"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    for k in moved["detail"].as_object().unwrap().keys() {
        assert!(documented.contains(&k.as_str()), "{k} is undocumented");
    }
    assert_eq!(moved["detail"]["reason"], "no budget");
    assert_eq!(moved["state"]["status"], "lost");
}

#[actix_web::test]
async fn a_business_write_without_its_audit_entry_does_not_commit() {
    let app = start().await;
    let rep = app.token(app.org.rep_east1);
    let acc = app.account(&rep, "Guarded Co").await;
    let id: uuid::Uuid = acc["id"].as_str().unwrap().parse().unwrap();

    // A connection as the app's pool has: a bare UPDATE is refused at commit.
    let mut c = app.db.app_conn();
    let err = diesel::sql_query("UPDATE accounts SET name = 'Sneaky' WHERE id = $1")
        .bind::<diesel::sql_types::Uuid, _>(id)
        .execute(&mut c)
        .unwrap_err();
    assert!(err.to_string().contains("unrecorded write"), "{err}");
    let err = c
        .transaction(|c| {
            diesel::sql_query("UPDATE accounts SET phone = '1' WHERE id = $1")
                .bind::<diesel::sql_types::Uuid, _>(id)
                .execute(c)
        })
        .unwrap_err();
    assert!(err.to_string().contains("unrecorded write"), "{err}");
    let r = app.get(&format!("/api/v1/accounts/{id}"), &rep).await;
    assert_eq!(r.body["name"], "Guarded Co");
    assert_eq!(r.body["phone"], Value::Null);

    // The same write with its record commits, and the event says the system made it.
    c.transaction(|c| {
        diesel::sql_query("UPDATE accounts SET phone = '2', version = version + 1 WHERE id = $1")
            .bind::<diesel::sql_types::Uuid, _>(id)
            .execute(c)?;
        crm_db::repo::audit::record(
            c,
            &crm_db::repo::audit::Actor::system(),
            "accounts",
            id,
            "updated",
            serde_json::Map::new(),
            Value::Null,
        )
    })
    .unwrap();
    let evs = events(&app.db, &id.to_string());
    let last = evs.last().unwrap();
    assert_eq!(last["actor"]["kind"], "system");
    assert_eq!(last["changes"]["phone"], json!({"before": null, "after": "2"}));
    // The audit entry took the captured change as its own.
    assert_eq!(
        app.db.count(&format!(
            "SELECT count(*) FROM audit_log WHERE entity_id = '{id}' AND changes ? 'phone' AND actor_id IS NULL"
        )),
        1
    );
    // Bookkeeping alone (last activity, version) is not a business write.
    diesel::sql_query("UPDATE accounts SET last_activity_at = now() WHERE id = $1")
        .bind::<diesel::sql_types::Uuid, _>(id)
        .execute(&mut c)
        .unwrap();
}
