//! `/api/rule-chains`: chains are validated and compiled once when saved, stored with their
//! placeholders (never values) together with their secret references, and run in memory.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use uuid::Uuid;
use veil_core::{ChainRuntime, DebugEvent, Msg, deploy};
use veil_store::{Actor, Owner, OwnerRecord, OwnerType, Page};

use super::{AppState, body_error, parse_id};
use crate::auth::AuthActor;
use crate::error::{ApiError, ApiResult};

pub(super) fn json_body(body: Result<Bytes, axum::extract::rejection::BytesRejection>) -> ApiResult<Value> {
    let body = body.map_err(body_error)?;
    serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("body: invalid JSON ({e})")))
}

/// The API's view of a stored chain: its definition plus id and times.
fn view(record: &OwnerRecord) -> Value {
    let mut out = match &record.body {
        Value::Object(map) => map.clone(),
        _ => Map::new(),
    };
    out.insert("id".into(), json!(record.owner.id));
    out.insert("createdTime".into(), json!(record.created_time));
    out.insert("updatedTime".into(), json!(record.updated_time));
    Value::Object(out)
}

/// Validates, persists (with references, in one transaction) and starts a chain.
async fn save(state: &AppState, actor: &Actor, id: Uuid, doc: &Value) -> ApiResult<OwnerRecord> {
    // A customer's chain stays the customer's and is validated as the customer's, whoever edits it:
    // a tenant user cannot put a secret that is not shared with the customer into it.
    let customer = match state.store.owner_visible(actor, OwnerType::RuleChain, id).await {
        Ok(existing) => existing.owner.customer_id,
        Err(veil_store::StoreError::NotFound { .. }) => actor.customer_id,
        Err(e) => return Err(e.into()),
    };
    let scoped = Actor { customer_id: customer, ..actor.clone() };
    let actor = &scoped;
    let deployment = deploy(&state.registry, &state.store, actor, doc).map_err(ApiError::invalid_config)?;
    check_links(state, actor, &deployment.links).await?;
    let owner =
        Owner { kind: OwnerType::RuleChain, id, name: deployment.def.name.clone(), customer_id: customer };
    let body = serde_json::to_value(&deployment.def).map_err(ApiError::internal)?;
    state.store.save_owner_linked(actor, &owner, &body, &deployment.references, &deployment.links).await?;
    let runtime = ChainRuntime::new(id, actor.tenant_id, state.store.clone(), deployment);
    state.chains.insert(id, Arc::new(runtime));
    tracing::info!(chain = %owner.name, %id, actor = %actor.username, "rule chain saved");
    Ok(state.store.owner_visible(actor, OwnerType::RuleChain, id).await?)
}

/// Every integration the chain's nodes send through exists in the tenant and the actor may
/// send through it (INTEGRATION:WRITE, as `POST /api/integrations/{id}/downlink` needs).
async fn check_links(state: &AppState, actor: &Actor, links: &[veil_store::OwnerLink]) -> ApiResult<()> {
    let mut problems = Vec::new();
    for link in links {
        match state.store.owner_for(actor, link.kind, link.target, veil_store::Operation::Write).await {
            Ok(_) => {}
            Err(veil_store::StoreError::NotFound { .. }) => problems.push(veil_core::Problem::new(
                link.pointer.clone(),
                format!("integration '{}' does not exist", link.target),
            )),
            Err(veil_store::StoreError::Forbidden(_)) => problems.push(veil_core::Problem::permission(
                link.pointer.clone(),
                format!(
                    "missing permission INTEGRATION:WRITE to send downlinks through integration '{}'",
                    link.target
                ),
            )),
            Err(e) => return Err(e.into()),
        }
    }
    if problems.is_empty() { Ok(()) } else { Err(ApiError::invalid_config(problems)) }
}

