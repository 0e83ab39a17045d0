//! Field-level permissions applied to what leaves the system: API responses, audit
//! history, webhook payloads. Hidden fields are removed, masked ones masked.

use crm_db::repo::fields::FieldDefRow;
use crm_domain::access::Principal;
use crm_domain::fields::{mask, FieldAccess};
use serde_json::Value;

/// Applies field-level permissions to one serialized record: hidden fields removed,
/// masked ones masked; archived custom fields dropped.
pub fn shape(p: &Principal, object: &str, defs: &[FieldDefRow], v: &mut Value) {
    let Some(map) = v.as_object_mut() else { return };
    if p.restricts(object) {
        let keys: Vec<String> = map.keys().filter(|k| k.as_str() != "custom").cloned().collect();
        for k in keys {
            match p.field_access(object, &k) {
                FieldAccess::Hidden => {
                    map.remove(&k);
                }
                FieldAccess::Masked => {
                    if let Some(x) = map.get_mut(&k) {
                        *x = mask(x);
                    }
                }
                _ => {}
            }
        }
    }
    if let Some(Value::Object(custom)) = map.get_mut("custom") {
        let keys: Vec<String> = custom.keys().cloned().collect();
        for k in keys {
            let live_def = defs.iter().any(|d| d.key == k && d.archived_at.is_none());
            match (live_def, p.field_access(object, &format!("custom.{k}"))) {
                (false, _) | (true, FieldAccess::Hidden) => {
                    custom.remove(&k);
                }
                (true, FieldAccess::Masked) => {
                    if let Some(x) = custom.get_mut(&k) {
                        *x = mask(x);
                    }
                }
                _ => {}
            }
        }
    }
}

/// Applies field-level permissions to audit changes (`{field: {"before", "after"}}`,
/// custom fields as `custom.<key>`): hidden fields removed, masked ones masked, so
/// history cannot reveal what the record itself hides.
pub fn shape_changes(p: &Principal, object: &str, changes: &mut Value) {
    if !p.restricts(object) {
        return;
    }
    let Some(map) = changes.as_object_mut() else { return };
    let keys: Vec<String> = map.keys().cloned().collect();
    for k in keys {
        // A record's creation lists `custom` whole: {"after": {key: value}}.
        if k == "custom" {
            if let Some(Value::Object(ba)) = map.get_mut(&k) {
                for side in ba.values_mut() {
                    if let Value::Object(values) = side {
                        let inner: Vec<String> = values.keys().cloned().collect();
                        for ck in inner {
                            match p.field_access(object, &format!("custom.{ck}")) {
                                FieldAccess::Hidden => {
                                    values.remove(&ck);
                                }
                                FieldAccess::Masked => {
                                    if let Some(v) = values.get_mut(&ck) {
                                        *v = mask(v);
                                    }
                                }
                                _ => {}
                            }
                        }
                    }
                }
            }
            continue;
        }
        match p.field_access(object, &k) {
            FieldAccess::Hidden => {
                map.remove(&k);
            }
            FieldAccess::Masked => {
                if let Some(Value::Object(ba)) = map.get_mut(&k) {
                    for v in ba.values_mut() {
                        *v = mask(v);
                    }
                }
            }
            _ => {}
        }
    }
}
