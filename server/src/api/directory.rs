//! Tenants (system administrators), customers, users and custom roles. The store checks every
//! permission; these handlers parse, hash passwords and shape answers.

use std::sync::{Arc, LazyLock};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use uuid::Uuid;
use veil_store::{
    CustomerId, CustomerRecord, FieldProblem, Grant, NewUser, Page, Role, RoleRecord, Store, TenantId,
    TenantRecord, UserId, UserInfo, UserRecord, UserUpdate,
};

use super::request::{ListParams, body_error, parse_id};
use crate::auth::{AuthActor, LoginLimiter, hash_password, verify_password};
use crate::error::{ApiError, ApiResult};
use crate::host::Host;
use veil_core::FieldError;

/// Shortest password accepted for a new or changed password.
pub(crate) const MIN_PASSWORD_CHARS: usize = 8;

/// A JSON body of type `T`; a problem names the field, never a value.
fn body<T: DeserializeOwned>(raw: Result<Bytes, axum::extract::rejection::BytesRejection>) -> ApiResult<T> {
    let raw = raw.map_err(body_error)?;
    let invalid = |what: String| ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", what);
    let doc: serde_json::Value =
        serde_json::from_slice(&raw).map_err(|_| invalid("body: invalid JSON".to_owned()))?;
    veil_core::from_document(&doc).map_err(|(path, e)| {
        // `a/b` for the pointer `/a/b`; a field's name is added unless the path already ends with
        // it (serde names an unknown key in the path, a missing one not).
        let at = |name: &str| {
            let path = path.strip_prefix('/').unwrap_or(&path);
            if path.is_empty() {
                name.to_owned()
            } else if path == name || path.ends_with(&format!("/{name}")) {
                path.to_owned()
            } else {
                format!("{path}/{name}")
            }
        };
        invalid(match e {
            FieldError::UnknownField { ref field, .. } => format!("{}: {e}", at(field)),
            FieldError::MissingField(field) => format!("{}: is required", at(field)),
            _ if path.is_empty() => "body: has the wrong type".to_owned(),
            _ => format!("{}: has the wrong type", &path[1..]),
        })
    })
}

fn check_password_length(password: &SecretString) -> ApiResult<()> {
    if password.expose_secret().chars().count() < MIN_PASSWORD_CHARS {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("password: must be at least {MIN_PASSWORD_CHARS} characters"),
        ));
    }
    Ok(())
}

async fn hash(password: SecretString) -> ApiResult<String> {
    check_password_length(&password)?;
    tokio::task::spawn_blocking(move || hash_password(&password)).await.map_err(ApiError::internal)
}

/// Wrong current passwords per user, counted like failed logins (a limiter of their own, so a
/// guessing session does not lock the account's logins): a stolen session may not guess the
/// password any faster than a login could.
static CURRENT_PASSWORD_GUESSES: LazyLock<LoginLimiter> = LazyLock::new(LoginLimiter::default);

/// Checks the current password a user sent to change their own password. A wrong one is
/// refused (403), recorded in the audit log as a failed login, and counted: past
/// as many wrong ones as a login may fail the change is refused (429) until the window is over.
async fn verify_current_password(
    store: &Store,
    user_id: UserId,
    current: SecretString,
    address: std::net::SocketAddr,
) -> ApiResult<()> {
    // Counted before the slow check, so parallel guesses cannot all slip through.
    let key = format!("user:{user_id}");
    if let Err(wait) = CURRENT_PASSWORD_GUESSES.attempt(std::slice::from_ref(&key)) {
        return Err(ApiError::too_many(
            format!("too many wrong current passwords; try again in {wait} s"),
            wait,
        ));
    }
    let user = store
        .user_by_id(user_id)
        .await?
        .ok_or_else(|| ApiError::unauthorized("the token's user no longer exists"))?;
    let hash = user.password_hash.clone();
    let ok = tokio::task::spawn_blocking(move || verify_password(&current, &hash)).await.unwrap_or(false);
    if !ok {
        tracing::warn!(username = %user.username, "password change refused: wrong current password");
        store.record_login(Some(&user), false, Some(address.ip().to_string())).await;
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "currentPassword: is not your current password",
        ));
    }
    CURRENT_PASSWORD_GUESSES.succeeded(&key, "");
    Ok(())
}

