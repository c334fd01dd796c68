//! ThingsBoard rule chain exports, in and out. An export is
//! `{"ruleChain": {"name", …}, "metadata": {"firstNodeIndex", "nodes", "connections",
//! "ruleChainConnections"}}`; each node has a Java class as its `type`, a `configuration` with the
//! same key names Veil's nodes use, and `additionalInfo` with its position on the canvas.
//!
//! [`import`] maps node types and configuration keys, turns ThingsBoard's secret placeholders
//! (`${secret:NAME;type:TEXT}`) into Veil's (`$<secret:NAME>`) and reports, per node, what it did;
//! [`export`] goes the other way. Nothing here stores anything: the API answers the converted
//! chain, and the editor (or `veil chain import --save`) saves it.

mod export;
mod import;

pub(crate) use self::export::export;
pub(crate) use self::import::import;

/// ThingsBoard's node classes and the Veil node type each becomes; a script node's `mode` too.
const NODE_TYPES: &[(&str, &str, Option<&str>)] = &[
    ("org.thingsboard.rule.engine.rest.TbRestApiCallNode", "rest_api_call", None),
    ("org.thingsboard.rule.engine.mqtt.TbMqttNode", "mqtt", None),
    ("org.thingsboard.rule.engine.rabbitmq.TbRabbitMqNode", "rabbitmq", None),
    ("org.thingsboard.rule.engine.filter.TbJsFilterNode", "script", Some("filter")),
    ("org.thingsboard.rule.engine.filter.TbJsSwitchNode", "script", Some("switch")),
    ("org.thingsboard.rule.engine.transform.TbTransformMsgNode", "script", Some("transform")),
    ("org.thingsboard.rule.engine.action.TbLogNode", "log", None),
];

/// What a ThingsBoard secret placeholder's opening looks like.
const TB_SECRET: &str = "${secret:";

/// `text` with every ThingsBoard secret placeholder (`${secret:NAME;type:TEXT}`) written as
/// Veil's (`$<secret:NAME>`); each one found is added to `found` with its type (`TEXT` when the
/// placeholder does not say).
fn secrets_to_veil(text: &str, found: &mut Vec<(String, String)>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(TB_SECRET) {
        out.push_str(&rest[..at]);
        let inner = &rest[at + TB_SECRET.len()..];
        let Some(end) = inner.find('}') else {
            out.push_str(&rest[at..]);
            return out;
        };
        let mut parts = inner[..end].split(';');
        let name = parts.next().unwrap_or_default().trim();
        let kind = parts
            .filter_map(|p| p.trim().strip_prefix("type:"))
            .map(|t| t.trim().to_ascii_uppercase())
            .next()
            .unwrap_or_else(|| "TEXT".to_owned());
        out.push_str("$<secret:");
        out.push_str(name);
        out.push('>');
        found.push((name.to_owned(), kind));
        rest = &inner[end + 1..];
    }
    out.push_str(rest);
    out
}

/// Every string of `value` through [`secrets_to_veil`].
fn value_secrets_to_veil(value: &mut serde_json::Value, found: &mut Vec<(String, String)>) {
    match value {
        serde_json::Value::String(s) if s.contains(TB_SECRET) => *s = secrets_to_veil(s, found),
        serde_json::Value::Array(items) => items.iter_mut().for_each(|v| value_secrets_to_veil(v, found)),
        serde_json::Value::Object(map) => map.values_mut().for_each(|v| value_secrets_to_veil(v, found)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thingsboard_secret_placeholders_become_veil_ones_with_their_types() {
        let mut found = Vec::new();
        let text =
            "Bearer ${secret:api-token;type:TEXT} at ${deviceName} ${secret:ca;type:file}${secret:bare}";
        assert_eq!(
            secrets_to_veil(text, &mut found),
            "Bearer $<secret:api-token> at ${deviceName} $<secret:ca>$<secret:bare>"
        );
        assert_eq!(
            found,
            [
                ("api-token".into(), "TEXT".into()),
                ("ca".into(), "FILE".into()),
                ("bare".into(), "TEXT".into())
            ]
        );
        assert_eq!(secrets_to_veil("open ${secret:x", &mut found), "open ${secret:x");
    }
}
