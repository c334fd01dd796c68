//! Fuzzes change-feed payloads (what PostgreSQL's NOTIFY carries between instances): any text is
//! read without panicking, and a payload an instance sent itself is never a change to apply.

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use veil_store::fuzzing::feed_change;

fuzz_target!(|data: &[u8]| {
    let Ok(payload) = std::str::from_utf8(data) else {
        return;
    };
    let _ = feed_change(payload, "instance-a");
    if let Ok(Value::Object(mut map)) = serde_json::from_str::<Value>(payload) {
        map.insert("origin".into(), Value::String("instance-a".into()));
        let own = Value::Object(map).to_string();
        assert!(!feed_change(&own, "instance-a"), "{own}: this instance's own change applied again");
    }
});
