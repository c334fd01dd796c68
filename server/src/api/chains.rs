//! `/api/rule-chains`: chains are validated and compiled once when saved, stored with their
//! placeholders (never values) together with their secret references, and run in memory by the
//! host.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::http::header;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use uuid::Uuid;
use veil_core::{EventPage, MAX_EVENT_PAGE, MAX_EVENT_READERS_PER_TENANT, limit_error};
use veil_store::{Operation, OwnerRecord, OwnerType, Page, Resource, Store};

use super::request::{ListParams, json_body, message_from, parse_id};
use crate::auth::AuthActor;
use crate::error::{ApiError, ApiResult};
use crate::host::{Host, Sent};

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

/// `POST /api/rule-chains`
#[utoipa::path(
    post,
    path = "/api/rule-chains",
    tag = "rule-chains",
    operation_id = "chains_create",
    request_body(content = serde_json::Value, content_type = "application/json", description = "A rule chain: `{name, nodes: [{type, name, configuration, debugMode?}], connections: [{fromIndex, toIndex, type}], firstNodeIndex?}`"),
    responses((status = 201, description = "Saved and running", body = serde_json::Value), super::doc::Errors)
)]
pub(crate) async fn create(
    State(host): State<Arc<Host>>,
    AuthActor(actor): AuthActor,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<impl IntoResponse> {
    actor.require_on(Resource::RuleChain, Operation::Create)?;
    let doc = json_body(body)?;
    let record = host.save_chain(&actor, Uuid::new_v4(), &doc).await?;
    Ok((StatusCode::CREATED, Json(view(&record))))
}

/// `PUT /api/rule-chains/{id}`
#[utoipa::path(
    put,
    path = "/api/rule-chains/{id}",
    tag = "rule-chains",
    operation_id = "chains_update",
    params(("id" = String, Path, description = "The rule chain's id (a UUID)")),
    request_body(content = serde_json::Value, content_type = "application/json", description = "The whole rule chain, as for create"),
    responses((status = 200, description = "Saved and redeployed", body = serde_json::Value), super::doc::Errors)
)]
pub(crate) async fn update(
    State(host): State<Arc<Host>>,
    AuthActor(actor): AuthActor,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let id = parse_id::<Uuid>(&id)?;
    host.store().owner_for(&actor, OwnerType::RuleChain, id, Operation::Write).await?;
    let doc = json_body(body)?;
    Ok(Json(view(&host.save_chain(&actor, id, &doc).await?)))
}

/// `GET /api/rule-chains/{id}`
#[utoipa::path(
    get,
    path = "/api/rule-chains/{id}",
    tag = "rule-chains",
    operation_id = "chains_get",
    params(("id" = String, Path, description = "The rule chain's id (a UUID)")),
    responses((status = 200, description = "The rule chain (placeholders, never values)", body = serde_json::Value), super::doc::Errors)
)]
pub(crate) async fn get(
    State(store): State<Store>,
    AuthActor(actor): AuthActor,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(view(&store.owner(&actor, OwnerType::RuleChain, parse_id::<Uuid>(&id)?).await?)))
}

/// `GET /api/rule-chains?page=&pageSize=`: ids, names and times.
#[utoipa::path(
    get,
    path = "/api/rule-chains",
    tag = "rule-chains",
    operation_id = "chains_list",
    params(ListParams),
    responses((status = 200, description = "A page of rule chains: ids, names, times", body = serde_json::Value), super::doc::Errors)
)]
pub(crate) async fn list(
    State(store): State<Store>,
    AuthActor(actor): AuthActor,
    params: Result<Query<ListParams>, QueryRejection>,
) -> ApiResult<Json<Page<Value>>> {
    let Query(p) = params.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let all = store.owner_summaries(&actor, OwnerType::RuleChain).await?;
    let items = all.iter().map(|r| {
        json!({
            "id": r.owner.id,
            "name": r.owner.name,
            "customerId": r.owner.customer_id,
            "createdTime": r.created_time,
            "updatedTime": r.updated_time,
        })
    });
    let page = Page::of(items, p.page(), p.page_size()).map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(Json(page))
}

