//! `/api/secrets`: metadata in, metadata out; the value goes in once and never comes back.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Path, Query, Request, State};
use std::sync::LazyLock;

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde_json::{Map, Value};
use veil_store::{
    CustomerId, FieldProblem, ListQuery, NewSecret, Page, SecretId, SecretInfo, SecretType, SecretUpdate,
    SecretValue, SecretVersion, Store, Verification,
};

use super::request::{body_error, parse_id};
use crate::auth::{AuthActor, LoginLimiter};
use crate::error::{ApiError, ApiResult};

#[derive(utoipa::IntoParams, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub(crate) struct ListParams {
    page: Option<usize>,
    page_size: Option<usize>,
    text_search: Option<String>,
    unused_for_days: Option<u32>,
    expiring_within_days: Option<u32>,
}

/// `?strict=true`: a TEXT value that looks pasted by mistake (surrounding whitespace or quotes, a
/// trailing newline, under 8 characters) is refused instead of stored with `warnings`. Read from
/// the query as the body is parsed; declared here for the API's description.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub(crate) struct StrictParam {
    /// Refuse a value that looks pasted by mistake.
    strict: Option<bool>,
}

/// A secret as listed: its metadata and when a configuration last used it.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Listed {
    #[serde(flatten)]
    info: SecretInfo,
    last_used_time: Option<i64>,
}

/// `GET /api/secrets?page=&pageSize=&textSearch=&unusedForDays=&expiringWithinDays=`:
/// `unusedForDays=N` keeps the secrets no configuration used in the last N days (or ever);
/// `expiringWithinDays=N` those that expire within N days (or have expired): by `expiresAt`, else
/// their certificate's `notAfter`.
#[utoipa::path(
    get,
    path = "/api/secrets",
    tag = "secrets",
    operation_id = "secrets_list",
    params(ListParams),
    responses((status = 200, description = "A page of secrets (metadata and lastUsedTime; never a value)", body = serde_json::Value), super::doc::Errors)
)]
pub(crate) async fn list(
    State(store): State<Store>,
    AuthActor(actor): AuthActor,
    params: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Page<Listed>>> {
    let Query(p) = params.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let query = ListQuery {
        page: p.page.unwrap_or(0),
        page_size: p.page_size.unwrap_or(20),
        text_search: p.text_search,
    };
    let now = veil_store::now_ms();
    let since = p.unused_for_days.map(|days| now - i64::from(days) * 86_400_000);
    let until = p.expiring_within_days.map(|days| now + i64::from(days) * 86_400_000);
    // Every secret's last use only when the filter needs them; else the page's.
    let mut used = match since {
        Some(_) => store.last_used(&actor).await?,
        None => Default::default(),
    };
    let page = if since.is_none() && until.is_none() {
        store.list(&actor, &query)?
    } else {
        store.list_where(&actor, &query, |s| {
            let unused = since.is_none_or(|since| used.get(&s.id).is_none_or(|t| *t < since));
            let expiring = until.is_none_or(|until| s.expiry().is_some_and(|at| at <= until));
            unused && expiring
        })?
    };
    if since.is_none() {
        let ids: Vec<SecretId> = page.data.iter().map(|s| s.id).collect();
        used = store.last_used_among(&actor, &ids).await?;
    }
    let data = page
        .data
        .into_iter()
        .map(|info| Listed { last_used_time: used.get(&info.id).copied(), info })
        .collect();
    Ok(Json(Page {
        data,
        total_elements: page.total_elements,
        total_pages: page.total_pages,
        has_next: page.has_next,
    }))
}

/// `GET /api/secrets/{id}`, with `ETag: "<version>"` for check-and-set, and `lastUsedTime`.
#[utoipa::path(
    get,
    path = "/api/secrets/{id}",
    tag = "secrets",
    operation_id = "secrets_get",
    params(("id" = String, Path, description = "The secret's id (a UUID)")),
    responses((status = 200, description = "The secret's metadata, with `ETag: \"<version>\"`", body = serde_json::Value), super::doc::Errors)
)]
pub(crate) async fn get(
    State(store): State<Store>,
    AuthActor(actor): AuthActor,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let info = store.get(&actor, parse_id::<SecretId>(&id)?)?;
    let last_used_time = store.last_used_of(&actor, info.id).await?;
    Ok(([etag(&info)], Json(Listed { info, last_used_time })))
}

