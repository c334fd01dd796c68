//! Logins and tokens. Passwords are argon2 hashes; tokens are HS256 JWTs signed with a key kept
//! encrypted in the store (so every instance sharing a database accepts them), valid for 12 hours.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::Json;
use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use veil_store::{Actor, Store, UserId};

use crate::api::AppState;
use crate::error::{ApiError, ApiResult};

const TOKEN_LIFETIME: Duration = Duration::from_secs(12 * 3600);
const SIGNING_KEY_NAME: &str = "token-signing-key";

/// Signs and checks tokens.
pub(crate) struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl TokenKeys {
    pub(crate) async fn load(store: &Store) -> veil_store::Result<Self> {
        let key = store.system_secret(SIGNING_KEY_NAME, 32).await?;
        Ok(Self {
            encoding: EncodingKey::from_secret(key.expose_bytes()),
            decoding: DecodingKey::from_secret(key.expose_bytes()),
        })
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    iat: u64,
    exp: u64,
    /// Issue time in milliseconds, so a revocation in the same second is exact.
    #[serde(default)]
    iat_ms: u64,
}

/// Hashes a password with argon2id and a random salt.
pub(crate) fn hash_password(password: &SecretString) -> String {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.expose_secret().as_bytes(), &salt)
        .expect("argon2 with default parameters accepts any password")
        .to_string()
}

fn verify_password(password: &SecretString, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| Argon2::default().verify_password(password.expose_secret().as_bytes(), &parsed).is_ok())
        .unwrap_or(false)
}

/// A login request. It has no `Debug`; the password is a `SecretString`.
#[derive(Deserialize)]
pub(crate) struct LoginRequest {
    username: String,
    password: SecretString,
}

/// Failed logins allowed per user name within [`LOGIN_WINDOW`].
pub(crate) const MAX_FAILED_PER_USER: u32 = 5;
/// Failed logins allowed per client address within [`LOGIN_WINDOW`].
pub(crate) const MAX_FAILED_PER_ADDRESS: u32 = 20;
/// Past this many tracked names and addresses, finished windows are dropped.
const MAX_TRACKED: usize = 10_000;
/// How long failed logins count.
pub(crate) const LOGIN_WINDOW: Duration = Duration::from_secs(15 * 60);

/// Counts failed logins per user name and per address; past the limit, logins are refused until
/// the window that started with the first failure has passed.
#[derive(Default)]
pub(crate) struct LoginLimiter {
    failures: dashmap::DashMap<String, (u32, Instant)>,
}

impl LoginLimiter {
    fn limit(key: &str) -> u32 {
        if key.starts_with("user:") { MAX_FAILED_PER_USER } else { MAX_FAILED_PER_ADDRESS }
    }

    /// Counts an attempt for every key, or refuses (seconds to wait) when one is at its limit.
    /// Counting before the slow password check means parallel guesses cannot all slip through.
    fn attempt(&self, keys: &[String]) -> Result<(), u64> {
        // Forget windows that are over before growing further.
        if self.failures.len() > MAX_TRACKED {
            self.failures.retain(|_, (_, since)| since.elapsed() < LOGIN_WINDOW);
        }
        for k in keys {
            let mut entry = self.failures.entry(k.clone()).or_insert((0, Instant::now()));
            if entry.1.elapsed() >= LOGIN_WINDOW {
                *entry = (0, Instant::now());
            }
            if entry.0 >= Self::limit(k) {
                let left = LOGIN_WINDOW.saturating_sub(entry.1.elapsed());
                return Err(left.as_secs().max(1));
            }
        }
        for k in keys {
            if let Some(mut entry) = self.failures.get_mut(k) {
                entry.0 += 1;
            }
        }
        Ok(())
    }

    /// A successful login: it was not a failure, and the user's count starts again.
    fn succeeded(&self, user_key: &str, address_key: &str) {
        self.failures.remove(user_key);
        if let Some(mut entry) = self.failures.get_mut(address_key) {
            entry.0 = entry.0.saturating_sub(1);
        }
    }
}

