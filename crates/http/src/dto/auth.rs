//! Login and token bodies.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use validator::Validate;

/// Body of `POST /auth/login`.
#[derive(Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    #[validate(length(min = 1, max = 254))]
    #[schema(min_length = 1, max_length = 254)]
    pub email: String,
    #[validate(length(min = 1, max = 1024))]
    #[schema(min_length = 1, max_length = 1024)]
    pub password: String,
}

impl std::fmt::Debug for LoginRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginRequest")
            .field("email", &self.email)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Body of `POST /auth/refresh`.
#[derive(Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    #[validate(length(min = 1, max = 512))]
    #[schema(min_length = 1, max_length = 512)]
    pub refresh_token: String,
}

/// Issued tokens.
#[derive(Serialize, ToSchema)]
pub struct TokenResponse {
    /// Short-lived access JWT (HS256).
    pub access_token: String,
    /// Single-use refresh token; rotated on every refresh.
    pub refresh_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Lifetime of the access token in seconds.
    pub expires_in: i64,
    /// Failed logins on this account since its previous successful login (0 on refresh).
    pub failed_logins_since_last: i32,
    /// When the last of those failures happened.
    pub last_failed_login_at: Option<chrono::DateTime<chrono::Utc>>,
}