/// The `ETag` of a secret: its version.
fn etag(info: &SecretInfo) -> (header::HeaderName, String) {
    (header::ETAG, format!("\"{}\"", info.version))
}

/// A secret's metadata with its version as the entity tag.
fn with_etag(info: SecretInfo) -> axum::response::Response {
    with_warnings(info, Vec::new())
}

/// A secret's metadata with its version as the entity tag, and `warnings` about the value sent
/// (when there are any).
fn with_warnings(info: SecretInfo, warnings: Vec<FieldProblem>) -> axum::response::Response {
    let etag = etag(&info);
    let mut body = serde_json::to_value(&info).unwrap_or_default();
    if !warnings.is_empty() {
        body["warnings"] = serde_json::json!(warnings);
    }
    ([etag], Json(body)).into_response()
}

/// What looks wrong with a new value: refused (400 naming each problem) when the request asks
/// for `?strict=true` or the tenant refuses suspicious values, otherwise returned as warnings.
fn value_hygiene(
    store: &Store,
    actor: &veil_store::Actor,
    query: Option<&str>,
    kind: SecretType,
    value: Option<&SecretValue>,
) -> ApiResult<Vec<FieldProblem>> {
    let strict = match query.into_iter().flat_map(|q| q.split('&')).find_map(|p| p.strip_prefix("strict=")) {
        None => store.tenant_settings(actor.tenant_id).strict_values,
        Some("true") => true,
        Some("false") => store.tenant_settings(actor.tenant_id).strict_values,
        Some(_) => return Err(ApiError::bad_request("strict: expected true or false")),
    };
    let warnings = value.map(|v| veil_store::value_warnings(kind, v)).unwrap_or_default();
    if strict && !warnings.is_empty() {
        return Err(veil_store::StoreError::Invalid(warnings).into());
    }
    Ok(warnings)
}

/// The version an `If-Match` header names (`"7"`, `7` or `W/"7"`): check-and-set. `*` or no
/// header: none.
fn if_match(headers: &HeaderMap) -> ApiResult<Option<i64>> {
    let Some(raw) = headers.get(header::IF_MATCH) else { return Ok(None) };
    let bad = || ApiError::bad_request("If-Match: expected the secret's version as its ETag, e.g. \"3\"");
    let text = raw.to_str().map_err(|_| bad())?.trim();
    if text == "*" {
        return Ok(None);
    }
    let text = text.strip_prefix("W/").unwrap_or(text);
    let text = text.strip_prefix('"').and_then(|t| t.strip_suffix('"')).unwrap_or(text);
    text.parse::<i64>().map(Some).map_err(|_| bad())
}

#[derive(utoipa::IntoParams, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub(crate) struct PageParams {
    page: Option<usize>,
    page_size: Option<usize>,
}