/// `DELETE /api/rule-chains/{id}`: the chain and its references go together; it stops.
#[utoipa::path(
    delete,
    path = "/api/rule-chains/{id}",
    tag = "rule-chains",
    operation_id = "chains_delete",
    params(("id" = String, Path, description = "The rule chain's id (a UUID)")),
    responses((status = 204, description = "Deleted and stopped"), super::doc::Errors)
)]
pub(crate) async fn delete(
    State(host): State<Arc<Host>>,
    AuthActor(actor): AuthActor,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    host.remove_chain(&actor, parse_id::<Uuid>(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `?keepUnsupported=` of an import.
#[derive(utoipa::IntoParams, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ImportParams {
    keep_unsupported: Option<bool>,
}

/// `POST /api/rule-chains/import`: a ThingsBoard rule chain export converted into a Veil rule
/// chain, answered with the report of what became of each node; nothing is stored (the editor,
/// or `veil chain import --save`, saves it).
#[utoipa::path(
    post,
    path = "/api/rule-chains/import",
    tag = "rule-chains",
    operation_id = "chains_import",
    params(ImportParams),
    request_body(content = serde_json::Value, content_type = "application/json", description = "A ThingsBoard rule chain export"),
    responses((status = 200, description = "The Veil rule chain and what became of each node (nothing is stored)", body = serde_json::Value), super::doc::Errors)
)]
pub(crate) async fn import(
    State(host): State<Arc<Host>>,
    AuthActor(actor): AuthActor,
    params: Result<Query<ImportParams>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    actor.require_on(Resource::RuleChain, Operation::Create)?;
    let Query(params) = params.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let doc = json_body(body)?;
    let imported = crate::thingsboard::import(&host, &actor, &doc, params.keep_unsupported.unwrap_or(false))
        .map_err(ApiError::invalid_config)?;
    Ok(Json(json!({"chain": imported.chain, "report": imported.report})))
}

/// `GET /api/rule-chains/{id}/export`: the chain as a ThingsBoard export.
#[utoipa::path(
    get,
    path = "/api/rule-chains/{id}/export",
    tag = "rule-chains",
    operation_id = "chains_export",
    params(("id" = String, Path, description = "The rule chain's id (a UUID)")),
    responses((status = 200, description = "The chain as a ThingsBoard export (placeholders, never values)", body = serde_json::Value), super::doc::Errors)
)]
pub(crate) async fn export(
    State(store): State<Store>,
    AuthActor(actor): AuthActor,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let record = store.owner(&actor, OwnerType::RuleChain, parse_id::<Uuid>(&id)?).await?;
    Ok(Json(crate::thingsboard::export(&store, &actor, &record)))
}

#[derive(utoipa::IntoParams, Debug, Deserialize)]
#[into_params(parameter_in = Query)]
pub(crate) struct MessageParams {
    wait: Option<bool>,
    /// With `wait`: each step of the trace carries its message in and out (the editor's test).
    messages: Option<bool>,
}

