//! Human-readable document numbers (quotes, contracts, invoices).

use serde_json::Value;

/// `<prefix>-<year>-<zero-padded sequence>` from a numbering setting
/// (`{"prefix", "digits", "include_year", "separator"}`).
pub fn format_number(cfg: &Value, default_prefix: &str, default_digits: usize, year: i32, n: i32) -> String {
    let prefix = cfg.get("prefix").and_then(Value::as_str).unwrap_or(default_prefix);
    let digits = cfg
        .get("digits")
        .and_then(Value::as_u64)
        .map(|d| d.clamp(1, 12) as usize)
        .unwrap_or(default_digits);
    let sep = cfg.get("separator").and_then(Value::as_str).unwrap_or("-");
    let with_year = cfg.get("include_year").and_then(Value::as_bool).unwrap_or(true);
    let mut out = String::from(prefix);
    if with_year {
        if !out.is_empty() {
            out.push_str(sep);
        }
        out.push_str(&year.to_string());
    }
    if !out.is_empty() {
        out.push_str(sep);
    }
    out.push_str(&format!("{n:0digits$}"));
    out
}