/// `GET /api/secrets/{id}/versions?page=&pageSize=`: newest first, never a value.
#[utoipa::path(
    get,
    path = "/api/secrets/{id}/versions",
    tag = "secrets",
    operation_id = "secrets_versions",
    params(("id" = String, Path, description = "The secret's id (a UUID)"), PageParams),
    responses((status = 200, description = "A page of versions, newest first (never a value)", body = serde_json::Value), super::doc::Errors)
)]
pub(crate) async fn versions(
    State(store): State<Store>,
    AuthActor(actor): AuthActor,
    Path(id): Path<String>,
    params: Result<Query<PageParams>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Page<SecretVersion>>> {
    let Query(p) = params.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let id = parse_id::<SecretId>(&id)?;
    Ok(Json(store.versions(&actor, id, p.page.unwrap_or(0), p.page_size.unwrap_or(20)).await?))
}

/// Guesses of a secret's value through `verify`, slowed down like password guesses (per user
/// and secret).
static VERIFY_GUESSES: LazyLock<LoginLimiter> = LazyLock::new(LoginLimiter::default);

/// `POST /api/secrets/{id}/verify {"value"}` (base64 for a FILE secret): whether a version had
/// this value, compared by keyed fingerprint. SECRET:WRITE; audited as VERIFY.
#[utoipa::path(
    post,
    path = "/api/secrets/{id}/verify",
    tag = "secrets",
    operation_id = "secrets_verify",
    params(("id" = String, Path, description = "The secret's id (a UUID)")),
    request_body(content = serde_json::Value, content_type = "application/json", description = "`{value}` (base64 for a FILE secret)"),
    responses((status = 200, description = "Whether a kept version had this value", body = serde_json::Value), super::doc::Errors)
)]
pub(crate) async fn verify(
    State(store): State<Store>,
    AuthActor(actor): AuthActor,
    Path(id): Path<String>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<Json<Verification>> {
    let id = parse_id::<SecretId>(&id)?;
    let mut fields = json_object(&body.map_err(body_error)?)?;
    let current = store.get(&actor, id)?;
    let candidate = take_value(&mut fields, current.kind)?
        .ok_or_else(|| ApiError::invalid_secret("value", "is required"))?;
    reject_unknown(&fields, "value", &[])?;
    let key = format!("verify:{}:{}", actor.user_id, id);
    VERIFY_GUESSES.attempt(std::slice::from_ref(&key)).map_err(|wait| {
        ApiError::too_many(format!("too many checks of this secret's value; try again in {wait} s"), wait)
    })?;
    let verification = store.verify(&actor, id, candidate).await?;
    if verification.matches {
        VERIFY_GUESSES.succeeded(&key, "");
    }
    Ok(Json(verification))
}

/// `GET /api/secrets/{id}/impact` (SECRET:WRITE): every configuration and field a change of the
/// value would reach, which of them reconnect, how often each used it in the last hour, and the
/// customers it is shared with.
#[utoipa::path(
    get,
    path = "/api/secrets/{id}/impact",
    tag = "secrets",
    operation_id = "secrets_impact",
    params(("id" = String, Path, description = "The secret's id (a UUID)")),
    responses((status = 200, description = "Every configuration and field a change of the value would reach", body = serde_json::Value), super::doc::Errors)
)]
pub(crate) async fn impact(
    State(host): State<std::sync::Arc<crate::host::Host>>,
    AuthActor(actor): AuthActor,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(host.impact(&actor, parse_id::<SecretId>(&id)?).await?))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct RollbackRequest {
    version: i64,
}

/// `POST /api/secrets/{id}/rollback {"version": N}` (`If-Match` optional): a new current version
/// with version N's value.
#[utoipa::path(
    post,
    path = "/api/secrets/{id}/rollback",
    tag = "secrets",
    operation_id = "secrets_rollback",
    params(("id" = String, Path, description = "The secret's id (a UUID)"), ("If-Match" = Option<String>, Header, description = "Check-and-set: the current version")),
    request_body(content = serde_json::Value, content_type = "application/json", description = "`{version}`: the kept version whose value becomes a new current version"),
    responses((status = 200, description = "Rolled back: the secret's metadata", body = serde_json::Value), super::doc::Errors)
)]
pub(crate) async fn rollback(
    State(store): State<Store>,
    AuthActor(actor): AuthActor,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<impl IntoResponse> {
    let id = parse_id::<SecretId>(&id)?;
    let expected = if_match(&headers)?;
    let body = body.map_err(body_error)?;
    let req: RollbackRequest = serde_json::from_slice(&body)
        .map_err(|_| ApiError::bad_request("body: expected {\"version\": <the version to bring back>}"))?;
    Ok(with_etag(store.rollback(&actor, id, req.version, expected).await?))
}

/// `GET /api/secrets/{id}/usages`
#[utoipa::path(
    get,
    path = "/api/secrets/{id}/usages",
    tag = "secrets",
    operation_id = "secrets_usages",
    params(("id" = String, Path, description = "The secret's id (a UUID)")),
    responses((status = 200, description = "The rule chains and integrations that reference it, with their nodes", body = serde_json::Value), super::doc::Errors)
)]
pub(crate) async fn usages(
    State(store): State<Store>,
    AuthActor(actor): AuthActor,
    Path(id): Path<String>,
) -> ApiResult<Json<veil_store::Usages>> {
    Ok(Json(store.usages(&actor, parse_id::<SecretId>(&id)?).await?))
}

