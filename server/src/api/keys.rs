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
pub(crate) async fn status(
    State(store): State<Store>,
    AuthActor(actor): AuthActor,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(store.key_status(&actor).await?))
}

/// `POST /api/system/keys/rotate`: a new data key seals new values at once (every instance);
/// every stored value is sealed again under it in the background. 202 with the status; 409 while
/// a rotation runs.
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