/// `POST /api/rule-chains`
pub(crate) async fn create(
    State(state): State<Arc<AppState>>,
    AuthActor(actor): AuthActor,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<impl IntoResponse> {
    actor.require_on(veil_store::Resource::RuleChain, veil_store::Operation::Create)?;
    let max = state.registry.limits().max_chains_per_tenant;
    let count = state.chains.iter().filter(|c| c.tenant() == actor.tenant_id).count();
    if count >= max {
        return Err(ApiError::limit_reached(veil_core::limit_error(
            "maxChainsPerTenant",
            max,
            format!("the tenant has {count} rule chains; delete one first"),
        )));
    }
    let doc = json_body(body)?;
    let record = save(&state, &actor, Uuid::new_v4(), &doc).await?;
    Ok((StatusCode::CREATED, Json(view(&record))))
}

/// `PUT /api/rule-chains/{id}`
pub(crate) async fn update(
    State(state): State<Arc<AppState>>,
    AuthActor(actor): AuthActor,
    Path(id): Path<String>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<Json<Value>> {
    let id = parse_id::<Uuid>(&id)?;
    state.store.owner_for(&actor, OwnerType::RuleChain, id, veil_store::Operation::Write).await?;
    let doc = json_body(body)?;
    Ok(Json(view(&save(&state, &actor, id, &doc).await?)))
}

/// `GET /api/rule-chains/{id}`
pub(crate) async fn get(
    State(state): State<Arc<AppState>>,
    AuthActor(actor): AuthActor,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(view(&state.store.owner(&actor, OwnerType::RuleChain, parse_id::<Uuid>(&id)?).await?)))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ListParams {
    page: Option<usize>,
    page_size: Option<usize>,
}

impl ListParams {
    /// The page asked for (0 when absent).
    pub(super) fn page(&self) -> usize {
        self.page.unwrap_or(0)
    }

    /// The page size asked for (20 when absent).
    pub(super) fn page_size(&self) -> usize {
        self.page_size.unwrap_or(20)
    }
}

/// `GET /api/rule-chains?page=&pageSize=`: ids, names and times.
pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    AuthActor(actor): AuthActor,
    params: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Page<Value>>> {
    let Query(p) = params.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let all = state.store.owners(&actor, OwnerType::RuleChain).await?;
    let items = all.iter().map(|r| {
        json!({"id": r.owner.id, "name": r.owner.name, "createdTime": r.created_time, "updatedTime": r.updated_time})
    });
    let page = Page::of(items, p.page(), p.page_size()).map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(Json(page))
}

/// `DELETE /api/rule-chains/{id}`: the chain and its references go together.
pub(crate) async fn delete(
    State(state): State<Arc<AppState>>,
    AuthActor(actor): AuthActor,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = parse_id::<Uuid>(&id)?;
    state.store.delete_owner(&actor, OwnerType::RuleChain, id).await?;
    state.chains.remove(&id);
    Ok(StatusCode::NO_CONTENT)
}

/// The running chain, if the actor may see it.
async fn runtime(
    state: &AppState,
    actor: &Actor,
    id: &str,
    op: veil_store::Operation,
) -> ApiResult<Arc<ChainRuntime>> {
    let id = parse_id::<Uuid>(id)?;
    state.store.owner_for(actor, OwnerType::RuleChain, id, op).await?;
    state.chains.get(&id).map(|r| Arc::clone(r.value())).ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "chain_not_running",
            format!("rule chain '{id}' is not running; see the server log"),
        )
    })
}

#[derive(Debug, Deserialize)]
pub(crate) struct MessageParams {
    wait: Option<bool>,
}

/// Refuses to show what a chain computed to an actor who may not use every secret it references:
/// its debug events and traces can hold values derived from them (masking hides exact forms only).
pub(super) fn check_may_watch(
    state: &AppState,
    actor: &Actor,
    runtime: &ChainRuntime,
    what: &str,
) -> ApiResult<()> {
    let may_use = actor.require(veil_store::Operation::Use).is_ok();
    // What the integrations feeding the chain computed from their converters' secrets too.
    let feeding = state.integrations.feeding(runtime.tenant(), runtime.id());
    let mut names: Vec<&str> = runtime.secret_names().iter().map(String::as_str).collect();
    names.extend(feeding.iter().flat_map(|i| i.uplink_secrets().iter().map(String::as_str)));
    names.sort_unstable();
    names.dedup();
    let missing: Vec<&str> =
        names.into_iter().filter(|name| !may_use || state.store.find(actor, name).is_none()).collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        "forbidden",
        format!(
            "{what} of rule chain '{}' can show values computed from its secrets: it needs SECRET:USE on '{}'",
            runtime.name(),
            missing.join("', '")
        ),
    ))
}

/// A message's data may nest at most `maxDataDepth` arrays and objects.
pub(super) fn check_depth(state: &AppState, field: &str, value: &Value) -> ApiResult<()> {
    let max = state.registry.limits().max_data_depth;
    if veil_core::deeper_than(value, max) {
        return Err(ApiError::bad_request(format!(
            "{field}: {}",
            veil_core::limit_error("maxDataDepth", max, "it nests arrays and objects deeper")
        )));
    }
    Ok(())
}

