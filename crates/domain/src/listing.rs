//! List parameters shared by every collection: limit, sort and opaque keyset cursors.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 200;

/// A list parameter the caller got wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListError {
    #[error("unknown sort field `{field}`; allowed: {}", allowed.join(", "))]
    UnknownSortField { field: String, allowed: Vec<String> },
    #[error("sort field `{0}` is given twice")]
    DuplicateSortField(String),
    #[error("limit must be between 1 and {MAX_LIMIT}")]
    InvalidLimit,
    #[error("cursor is malformed")]
    InvalidCursor,
    #[error("cursor was issued for a different sort order or filter")]
    CursorMismatch,
}

/// Validates `?limit=`.
pub fn limit(raw: Option<i64>) -> Result<i64, ListError> {
    match raw {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(_) => Err(ListError::InvalidLimit),
    }
}

/// One sort key: a field the resource allows sorting on, and its direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SortKey<'a> {
    pub field: &'a str,
    pub desc: bool,
}

/// Parses `sort=-amount,created_at` against the fields a resource allows. The record id
/// is always appended by the query as the final tie-breaker.
pub fn parse_sort<'a>(raw: Option<&str>, allowed: &[&'a str], default: &str) -> Result<Vec<SortKey<'a>>, ListError> {
    let raw = raw.map(str::trim).filter(|s| !s.is_empty()).unwrap_or(default);
    let mut keys: Vec<SortKey<'a>> = Vec::new();
    for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (desc, name) = match part.strip_prefix('-') {
            Some(n) => (true, n),
            None => (false, part.strip_prefix('+').unwrap_or(part)),
        };
        let field = allowed
            .iter()
            .copied()
            .find(|f| *f == name)
            .ok_or_else(|| ListError::UnknownSortField {
                field: name.to_owned(),
                allowed: allowed.iter().map(|s| (*s).to_owned()).collect(),
            })?;
        if keys.iter().any(|k| k.field == field) {
            return Err(ListError::DuplicateSortField(field.to_owned()));
        }
        keys.push(SortKey { field, desc });
    }
    Ok(keys)
}

/// Canonical text of a sort order, bound into cursors.
pub fn sort_signature(keys: &[SortKey<'_>]) -> String {
    keys.iter()
        .map(|k| {
            if k.desc {
                format!("-{}", k.field)
            } else {
                k.field.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Position after the last row of a page: the sort-key values of that row and its id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cursor {
    /// Sort signature (plus any mode marker) the cursor belongs to.
    #[serde(rename = "s")]
    pub signature: String,
    #[serde(rename = "v")]
    pub values: Vec<Value>,
    pub id: Uuid,
}

impl Cursor {
    /// Opaque, URL-safe form.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    /// Decodes a cursor and checks it belongs to `signature` with one value per key.
    pub fn decode(raw: &str, signature: &str, keys: usize) -> Result<Cursor, ListError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(raw.trim().as_bytes())
            .map_err(|_| ListError::InvalidCursor)?;
        let cursor: Cursor = serde_json::from_slice(&bytes).map_err(|_| ListError::InvalidCursor)?;
        if cursor.signature != signature {
            return Err(ListError::CursorMismatch);
        }
        if cursor.values.len() != keys {
            return Err(ListError::InvalidCursor);
        }
        Ok(cursor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALLOWED: &[&str] = &["name", "created_at", "updated_at"];

    #[test]
    fn sort_parses_directions_and_defaults() {
        let keys = parse_sort(Some("-created_at, name"), ALLOWED, "name").unwrap();
        assert_eq!(
            keys,
            vec![
                SortKey {
                    field: "created_at",
                    desc: true
                },
                SortKey {
                    field: "name",
                    desc: false
                }
            ]
        );
        assert_eq!(sort_signature(&keys), "-created_at,name");
        let keys = parse_sort(None, ALLOWED, "-updated_at").unwrap();
        assert_eq!(
            keys,
            vec![SortKey {
                field: "updated_at",
                desc: true
            }]
        );
    }

    #[test]
    fn unknown_sort_field_names_the_allowed_ones() {
        let err = parse_sort(Some("password_hash"), ALLOWED, "name").unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown sort field `password_hash`; allowed: name, created_at, updated_at"
        );
        assert!(matches!(
            parse_sort(Some("name,-name"), ALLOWED, "name"),
            Err(ListError::DuplicateSortField(_))
        ));
    }

    #[test]
    fn limit_bounds() {
        assert_eq!(limit(None), Ok(50));
        assert_eq!(limit(Some(200)), Ok(200));
        assert_eq!(limit(Some(0)), Err(ListError::InvalidLimit));
        assert_eq!(limit(Some(201)), Err(ListError::InvalidLimit));
    }

    #[test]
    fn cursor_round_trips_and_rejects_tampering() {
        let c = Cursor {
            signature: "-created_at".into(),
            values: vec![Value::String("2026-01-01T00:00:00Z".into())],
            id: Uuid::from_u128(7),
        };
        let raw = c.encode();
        assert_eq!(Cursor::decode(&raw, "-created_at", 1), Ok(c));
        assert_eq!(Cursor::decode(&raw, "name", 1), Err(ListError::CursorMismatch));
        assert_eq!(Cursor::decode(&raw, "-created_at", 2), Err(ListError::InvalidCursor));
        assert_eq!(Cursor::decode("!!!", "name", 1), Err(ListError::InvalidCursor));
        assert_eq!(Cursor::decode("e30", "name", 1), Err(ListError::InvalidCursor));
    }
}
