//! Reading requests: ids from paths, JSON bodies, paging parameters, messages, and the checks
//! every handler applies the same way.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use veil_core::Msg;

use crate::error::{ApiError, ApiResult};

/// Largest uplink body accepted (LORIOT's are a few hundred bytes).
pub(super) const MAX_UPLINK_BYTES: usize = 1024 * 1024;
/// A larger body (an uplink, or one over the server's limit) is still read up to this size so
/// its sender gets the 413 answer.
pub(super) const MAX_DRAINED_BYTES: usize = 32 * 1024 * 1024;

/// An id from the path; a malformed one is a 400 naming it.
pub(super) fn parse_id<T: std::str::FromStr>(raw: &str) -> ApiResult<T> {
    raw.parse().map_err(|_| ApiError::bad_request(format!("id: '{raw}' is not a UUID")))
}

/// A body that could not be read: too large (413) or broken (400).
pub(super) fn body_error(e: BytesRejection) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::too_large("request body is larger than the server accepts")
    } else {
        ApiError::bad_request(e.body_text())
    }
}

/// A JSON body (a rule chain, an integration, a message).
pub(super) fn json_body(body: Result<Bytes, BytesRejection>) -> ApiResult<Value> {
    let body = body.map_err(body_error)?;
    serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("body: invalid JSON ({e})")))
}

/// The declared length of a request body.
pub(super) fn content_length(headers: &axum::http::HeaderMap) -> Option<usize> {
    headers.get(axum::http::header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

/// `?page=&pageSize=` of a listing.
#[derive(utoipa::IntoParams, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
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

/// A message from `{type?, originator?, metadata?, data}`.
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
