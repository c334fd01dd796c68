//! `GET /api/audit-logs`: who did what to which secret or account, when, with what outcome.

use axum::Json;
use axum::extract::{Query, State};
use serde::Deserialize;
use veil_store::{AuditEntry, AuditQuery, Page, SecretId, Store};

use super::request::parse_id;
use crate::auth::AuthActor;
use crate::error::{ApiError, ApiResult};

#[derive(utoipa::IntoParams, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct AuditParams {
    secret_id: Option<String>,
    actor: Option<String>,
    from: Option<i64>,
    to: Option<i64>,
    page: Option<usize>,
    page_size: Option<usize>,
}

/// `GET /api/audit-logs?secretId=&actor=&from=&to=&page=&pageSize=` (times in ms), newest first.
#[utoipa::path(
    get,
    path = "/api/audit-logs",
    tag = "audit",
    operation_id = "audit_list",
    params(AuditParams),
    responses((status = 200, description = "A page of audit entries, newest first", body = serde_json::Value), super::doc::Errors)
)]
pub(crate) async fn list(
    State(store): State<Store>,
    AuthActor(actor): AuthActor,
    params: Result<Query<AuditParams>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Page<AuditEntry>>> {
    let Query(p) = params.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let query = AuditQuery {
        secret_id: p.secret_id.as_deref().map(parse_id::<SecretId>).transpose()?,
        actor: p.actor.filter(|a| !a.is_empty()),
        from: p.from,
        to: p.to,
        page: p.page.unwrap_or(0),
        page_size: p.page_size.unwrap_or(50),
    };
    Ok(Json(store.audit_logs(&actor, &query).await?))
}
