//! `/api/rule-chains/{id}/dead-letters`: the messages of a rule chain that the queue gave up on
//! (delivered `--queue-max-deliveries` times without finishing), listed masked and replayed.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;
use veil_store::Operation;

use super::request::{json_body, parse_id};
use crate::auth::AuthActor;
use crate::error::{ApiError, ApiResult};
use crate::host::{Host, HostError};
use crate::queue::QueueError;
use crate::queue::dead::MAX_PAGE;

/// `?limit=&after=` of `GET /api/rule-chains/{id}/dead-letters`.
#[derive(utoipa::IntoParams, Debug, Deserialize)]
#[into_params(parameter_in = Query)]
pub(crate) struct DeadLetterParams {
    /// At most this many (default 100, at most 1,000).
    limit: Option<usize>,
    /// Only those whose `seq` is above this one (the previous page's `next`).
    after: Option<u64>,
}

/// Dead letters per page when `limit` is not given.
const DEFAULT_PAGE: usize = 100;

/// `GET /api/rule-chains/{id}/dead-letters?limit=&after=`: the chain's dead letters, oldest
/// first, each with why, how many deliveries, when, and its message masked as debug events are;
/// `next` asks for the following page (`null` on the last). Needs RULE_CHAIN:READ and, as the
/// debug events do, SECRET:USE on the secrets the chain uses.
#[utoipa::path(
    get,
    path = "/api/rule-chains/{id}/dead-letters",
    tag = "rule-chains",
    operation_id = "dead_letters_list",
    params(("id" = String, Path, description = "The rule chain's id (a UUID)"), DeadLetterParams),
    responses((status = 200, description = "`{deadLetters: [{seq, reason, deliveries, deadTime, message}], next}`", body = serde_json::Value), super::doc::Errors)
)]
pub(crate) async fn list(
    State(host): State<Arc<Host>>,
    AuthActor(actor): AuthActor,
    Path(id): Path<String>,
    params: Result<Query<DeadLetterParams>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Query(params) = params.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let runtime = host.running_chain(&actor, parse_id::<Uuid>(&id)?, Operation::Read).await?;
    host.check_may_watch(&actor, &runtime, "the dead letters")?;
    let limit = params.limit.unwrap_or(DEFAULT_PAGE);
    if limit == 0 || limit > MAX_PAGE {
        return Err(ApiError::bad_request(format!("limit: must be 1 to {MAX_PAGE}")));
    }
    let queue = host.queue().ok_or(HostError::Queue(QueueError::NoQueue))?;
    let (page, next) =
        queue.dead_letters(&runtime, params.after.unwrap_or(0), limit).await.map_err(HostError::Queue)?;
    Ok(Json(json!({ "deadLetters": page, "next": next })))
}

/// `POST /api/rule-chains/{id}/dead-letters/replay {seqs?}`: puts the dead letters `seqs` (or,
/// without, the first 1,000) back into the queue, as they were; each leaves the dead letters once
/// it is queued again. Needs RULE_CHAIN:WRITE (as sending a message does).
#[utoipa::path(
    post,
    path = "/api/rule-chains/{id}/dead-letters/replay",
    tag = "rule-chains",
    operation_id = "dead_letters_replay",
    params(("id" = String, Path, description = "The rule chain's id (a UUID)")),
    request_body(content = serde_json::Value, content_type = "application/json", description = "`{seqs?: [number]}`; an empty body replays the first 1,000"),
    responses((status = 200, description = "`{replayed: n}`", body = serde_json::Value), super::doc::Errors)
)]
pub(crate) async fn replay(
    State(host): State<Arc<Host>>,
    AuthActor(actor): AuthActor,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let runtime = host.running_chain(&actor, parse_id::<Uuid>(&id)?, Operation::Write).await?;
    let seqs = match &body {
        Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => None,
        _ => seqs_from(json_body(body)?)?,
    };
    let queue = host.queue().ok_or(HostError::Queue(QueueError::NoQueue))?;
    let replayed = queue.replay(&runtime, seqs.as_deref()).await.map_err(HostError::Queue)?;
    tracing::info!(chain = %runtime.name(), replayed, actor = %actor.username, "dead letters replayed");
    Ok(Json(json!({ "replayed": replayed })))
}

/// The `seqs` of a replay's body `{seqs?}`.
fn seqs_from(body: Value) -> ApiResult<Option<Vec<u64>>> {
    let Value::Object(mut map) = body else {
        return Err(ApiError::bad_request("body: expected a JSON object {seqs?}"));
    };
    if let Some(k) = map.keys().find(|k| *k != "seqs") {
        return Err(ApiError::bad_request(format!("{k}: unknown field (expected seqs)")));
    }
    match map.remove("seqs") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) if items.len() <= MAX_PAGE => items
            .iter()
            .map(|v| v.as_u64().ok_or_else(|| ApiError::bad_request("seqs: expected sequence numbers")))
            .collect::<ApiResult<Vec<u64>>>()
            .map(Some),
        Some(Value::Array(_)) => Err(ApiError::bad_request(format!("seqs: at most {MAX_PAGE} at once"))),
        Some(_) => Err(ApiError::bad_request("seqs: expected an array of sequence numbers")),
    }
}
