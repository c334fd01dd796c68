//! `/api/integrations` and the uplink endpoints `/api/v1/integrations/{type}/{routingKey}`.
//! Integrations are validated like rule chains, stored with placeholders (never values) and
//! their secret references, started on save and at boot, stopped on delete.

use std::sync::Arc;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use http_body_util::BodyExt as _;
use serde_json::{Map, Value, json};
use uuid::Uuid;
use veil_store::{Operation, OwnerRecord, OwnerType, Page, Resource};

use super::request::{
    ListParams, MAX_DRAINED_BYTES, MAX_UPLINK_BYTES, content_length, json_body, message_from, parse_id,
};
use crate::auth::AuthActor;
use crate::error::{ApiError, ApiResult};
use crate::host::{Host, HostError};

/// The API's view of a stored integration: its definition plus id, times, status and uplink path.
fn view(host: &Host, record: &OwnerRecord) -> Value {
    let mut out = match &record.body {
        Value::Object(map) => map.clone(),
        _ => Map::new(),
    };
    let running = host.running_integration(record.tenant_id, record.owner.id);
    let status = running
        .as_ref()
        .map_or_else(|| "error: not running; see the server log".to_owned(), |r| r.status().to_string());
    out.insert("id".into(), json!(record.owner.id));
    out.insert("createdTime".into(), json!(record.created_time));
    out.insert("updatedTime".into(), json!(record.updated_time));
    out.insert("status".into(), json!(status));
    if let Some(r) = running {
        // Uplinks refused for their authorization (a sender with a stale one) show beside the status.
        if let (count @ 1.., Some((reason, time))) = r.refused_uplinks() {
            out.insert(
                "refusedUplinks".into(),
                json!({"count": count, "lastReason": reason, "lastTime": time}),
            );
        }
        out.insert(
            "uplinkPath".into(),
            json!(format!("/api/v1/integrations/{}/{}", r.uplink_path(), r.routing_key())),
        );
    }
    Value::Object(out)
}

/// `POST /api/integrations`
#[utoipa::path(
    post,
    path = "/api/integrations",
    tag = "integrations",
    operation_id = "integrations_create",
    request_body(content = serde_json::Value, content_type = "application/json", description = "An integration: `{name, type, ruleChainId, routingKey?, configuration, uplinkConverter?, downlinkConverter?, enabled?}`"),
    responses((status = 201, description = "Saved and started", body = serde_json::Value), super::doc::Errors)
)]
pub(crate) async fn create(
    State(host): State<Arc<Host>>,
    AuthActor(actor): AuthActor,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<impl IntoResponse> {
    actor.require_on(Resource::Integration, Operation::Create)?;
    let doc = json_body(body)?;
    let record = host.save_integration(&actor, Uuid::new_v4(), doc).await?;
    Ok((StatusCode::CREATED, Json(view(&host, &record))))
}

/// `PUT /api/integrations/{id}`
#[utoipa::path(
    put,
    path = "/api/integrations/{id}",
    tag = "integrations",
    operation_id = "integrations_update",
    params(("id" = String, Path, description = "The integration's id (a UUID)")),
    request_body(content = serde_json::Value, content_type = "application/json", description = "The whole integration, as for create"),
    responses((status = 200, description = "Saved and restarted", body = serde_json::Value), super::doc::Errors)
)]
pub(crate) async fn update(
    State(host): State<Arc<Host>>,
    AuthActor(actor): AuthActor,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let id = parse_id::<Uuid>(&id)?;
    host.store().owner_for(&actor, OwnerType::Integration, id, Operation::Write).await?;
    let doc = json_body(body)?;
    let record = host.save_integration(&actor, id, doc).await?;
    Ok(Json(view(&host, &record)))
}

/// `GET /api/integrations/{id}`: the definition (placeholders only) and the status.
#[utoipa::path(
    get,
    path = "/api/integrations/{id}",
    tag = "integrations",
    operation_id = "integrations_get",
    params(("id" = String, Path, description = "The integration's id (a UUID)")),
    responses((status = 200, description = "The definition (placeholders only) and its status", body = serde_json::Value), super::doc::Errors)
)]
pub(crate) async fn get(
    State(host): State<Arc<Host>>,
    AuthActor(actor): AuthActor,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let record = host.store().owner(&actor, OwnerType::Integration, parse_id::<Uuid>(&id)?).await?;
    Ok(Json(view(&host, &record)))
}