fn page<T>(items: Vec<T>, p: &ListParams) -> ApiResult<Json<Page<T>>> {
    Page::of(items.into_iter(), p.page(), p.page_size())
        .map(Json)
        .map_err(|e| ApiError::bad_request(e.to_string()))
}

fn params(q: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>) -> ApiResult<ListParams> {
    q.map(|Query(p)| p).map_err(|e| ApiError::bad_request(e.body_text()))
}

// ---- tenants ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewTenantAdmin {
    username: String,
    password: SecretString,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewTenant {
    name: String,
    admin: Option<NewTenantAdmin>,
}

/// `POST /api/tenants {name, admin?: {username, password}}`
#[utoipa::path(
    post,
    path = "/api/tenants",
    tag = "directory",
    operation_id = "directory_create_tenant",
    request_body(content = serde_json::Value, content_type = "application/json", description = "`{name, admin?: {username, password}}`"),
    responses((status = 201, description = "Created", body = serde_json::Value), super::doc::Errors)
)]
pub(crate) async fn create_tenant(
    State(store): State<Store>,
    AuthActor(actor): AuthActor,
    raw: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<impl IntoResponse> {
    let req: NewTenant = body(raw)?;
    actor.require_on(veil_store::Resource::Tenant, veil_store::Operation::Create)?;
    // Everything is checked before the tenant exists, so a refused admin leaves no empty tenant.
    let admin = match req.admin {
        Some(a) => {
            let username = match store.check_new_username(actor.tenant_id, &a.username).await {
                Ok(name) => name,
                Err(veil_store::StoreError::InvalidInput(problems)) => {
                    let problems: Vec<FieldProblem> = problems
                        .into_iter()
                        .map(|p| FieldProblem { field: format!("admin.{}", p.field), ..p })
                        .collect();
                    return Err(veil_store::StoreError::InvalidInput(problems).into());
                }
                Err(e) => return Err(e.into()),
            };
            if store.user_by_name(&username).await?.is_some() {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "name_taken",
                    format!("admin.username: '{username}' is already taken"),
                ));
            }
            Some((username, hash(a.password).await?))
        }
        None => None,
    };
    let tenant = store.create_tenant_as(&actor, &req.name).await?;
    let mut out = json!(tenant);
    if let Some((username, password_hash)) = admin {
        let user = UserRecord {
            id: UserId::new_random(),
            tenant_id: tenant.id,
            customer_id: None,
            username,
            password_hash,
            roles: vec![Role::TenantAdmin.as_str().to_owned()],
            created_time: tenant.created_time,
            tokens_valid_after: 0,
        };
        if let Err(e) = store.create_tenant_admin_as(&actor, &user).await {
            // Taken in the meantime: take the tenant back rather than leave it without an admin.
            let _ = store.delete_tenant(&actor, tenant.id).await;
            return Err(e.into());
        }
        out["admin"] = json!(UserInfo::from(&user));
    }
    tracing::info!(tenant = %tenant.name, actor = %actor.username, "tenant created");
    Ok((StatusCode::CREATED, Json(out)))
}

/// `GET /api/tenants`
#[utoipa::path(
    get,
    path = "/api/tenants",
    tag = "directory",
    operation_id = "directory_tenants",
    params(ListParams),
    responses((status = 200, description = "A page of tenants (the system administrator)", body = serde_json::Value), super::doc::Errors)
)]
pub(crate) async fn tenants(
    State(store): State<Store>,
    AuthActor(actor): AuthActor,
    q: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Page<TenantRecord>>> {
    let p = params(q)?;
    page(store.tenants(&actor).await?, &p)
}

/// `GET /api/tenants/{id}`
#[utoipa::path(
    get,
    path = "/api/tenants/{id}",
    tag = "directory",
    operation_id = "directory_tenant",
    params(("id" = String, Path, description = "The tenant's id (a UUID)")),
    responses((status = 200, description = "The tenant", body = serde_json::Value), super::doc::Errors)
)]
pub(crate) async fn tenant(
    State(store): State<Store>,
    AuthActor(actor): AuthActor,
    Path(id): Path<String>,
) -> ApiResult<Json<TenantRecord>> {
    Ok(Json(store.tenant(&actor, parse_id::<TenantId>(&id)?).await?))
}

