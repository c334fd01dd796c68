//! `/api/integrations` and the uplink endpoints `/api/v1/integrations/{type}/{routingKey}`.
//! Integrations are validated like rule chains, stored with placeholders (never values) and
//! their secret references, started on save and at boot, stopped on delete.

use std::sync::Arc;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use http_body_util::BodyExt as _;
use serde_json::{Map, Value, json};
use uuid::Uuid;
use veil_core::Problem;
use veil_integrations::{IntegrationRuntime, UplinkError, deploy_integration};
use veil_store::{Actor, Owner, OwnerRecord, OwnerType, Page, StoreError};

use super::chains::{ListParams, json_body, message_from, owner_actor};
use super::{AppState, MAX_DRAINED_BYTES, MAX_UPLINK_BYTES, parse_id};
use crate::auth::AuthActor;
use crate::error::{ApiError, ApiResult};

/// Fields the API adds to an integration; a document read with GET may be sent back with PUT.
const VIEW_FIELDS: &[&str] = &["id", "createdTime", "updatedTime", "status", "uplinkPath"];

/// The API's view of a stored integration: its definition plus id, times, status and uplink path.
fn view(state: &AppState, record: &OwnerRecord) -> Value {
    let mut out = match &record.body {
        Value::Object(map) => map.clone(),
        _ => Map::new(),
    };
    let running = state.integrations.get(record.tenant_id, record.owner.id);
    let status = running
        .as_ref()
        .map_or_else(|| "error: not running; see the server log".to_owned(), |r| r.status().to_string());
    out.insert("id".into(), json!(record.owner.id));
    out.insert("createdTime".into(), json!(record.created_time));
    out.insert("updatedTime".into(), json!(record.updated_time));
    out.insert("status".into(), json!(status));
    if let Some(r) = running {
        out.insert(
            "uplinkPath".into(),
            json!(format!("/api/v1/integrations/{}/{}", r.uplink_path(), r.routing_key())),
        );
    }
    Value::Object(out)
}

/// A rule chain the actor can see, or a problem at `/ruleChainId`.
async fn check_chain(state: &AppState, actor: &Actor, doc: &Value) -> ApiResult<Option<Problem>> {
    let Some(id) = doc.get("ruleChainId").and_then(Value::as_str).and_then(|s| s.parse::<Uuid>().ok()) else {
        return Ok(None);
    };
    match state.store.owner_visible(actor, OwnerType::RuleChain, id).await {
        Ok(_) => Ok(None),
        Err(StoreError::NotFound { .. }) => {
            Ok(Some(Problem::new("/ruleChainId", format!("rule chain '{id}' does not exist"))))
        }
        Err(e) => Err(e.into()),
    }
}