/// `DELETE /api/secrets/{id}`
#[utoipa::path(
    delete,
    path = "/api/secrets/{id}",
    tag = "secrets",
    operation_id = "secrets_delete",
    params(("id" = String, Path, description = "The secret's id (a UUID)")),
    responses((status = 204, description = "Deleted"), super::doc::Errors)
)]
pub(crate) async fn delete(
    State(store): State<Store>,
    AuthActor(actor): AuthActor,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    store.delete(&actor, parse_id::<SecretId>(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/secrets`: JSON (`value` base64 for FILE) or a multipart form with a `file` part.
#[utoipa::path(
    post,
    path = "/api/secrets",
    tag = "secrets",
    operation_id = "secrets_create",
    params(StrictParam),
    request_body(description = "`{name, type: TEXT|FILE, value, description?, fileName?, allowedDestinations?, maxVersions?, expires?}` (a FILE value base64), or a multipart form with a `file` part", content((serde_json::Value = "application/json"), (serde_json::Value = "multipart/form-data"))),
    responses((status = 201, description = "Created: the secret's metadata", body = serde_json::Value), super::doc::Errors)
)]
pub(crate) async fn create(
    State(store): State<Store>,
    AuthActor(actor): AuthActor,
    req: Request,
) -> ApiResult<impl IntoResponse> {
    let query = req.uri().query().map(str::to_owned);
    let is_multipart = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("multipart/form-data"));
    let (new, source) = if is_multipart {
        let multipart =
            Multipart::from_request(req, &()).await.map_err(|e| ApiError::bad_request(e.body_text()))?;
        (read_multipart(multipart).await?, None)
    } else {
        let body = Bytes::from_request(req, &()).await.map_err(body_error)?;
        read_json_create(json_object(&body)?)?
    };
    if let Some(source) = source {
        let info = store.create_linked(&actor, new, source).await?;
        return Ok((StatusCode::CREATED, with_warnings(info, Vec::new())));
    }
    let warnings = value_hygiene(&store, &actor, query.as_deref(), new.kind, Some(&new.value))?;
    let info = store.create(&actor, new).await?;
    Ok((StatusCode::CREATED, with_warnings(info, warnings)))
}

/// `PATCH /api/secrets/{id}` with `{value?, description?, fileName?, allowedDestinations?}`.
#[utoipa::path(
    patch,
    path = "/api/secrets/{id}",
    tag = "secrets",
    operation_id = "secrets_update",
    params(("id" = String, Path, description = "The secret's id (a UUID)"), StrictParam, ("If-Match" = Option<String>, Header, description = "Check-and-set: the version the change is made on (`\"3\"`)")),
    request_body(content = serde_json::Value, content_type = "application/json", description = "`{value?, description?, fileName?, allowedDestinations?, maxVersions?, expires?}`, or `{pendingValue, fileName?}` to stage a rotation"),
    responses((status = 200, description = "Changed: the secret's metadata", body = serde_json::Value), (status = 202, description = "A pending value was staged and is being probed", body = serde_json::Value), super::doc::Errors)
)]
pub(crate) async fn update(
    State(store): State<Store>,
    State(host): State<std::sync::Arc<crate::host::Host>>,
    AuthActor(actor): AuthActor,
    Path(id): Path<String>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<impl IntoResponse> {
    let id = parse_id::<SecretId>(&id)?;
    let expected_version = if_match(&headers)?;
    let mut fields = json_object(&body.map_err(body_error)?)?;
    // Decoding a FILE value needs the type, which the caller may not send.
    let current = store.get(&actor, id)?;
    if fields.contains_key("pendingValue") {
        return stage(&store, &host, &actor, &current, uri.query(), fields, expected_version).await;
    }
    let source = take_source(&mut fields)?;
    let update = SecretUpdate {
        name: take_string(&mut fields, "name")?,
        kind: take_string(&mut fields, "type")?,
        description: take_string(&mut fields, "description")?,
        file_name: take_string(&mut fields, "fileName")?,
        value: take_value(&mut fields, current.kind)?,
        allowed_destinations: take_strings(&mut fields, "allowedDestinations")?,
        max_versions: take_int(&mut fields, "maxVersions")?,
        expires_at: match fields.remove("expiresAt") {
            None => None,
            Some(Value::Null) => Some(None),
            Some(v) => Some(Some(expires_at(v)?)),
        },
        expected_version,
    };
    reject_unknown(
        &fields,
        "value, description, fileName, allowedDestinations, maxVersions, expiresAt, source (linked secrets)",
        READ_ONLY_FIELDS,
    )?;
    let warnings = value_hygiene(&store, &actor, uri.query(), current.kind, update.value.as_ref())?;
    if let Some(list) = &update.allowed_destinations {
        host.check_destinations_change(&actor, id, list).await?;
    }
    let Some(source) = source else {
        return Ok(with_warnings(store.update(&actor, id, update).await?, warnings));
    };
    let more = update.value.is_some()
        || update.description.is_some()
        || update.file_name.is_some()
        || update.allowed_destinations.is_some()
        || update.max_versions.is_some()
        || update.expires_at.is_some();
    if more {
        store.update(&actor, id, update).await?;
    }
    Ok(with_warnings(store.relink(&actor, id, source).await?, warnings))
}

/// `PATCH /api/secrets/{id}` with `{"pendingValue", "fileName"?}`: stages a pending value (202)
/// and starts probing every consumer with it; `GET …/rotation` shows how they answer.
async fn stage(
    store: &Store,
    host: &std::sync::Arc<crate::host::Host>,
    actor: &veil_store::Actor,
    current: &SecretInfo,
    query: Option<&str>,
    mut fields: Map<String, Value>,
    expected_version: Option<i64>,
) -> ApiResult<axum::response::Response> {
    let value = take_value_of(&mut fields, "pendingValue", current.kind)?
        .ok_or_else(|| ApiError::invalid_secret("pendingValue", "must be a string"))?;
    let file_name = take_string(&mut fields, "fileName")?;
    reject_unknown(&fields, "pendingValue alone, with fileName for a FILE secret", READ_ONLY_FIELDS)?;
    let warnings = value_hygiene(store, actor, query, current.kind, Some(&value))?;
    let pending = host.stage_rotation(actor, current.id, value, file_name, expected_version).await?;
    let mut body = serde_json::json!({
        "pending": pending,
        "rotation": format!("/api/secrets/{}/rotation", current.id),
    });
    if !warnings.is_empty() {
        body["warnings"] = serde_json::json!(warnings);
    }
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

/// `GET /api/secrets/{id}/rotation`: the pending version and one probe row per consumer.
#[utoipa::path(
    get,
    path = "/api/secrets/{id}/rotation",
    tag = "secrets",
    operation_id = "secrets_rotation",
    params(("id" = String, Path, description = "The secret's id (a UUID)")),
    responses((status = 200, description = "The pending version and one probe row per consumer", body = serde_json::Value), super::doc::Errors)
)]
pub(crate) async fn rotation(
    State(host): State<std::sync::Arc<crate::host::Host>>,
    AuthActor(actor): AuthActor,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(host.rotation(&actor, parse_id::<SecretId>(&id)?).await?))
}