/// `DELETE /api/tenants/{id}`: everything in it goes; its chains and integrations stop.
#[utoipa::path(
    delete,
    path = "/api/tenants/{id}",
    tag = "directory",
    operation_id = "directory_delete_tenant",
    params(("id" = String, Path, description = "The tenant's id (a UUID)")),
    responses((status = 204, description = "Deleted with everything in it"), super::doc::Errors)
)]
pub(crate) async fn delete_tenant(
    State(host): State<Arc<Host>>,
    AuthActor(actor): AuthActor,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    host.remove_tenant(&actor, parse_id::<TenantId>(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- customers ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewCustomer {
    name: String,
}

/// `POST /api/customers {name}`
#[utoipa::path(
    post,
    path = "/api/customers",
    tag = "directory",
    operation_id = "directory_create_customer",
    request_body(content = serde_json::Value, content_type = "application/json", description = "`{name}`"),
    responses((status = 201, description = "Created", body = serde_json::Value), super::doc::Errors)
)]
pub(crate) async fn create_customer(
    State(store): State<Store>,
    AuthActor(actor): AuthActor,
    raw: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<impl IntoResponse> {
    let req: NewCustomer = body(raw)?;
    Ok((StatusCode::CREATED, Json(store.create_customer(&actor, &req.name).await?)))
}

/// `GET /api/customers`
#[utoipa::path(
    get,
    path = "/api/customers",
    tag = "directory",
    operation_id = "directory_customers",
    params(ListParams),
    responses((status = 200, description = "A page of customers", body = serde_json::Value), super::doc::Errors)
)]
pub(crate) async fn customers(
    State(store): State<Store>,
    AuthActor(actor): AuthActor,
    q: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Page<CustomerRecord>>> {
    let p = params(q)?;
    page(store.customers(&actor).await?, &p)
}

/// `GET /api/customers/{id}`
#[utoipa::path(
    get,
    path = "/api/customers/{id}",
    tag = "directory",
    operation_id = "directory_customer",
    params(("id" = String, Path, description = "The customer's id (a UUID)")),
    responses((status = 200, description = "The customer", body = serde_json::Value), super::doc::Errors)
)]
pub(crate) async fn customer(
    State(store): State<Store>,
    AuthActor(actor): AuthActor,
    Path(id): Path<String>,
) -> ApiResult<Json<CustomerRecord>> {
    let id = parse_id::<CustomerId>(&id)?;
    let found = store.customer(&actor, id).await?;
    actor.require_on(veil_store::Resource::Customer, veil_store::Operation::Read)?;
    Ok(Json(found))
}

