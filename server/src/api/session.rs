//! `/api/auth/login` and `/api/auth/logout`: sessions are tokens (`crate::auth`). The web UI's
//! `/api/auth/session`: the same login, with the token in an `HttpOnly` cookie the page's script
//! never sees, and the session's CSRF token in the answer.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use secrecy::SecretString;
use serde::Deserialize;

use crate::auth::{AuthActor, TOKEN_LIFETIME, check_origin, session_cookie, verify_password};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// A login request. It has no `Debug`; the password is a `SecretString`.
#[derive(Deserialize)]
pub(crate) struct LoginRequest {
    username: String,
    password: SecretString,
}

/// `POST /api/auth/login`: `{"token", "expiresIn"}`.
#[utoipa::path(
    post,
    path = "/api/auth/login",
    tag = "auth",
    operation_id = "session_login",
    request_body(content = serde_json::Value, content_type = "application/json", description = "`{username, password}`"),
    responses((status = 200, description = "`{token, expiresIn}`", body = serde_json::Value), super::doc::PublicErrors),
    security(())
)]
pub(crate) async fn login(
    State(state): State<AppState>,
    ConnectInfo(address): ConnectInfo<std::net::SocketAddr>,
    body: Result<Json<LoginRequest>, JsonRejection>,
) -> ApiResult<Json<serde_json::Value>> {
    let user = authenticate(&state, address, body).await?;
    let token = state.tokens.issue(user.id)?;
    Ok(Json(serde_json::json!({ "token": token, "expiresIn": TOKEN_LIFETIME.as_secs() })))
}

/// `POST /api/auth/session`: logs in like `/api/auth/login`, but the token goes into the
/// `veil_session` cookie; the answer is the session (who, what they may do, the CSRF token).
#[utoipa::path(
    post,
    path = "/api/auth/session",
    tag = "auth",
    operation_id = "session_open_session",
    request_body(content = serde_json::Value, content_type = "application/json", description = "`{username, password}`"),
    responses((status = 200, description = "The session (the token is in the `veil_session` cookie) and its CSRF token", body = serde_json::Value), super::doc::PublicErrors),
    security(())
)]
pub(crate) async fn open_session(
    State(state): State<AppState>,
    ConnectInfo(address): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    body: Result<Json<LoginRequest>, JsonRejection>,
) -> ApiResult<Response> {
    // A login form posted from another site's page, or a page under a name pointed at this
    // address, is refused before the password is checked.
    state.public_hosts.check(&headers)?;
    check_origin(&headers)?;
    let user = authenticate(&state, address, body).await?;
    let token = state.tokens.issue(user.id)?;
    let actor = state.host.store().actor_for(&user).await?;
    let cookie = session_cookie(Some(&token), state.public_hosts.secure_cookie(&headers));
    let view = session_view(state.host.store(), &actor, state.tokens.csrf_token(&token)).await;
    Ok(([(header::SET_COOKIE, cookie)], Json(view)).into_response())
}

/// `GET /api/auth/session`: the caller (by cookie or token), what they may do, and — for a
/// cookie session — its CSRF token.
#[utoipa::path(
    get,
    path = "/api/auth/session",
    tag = "auth",
    operation_id = "session_session",
    responses((status = 200, description = "The caller, what they may do, and a cookie session's CSRF token", body = serde_json::Value), super::doc::Errors)
)]
pub(crate) async fn session(
    State(state): State<AppState>,
    headers: HeaderMap,
    AuthActor(actor): AuthActor,
) -> Json<serde_json::Value> {
    let csrf = crate::auth::cookie_token(&headers).map(|t| state.tokens.csrf_token(&t)).unwrap_or_default();
    Json(session_view(state.host.store(), &actor, csrf).await)
}

/// Who the session is, what they may do, and its CSRF token; a customer user's customer by
/// name too (pages show names, not ids).
async fn session_view(
    store: &veil_store::Store,
    actor: &veil_store::Actor,
    csrf: String,
) -> serde_json::Value {
    let customer_name = match actor.customer_id {
        Some(id) => store.customer(actor, id).await.ok().map(|c| c.name),
        None => None,
    };
    let permissions: serde_json::Map<String, serde_json::Value> = actor
        .permissions
        .grants()
        .into_iter()
        .map(|(resource, ops)| {
            (resource.as_str().to_owned(), ops.iter().map(|o| o.as_str()).collect::<Vec<_>>().into())
        })
        .collect();
    serde_json::json!({
        "username": actor.username,
        "tenantId": actor.tenant_id,
        "customerId": actor.customer_id,
        "customerName": customer_name,
        "permissions": permissions,
        "csrfToken": csrf,
    })
}

/// Checks a login request (rate limited per user and address, the audit log records it) and
/// returns the user.
async fn authenticate(
    state: &AppState,
    address: std::net::SocketAddr,
    body: Result<Json<LoginRequest>, JsonRejection>,
) -> ApiResult<veil_store::UserRecord> {
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
        Some(u) => vec![format!("pair:{}:{}", u.id, address.ip()), address_key.clone()],
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
    tracing::info!(username = %user.username, "login");
    Ok(user)
}

/// `?everywhere=true` of `POST /api/auth/logout`.
#[derive(utoipa::IntoParams, Debug, Deserialize)]
#[into_params(parameter_in = Query)]
pub(crate) struct LogoutParams {
    everywhere: Option<bool>,
}

/// `POST /api/auth/logout[?everywhere=true]`: ends the session the request's token (bearer or
/// cookie) belongs to — the account's other sessions (another browser, the CLI) go on — and clears
/// a session cookie. With `everywhere=true` every token of the account stops working (as a
/// password change does).
#[utoipa::path(
    post,
    path = "/api/auth/logout",
    tag = "auth",
    operation_id = "session_logout",
    params(LogoutParams),
    responses((status = 204, description = "The session ended (with `everywhere=true`, every session of the account)"), super::doc::Errors)
)]
pub(crate) async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    params: Result<axum::extract::Query<LogoutParams>, axum::extract::rejection::QueryRejection>,
    AuthActor(actor): AuthActor,
) -> ApiResult<Response> {
    let axum::extract::Query(params) = params.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let store = state.host.store();
    match state.tokens.session_of(&headers) {
        Some(session) if !params.everywhere.unwrap_or(false) => {
            store.revoke_session(&actor, &session.sid, session.expires_ms).await?;
            tracing::info!(username = %actor.username, "logout");
        }
        // Everywhere, or a token from before sessions had ids: every session ends.
        _ => {
            store.revoke_tokens(&actor).await?;
            tracing::info!(username = %actor.username, "logout everywhere");
        }
    }
    let cleared = session_cookie(None, state.public_hosts.secure_cookie(&headers));
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, cleared)]).into_response())
}
