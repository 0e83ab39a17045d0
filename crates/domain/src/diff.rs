//! Field-level before/after of a record, for the audit trail.

use serde_json::{json, Map, Value};

/// Fields that change on every write and say nothing on their own.
const IGNORED: &[&str] = &["version", "updated_at", "created_at"];

/// Compares two JSON objects field by field: `{field: {"before": x, "after": y}}`.
/// Nested objects (e.g. custom fields) are compared per key as `parent.key`.
pub fn changes(before: &Value, after: &Value) -> Map<String, Value> {
    let mut out = Map::new();
    let empty = Map::new();
    let b = before.as_object().unwrap_or(&empty);
    let a = after.as_object().unwrap_or(&empty);
    collect("", b, a, &mut out);
    out
}

fn collect(prefix: &str, b: &Map<String, Value>, a: &Map<String, Value>, out: &mut Map<String, Value>) {
    let mut keys: Vec<&String> = b.keys().chain(a.keys()).collect();
    keys.sort();
    keys.dedup();
    for key in keys {
        if prefix.is_empty() && IGNORED.contains(&key.as_str()) {
            continue;
        }
        let bv = b.get(key).unwrap_or(&Value::Null);
        let av = a.get(key).unwrap_or(&Value::Null);
        if bv == av {
            continue;
        }
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match (bv, av) {
            (Value::Object(bo), Value::Object(ao)) if prefix.is_empty() => collect(&path, bo, ao, out),
            _ => {
                out.insert(path, json!({"before": bv, "after": av}));
            }
        }
    }
}

/// Audit form of a newly created record: every non-null field as an `after` value.
pub fn created(after: &Value) -> Map<String, Value> {
    changes(&Value::Object(Map::new()), after)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_changed_fields_are_listed() {
        let b = json!({"name": "A", "phone": null, "version": 1, "custom": {"x": 1, "y": 2}});
        let a = json!({"name": "B", "phone": "123", "version": 2, "custom": {"x": 1, "y": 3}});
        let d = changes(&b, &a);
        assert_eq!(d.len(), 3);
        assert_eq!(d["name"], json!({"before": "A", "after": "B"}));
        assert_eq!(d["phone"], json!({"before": null, "after": "123"}));
        assert_eq!(d["custom.y"], json!({"before": 2, "after": 3}));
        assert!(changes(&a, &a).is_empty());
    }

    #[test]
    fn created_lists_non_null_fields() {
        let d = created(&json!({"name": "A", "phone": null, "version": 1}));
        assert_eq!(d.len(), 1);
        assert_eq!(d["name"], json!({"before": null, "after": "A"}));
    }
}
