//! The field catalogue (in `crm_domain::catalogue`) and the built-in fields the list
//! search looks in.

pub use crm_domain::catalogue::*;

/// Built-in fields the list's `q` search looks in: (key, column) as the repository
/// searches them.
pub fn search_fields(object: &str) -> &'static [(&'static str, &'static str)] {
    use crm_db::repo::{accounts, contacts, leads, opportunities};
    match object {
        "accounts" => accounts::SEARCH_FIELDS,
        "contacts" => contacts::SEARCH_FIELDS,
        "leads" => leads::SEARCH_FIELDS,
        "opportunities" => opportunities::SEARCH_FIELDS,
        _ => &[],
    }
}

/// Whether `q` searches this built-in field.
pub fn searched(object: &str, key: &str) -> bool {
    search_fields(object).iter().any(|(k, _)| *k == key)
}
