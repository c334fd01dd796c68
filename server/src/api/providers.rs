//! `/api/secret-providers`: where linked secrets' values live (files, exec, AWS Secrets Manager,
//! Vault KV v2), configured per tenant by its administrators. A provider's credentials are
//! secrets named as `$<secret:NAME>`; the store tracks them like any configuration's.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;
use veil_store::{NewProvider, Store};

use super::request::{json_body, parse_id};
use crate::auth::AuthActor;
use crate::error::{ApiError, ApiResult};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ProviderBody {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default = "empty_object")]
    configuration: Value,
    cache_seconds: Option<u64>,
    // What a GET shows, so that it can be sent back as it is.
    #[allow(dead_code)]
    id: Option<Value>,
    #[allow(dead_code)]
    created_time: Option<Value>,
    #[allow(dead_code)]
    updated_time: Option<Value>,
}

fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}

fn read(body: Result<Bytes, BytesRejection>) -> ApiResult<NewProvider> {
    let body: ProviderBody = serde_json::from_value(json_body(body)?).map_err(|e| {
        ApiError::bad_request(format!(
            "body: {e}; expected {{\"name\", \"type\", \"configuration\": {{…}}, \"cacheSeconds\"?}}"
        ))
    })?;
    Ok(NewProvider {
        name: body.name,
        kind: body.kind,
        configuration: body.configuration,
        cache_seconds: body.cache_seconds,
    })
}

/// `GET /api/secret-providers`: the tenant's providers.
#[utoipa::path(
    get,
    path = "/api/secret-providers",
    tag = "secret-providers",
    operation_id = "providers_list",
    responses((status = 200, description = "`{data: [{id, name, type, configuration, cacheSeconds, createdTime, updatedTime}]}`", body = serde_json::Value), super::doc::Errors)
)]
pub(crate) async fn list(
    State(store): State<Store>,
    AuthActor(actor): AuthActor,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(json!({ "data": store.providers(&actor)? })))
}

/// `POST /api/secret-providers`
#[utoipa::path(
    post,
    path = "/api/secret-providers",
    tag = "secret-providers",
    operation_id = "providers_create",
    request_body(content = serde_json::Value, content_type = "application/json", description = "`{name, type: files|exec|aws-secrets-manager|vault-kv2, configuration, cacheSeconds?}`; credentials as `$<secret:NAME>`"),
    responses((status = 201, description = "Created: the provider", body = serde_json::Value), super::doc::Errors)
)]
pub(crate) async fn create(
    State(store): State<Store>,
    AuthActor(actor): AuthActor,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<impl IntoResponse> {
    let info = store.create_provider(&actor, read(body)?).await?;
    Ok((StatusCode::CREATED, Json(info)))
}

/// `GET /api/secret-providers/{id}`
#[utoipa::path(
    get,
    path = "/api/secret-providers/{id}",
    tag = "secret-providers",
    operation_id = "providers_get",
    params(("id" = String, Path, description = "The provider's id (a UUID)")),
    responses((status = 200, description = "The provider", body = serde_json::Value), super::doc::Errors)
)]
pub(crate) async fn get(
    State(store): State<Store>,
    AuthActor(actor): AuthActor,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(store.provider(&actor, parse_id::<Uuid>(&id)?)?))
}

/// `PUT /api/secret-providers/{id}`: a new configuration or cache period (name and type stay).
#[utoipa::path(
    put,
    path = "/api/secret-providers/{id}",
    tag = "secret-providers",
    operation_id = "providers_update",
    params(("id" = String, Path, description = "The provider's id (a UUID)")),
    request_body(content = serde_json::Value, content_type = "application/json", description = "`{name, type, configuration, cacheSeconds?}`"),
    responses((status = 200, description = "Changed: the provider", body = serde_json::Value), super::doc::Errors)
)]
pub(crate) async fn update(
    State(store): State<Store>,
    AuthActor(actor): AuthActor,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<impl IntoResponse> {
    let id = parse_id::<Uuid>(&id)?;
    Ok(Json(store.update_provider(&actor, id, read(body)?).await?))
}

/// `DELETE /api/secret-providers/{id}`: refused (409 `provider_in_use`) while linked secrets
/// come from it.
#[utoipa::path(
    delete,
    path = "/api/secret-providers/{id}",
    tag = "secret-providers",
    operation_id = "providers_delete",
    params(("id" = String, Path, description = "The provider's id (a UUID)")),
    responses((status = 204, description = "Deleted"), super::doc::Errors)
)]
pub(crate) async fn delete(
    State(store): State<Store>,
    AuthActor(actor): AuthActor,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    store.delete_provider(&actor, parse_id::<Uuid>(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/secret-providers/{id}/test`: whether the provider answers with its credentials:
/// `{ok, message}` (a failed test is an answer too; its reason is masked).
#[utoipa::path(
    post,
    path = "/api/secret-providers/{id}/test",
    tag = "secret-providers",
    operation_id = "providers_test",
    params(("id" = String, Path, description = "The provider's id (a UUID)")),
    responses((status = 200, description = "`{ok, message}`", body = serde_json::Value), super::doc::Errors)
)]
pub(crate) async fn test(
    State(store): State<Store>,
    AuthActor(actor): AuthActor,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let id = parse_id::<Uuid>(&id)?;
    Ok(Json(match store.test_provider(&actor, id).await {
        Ok(message) => json!({ "ok": true, "message": message }),
        Err(e @ (veil_store::StoreError::Provider { .. } | veil_store::StoreError::Fetch { .. })) => {
            json!({ "ok": false, "message": e.to_string() })
        }
        Err(other) => return Err(other.into()),
    }))
}

/// `GET /api/secret-providers/{id}/keys`: the keys the provider can list (for an import).
#[utoipa::path(
    get,
    path = "/api/secret-providers/{id}/keys",
    tag = "secret-providers",
    operation_id = "providers_keys",
    params(("id" = String, Path, description = "The provider's id (a UUID)")),
    responses((status = 200, description = "`{keys: [...]}`", body = serde_json::Value), super::doc::Errors)
)]
pub(crate) async fn keys(
    State(store): State<Store>,
    AuthActor(actor): AuthActor,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(json!({ "keys": store.provider_keys(&actor, parse_id::<Uuid>(&id)?).await? })))
}
