//! Normalisation of names, phone numbers and e-mail addresses, used for storage and
//! duplicate detection. Chinese input often arrives with full-width characters.

/// Folds full-width ASCII (Ｕ＋FF01..FF5E) and the ideographic space to their
/// half-width forms.
pub fn fold_width(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\u{3000}' => ' ',
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            _ => c,
        })
        .collect()
}

/// Trims, folds width and collapses inner whitespace; keeps case.
pub fn clean_text(s: &str) -> String {
    fold_width(s).split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The key two names are compared by: cleaned, lower-cased.
pub fn name_key(s: &str) -> String {
    clean_text(s).to_lowercase()
}

/// Why a phone number was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    #[error("phone number contains characters other than digits, spaces, + - ( ) .")]
    InvalidCharacters,
    #[error("phone number must have between 5 and 20 digits")]
    InvalidLength,
}

/// Normalises a phone number: separators removed, full-width digits folded, and a
/// Chinese mobile number with a +86 / 0086 prefix reduced to its 11 national digits.
pub fn normalize_phone(input: &str) -> Result<String, PhoneError> {
    let folded = fold_width(input.trim());
    let mut plus = false;
    let mut digits = String::with_capacity(folded.len());
    for (i, c) in folded.chars().enumerate() {
        match c {
            '0'..='9' => digits.push(c),
            '+' if i == 0 => plus = true,
            ' ' | '-' | '(' | ')' | '.' => {}
            _ => return Err(PhoneError::InvalidCharacters),
        }
    }
    let national = if plus {
        digits.strip_prefix("86")
    } else {
        digits.strip_prefix("0086")
    };
    if let Some(rest) = national {
        if rest.len() == 11 && rest.starts_with('1') {
            return Ok(rest.to_owned());
        }
    }
    if !(5..=20).contains(&digits.len()) {
        return Err(PhoneError::InvalidLength);
    }
    Ok(if plus { format!("+{digits}") } else { digits })
}

/// Why an e-mail address was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a valid e-mail address")]
pub struct EmailError;

/// Normalises an e-mail address (trimmed, width-folded, lower-cased) and checks its shape.
pub fn normalize_email(input: &str) -> Result<String, EmailError> {
    let email = fold_width(input.trim()).to_lowercase();
    if email.len() > 254 || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(EmailError);
    }
    let (local, domain) = email.split_once('@').ok_or(EmailError)?;
    let domain_ok = !domain.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..");
    if local.is_empty() || local.len() > 64 || !domain_ok {
        return Err(EmailError);
    }
    Ok(email)
}

/// Masks the middle of a phone number for roles that may not see it: 138****1234.
pub fn mask_phone(phone: &str) -> String {
    let chars: Vec<char> = phone.chars().collect();
    if chars.len() <= 7 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..3].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 7))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fold_width_case_and_spaces() {
        assert_eq!(name_key("  ＡＣＭＥ　 Ltd "), "acme ltd");
        assert_eq!(name_key("华为技术 有限公司"), "华为技术 有限公司");
        assert_eq!(clean_text(" 上海\t 某某  科技 "), "上海 某某 科技");
    }

    #[test]
    fn chinese_mobiles_lose_their_country_code() {
        assert_eq!(normalize_phone("+86 138-0013-8000").as_deref(), Ok("13800138000"));
        assert_eq!(normalize_phone("0086 13800138000").as_deref(), Ok("13800138000"));
        assert_eq!(
            normalize_phone("１３８ ００１３ ８０００").as_deref(),
            Ok("13800138000")
        );
        assert_eq!(normalize_phone("(010) 6552-8888").as_deref(), Ok("01065528888"));
        assert_eq!(normalize_phone("+1 (415) 555-0100").as_deref(), Ok("+14155550100"));
    }

    #[test]
    fn bad_phones_are_rejected() {
        assert_eq!(normalize_phone("call me"), Err(PhoneError::InvalidCharacters));
        assert_eq!(normalize_phone("12+34"), Err(PhoneError::InvalidCharacters));
        assert_eq!(normalize_phone("123"), Err(PhoneError::InvalidLength));
        assert_eq!(normalize_phone(""), Err(PhoneError::InvalidLength));
        assert_eq!(normalize_phone(&"1".repeat(21)), Err(PhoneError::InvalidLength));
    }

    #[test]
    fn emails_are_lower_cased_and_checked() {
        assert_eq!(
            normalize_email(" Li.Lei@Example.COM ").as_deref(),
            Ok("li.lei@example.com")
        );
        assert_eq!(normalize_email("张三@例子.中国").as_deref(), Ok("张三@例子.中国"));
        for bad in [
            "",
            "no-at",
            "a@b",
            "@b.com",
            "a@.com",
            "a@b.com.",
            "a b@c.com",
            "a@b@c.com",
            "a@b..com",
        ] {
            assert_eq!(normalize_email(bad), Err(EmailError), "{bad}");
        }
    }

    #[test]
    fn masking_keeps_head_and_tail() {
        assert_eq!(mask_phone("13812341234"), "138****1234");
        assert_eq!(mask_phone("12345"), "*****");
    }
}

