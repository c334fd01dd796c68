//! `/api/auth/login` and `/api/auth/logout`: sessions are tokens (`crate::auth`).

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use secrecy::SecretString;
use serde::Deserialize;
use veil_store::Store;

use crate::auth::{AuthActor, TOKEN_LIFETIME, verify_password};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// A login request. It has no `Debug`; the password is a `SecretString`.
#[derive(Deserialize)]
pub(crate) struct LoginRequest {
    username: String,
    password: SecretString,
}

/// `POST /api/auth/login`
pub(crate) async fn login(
    State(state): State<AppState>,
    ConnectInfo(address): ConnectInfo<std::net::SocketAddr>,
    body: Result<Json<LoginRequest>, JsonRejection>,
) -> ApiResult<Json<serde_json::Value>> {
    let store = state.host.store();
    // A fixed message: the rejection's text would quote the request, password included.
    let Json(req) = body
        .map_err(|_| ApiError::bad_request("expected JSON {\"username\": string, \"password\": string}"))?;
    // Names longer than any account's are not looked up (nor kept by the limiter).
    let user = if req.username.chars().count() > veil_store::MAX_DIRECTORY_NAME {
        None
    } else {
        store.user_by_name(&req.username).await?
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
    let hash = user.as_ref().map_or_else(|| state.dummy_hash.to_string(), |u| u.password_hash.clone());
    let ok =
        tokio::task::spawn_blocking(move || verify_password(&req.password, &hash)).await.unwrap_or(false);
    // Only names that exist are logged: people type passwords into the username field.
    let address_text = Some(address.ip().to_string());
    let user = match (ok, user) {
        (true, Some(user)) => user,
        (false, Some(user)) => {
            tracing::warn!(username = %user.username, "failed login: wrong password");
            store.record_login(Some(&user), false, address_text).await;
            return Err(ApiError::unauthorized("invalid username or password"));
        }
        (_, None) => {
            tracing::warn!("failed login: unknown username");
            store.record_login(None, false, address_text).await;
            return Err(ApiError::unauthorized("invalid username or password"));
        }
    };
    state.login_limiter.succeeded(&keys[0], &address_key);
    store.record_login(Some(&user), true, address_text).await;
    let token = state.tokens.issue(user.id)?;
    tracing::info!(username = %user.username, "login");
    Ok(Json(serde_json::json!({ "token": token, "expiresIn": TOKEN_LIFETIME.as_secs() })))
}

/// `POST /api/auth/logout`: every token of the caller's account stops working.
pub(crate) async fn logout(State(store): State<Store>, AuthActor(actor): AuthActor) -> ApiResult<StatusCode> {
    store.revoke_tokens(&actor).await?;
    tracing::info!(username = %actor.username, "logout");
    Ok(StatusCode::NO_CONTENT)
}