/// `POST /api/rule-chains/{id}/messages[?wait=true[&messages=true]]`
#[utoipa::path(
    post,
    path = "/api/rule-chains/{id}/messages",
    tag = "rule-chains",
    operation_id = "chains_send_message",
    params(("id" = String, Path, description = "The rule chain's id (a UUID)"), MessageParams),
    request_body(content = serde_json::Value, content_type = "application/json", description = "`{type?, originator?, metadata?, data}`"),
    responses((status = 200, description = "With `wait=true`: the message ran; the trace of every step", body = serde_json::Value), (status = 202, description = "Admitted: the message runs on", body = serde_json::Value), super::doc::Errors)
)]
pub(crate) async fn send_message(
    State(host): State<Arc<Host>>,
    AuthActor(actor): AuthActor,
    Path(id): Path<String>,
    params: Result<Query<MessageParams>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<axum::response::Response> {
    let Query(params) = params.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let id = parse_id::<Uuid>(&id)?;
    let wait = params.wait.unwrap_or(false);
    let messages = params.messages.unwrap_or(false);
    if messages && !wait {
        return Err(ApiError::bad_request("messages: only with wait=true (the trace carries the messages)"));
    }
    // Who may send (and watch) is checked before the body is parsed.
    let sender = host.sender(&actor, id, wait, messages).await?;
    let msg = message_from(json_body(body)?)?;
    match sender.send(msg).await? {
        Sent::Traced { msg_id, trace } => {
            Ok(Json(json!({ "msgId": msg_id, "trace": trace })).into_response())
        }
        Sent::Accepted { msg_id } => {
            Ok((StatusCode::ACCEPTED, Json(json!({ "msgId": msg_id }))).into_response())
        }
    }
}

/// `?limit=&before=` of `GET /api/rule-chains/{id}/events`.
#[derive(utoipa::IntoParams, Debug, Deserialize)]
#[into_params(parameter_in = Query)]
pub(crate) struct EventParams {
    limit: Option<usize>,
    before: Option<u64>,
}

/// Events per page when `limit` is not given.
const DEFAULT_EVENT_PAGE: usize = 100;

/// `GET /api/rule-chains/{id}/events?limit=&before=`: debug events of nodes in debug mode,
/// redacted, oldest first: the newest `limit` (default 100, at most 1,000, and at most 4 MiB)
/// whose `seq` is below `before`. The page is streamed from the events the chain keeps (shared,
/// not copied); a tenant's pages being read at once are bounded (429 beyond).
#[utoipa::path(
    get,
    path = "/api/rule-chains/{id}/events",
    tag = "rule-chains",
    operation_id = "chains_events",
    params(("id" = String, Path, description = "The rule chain's id (a UUID)"), EventParams),
    responses((status = 200, description = "Debug events of nodes in debug mode, redacted, oldest first", body = serde_json::Value), super::doc::Errors)
)]
pub(crate) async fn events(
    State(host): State<Arc<Host>>,
    AuthActor(actor): AuthActor,
    Path(id): Path<String>,
    params: Result<Query<EventParams>, QueryRejection>,
) -> ApiResult<axum::response::Response> {
    let Query(params) = params.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let runtime = host.running_chain(&actor, parse_id::<Uuid>(&id)?, Operation::Read).await?;
    host.check_may_watch(&actor, &runtime, "the debug events")?;
    let limit = params.limit.unwrap_or(DEFAULT_EVENT_PAGE);
    if limit == 0 || limit > MAX_EVENT_PAGE {
        return Err(ApiError::bad_request(format!("limit: must be 1 to {MAX_EVENT_PAGE}")));
    }
    let page = runtime.debug_event_page(limit, params.before).ok_or_else(|| {
        let message = limit_error(
            "maxEventReadersPerTenant",
            MAX_EVENT_READERS_PER_TENANT,
            "too many debug-event pages of this tenant are being read; retry later",
        );
        ApiError::too_many(message, 1)
    })?;
    Ok(([(header::CONTENT_TYPE, "application/json")], Body::from_stream(event_chunks(page))).into_response())
}

/// An event's JSON text as a body chunk, shared with the chain's log.
struct EventJson(Arc<str>);

impl AsRef<[u8]> for EventJson {
    fn as_ref(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

/// `[e0,e1,…]` chunk by chunk: the page (and its reader place) lives until the last is sent.
fn event_chunks(
    page: EventPage,
) -> impl futures_util::Stream<Item = Result<Bytes, std::convert::Infallible>> {
    let n = page.events.len();
    let parts = if n == 0 { 1 } else { 2 * n + 1 };
    futures_util::stream::iter((0..parts).map(move |k| {
        Ok(match k {
            _ if n == 0 => Bytes::from_static(b"[]"),
            0 => Bytes::from_static(b"["),
            k if k % 2 == 1 => Bytes::from_owner(EventJson(Arc::clone(&page.events[k / 2]))),
            k if k == 2 * n => Bytes::from_static(b"]"),
            _ => Bytes::from_static(b","),
        })
    }))
}
