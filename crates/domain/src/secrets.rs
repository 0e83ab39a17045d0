//! Password hashing (argon2id) and opaque secrets (refresh tokens, API keys).

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Hashes a password with argon2id and a random salt (PHC string format).
pub fn hash_password(password: &str) -> Result<String, argon2::password_hash::Error> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt)?;
    Ok(Argon2::default().hash_password(password.as_bytes(), &salt)?.to_string())
}

/// Verifies a password against a stored PHC hash. A malformed hash never verifies.
pub fn verify_password(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok(),
        Err(_) => false,
    }
}

/// Spends the same time as a real verification, so that an unknown e-mail address
/// cannot be told apart from a wrong password by timing.
pub fn burn_password_check(password: &str) {
    static DUMMY: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    if let Some(hash) = DUMMY.get_or_init(|| hash_password("not-a-real-password").ok()) {
        let _ = verify_password(password, hash);
    }
}

/// A fresh random secret of `bytes` bytes, URL-safe base64 without padding.
pub fn random_secret(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

/// SHA-256 of a high-entropy secret; enough for random tokens (not for passwords).
pub fn sha256(data: &[u8]) -> Vec<u8> {
    Sha256::digest(data).to_vec()
}

/// An API key as shown once to the admin: `crm_<prefix>_<secret>`. Only the prefix
/// (for lookup) and the SHA-256 of the whole key are stored.
pub struct NewApiKey {
    pub prefix: String,
    pub key: String,
    pub hash: Vec<u8>,
}

/// Generates a new API key.
pub fn new_api_key() -> NewApiKey {
    let prefix: String = random_secret(6).chars().filter(|c| c.is_ascii_alphanumeric()).collect();
    // Pad the prefix to a fixed length with hex from a second draw if '-'/'_' were dropped.
    let prefix = format!("{prefix}{}", hex_prefix(8usize.saturating_sub(prefix.len())));
    let key = format!("crm_{prefix}_{}", random_secret(32));
    let hash = sha256(key.as_bytes());
    NewApiKey { prefix, key, hash }
}

fn hex_prefix(n: usize) -> String {
    let mut buf = vec![0u8; n];
    rand::rng().fill_bytes(&mut buf);
    buf.iter().map(|b| format!("{:x}", b & 0x0f)).collect()
}

/// Splits a presented API key into its lookup prefix, if it has the expected shape.
pub fn api_key_prefix(key: &str) -> Option<&str> {
    let rest = key.strip_prefix("crm_")?;
    let (prefix, secret) = rest.split_once('_')?;
    (prefix.len() == 8 && prefix.chars().all(|c| c.is_ascii_alphanumeric()) && secret.len() >= 32).then_some(prefix)
}

/// Constant-time equality for secret hashes.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_hash_verifies_only_the_right_password() {
        let h = hash_password("demo1234").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("demo1234", &h));
        assert!(!verify_password("demo12345", &h));
        assert!(!verify_password("demo1234", "not a hash"));
        assert_ne!(h, hash_password("demo1234").unwrap(), "salts must differ");
    }

    #[test]
    fn api_keys_have_a_fixed_prefix_shape() {
        for _ in 0..50 {
            let k = new_api_key();
            assert_eq!(api_key_prefix(&k.key), Some(k.prefix.as_str()));
            assert_eq!(k.prefix.len(), 8);
            assert!(constant_time_eq(&sha256(k.key.as_bytes()), &k.hash));
        }
        assert_eq!(api_key_prefix("crm_short_x"), None);
        assert_eq!(api_key_prefix("eyJhbGciOi.x.y"), None);
    }
}
