//! LORIOT's frames: an uplink's shape checked before conversion, a downlink turned into a `tx`
//! command.

use serde_json::{Value, json};

use super::PORTS;
use crate::error::{IntegrationError, UplinkError};

/// Checks the fields of a LORIOT uplink that the converter relies on.
pub(super) fn check_uplink(payload: &Value) -> Result<(), UplinkError> {
    let Value::Object(fields) = payload else {
        return Err(UplinkError::invalid("body: expected a JSON object {cmd, EUI, ...}"));
    };
    match fields.get("cmd") {
        Some(Value::String(_)) => {}
        None => return Err(UplinkError::invalid("cmd: is required")),
        Some(_) => return Err(UplinkError::invalid("cmd: must be a string")),
    }
    match fields.get("EUI") {
        Some(Value::String(eui)) if eui.len() == 16 && is_hex(eui) => {}
        Some(Value::String(_)) => return Err(UplinkError::invalid("EUI: must be 16 hex characters")),
        None => return Err(UplinkError::invalid("EUI: is required")),
        Some(_) => return Err(UplinkError::invalid("EUI: must be a string of 16 hex characters")),
    }
    match fields.get("data") {
        None | Some(Value::Null) => {}
        Some(Value::String(d)) if d.is_empty() || (d.len() % 2 == 0 && is_hex(d)) => {}
        Some(_) => return Err(UplinkError::invalid("data: must be a hex string (two characters per byte)")),
    }
    for key in ["port", "fcnt", "ts"] {
        match fields.get(key) {
            None | Some(Value::Null) => {}
            Some(v) if v.as_u64().is_some() => {}
            Some(_) => return Err(UplinkError::invalid(format!("{key}: must be a non-negative integer"))),
        }
    }
    if let Some(port) = fields.get("port").and_then(Value::as_u64)
        && port > 255
    {
        return Err(UplinkError::invalid("port: must be 0..255"));
    }
    Ok(())
}

/// Turns the downlink converter's output into LORIOT's `tx` command.
pub(super) fn tx_command(downlink: &Value, app_id: &str) -> Result<Value, IntegrationError> {
    let Value::Object(fields) = downlink else {
        return Err(IntegrationError::new("downlink: expected an object {EUI, port, data, confirmed?}"));
    };
    let eui = match fields.get("EUI") {
        Some(Value::String(eui)) if eui.len() == 16 && is_hex(eui) => eui,
        Some(_) => return Err(IntegrationError::new("downlink EUI: must be 16 hex characters")),
        None => return Err(IntegrationError::new("downlink EUI: is required")),
    };
    let port = match fields.get("port").map(|p| (p, p.as_i64())) {
        Some((_, Some(port))) if PORTS.contains(&port) => port,
        Some((p, _)) => return Err(IntegrationError::new(format!("downlink port: {p} is not in 1..223"))),
        None => return Err(IntegrationError::new("downlink port: is required (1..223)")),
    };
    let data = match fields.get("data") {
        Some(Value::String(d)) if d.len() % 2 == 0 && (d.is_empty() || is_hex(d)) => d,
        Some(_) => return Err(IntegrationError::new("downlink data: must be a hex string")),
        None => return Err(IntegrationError::new("downlink data: is required (hex)")),
    };
    let mut tx = json!({ "cmd": "tx", "EUI": eui, "port": port, "data": data, "appid": app_id });
    match fields.get("confirmed") {
        None | Some(Value::Null) => {}
        Some(Value::Bool(c)) => tx["confirmed"] = json!(c),
        Some(_) => return Err(IntegrationError::new("downlink confirmed: must be true or false")),
    }
    Ok(tx)
}

pub(super) fn is_hex(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit())
}