pub(super) fn message_from(doc: Value) -> ApiResult<Msg> {
    let Value::Object(mut fields) = doc else {
        return Err(ApiError::bad_request(
            "body: expected a JSON object {type?, originator?, metadata?, data}",
        ));
    };
    let text = |fields: &mut Map<String, Value>, key: &str, default: &str| match fields.remove(key) {
        None | Some(Value::Null) => Ok(default.to_owned()),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(ApiError::bad_request(format!("{key}: must be a string"))),
    };
    let msg_type = text(&mut fields, "type", "POST_TELEMETRY_REQUEST")?;
    let originator = text(&mut fields, "originator", "api")?;
    let mut msg = Msg::new(msg_type, originator, fields.remove("data").unwrap_or_else(|| json!({})));
    match fields.remove("metadata") {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            for (k, v) in map {
                let v = match v {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                msg.metadata.insert(k, v);
            }
        }
        Some(_) => return Err(ApiError::bad_request("metadata: must be an object of strings")),
    }
    if let Some(k) = fields.keys().next() {
        return Err(ApiError::bad_request(format!(
            "{k}: unknown field (expected type, originator, metadata, data)"
        )));
    }
    Ok(msg)
}

/// `POST /api/rule-chains/{id}/messages[?wait=true]`
pub(crate) async fn send_message(
    State(state): State<Arc<AppState>>,
    AuthActor(actor): AuthActor,
    Path(id): Path<String>,
    params: Result<Query<MessageParams>, axum::extract::rejection::QueryRejection>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<axum::response::Response> {
    let Query(params) = params.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let runtime = runtime(&state, &actor, &id, veil_store::Operation::Write).await?;
    let wait = params.wait.unwrap_or(false);
    if wait {
        check_may_watch(&state, &actor, &runtime, "the trace")?;
    }
    let msg = message_from(json_body(body)?)?;
    check_depth(&state, "data", &msg.data)?;
    let admission = runtime.admit().map_err(|busy| ApiError::busy(StatusCode::TOO_MANY_REQUESTS, &busy))?;
    let msg_id = msg.id;
    if wait {
        let trace = runtime.process(msg).await;
        drop(admission);
        Ok(Json(json!({ "msgId": msg_id, "trace": trace })).into_response())
    } else {
        tokio::spawn(async move {
            runtime.process(msg).await;
            drop(admission);
        });
        Ok((StatusCode::ACCEPTED, Json(json!({ "msgId": msg_id }))).into_response())
    }
}

/// `GET /api/rule-chains/{id}/events`: debug events of nodes in debug mode, redacted.
pub(crate) async fn events(
    State(state): State<Arc<AppState>>,
    AuthActor(actor): AuthActor,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<DebugEvent>>> {
    let runtime = runtime(&state, &actor, &id, veil_store::Operation::Read).await?;
    check_may_watch(&state, &actor, &runtime, "the debug events")?;
    Ok(Json(runtime.debug_events()))
}

/// Starts every stored chain (at boot). A chain that no longer deploys is logged and left stopped.
pub(crate) async fn start_all(state: &AppState) -> veil_store::Result<()> {
    for record in state.store.all_owners(OwnerType::RuleChain).await? {
        let actor = owner_actor(&record);
        match deploy(&state.registry, &state.store, &actor, &record.body) {
            Ok(deployment) => {
                let runtime =
                    ChainRuntime::new(record.owner.id, record.tenant_id, state.store.clone(), deployment);
                state.chains.insert(record.owner.id, Arc::new(runtime));
            }
            Err(problems) => {
                let problems: Vec<String> = problems.iter().map(ToString::to_string).collect();
                tracing::error!(chain = %record.owner.name, id = %record.owner.id, "rule chain not started: {}", problems.join("; "));
            }
        }
    }
    tracing::info!(chains = state.chains.len(), "rule chains started");
    Ok(())
}

/// The identity used to redeploy a stored configuration at boot: its tenant's administrator, or
/// for a customer's configuration a user of that customer, so secrets no longer shared with the
/// customer fail the redeploy.
pub(super) fn owner_actor(record: &OwnerRecord) -> Actor {
    let mut actor = Actor::tenant_admin(record.tenant_id, veil_store::UserId(Uuid::nil()), "system");
    if let Some(customer) = record.owner.customer_id {
        actor.customer_id = Some(customer);
        actor.permissions = veil_store::Role::CustomerUser.permissions();
    }
    actor
}

/// Forwards secret changes to the running chains and integrations of the secret's tenant.
pub(crate) fn forward_secret_changes(state: Arc<AppState>) {
    let mut events = state.store.subscribe();
    tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(event) => {
                    for chain in state.chains.iter().filter(|c| c.tenant() == event.tenant_id) {
                        chain.secret_changed(&event.name);
                    }
                    state.integrations.secret_changed(event.tenant_id, &event.name);
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "secret change events were dropped; refreshing every chain");
                    for chain in state.chains.iter() {
                        chain.all_secrets_changed();
                    }
                    state.integrations.all_secrets_changed();
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            }
        }
    });
}