/// Active ISO 4217 currency codes (sorted), for validating currency fields.
pub const CURRENCIES: &[&str] = &[
    "AED", "AFN", "ALL", "AMD", "ANG", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT", "BGN", "BHD", "BIF",
    "BMD", "BND", "BOB", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD", "CAD", "CDF", "CHF", "CLP", "CNY", "COP", "CRC",
    "CUP", "CVE", "CZK", "DJF", "DKK", "DOP", "DZD", "EGP", "ERN", "ETB", "EUR", "FJD", "FKP", "GBP", "GEL", "GHS",
    "GIP", "GMD", "GNF", "GTQ", "GYD", "HKD", "HNL", "HTG", "HUF", "IDR", "ILS", "INR", "IQD", "IRR", "ISK", "JMD",
    "JOD", "JPY", "KES", "KGS", "KHR", "KMF", "KPW", "KRW", "KWD", "KYD", "KZT", "LAK", "LBP", "LKR", "LRD", "LSL",
    "LYD", "MAD", "MDL", "MGA", "MKD", "MMK", "MNT", "MOP", "MRU", "MUR", "MVR", "MWK", "MXN", "MYR", "MZN", "NAD",
    "NGN", "NIO", "NOK", "NPR", "NZD", "OMR", "PAB", "PEN", "PGK", "PHP", "PKR", "PLN", "PYG", "QAR", "RON", "RSD",
    "RUB", "RWF", "SAR", "SBD", "SCR", "SDG", "SEK", "SGD", "SHP", "SLE", "SOS", "SRD", "SSP", "STN", "SVC", "SYP",
    "SZL", "THB", "TJS", "TMT", "TND", "TOP", "TRY", "TTD", "TWD", "TZS", "UAH", "UGX", "USD", "UYU", "UZS", "VES",
    "VND", "VUV", "WST", "XAF", "XCD", "XOF", "XPF", "YER", "ZAR", "ZMW", "ZWG",
];

/// The ISO 4217 code `s` names (trimmed, upper-cased), if it is an active currency.
pub fn currency(s: &str) -> Option<&'static str> {
    let up = s.trim().to_ascii_uppercase();
    CURRENCIES.binary_search(&up.as_str()).ok().map(|i| CURRENCIES[i])
}

#[cfg(test)]
mod currency_tests {
    use super::*;

    #[test]
    fn currency_codes_are_sorted_and_checked() {
        assert!(CURRENCIES.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(currency(" cny "), Some("CNY"));
        assert_eq!(currency("USD"), Some("USD"));
        assert_eq!(currency("ABC"), None);
        assert_eq!(currency("CN"), None);
    }
}