/// `GET /api/integrations?page=&pageSize=`
#[utoipa::path(
    get,
    path = "/api/integrations",
    tag = "integrations",
    operation_id = "integrations_list",
    params(ListParams),
    responses((status = 200, description = "A page of integrations", body = serde_json::Value), super::doc::Errors)
)]
pub(crate) async fn list(
    State(host): State<Arc<Host>>,
    AuthActor(actor): AuthActor,
    params: Result<Query<ListParams>, QueryRejection>,
) -> ApiResult<Json<Page<Value>>> {
    let Query(p) = params.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let all = host.store().owner_summaries(&actor, OwnerType::Integration).await?;
    let items = all.iter().map(|r| {
        let full = view(&host, r);
        let pick = |k: &str| full.get(k).cloned().unwrap_or(Value::Null);
        json!({
            "id": r.owner.id,
            "name": r.owner.name,
            "type": pick("type"),
            "enabled": pick("enabled"),
            "status": pick("status"),
            "uplinkPath": pick("uplinkPath"),
            "createdTime": r.created_time,
            "updatedTime": r.updated_time,
        })
    });
    let page = Page::of(items, p.page(), p.page_size()).map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(Json(page))
}

/// `DELETE /api/integrations/{id}`: the integration stops; its references go with it.
#[utoipa::path(
    delete,
    path = "/api/integrations/{id}",
    tag = "integrations",
    operation_id = "integrations_delete",
    params(("id" = String, Path, description = "The integration's id (a UUID)")),
    responses((status = 204, description = "Deleted and stopped"), super::doc::Errors)
)]
pub(crate) async fn delete(
    State(host): State<Arc<Host>>,
    AuthActor(actor): AuthActor,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    host.remove_integration(&actor, parse_id::<Uuid>(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/integrations/{id}/downlink {type?, originator?, metadata?, data}`: converts the
/// message with the downlink converter and sends it; 502 `downlink_failed` with the redacted reason.
#[utoipa::path(
    post,
    path = "/api/integrations/{id}/downlink",
    tag = "integrations",
    operation_id = "integrations_downlink",
    params(("id" = String, Path, description = "The integration's id (a UUID)")),
    request_body(content = serde_json::Value, content_type = "application/json", description = "`{type?, originator?, metadata?, data}`"),
    responses((status = 200, description = "Converted and sent to the outside service", body = serde_json::Value), super::doc::Errors)
)]
pub(crate) async fn downlink(
    State(host): State<Arc<Host>>,
    AuthActor(actor): AuthActor,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let id = parse_id::<Uuid>(&id)?;
    host.store().owner_for(&actor, OwnerType::Integration, id, Operation::Write).await?;
    let msg = message_from(json_body(body)?)?;
    let runtime =
        host.running_integration(actor.tenant_id, id).ok_or(HostError::IntegrationNotRunning(id))?;
    match runtime.downlink(&runtime.budget(), &msg).await {
        Ok(result) => Ok(Json(result)),
        Err(e) => Err(ApiError::new(StatusCode::BAD_GATEWAY, "downlink_failed", e.to_string())),
    }
}

/// An uplink body up to [`MAX_UPLINK_BYTES`]. A larger one is read to its end (up to
/// [`MAX_DRAINED_BYTES`]) before the 413, so the sender, still writing, gets the answer rather
/// than a broken connection.
async fn uplink_body(headers: &HeaderMap, mut body: Body) -> ApiResult<Vec<u8>> {
    let too_large =
        || ApiError::too_large(format!("an uplink body may have at most {MAX_UPLINK_BYTES} bytes"));
    if content_length(headers).is_some_and(|n| n > MAX_DRAINED_BYTES) {
        return Err(too_large());
    }
    let mut kept = Vec::new();
    let mut total = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ApiError::bad_request(format!("body: cannot be read ({e})")))?;
        if let Ok(data) = frame.into_data() {
            total += data.len();
            if total <= MAX_UPLINK_BYTES {
                kept.extend_from_slice(&data);
            } else if total > MAX_DRAINED_BYTES {
                break;
            }
        }
    }
    if total > MAX_UPLINK_BYTES { Err(too_large()) } else { Ok(kept) }
}

/// `POST /api/v1/integrations/{type}/{routingKey}`: an uplink. No token: the routing key and the
/// integration's header security identify the sender. Converted messages go to the rule chain in
/// order; the answer says how many.
#[utoipa::path(
    post,
    path = "/api/v1/integrations/{kind}/{routing_key}",
    tag = "integrations",
    operation_id = "integrations_uplink",
    params(("kind" = String, Path, description = "The integration type's uplink path (`loriot`, `http`)"), ("routing_key" = String, Path, description = "The integration's routing key")),
    request_body(content = String, content_type = "application/json", description = "What the outside service sends (at most 1 MiB)"),
    responses((status = 200, description = "Converted; how many messages went to the rule chain", body = serde_json::Value), super::doc::PublicErrors),
    security(())
)]
pub(crate) async fn uplink(
    State(host): State<Arc<Host>>,
    Path((kind, key)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<Value>> {
    let integration = host.uplink_target(&kind, &key);
    let answered = async {
        let body = uplink_body(&headers, body).await?;
        Ok(host.uplink(&kind, &key, &headers, &body).await?)
    };
    let answered: ApiResult<usize> = answered.await;
    crate::metrics::count_uplink(
        integration,
        answered.as_ref().map_or_else(ApiError::status, |_| StatusCode::OK),
    );
    Ok(Json(json!({ "messages": answered? })))
}