/// `DELETE /api/customers/{id}`
#[utoipa::path(
    delete,
    path = "/api/customers/{id}",
    tag = "directory",
    operation_id = "directory_delete_customer",
    params(("id" = String, Path, description = "The customer's id (a UUID)")),
    responses((status = 204, description = "Deleted"), super::doc::Errors)
)]
pub(crate) async fn delete_customer(
    State(store): State<Store>,
    AuthActor(actor): AuthActor,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    store.delete_customer(&actor, parse_id::<CustomerId>(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- users ----

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct NewUserRequest {
    username: String,
    password: SecretString,
    customer_id: Option<CustomerId>,
    roles: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct UserPatch {
    password: Option<SecretString>,
    /// Required when users change their own password.
    current_password: Option<SecretString>,
    roles: Option<Vec<String>>,
}

/// `POST /api/users {username, password, customerId?, roles}`
#[utoipa::path(
    post,
    path = "/api/users",
    tag = "directory",
    operation_id = "directory_create_user",
    request_body(content = serde_json::Value, content_type = "application/json", description = "`{username, password, customerId?, roles}`"),
    responses((status = 201, description = "Created", body = serde_json::Value), super::doc::Errors)
)]
pub(crate) async fn create_user(
    State(store): State<Store>,
    AuthActor(actor): AuthActor,
    raw: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<impl IntoResponse> {
    let req: NewUserRequest = body(raw)?;
    actor.require_on(veil_store::Resource::User, veil_store::Operation::Create)?;
    let password_hash = hash(req.password).await?;
    let new =
        NewUser { username: req.username, password_hash, customer_id: req.customer_id, roles: req.roles };
    Ok((StatusCode::CREATED, Json(store.create_user_as(&actor, new).await?)))
}

/// `GET /api/users`
#[utoipa::path(
    get,
    path = "/api/users",
    tag = "directory",
    operation_id = "directory_users",
    params(ListParams),
    responses((status = 200, description = "A page of users", body = serde_json::Value), super::doc::Errors)
)]
pub(crate) async fn users(
    State(store): State<Store>,
    AuthActor(actor): AuthActor,
    q: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Page<UserInfo>>> {
    let p = params(q)?;
    page(store.users(&actor).await?, &p)
}

/// `GET /api/users/{id}`
#[utoipa::path(
    get,
    path = "/api/users/{id}",
    tag = "directory",
    operation_id = "directory_user",
    params(("id" = String, Path, description = "The user's id (a UUID)")),
    responses((status = 200, description = "The user", body = serde_json::Value), super::doc::Errors)
)]
pub(crate) async fn user(
    State(store): State<Store>,
    AuthActor(actor): AuthActor,
    Path(id): Path<String>,
) -> ApiResult<Json<UserInfo>> {
    Ok(Json(store.user(&actor, parse_id::<UserId>(&id)?).await?))
}

/// `PATCH /api/users/{id} {password?, currentPassword?, roles?}`: users changing their own
/// password send the current one too; an administrator resetting someone else's does not.
#[utoipa::path(
    patch,
    path = "/api/users/{id}",
    tag = "directory",
    operation_id = "directory_update_user",
    params(("id" = String, Path, description = "The user's id (a UUID)")),
    request_body(content = serde_json::Value, content_type = "application/json", description = "`{password?, currentPassword?, roles?}`"),
    responses((status = 200, description = "Changed", body = serde_json::Value), super::doc::Errors)
)]
pub(crate) async fn update_user(
    State(store): State<Store>,
    AuthActor(actor): AuthActor,
    ConnectInfo(address): ConnectInfo<std::net::SocketAddr>,
    Path(id): Path<String>,
    raw: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<Json<UserInfo>> {
    let id = parse_id::<UserId>(&id)?;
    let req: UserPatch = body(raw)?;
    if req.password.is_none() && req.roles.is_none() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "nothing to change: send password and/or roles",
        ));
    }
    let mut current_password_verified = false;
    if let Some(new) = &req.password
        && id == actor.user_id
    {
        let Some(current) = req.current_password else {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "currentPassword: is required to change your own password",
            )
            .for_field("currentPassword", "is required to change your own password"));
        };
        check_password_length(new)?;
        verify_current_password(&store, actor.user_id, current, address).await?;
        current_password_verified = true;
    }
    let password_hash = match req.password {
        Some(p) => Some(hash(p).await?),
        None => None,
    };
    let update = UserUpdate { password_hash, roles: req.roles, current_password_verified };
    Ok(Json(store.update_user(&actor, id, update).await?))
}

