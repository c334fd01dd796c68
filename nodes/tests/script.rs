use serde_json::{Value, json};
use veil_core::{MASK, Script, Secrets};
use veil_tests::{TempStore, assert_no_leak};

use crate::support::run;

fn script_chain(mode: &str, script: &str) -> Value {
    json!({
        "name": "Scripted",
        "nodes": [
            {"type": "script", "name": "Script", "debugMode": true, "configuration": {"mode": mode, "script": script}},
            {"type": "log", "name": "After", "debugMode": true, "configuration": {}}
        ],
        "connections": [
            {"fromIndex": 0, "toIndex": 1, "type": "Success"},
            {"fromIndex": 0, "toIndex": 1, "type": "True"},
            {"fromIndex": 0, "toIndex": 1, "type": "hot"}
        ]
    })
}

fn relations(trace: &[veil_core::TraceStep]) -> Vec<Vec<String>> {
    trace.iter().map(|s| s.relation.clone()).collect()
}

#[tokio::test]
async fn filter_transform_and_switch() {
    let env = TempStore::new().await;
    let filter = env.deploy_chain(&script_chain("filter", "msg.temperature > 20")).await.unwrap();
    assert_eq!(relations(&run(&filter, json!({"temperature": 25})).await)[0], ["True"]);
    assert_eq!(relations(&run(&filter, json!({"temperature": 15})).await)[0], ["False"]);

    let transform = env
        .deploy_chain(&script_chain(
            "transform",
            r#"let m = msg; m.fahrenheit = m.temperature * 9 / 5 + 32; metadata.unit = "F"; #{msg: m, metadata: metadata}"#,
        ))
        .await
        .unwrap();
    let trace = run(&transform, json!({"temperature": 20})).await;
    assert_eq!(relations(&trace), [vec!["Success"], vec!["Success"]]);
    let events = transform.debug_events();
    let out = &events[0].outputs[0].msg;
    assert_eq!(out["data"], json!({"temperature": 20, "fahrenheit": 68}));
    assert_eq!(out["metadata"], json!({"deviceName": "device-1", "unit": "F"}));
    assert_eq!(out["type"], "POST_TELEMETRY_REQUEST", "missing keys keep the input's");

    let switch = env
        .deploy_chain(&script_chain(
            "switch",
            r#"if msg.temperature > 30 { "hot" } else { ["cold", "log"] }"#,
        ))
        .await
        .unwrap();
    assert_eq!(relations(&run(&switch, json!({"temperature": 35})).await), [vec!["hot"], vec!["Success"]]);
    assert_eq!(relations(&run(&switch, json!({"temperature": 5})).await), [vec!["cold", "log"]]);

    let wrong = env.deploy_chain(&script_chain("filter", r#""yes""#)).await.unwrap();
    let trace = run(&wrong, json!({})).await;
    assert_eq!(trace[0].relation, ["Failure"]);
    assert!(trace[0].error.as_deref().unwrap().contains("must return true or false"), "{trace:?}");
}

#[tokio::test]
async fn secrets_in_scripts_are_usable_tracked_and_never_shown() {
    let env = TempStore::new().await;
    let key = "script-key-9f8e7d6c5b4a";
    env.text("signing-key", key).await;
    let chain = script_chain(
        "transform",
        r#"print("key is " + secret("signing-key"));
           let m = msg; m.signature = hmac_sha256_hex(secret("signing-key"), "payload");
           m.auth = basic_auth("user", secret("signing-key"));
           #{msg: m}"#,
    );
    let runtime = env.deploy_chain(&chain).await.unwrap();
    let trace = run(&runtime, json!({"v": 1})).await;
    assert_eq!(trace[0].relation, ["Success"], "{trace:?}");
    let events = runtime.debug_events();
    // The signature is computed with the real key.
    let signature = events[0].outputs[0].msg["data"]["signature"].as_str().unwrap().to_owned();
    use hmac::Mac as _;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(b"payload");
    let expected: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(signature, expected);
    // "key is " + secret is itself a sealed value: printed whole as `***`.
    assert_eq!(events[0].notes, [MASK], "print(secret) is masked");
    assert_eq!(events[0].outputs[0].msg["data"]["auth"], MASK, "basic_auth of a secret stays sealed");
    let everything = serde_json::to_string(&events).unwrap();
    // The key, and the `user:key` of the basic-auth form, in any form.
    assert_no_leak(&everything, &[key, &format!("user:{key}")]);

    // Tracked like a placeholder: the secret cannot be deleted while the script uses it.
    let info = env.store.find(&env.admin, "signing-key").unwrap();
    let e = env.store.delete(&env.admin, info.id).await.unwrap_err();
    assert_eq!(e.to_string(), "secret 'signing-key' is in use by rule chain 'Scripted' (node 'Script')");
    let usages = env.store.usages(&env.admin, info.id).await.unwrap();
    assert_eq!(usages.rule_chains[0].nodes[0].path, "/nodes/0/configuration/script");
}

#[tokio::test]
async fn deploy_refuses_non_literal_names_unknown_secrets_and_syntax_errors() {
    let env = TempStore::new().await;
    env.text("known", "v").await;
    let problems =
        env.deploy_chain(&script_chain("filter", "let n = msg.name; secret(n) == \"x\"")).await.unwrap_err();
    assert_eq!(problems[0].path, "/nodes/0/configuration/script");
    assert!(problems[0].message.contains("secret() takes one string literal"), "{problems:?}");
    assert!(problems[0].message.starts_with("line 1, column "), "{problems:?}");

    let problems =
        env.deploy_chain(&script_chain("filter", r#"secret("unknown") == "x""#)).await.unwrap_err();
    assert_eq!(problems[0].message, "secret 'unknown' does not exist");

    let problems = env.deploy_chain(&script_chain("filter", "let x = ;\nx")).await.unwrap_err();
    assert!(problems[0].message.starts_with("line 1, column 9:"), "{problems:?}");

    let problems = env.deploy_chain(&script_chain("sideways", "true")).await.unwrap_err();
    assert_eq!(problems[0].message, "'sideways' is not one of filter, transform, switch");

    // A placeholder is not how scripts get secrets: the script field is not secret-capable.
    let problems =
        env.deploy_chain(&script_chain("filter", r#""$<secret:known>" == "v""#)).await.unwrap_err();
    assert!(problems[0].message.contains("not secret-capable"), "{problems:?}");
}

#[tokio::test]
async fn the_optimizer_never_bakes_a_value_into_the_ast() {
    let env = TempStore::new().await;
    let value = "baked-canary-31337";
    env.text("k", value).await;
    for source in [
        r#"secret("k")"#,
        r#"let s = secret("k"); s + "" == "x""#,
        r#"const K = "k"; secret(K).len() > 3"#,
        r#"if secret("k") == "baked-canary-31337" { 1 } else { 2 }"#,
    ] {
        let script = Script::compile(
            env.registry().scripts(),
            &Secrets::for_names(&env.store, env.admin.tenant_id, ["k".to_owned()]),
            source,
            &["msg", "metadata", "msgType"],
        )
        .unwrap();
        assert_eq!(script.secrets(), ["k"]);
        let dump = format!("{:?}", script.ast());
        // The last source holds the value as a literal the author wrote; it must be there once,
        // as written, and nowhere else.
        let expected = usize::from(source.contains(value));
        assert_eq!(dump.matches(value).count(), expected, "{source}: {dump}");
    }
}

#[tokio::test]
async fn an_endless_loop_is_stopped_and_routed_to_failure() {
    let env = TempStore::new().await;
    let runtime = env.deploy_chain(&script_chain("filter", "loop { } true")).await.unwrap();
    let chain_with_failure = runtime;
    let trace = run(&chain_with_failure, json!({})).await;
    assert_eq!(trace[0].relation, ["Failure"]);
    assert!(trace[0].error.as_deref().unwrap().contains("more than 200000 operations"), "{trace:?}");
}

/// The script node example of nodes/README.md.
#[tokio::test]
async fn the_readme_signing_example_works() {
    let env = TempStore::new().await;
    env.text("signing-key", "k").await;
    let script = "let m = msg; m.signature = hmac_sha256_hex(secret(\"signing-key\"), `${msg.temperature}`); #{msg: m}";
    let runtime = env.deploy_chain(&script_chain("transform", script)).await.unwrap();
    assert_eq!(run(&runtime, json!({"temperature": 21})).await[0].relation, ["Success"]);
    let signature = &runtime.debug_events()[0].outputs[0].msg["data"]["signature"];
    assert_eq!(signature.as_str().map(str::len), Some(64), "{signature}");
}

/// A switch cannot name a relation after a secret: the run fails, and the value is nowhere.
#[tokio::test]
async fn relation_names_from_scripts_cannot_be_secrets() {
    let env = TempStore::new().await;
    env.text("route-secret", "relation-canary-777").await;
    let runtime = env.deploy_chain(&script_chain("switch", r#"secret("route-secret")"#)).await.unwrap();
    let trace = run(&runtime, json!({})).await;
    assert_eq!(trace[0].relation, ["Failure"]);
    assert_eq!(trace[0].error.as_deref(), Some("a switch script's relation names cannot be Secrets"));
    let events = serde_json::to_string(&runtime.debug_events()).unwrap();
    assert_no_leak(&events, &["relation-canary-777"]);
}

/// Each host owns its script sandbox: two hosts with different script limits run side by side in
/// one process, each script held to its own host's limits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_with_different_script_limits_run_side_by_side() {
    let env = TempStore::new().await;
    let limits = |timeout_ms: u64| veil_core::Limits {
        script_timeout: std::time::Duration::from_millis(timeout_ms),
        max_script_time_per_message: std::time::Duration::from_millis(timeout_ms),
        ..veil_core::Limits::default()
    };
    // 300 ms of wall-clock work on any machine, in few operations (each pass copies 1 MB).
    let slow = r#"let s = ""; s.pad(1000000, "a"); let t = timestamp(); while t.elapsed() < 0.3 { let u = s.to_upper(); } true"#;
    let strict_chain = env.deploy_chain_with(limits(50), &script_chain("filter", slow)).await.unwrap();
    let patient_chain = env.deploy_chain_with(limits(60_000), &script_chain("filter", slow)).await.unwrap();
    let (strict_trace, patient_trace) =
        tokio::join!(run(&strict_chain, json!({})), run(&patient_chain, json!({})));
    assert_eq!(strict_trace[0].relation, ["Failure"], "{strict_trace:?}");
    let error = strict_trace[0].error.as_deref().unwrap_or_default();
    assert!(error.contains("scriptTimeoutMs (50)"), "{error}");
    assert_eq!(patient_trace[0].relation, ["True"], "{patient_trace:?}");
    assert!(patient_trace[0].error.is_none(), "{patient_trace:?}");
}

/// A watched run (a test message with `?wait=true`) shows each step's messages until they add up
/// to `MAX_WATCHED_BYTES`; later steps show their relation only, however long the chain and large
/// the message.
#[tokio::test]
async fn a_watched_trace_shows_messages_up_to_its_bound() {
    let env = TempStore::new().await;
    let nodes: Vec<Value> =
        (0..40).map(|i| json!({"type": "log", "name": format!("L{i}"), "configuration": {}})).collect();
    let connections: Vec<Value> =
        (0..39).map(|i| json!({"fromIndex": i, "toIndex": i + 1, "type": "Success"})).collect();
    let chain = json!({"name": "Long", "nodes": nodes, "connections": connections});
    let runtime = env.deploy_chain(&chain).await.unwrap();
    let msg = veil_core::Msg::new("POST_TELEMETRY_REQUEST", "d", json!({"blob": "x".repeat(40_000)}));
    let trace = runtime.process_watched(msg).await;
    assert_eq!(trace.len(), 40);
    let shown: Vec<usize> = trace
        .iter()
        .filter(|s| s.input.is_some())
        .map(|s| {
            serde_json::to_string(&s.input).unwrap().len() + serde_json::to_string(&s.outputs).unwrap().len()
        })
        .collect();
    assert!(trace[0].input.is_some() && trace[39].input.is_none(), "{shown:?}");
    let total: usize = shown.iter().sum();
    let one_step = shown[0];
    assert!(total <= veil_core::MAX_WATCHED_BYTES + one_step, "{total} bytes shown");
    assert!(trace.iter().all(|s| s.relation == ["Success"]), "every step still says what it did");
    // An unwatched run carries no messages.
    let msg = veil_core::Msg::new("POST_TELEMETRY_REQUEST", "d", json!({"t": 1}));
    assert!(runtime.process(msg).await.iter().all(|s| s.input.is_none() && s.outputs.is_none()));
}
