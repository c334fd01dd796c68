//! Reading a configuration document into its typed form: every problem at its JSON pointer.

use serde_json::Value;

use crate::error::Problem;

/// Deserializes a configuration document, reporting a type error at its JSON pointer.
pub fn parse_doc<T: serde::de::DeserializeOwned>(doc: &Value) -> Result<T, Vec<Problem>> {
    serde_path_to_error::deserialize(doc)
        .map_err(|e| vec![Problem::new(pointer_of(e.path()), e.into_inner().to_string())])
}

/// Deserializes a node's or integration's configuration into its typed form. Every unknown or
/// misspelt key is a problem at its own pointer (`/nodes/0/configuration/readTimeoutMS`), all of
/// them at once, and then the first type error, all under `base`.
pub fn parse_config<T: serde::de::DeserializeOwned>(doc: &Value, base: &str) -> Result<T, Vec<Problem>> {
    let mut doc = doc.clone();
    let mut problems = Vec::new();
    // Each round removes one unknown key; a configuration has far fewer keys than this.
    for _ in 0..256 {
        let error = match serde_path_to_error::deserialize::<_, T>(&doc) {
            Ok(value) if problems.is_empty() => return Ok(value),
            Ok(_) => return Err(problems),
            Err(e) => e,
        };
        let path = pointer_of(error.path());
        let message = error.inner().to_string();
        if let Some((field, expected)) = unknown_field(&message) {
            // The path may or may not end with the key itself.
            let escaped = escape_pointer(&field);
            let parent = path.strip_suffix(&format!("/{escaped}")).unwrap_or(&path).to_owned();
            if let Some(Value::Object(map)) = doc.pointer_mut(&parent)
                && map.remove(&field).is_some()
            {
                problems.push(Problem::new(
                    format!("{base}{parent}/{escaped}"),
                    format!("unknown field (expected {expected})"),
                ));
                continue;
            }
        }
        problems.push(Problem::new(format!("{base}{path}"), message));
        return Err(problems);
    }
    Err(problems)
}

/// serde's `unknown field `x`, expected one of `a`, `b`` as (`x`, "one of a, b").
fn unknown_field(message: &str) -> Option<(String, String)> {
    let rest = message.strip_prefix("unknown field `")?;
    let (field, rest) = rest.split_once('`')?;
    let expected = rest.trim_start_matches(", ").trim_start_matches("expected ");
    Some((field.to_owned(), expected.replace('`', "")))
}

fn escape_pointer(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

fn pointer_of(path: &serde_path_to_error::Path) -> String {
    path.iter()
        .map(|s| match s {
            serde_path_to_error::Segment::Seq { index } => format!("/{index}"),
            serde_path_to_error::Segment::Map { key } => format!("/{}", escape_pointer(key)),
            serde_path_to_error::Segment::Enum { variant } => format!("/{variant}"),
            serde_path_to_error::Segment::Unknown => String::new(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        token: Option<String>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    #[allow(dead_code)]
    struct Config {
        read_timeout_ms: Option<u64>,
        inner: Option<Inner>,
    }

    #[test]
    fn every_unknown_key_is_named_at_its_pointer() {
        let doc = json!({"readTimeoutMS": 5, "inner": {"tokn": "x", "a/b": 1}, "readTimeoutMs": 3});
        let problems = parse_config::<Config>(&doc, "/nodes/0/configuration").unwrap_err();
        let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "/nodes/0/configuration/inner/a~1b",
                "/nodes/0/configuration/inner/tokn",
                "/nodes/0/configuration/readTimeoutMS"
            ]
        );
        assert!(problems[2].message.contains("expected readTimeoutMs or inner"), "{problems:?}");
        let wrong = parse_config::<Config>(&json!({"readTimeoutMs": "soon"}), "").unwrap_err();
        assert_eq!(wrong[0].path, "/readTimeoutMs");
        assert!(parse_config::<Config>(&json!({"readTimeoutMs": 3}), "").is_ok());
    }
}