/// `POST /api/auth/login`
pub(crate) async fn login(
    State(state): State<Arc<AppState>>,
    ConnectInfo(address): ConnectInfo<std::net::SocketAddr>,
    body: Result<Json<LoginRequest>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<Json<serde_json::Value>> {
    // A fixed message: the rejection's text would quote the request, password included.
    let Json(req) = body
        .map_err(|_| ApiError::bad_request("expected JSON {\"username\": string, \"password\": string}"))?;
    // Names longer than any account's are not looked up (nor kept by the limiter).
    let user = if req.username.chars().count() > veil_store::MAX_DIRECTORY_NAME {
        None
    } else {
        state.store.user_by_name(&req.username).await?
    };
    // Unknown names count only against the address: what people type there may be a password.
    let address_key = format!("addr:{}", address.ip());
    let keys: Vec<String> = match &user {
        Some(u) => vec![format!("user:{}", u.id), address_key.clone()],
        None => vec![address_key.clone()],
    };
    if let Err(wait) = state.login_limiter.attempt(&keys) {
        return Err(ApiError::too_many(format!("too many failed logins; try again in {wait} s"), wait));
    }
    // Verify against a dummy hash when the user is unknown, so timing does not reveal usernames.
    let hash = user.as_ref().map(|u| u.password_hash.clone()).unwrap_or_else(|| state.dummy_hash.clone());
    let ok =
        tokio::task::spawn_blocking(move || verify_password(&req.password, &hash)).await.unwrap_or(false);
    // Only names that exist are logged: people type passwords into the username field.
    let address_text = Some(address.ip().to_string());
    let user = match (ok, user) {
        (true, Some(user)) => user,
        (false, Some(user)) => {
            tracing::warn!(username = %user.username, "failed login: wrong password");
            state.store.record_login(Some(&user), false, address_text).await;
            return Err(ApiError::unauthorized("invalid username or password"));
        }
        (_, None) => {
            tracing::warn!("failed login: unknown username");
            state.store.record_login(None, false, address_text).await;
            return Err(ApiError::unauthorized("invalid username or password"));
        }
    };
    state.login_limiter.succeeded(&keys[0], &address_key);
    state.store.record_login(Some(&user), true, address_text).await;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let now_ms = veil_store::now_ms().max(0) as u64;
    let claims =
        Claims { sub: user.id.to_string(), iat: now, exp: now + TOKEN_LIFETIME.as_secs(), iat_ms: now_ms };
    let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &state.tokens.encoding)
        .map_err(|e| ApiError::internal(format!("token signing failed: {e}")))?;
    tracing::info!(username = %user.username, "login");
    Ok(Json(serde_json::json!({ "token": token, "expiresIn": TOKEN_LIFETIME.as_secs() })))
}

/// `POST /api/auth/logout`: every token of the caller's account stops working.
pub(crate) async fn logout(
    State(state): State<Arc<AppState>>,
    AuthActor(actor): AuthActor,
) -> ApiResult<axum::http::StatusCode> {
    state.store.revoke_tokens(&actor).await?;
    tracing::info!(username = %actor.username, "logout");
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// The authenticated caller, from `Authorization: Bearer <token>`.
pub(crate) struct AuthActor(pub(crate) Actor);

impl FromRequestParts<Arc<AppState>> for AuthActor {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> ApiResult<Self> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| ApiError::unauthorized("missing Authorization: Bearer <token> header"))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .ok_or_else(|| ApiError::unauthorized("Authorization header must be 'Bearer <token>'"))?;
        let data = jsonwebtoken::decode::<Claims>(
            token.trim(),
            &state.tokens.decoding,
            &Validation::new(Algorithm::HS256),
        )
        .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                ApiError::unauthorized("token expired; log in again")
            }
            _ => ApiError::unauthorized("invalid token"),
        })?;
        let id: UserId = data.claims.sub.parse().map_err(|_| ApiError::unauthorized("invalid token"))?;
        let user = state
            .store
            .user_by_id(id)
            .await?
            .ok_or_else(|| ApiError::unauthorized("the token's user no longer exists"))?;
        let issued_ms = if data.claims.iat_ms > 0 { data.claims.iat_ms } else { data.claims.iat * 1000 };
        if (issued_ms as i64) <= user.tokens_valid_after {
            return Err(ApiError::unauthorized(
                "the token was revoked (password change or logout); log in again",
            ));
        }
        Ok(Self(state.store.actor_for(&user).await?))
    }
}