/// Validates, persists (with references, in one transaction) and starts an integration.
async fn save(state: &AppState, actor: &Actor, id: Uuid, mut doc: Value) -> ApiResult<OwnerRecord> {
    // One save or delete of integrations at a time: routing keys and runtimes follow the database.
    let _one_at_a_time = state.integration_writes.lock().await;
    let stored = match state.store.owner_visible(actor, OwnerType::Integration, id).await {
        Ok(record) => record.body.get("routingKey").and_then(Value::as_str).map(str::to_owned),
        Err(StoreError::NotFound { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    if let Value::Object(map) = &mut doc {
        for field in VIEW_FIELDS {
            map.remove(*field);
        }
        // An update without a routing key keeps the one LORIOT already pushes to.
        if map.get("routingKey").is_none_or(Value::is_null) {
            map.remove("routingKey");
            if let Some(key) = &stored {
                map.insert("routingKey".into(), json!(key));
            }
        }
    } else {
        return Err(ApiError::bad_request("body: expected a JSON object (an integration)"));
    }
    let deployed = deploy_integration(&state.integration_types, &state.store, actor, &doc);
    let chain_problem = check_chain(state, actor, &doc).await?;
    let deployment = match (deployed, chain_problem) {
        (Ok(d), None) => d,
        (Ok(_), Some(p)) => return Err(ApiError::invalid_config(vec![p])),
        (Err(mut problems), p) => {
            problems.extend(p);
            return Err(ApiError::invalid_config(problems));
        }
    };
    let key = deployment.def.routing_key.clone().unwrap_or_default();
    if !state.integrations.reserve_key(&key, id) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "routing_key_taken",
            format!("routingKey: '{key}' is used by another integration"),
        ));
    }
    let owner = Owner {
        kind: OwnerType::Integration,
        id,
        name: deployment.def.name.clone(),
        customer_id: actor.customer_id,
    };
    let saved = async {
        let body = serde_json::to_value(&deployment.def).map_err(ApiError::internal)?;
        state.store.save_owner(actor, &owner, &body, &deployment.references).await?;
        Ok::<_, ApiError>(())
    }
    .await;
    if let Err(e) = saved {
        if stored.as_deref() != Some(key.as_str()) {
            state.integrations.release_key(&key, id);
        }
        return Err(e);
    }
    let runtime = IntegrationRuntime::new(id, actor.tenant_id, state.store.clone(), deployment);
    state.integrations.insert(Arc::clone(&runtime));
    runtime.start();
    tracing::info!(integration = %owner.name, %id, actor = %actor.username, "integration saved");
    Ok(state.store.owner_visible(actor, OwnerType::Integration, id).await?)
}