/// `DELETE /api/users/{id}`
#[utoipa::path(
    delete,
    path = "/api/users/{id}",
    tag = "directory",
    operation_id = "directory_delete_user",
    params(("id" = String, Path, description = "The user's id (a UUID)")),
    responses((status = 204, description = "Deleted"), super::doc::Errors)
)]
pub(crate) async fn delete_user(
    State(store): State<Store>,
    AuthActor(actor): AuthActor,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    store.delete_user(&actor, parse_id::<UserId>(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- roles ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewRole {
    name: String,
    permissions: Vec<Grant>,
}

fn role_view(r: &RoleRecord) -> Value {
    json!({"id": r.id, "name": r.name, "builtIn": false, "permissions": r.permissions, "createdTime": r.created_time})
}

/// `GET /api/roles`: the built-in roles and the tenant's custom ones, with what they grant.
#[utoipa::path(
    get,
    path = "/api/roles",
    tag = "directory",
    operation_id = "directory_roles",
    responses((status = 200, description = "The built-in roles and the tenant's custom ones, with what they grant", body = serde_json::Value), super::doc::Errors)
)]
pub(crate) async fn roles(State(store): State<Store>, AuthActor(actor): AuthActor) -> ApiResult<Json<Value>> {
    let custom = store.roles(&actor).await?;
    let built_in = Role::ALL.iter().filter(|r| **r != Role::SysAdmin).map(|r| {
        let grants: Vec<Value> = r
            .permissions()
            .grants()
            .into_iter()
            .map(|(resource, operations)| json!({"resource": resource, "operations": operations}))
            .collect();
        json!({"name": r.as_str(), "builtIn": true, "permissions": grants})
    });
    let all: Vec<Value> = built_in.chain(custom.iter().map(role_view)).collect();
    Ok(Json(json!({ "data": all })))
}

/// `POST /api/roles {name, permissions: [{resource, operations}]}`
#[utoipa::path(
    post,
    path = "/api/roles",
    tag = "directory",
    operation_id = "directory_create_role",
    request_body(content = serde_json::Value, content_type = "application/json", description = "`{name, permissions: [{resource, operations}]}`"),
    responses((status = 201, description = "Created", body = serde_json::Value), super::doc::Errors)
)]
pub(crate) async fn create_role(
    State(store): State<Store>,
    AuthActor(actor): AuthActor,
    raw: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<impl IntoResponse> {
    let req: NewRole = body(raw)?;
    let role = store.create_role(&actor, &req.name, req.permissions).await?;
    Ok((StatusCode::CREATED, Json(role_view(&role))))
}

/// `DELETE /api/roles/{id}`
#[utoipa::path(
    delete,
    path = "/api/roles/{id}",
    tag = "directory",
    operation_id = "directory_delete_role",
    params(("id" = String, Path, description = "The role's id (a UUID)")),
    responses((status = 204, description = "Deleted"), super::doc::Errors)
)]
pub(crate) async fn delete_role(
    State(store): State<Store>,
    AuthActor(actor): AuthActor,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    store.delete_role(&actor, parse_id::<Uuid>(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/tenant-settings`: the caller's tenant's settings (`destinationsRequired`,
/// `casRequired`, `strictValues`).
#[utoipa::path(
    get,
    path = "/api/tenant-settings",
    tag = "directory",
    operation_id = "directory_tenant_settings",
    responses((status = 200, description = "The caller's tenant's settings", body = serde_json::Value), super::doc::Errors)
)]
pub(crate) async fn tenant_settings(
    State(store): State<Store>,
    AuthActor(actor): AuthActor,
) -> Json<veil_store::TenantSettings> {
    Json(store.tenant_settings(actor.tenant_id))
}

/// `PUT /api/tenant-settings {destinationsRequired?, casRequired?, strictValues?}`: tenant
/// administrators (ROLE:WRITE); the settings not sent stay. Turning destinations required on is
/// refused (409 `destinations_in_use`) while a configuration sends a secret without allowed
/// destinations to a destination known at save.
#[utoipa::path(
    put,
    path = "/api/tenant-settings",
    tag = "directory",
    operation_id = "directory_update_tenant_settings",
    request_body(content = serde_json::Value, content_type = "application/json", description = "`{destinationsRequired?, casRequired?, strictValues?, expiryNotices?}`"),
    responses((status = 200, description = "Changed", body = serde_json::Value), super::doc::Errors)
)]
pub(crate) async fn update_tenant_settings(
    State(host): State<Arc<Host>>,
    AuthActor(actor): AuthActor,
    raw: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<Json<veil_store::TenantSettings>> {
    let change: crate::host::SettingsChange = body(raw)?;
    Ok(Json(host.update_tenant_settings(&actor, change).await?))
}
