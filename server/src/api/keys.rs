//! `/api/system/keys`: the data keys (SYS_ADMIN): which one seals new values, how many values
//! each seals, and a rotation to a new one, run in the background.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use veil_store::Store;

use crate::auth::AuthActor;
use crate::error::ApiResult;

/// `GET /api/system/keys`: `{activeKey, keys: [{id, created, values}], rotation}`.
#[utoipa::path(
    get,
    path = "/api/system/keys",
    tag = "system",
    operation_id = "keys_status",
    responses((status = 200, description = "The data keys, how many values each seals, and the rotation in progress", body = serde_json::Value), super::doc::Errors)
)]
pub(crate) async fn status(
    State(store): State<Store>,
    AuthActor(actor): AuthActor,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(store.key_status(&actor).await?))
}

/// `POST /api/system/keys/rotate`: a new data key seals new values at once (every instance);
/// every stored value is sealed again under it in the background. 202 with the status; 409 while
/// a rotation runs.
#[utoipa::path(
    post,
    path = "/api/system/keys/rotate",
    tag = "system",
    operation_id = "keys_rotate",
    responses((status = 202, description = "A new data key seals new values; the old ones are sealed again in the background", body = serde_json::Value), super::doc::Errors)
)]
pub(crate) async fn rotate(
    State(store): State<Store>,
    AuthActor(actor): AuthActor,
) -> ApiResult<impl IntoResponse> {
    store.start_key_rotation(&actor).await?;
    let job = store.clone();
    tokio::spawn(async move { run_rotation(&job).await });
    Ok((StatusCode::ACCEPTED, Json(store.key_status(&actor).await?)))
}

/// Runs the unfinished key rotation, if any (after a start, and now and then on every instance:
/// a job that died with its instance is taken over), logging how it ended.
pub(crate) async fn run_rotation(store: &Store) {
    match store.continue_key_rotation().await {
        Ok(Some(report)) => tracing::info!(
            key = report.key_id,
            resealed = report.resealed,
            checked = report.checked,
            "every stored value is sealed with the new data key; older keys retired"
        ),
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "data key rotation stopped; it resumes on the next try"),
    }
}