/// `POST /api/integrations`
pub(crate) async fn create(
    State(state): State<Arc<AppState>>,
    AuthActor(actor): AuthActor,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<impl IntoResponse> {
    actor.require_on(veil_store::Resource::Integration, veil_store::Operation::Create)?;
    let max = state.registry.limits().max_integrations_per_tenant;
    let count = state.integrations.count_tenant(actor.tenant_id);
    if count >= max {
        return Err(ApiError::limit_reached(veil_core::limit_error(
            "maxIntegrationsPerTenant",
            max,
            format!("the tenant has {count} integrations; delete one first"),
        )));
    }
    let doc = json_body(body)?;
    let record = save(&state, &actor, Uuid::new_v4(), doc).await?;
    Ok((StatusCode::CREATED, Json(view(&state, &record))))
}

/// `PUT /api/integrations/{id}`
pub(crate) async fn update(
    State(state): State<Arc<AppState>>,
    AuthActor(actor): AuthActor,
    Path(id): Path<String>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<Json<Value>> {
    let id = parse_id::<Uuid>(&id)?;
    state.store.owner_for(&actor, OwnerType::Integration, id, veil_store::Operation::Write).await?;
    let doc = json_body(body)?;
    let record = save(&state, &actor, id, doc).await?;
    Ok(Json(view(&state, &record)))
}

/// `GET /api/integrations/{id}`: the definition (placeholders only) and the status.
pub(crate) async fn get(
    State(state): State<Arc<AppState>>,
    AuthActor(actor): AuthActor,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let record = state.store.owner(&actor, OwnerType::Integration, parse_id::<Uuid>(&id)?).await?;
    Ok(Json(view(&state, &record)))
}

/// `GET /api/integrations?page=&pageSize=`
pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    AuthActor(actor): AuthActor,
    params: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Page<Value>>> {
    let Query(p) = params.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let all = state.store.owners(&actor, OwnerType::Integration).await?;
    let items = all.iter().map(|r| {
        let full = view(&state, r);
        let pick = |k: &str| full.get(k).cloned().unwrap_or(Value::Null);
        json!({
            "id": r.owner.id,
            "name": r.owner.name,
            "type": pick("type"),
            "enabled": pick("enabled"),
            "status": pick("status"),
            "createdTime": r.created_time,
            "updatedTime": r.updated_time,
        })
    });
    let page = Page::of(items, p.page(), p.page_size()).map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(Json(page))
}

/// `DELETE /api/integrations/{id}`: the integration stops; its references go with it.
pub(crate) async fn delete(
    State(state): State<Arc<AppState>>,
    AuthActor(actor): AuthActor,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = parse_id::<Uuid>(&id)?;
    let _one_at_a_time = state.integration_writes.lock().await;
    state.store.delete_owner(&actor, OwnerType::Integration, id).await?;
    state.integrations.remove(id);
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/integrations/{id}/downlink {type?, originator?, metadata?, data}`: converts the
/// message with the downlink converter and sends it; 502 `downlink_failed` with the redacted reason.
pub(crate) async fn downlink(
    State(state): State<Arc<AppState>>,
    AuthActor(actor): AuthActor,
    Path(id): Path<String>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<Json<Value>> {
    let id = parse_id::<Uuid>(&id)?;
    state.store.owner_for(&actor, OwnerType::Integration, id, veil_store::Operation::Write).await?;
    let msg = message_from(json_body(body)?)?;
    let runtime = state.integrations.get(actor.tenant_id, id).ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "integration_not_running",
            format!("integration '{id}' is not running"),
        )
    })?;
    match runtime.downlink(&msg).await {
        Ok(result) => Ok(Json(result)),
        Err(e) => Err(ApiError::new(StatusCode::BAD_GATEWAY, "downlink_failed", e.to_string())),
    }
}

fn uplink_error(e: UplinkError) -> ApiError {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
    ApiError::new(status, e.code, e.message)
}

/// An uplink body up to [`MAX_UPLINK_BYTES`]. A larger one is read to its end (up to
/// [`MAX_DRAINED_BYTES`]) before the 413, so the sender, still writing, gets the answer rather
/// than a broken connection.
async fn uplink_body(headers: &HeaderMap, mut body: Body) -> ApiResult<Vec<u8>> {
    let too_large =
        || ApiError::too_large(format!("an uplink body may have at most {MAX_UPLINK_BYTES} bytes"));
    if super::content_length(headers).is_some_and(|n| n > MAX_DRAINED_BYTES) {
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
pub(crate) async fn uplink(
    State(state): State<Arc<AppState>>,
    Path((kind, key)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<Value>> {
    let body = uplink_body(&headers, body).await?;
    let not_found = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no {kind} integration with this routing key"),
        )
    };
    let runtime = state.integrations.by_routing_key(&kind, &key).ok_or_else(not_found)?;
    let chain_id = runtime.def().rule_chain_id;
    let chain = state
        .chains
        .get(&chain_id)
        .filter(|c| c.tenant() == runtime.tenant())
        .map(|c| Arc::clone(c.value()))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "chain_not_running",
                format!("the integration's rule chain '{chain_id}' is not running"),
            )
        })?;
    // Admitted before the converter runs: a full chain costs the sender nothing but the answer.
    let admission = chain.admit().map_err(|busy| ApiError::busy(StatusCode::SERVICE_UNAVAILABLE, &busy))?;
    let messages = runtime.uplink(&headers, &body).await.map_err(uplink_error)?;
    let count = messages.len();
    tokio::spawn(async move {
        for msg in messages {
            chain.process(msg).await;
        }
        drop(admission);
    });
    Ok(Json(json!({ "messages": count })))
}

/// Starts every stored integration (at boot, after the rule chains). One that no longer deploys
/// is logged and left stopped.
pub(crate) async fn start_all(state: &AppState) -> veil_store::Result<()> {
    for record in state.store.all_owners(OwnerType::Integration).await? {
        let actor = owner_actor(&record);
        match deploy_integration(&state.integration_types, &state.store, &actor, &record.body) {
            Ok(deployment) => {
                let runtime = IntegrationRuntime::new(
                    record.owner.id,
                    record.tenant_id,
                    state.store.clone(),
                    deployment,
                );
                state.integrations.insert(Arc::clone(&runtime));
                runtime.start();
            }
            Err(problems) => {
                let problems: Vec<String> = problems.iter().map(ToString::to_string).collect();
                tracing::error!(integration = %record.owner.name, id = %record.owner.id, "integration not started: {}", problems.join("; "));
            }
        }
    }
    tracing::info!(integrations = state.integrations.len(), "integrations started");
    Ok(())
}