/// `DELETE /api/secrets/{id}/rotation`: drops the pending value.
#[utoipa::path(
    delete,
    path = "/api/secrets/{id}/rotation",
    tag = "secrets",
    operation_id = "secrets_drop_rotation",
    params(("id" = String, Path, description = "The secret's id (a UUID)")),
    responses((status = 204, description = "The pending value was dropped"), super::doc::Errors)
)]
pub(crate) async fn drop_rotation(
    State(store): State<Store>,
    AuthActor(actor): AuthActor,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    store.drop_pending(&actor, parse_id::<SecretId>(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/secrets/{id}/rotation/probe`: tests the pending value on every consumer again.
#[utoipa::path(
    post,
    path = "/api/secrets/{id}/rotation/probe",
    tag = "secrets",
    operation_id = "secrets_probe_again",
    params(("id" = String, Path, description = "The secret's id (a UUID)")),
    responses((status = 202, description = "The pending value is being tested on every consumer again"), super::doc::Errors)
)]
pub(crate) async fn probe_again(
    State(host): State<std::sync::Arc<crate::host::Host>>,
    AuthActor(actor): AuthActor,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    host.probe_again(&actor, parse_id::<SecretId>(&id)?).await?;
    Ok(StatusCode::ACCEPTED)
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct PromoteRequest {
    #[serde(default)]
    force: bool,
}

/// `POST /api/secrets/{id}/rotation/promote` (`{"force": true}` optional, `If-Match` optional):
/// the pending value becomes the current version on every instance; refused (409
/// `probes_failed`) while a consumer's probe failed or runs, unless forced.
#[utoipa::path(
    post,
    path = "/api/secrets/{id}/rotation/promote",
    tag = "secrets",
    operation_id = "secrets_promote",
    params(("id" = String, Path, description = "The secret's id (a UUID)"), ("If-Match" = Option<String>, Header, description = "Check-and-set: the current version")),
    request_body(content = Option<serde_json::Value>, content_type = "application/json", description = "`{force: true}` promotes even after a failed probe"),
    responses((status = 200, description = "The pending value is current", body = serde_json::Value), super::doc::Errors)
)]
pub(crate) async fn promote(
    State(host): State<std::sync::Arc<crate::host::Host>>,
    AuthActor(actor): AuthActor,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<impl IntoResponse> {
    let id = parse_id::<SecretId>(&id)?;
    let expected = if_match(&headers)?;
    let body = body.map_err(body_error)?;
    let req: PromoteRequest = if body.iter().all(u8::is_ascii_whitespace) {
        PromoteRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|_| ApiError::bad_request("body: expected {\"force\": true|false} or nothing"))?
    };
    Ok(with_etag(host.promote(&actor, id, req.force, expected).await?))
}

/// An `expiresAt`: milliseconds since the epoch.
fn expires_at(value: Value) -> ApiResult<i64> {
    value
        .as_i64()
        .ok_or_else(|| ApiError::invalid_secret("expiresAt", "must be a time in milliseconds since 1970"))
}

/// Takes an optional integer field; the error names the field.
fn take_int(fields: &mut Map<String, Value>, key: &str) -> ApiResult<Option<i64>> {
    match fields.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) if n.is_i64() => Ok(n.as_i64()),
        Some(_) => Err(ApiError::invalid_secret(key, "must be a whole number")),
    }
}

/// Parses a JSON object. serde_json's syntax errors name a position, never the content.
fn json_object(body: &[u8]) -> ApiResult<Map<String, Value>> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::bad_request("body: expected a JSON object")),
        Err(e) => Err(ApiError::bad_request(format!("body: invalid JSON ({e})"))),
    }
}

/// Takes an optional string field; the error names the field, never echoes its content.
fn take_string(fields: &mut Map<String, Value>, key: &str) -> ApiResult<Option<String>> {
    match fields.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ApiError::invalid_secret(key, "must be a string")),
    }
}

/// Takes an optional array of strings; the error names the field (and the entry).
fn take_strings(fields: &mut Map<String, Value>, key: &str) -> ApiResult<Option<Vec<String>>> {
    match fields.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .into_iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) => Ok(s),
                _ => Err(ApiError::invalid_secret(&format!("{key}/{i}"), "must be a string")),
            })
            .collect::<ApiResult<Vec<_>>>()
            .map(Some),
        Some(_) => Err(ApiError::invalid_secret(key, "must be an array of host patterns")),
    }
}

fn take_value(fields: &mut Map<String, Value>, kind: SecretType) -> ApiResult<Option<SecretValue>> {
    take_value_of(fields, "value", kind)
}

/// A value from the field `key`: text for TEXT, base64 for FILE.
fn take_value_of(
    fields: &mut Map<String, Value>,
    key: &str,
    kind: SecretType,
) -> ApiResult<Option<SecretValue>> {
    let Some(raw) = take_string(fields, key)? else {
        return Ok(None);
    };
    let raw = SecretValue::from(raw);
    match kind {
        SecretType::Text => Ok(Some(raw)),
        SecretType::File => {
            let text = raw.expose_text().unwrap_or_default();
            STANDARD
                .decode(text.trim())
                .map(|bytes| Some(SecretValue::new(bytes)))
                .map_err(|_| ApiError::invalid_secret(key, "must be base64 for a FILE secret"))
        }
    }
}

fn parse_type(raw: Option<String>) -> ApiResult<Option<SecretType>> {
    raw.map(|t| SecretType::parse(&t).ok_or_else(|| ApiError::invalid_secret("type", "must be TEXT or FILE")))
        .transpose()
}

/// Refuses fields the call does not know, so a typo (`fileNme`) is not silently lost. `ignored`
/// are read-only fields a client may send back from a SecretInfo.
fn reject_unknown(fields: &Map<String, Value>, expected: &str, ignored: &[&str]) -> ApiResult<()> {
    match fields.keys().find(|k| !ignored.contains(&k.as_str())) {
        Some(k) => Err(ApiError::invalid_secret(k, format!("unknown field (expected {expected})"))),
        None => Ok(()),
    }
}

const READ_ONLY_FIELDS: &[&str] =
    &["id", "tenantId", "version", "createdTime", "updatedTime", "sharedWith", "status"];

/// A linked secret's `source`, read as the store's type: a problem names `source` and the field.
fn take_source(fields: &mut Map<String, Value>) -> ApiResult<Option<veil_store::Source>> {
    match fields.remove("source") {
        None | Some(Value::Null) => Ok(None),
        Some(value) => serde_json::from_value(value).map(Some).map_err(|e| {
            ApiError::invalid_secret(
                "source",
                format!(
                    "{e}; expected {{\"provider\": NAME, \"key\": KEY, \"field\"?, \"version\"?, \"stage\"?}}"
                ),
            )
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_match_takes_an_etag_in_any_usual_spelling() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::IF_MATCH, v.parse().unwrap());
            if_match(&h)
        };
        assert_eq!(if_match(&HeaderMap::new()).unwrap(), None);
        assert_eq!(with("\"7\"").unwrap(), Some(7));
        assert_eq!(with("W/\"7\"").unwrap(), Some(7));
        assert_eq!(with("7").unwrap(), Some(7));
        assert_eq!(with("*").unwrap(), None);
        assert!(with("\"seven\"").is_err());
    }
}

fn read_json_create(mut fields: Map<String, Value>) -> ApiResult<(NewSecret, Option<veil_store::Source>)> {
    let kind = parse_type(take_string(&mut fields, "type")?)?
        .ok_or_else(|| ApiError::invalid_secret("type", "is required (TEXT or FILE)"))?;
    let name =
        take_string(&mut fields, "name")?.ok_or_else(|| ApiError::invalid_secret("name", "is required"))?;
    let source = take_source(&mut fields)?;
    let value = match (&source, take_value(&mut fields, kind)?) {
        (None, Some(value)) => value,
        (None, None) => {
            return Err(ApiError::invalid_secret("value", "is required (or a source, for a linked secret)"));
        }
        (Some(_), None) => SecretValue::new(Vec::new()),
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid_secret(
                "value",
                "a linked secret has a source and no value: its value stays in the provider",
            ));
        }
    };
    let description = take_string(&mut fields, "description")?;
    let file_name = take_string(&mut fields, "fileName")?;
    let allowed_destinations = take_strings(&mut fields, "allowedDestinations")?.unwrap_or_default();
    let max_versions = take_int(&mut fields, "maxVersions")?;
    let expires_at = fields.remove("expiresAt").filter(|v| !v.is_null()).map(expires_at).transpose()?;
    reject_unknown(
        &fields,
        "name, type, description, value, source, fileName, allowedDestinations, maxVersions, expiresAt",
        &[],
    )?;
    let new = NewSecret {
        name,
        kind,
        description,
        value,
        file_name,
        allowed_destinations,
        max_versions,
        expires_at,
    };
    Ok((new, source))
}

/// A text part of a form: UTF-8 or refused, naming the field. (axum's `Field::text` guesses the
/// charset from a byte order mark, which turns bytes that are not UTF-8 into other text.)
fn utf8_text(field: &str, bytes: Bytes) -> ApiResult<String> {
    String::from_utf8(bytes.to_vec()).map_err(|_| ApiError::invalid_secret(field, "must be UTF-8 text"))
}

async fn read_multipart(mut form: Multipart) -> ApiResult<NewSecret> {
    let (mut name, mut kind, mut description, mut file_name, mut value) =
        (None, None, None, None, None::<SecretValue>);
    let mut allowed_destinations = Vec::new();
    let mut max_versions = None;
    let mut expires = None;
    let form_error = |e: axum::extract::multipart::MultipartError| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::too_large("request body is larger than the server accepts")
        } else {
            ApiError::bad_request(format!("multipart form: {}", e.body_text()))
        }
    };
    while let Some(field) = form.next_field().await.map_err(form_error)? {
        let field_name = field.name().unwrap_or_default().to_owned();
        match field_name.as_str() {
            "file" | "value" => {
                if field_name == "file" && file_name.is_none() {
                    file_name = field.file_name().map(str::to_owned);
                }
                value = Some(SecretValue::new(field.bytes().await.map_err(form_error)?.to_vec()));
            }
            "name" => name = Some(utf8_text(&field_name, field.bytes().await.map_err(form_error)?)?),
            "type" => kind = Some(utf8_text(&field_name, field.bytes().await.map_err(form_error)?)?),
            "description" => {
                description = Some(utf8_text(&field_name, field.bytes().await.map_err(form_error)?)?)
            }
            "fileName" => file_name = Some(utf8_text(&field_name, field.bytes().await.map_err(form_error)?)?),
            // One part per pattern.
            "allowedDestinations" => {
                allowed_destinations.push(utf8_text(&field_name, field.bytes().await.map_err(form_error)?)?)
            }
            "maxVersions" => {
                let text = utf8_text(&field_name, field.bytes().await.map_err(form_error)?)?;
                let max = text
                    .trim()
                    .parse()
                    .map_err(|_| ApiError::invalid_secret("maxVersions", "must be a whole number"))?;
                max_versions = Some(max);
            }
            "expiresAt" => {
                let text = utf8_text(&field_name, field.bytes().await.map_err(form_error)?)?;
                expires = Some(expires_at(serde_json::from_str(text.trim()).unwrap_or(Value::Null))?);
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "multipart form: unknown field '{other}' (expected name, type, description, fileName, file, allowedDestinations, maxVersions, expiresAt)"
                )));
            }
        }
    }
    Ok(NewSecret {
        name: name.ok_or_else(|| ApiError::invalid_secret("name", "is required"))?,
        kind: parse_type(kind)?.unwrap_or(SecretType::File),
        description,
        value: value.ok_or_else(|| ApiError::invalid_secret("file", "is required"))?,
        file_name,
        allowed_destinations,
        max_versions,
        expires_at: expires,
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct ShareRequest {
    customer_id: String,
}

/// `POST /api/secrets/{id}/shares {customerId}`: the customer's users may use it, never read it.
#[utoipa::path(
    post,
    path = "/api/secrets/{id}/shares",
    tag = "secrets",
    operation_id = "secrets_share",
    params(("id" = String, Path, description = "The secret's id (a UUID)")),
    request_body(content = serde_json::Value, content_type = "application/json", description = "`{customerId}`: the customer's users may use it, never read it"),
    responses((status = 200, description = "Shared: the secret's metadata", body = serde_json::Value), super::doc::Errors)
)]
pub(crate) async fn share(
    State(store): State<Store>,
    AuthActor(actor): AuthActor,
    Path(id): Path<String>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<Json<SecretInfo>> {
    let id = parse_id::<SecretId>(&id)?;
    let body = body.map_err(body_error)?;
    let req: ShareRequest = serde_json::from_slice(&body)
        .map_err(|_| ApiError::bad_request("body: expected {\"customerId\": \"<customer id>\"}"))?;
    let customer = req
        .customer_id
        .parse::<CustomerId>()
        .map_err(|_| ApiError::bad_request(format!("customerId: '{}' is not a UUID", req.customer_id)))?;
    Ok(Json(store.share(&actor, id, customer).await?))
}

/// `DELETE /api/secrets/{id}/shares/{customerId}`: refused (409, listing the uses) while the
/// customer's configurations use the secret.
#[utoipa::path(
    delete,
    path = "/api/secrets/{id}/shares/{customer_id}",
    tag = "secrets",
    operation_id = "secrets_unshare",
    params(("id" = String, Path, description = "The secret's id (a UUID)"), ("customer_id" = String, Path, description = "The customer's id")),
    responses((status = 204, description = "No longer shared"), super::doc::Errors)
)]
pub(crate) async fn unshare(
    State(store): State<Store>,
    AuthActor(actor): AuthActor,
    Path((id, customer)): Path<(String, String)>,
) -> ApiResult<Json<SecretInfo>> {
    let id = parse_id::<SecretId>(&id)?;
    let customer = parse_id::<CustomerId>(&customer)?;
    Ok(Json(store.unshare(&actor, id, customer).await?))
}
