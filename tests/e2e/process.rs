use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reqwest::Method;
use reqwest::multipart::{Form, Part};
use serde_json::json;

use crate::support::{Api, Receiver, Server, assert_no_leak, contains, serve_command, snapshot};

fn key(byte: u8) -> String {
    STANDARD.encode([byte; 32])
}

/// The log formats: every leak test of the logs runs with each.
const LOG_FORMATS: [&str; 2] = ["text", "json"];

/// Each log line's level and target, as `--log-format` wrote them (every JSON line must parse).
fn levels_and_targets<'a>(logs: &'a str, format: &str) -> Vec<(String, String, &'a str)> {
    logs.lines()
        .filter(|l| !l.trim().is_empty())
        .filter_map(|line| match format {
            "json" => {
                let v: serde_json::Value =
                    serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
                Some((v["level"].as_str()?.to_owned(), v["target"].as_str()?.to_owned(), line))
            }
            _ => {
                let mut words = line.split_whitespace().skip(1);
                let level = words.next()?.to_owned();
                // After the level come the spans (`message{chain=… id=…}:`), then `target:`.
                let target = words.find(|w| w.ends_with(':') && !w.ends_with("}:"))?;
                Some((level, target.trim_end_matches(':').to_owned(), line))
            }
        })
        .collect()
}

#[tokio::test]
async fn trace_level_logs_and_stdout_never_contain_a_value() {
    for format in LOG_FORMATS {
        trace_level_logs_never_contain_a_value(format).await;
    }
}

async fn trace_level_logs_never_contain_a_value(format: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = serve_command(dir.path());
    cmd.env("VEIL_LOG", "trace").args(["--log-format", format]);
    let mut server = Server::start_with(cmd).await;
    let api = Api::new(&server).await;
    let values = [
        "canary-text-\"q\"-\\b-0123456789",
        "canary-rotated-value-abcdefghijkl",
        "canary-file-json-zyxwvutsrqpon",
        "canary-file-multipart-0987654321",
        "canary-refused-duplicate-5555555",
    ];
    let (_, info) = api.post("/api/secrets", json!({"name": "t", "type": "TEXT", "value": values[0]})).await;
    api.patch(&format!("/api/secrets/{}", info["id"].as_str().unwrap()), json!({"value": values[1]})).await;
    api.post(
        "/api/secrets",
        json!({"name": "f", "type": "FILE", "fileName": "f.pem", "value": STANDARD.encode(values[2])}),
    )
    .await;
    let form = Form::new()
        .text("name", "m")
        .part("file", Part::bytes(values[3].as_bytes().to_vec()).file_name("m.pem"));
    api.send(api.req(Method::POST, "/api/secrets").multipart(form)).await;
    let (status, _) =
        api.post("/api/secrets", json!({"name": "t", "type": "TEXT", "value": values[4]})).await;
    assert_eq!(status, 409);
    assert!(server.terminate().success());
    let output = format!("{}{}", server.logs(), server.stdout());
    let logs = server.logs();
    let lines = levels_and_targets(&logs, format);
    assert!(lines.iter().any(|(level, _, _)| level == "TRACE"), "trace level was on ({format}):\n{output}");
    assert!(output.lines().count() > 20, "{output}");
    assert_no_leak(&output, &values);
}

#[tokio::test]
async fn a_wrong_master_key_refuses_to_start_with_a_clear_error_and_changes_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut cmd = serve_command(&data);
    cmd.env("VEIL_MASTER_KEY", key(1));
    let mut server = Server::start_with(cmd).await;
    let api = Api::new(&server).await;
    assert_eq!(api.post("/api/secrets", json!({"name": "s", "type": "TEXT", "value": "v"})).await.0, 201);
    assert!(server.terminate().success());
    assert!(!data.join("master.key").exists(), "an explicit key is never written to disk");
    let before = snapshot(&data);

    let key_file = dir.path().join("other.key");
    std::fs::write(&key_file, key(2)).unwrap();
    let wrong = "error: the master key does not match this database";
    let missing = "master.key is missing but the database holds a keyring";
    for (env, file, expected) in
        [(Some(key(2)), None, wrong), (None, Some(&key_file), wrong), (None, None, missing)]
    {
        let mut cmd = serve_command(&data);
        cmd.stdout(Stdio::null());
        if let Some(k) = env {
            cmd.env("VEIL_MASTER_KEY", k);
        }
        if let Some(f) = file {
            cmd.arg("--master-key-file").arg(f);
        }
        let out = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(expected), "{stderr}");
        assert_eq!(snapshot(&data), before, "no file changed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_during_concurrent_creates_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path()).await;
    let token = server.login().await;
    let acknowledged = Arc::new(std::sync::Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..8 {
        let (client, url, token) = (server.client.clone(), server.url("/api/secrets"), token.clone());
        let (acknowledged, stop) = (Arc::clone(&acknowledged), Arc::clone(&stop));
        writers.push(tokio::spawn(async move {
            for i in 0.. {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let name = format!("w{w}-{i}");
                let sent = client
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&json!({"name": name, "type": "TEXT", "value": format!("value of {name}")}))
                    .send()
                    .await;
                match sent {
                    Ok(resp) if resp.status() == 201 => acknowledged.lock().unwrap().push(name),
                    _ => break,
                }
            }
        }));
    }
    while acknowledged.lock().unwrap().len() < 300 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.kill9();
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    drop(server);

    let server = Server::start(dir.path()).await;
    let api = Api::new(&server).await;
    let (status, page) = api.get("/api/secrets?pageSize=1000").await;
    assert_eq!(status, 200);
    let present: std::collections::HashSet<&str> =
        page["data"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    let lost: Vec<&String> = acknowledged.iter().filter(|n| !present.contains(n.as_str())).collect();
    assert!(lost.is_empty(), "{} of {} acknowledged creates lost: {lost:?}", lost.len(), acknowledged.len());
    assert!(acknowledged.len() >= 300);
}

#[tokio::test]
async fn first_start_prints_a_generated_admin_password_once_and_sigterm_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = serve_command(dir.path());
    cmd.env_remove("VEIL_ADMIN_PASSWORD");
    let mut server = Server::start_with(cmd).await;
    let stdout = server.stdout();
    let password = stdout
        .lines()
        .find_map(|l| l.strip_prefix("Created user 'admin' with password: "))
        .unwrap_or_else(|| panic!("no password in {stdout:?}"))
        .to_owned();
    assert!(password.len() >= 20);
    assert_no_leak(&server.logs(), &[&password]); // printed, not logged
    let resp = server
        .client
        .post(server.url("/api/auth/login"))
        .json(&json!({"username": "admin", "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let status = server.terminate();
    assert!(status.success(), "{status:?}");
    assert!(server.logs().contains("shutting down"));

    let mut cmd = serve_command(dir.path());
    cmd.env_remove("VEIL_ADMIN_PASSWORD");
    let mut again = Server::start_with(cmd).await;
    assert!(again.terminate().success());
    assert!(!again.stdout().contains("password"), "printed only on the first start");
    let key = std::fs::metadata(dir.path().join("master.key")).unwrap();
    #[cfg(unix)]
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&key.permissions()) & 0o777, 0o600);
    assert!(contains(&std::fs::read(dir.path().join("veil.db")).unwrap(), b"SQLite format 3"));
}

/// `VEIL_LOG` directives more specific than the cap (`lapin::io_loop=trace`) used to win over it
/// (EnvFilter prefers the most specific directive). The cap is now a second filter: HTTP, TLS and
/// broker clients log nothing below INFO whatever the directives say; other targets still follow them.
#[tokio::test]
async fn per_target_log_directives_cannot_lift_the_cap_on_http_tls_and_broker_clients() {
    for format in LOG_FORMATS {
        the_cap_holds(format).await;
    }
}

async fn the_cap_holds(format: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = serve_command(dir.path());
    cmd.args(["--log-format", format]);
    let capped = ["lapin", "amq_protocol", "rumqttc", "reqwest", "hyper", "hyper_util", "h2", "rustls"];
    let directives: Vec<String> = capped.iter().map(|t| format!("{t}=trace")).collect();
    cmd.env(
        "VEIL_LOG",
        format!("info,lapin::io_loop=trace,reqwest::connect=trace,sqlx=debug,{}", directives.join(",")),
    );
    let mut server = Server::start_with(cmd).await;
    let api = Api::new(&server).await;
    let receiver = Receiver::start().await;
    let value = "Hdr-VICTOR-7731";
    assert_eq!(api.post("/api/secrets", json!({"name": "hdr", "type": "TEXT", "value": value})).await.0, 201);
    let call = |name: &str, url: String| {
        json!({"type": "rest_api_call", "name": name, "configuration": {
            "restEndpointUrlPattern": url, "requestMethod": "POST", "readTimeoutMs": 5000,
            "headers": {"X-Key": "$<secret:hdr>"}
        }})
    };
    let chain = json!({
        "name": "Logged",
        "nodes": [
            call("Plain", format!("{}/x", receiver.url)),
            // A TLS handshake (to a plain HTTP port): rustls logs its steps at debug/trace.
            call("Tls", format!("{}/x", receiver.url.replace("http://", "https://")))
        ],
        "connections": [{"fromIndex": 0, "toIndex": 1, "type": "Success"}]
    });
    let (status, chain) = api.post("/api/rule-chains", chain).await;
    assert_eq!(status, 201, "{chain}");
    let id = chain["id"].as_str().unwrap();
    let (status, result) =
        api.post(&format!("/api/rule-chains/{id}/messages?wait=true"), json!({"data": {"n": 1}})).await;
    assert_eq!(status, 200, "{result}");
    assert_eq!(result["trace"][0]["relation"], json!(["Success"]), "{result}");
    assert_eq!(result["trace"][1]["relation"], json!(["Failure"]), "{result}");
    assert_eq!(receiver.requests()[0].headers["x-key"], value);
    assert!(server.terminate().success());

    let logs = server.logs();
    let lines = levels_and_targets(&logs, format);
    let verbose: Vec<_> = lines.iter().filter(|(level, _, _)| level == "TRACE" || level == "DEBUG").collect();
    assert!(
        verbose.iter().any(|(_, target, _)| target.starts_with("sqlx::query")),
        "other targets follow VEIL_LOG ({format}):\n{logs}"
    );
    for (_, target, line) in verbose {
        assert!(!capped.iter().any(|c| target.starts_with(c)), "capped target below INFO: {line}");
    }
    // The failed step's warning is logged inside the message's span: its chain and message id.
    let failed = lines.iter().find(|(level, _, line)| level == "WARN" && line.contains("node failed"));
    let (_, _, failed) = failed.unwrap_or_else(|| panic!("the failed step is logged ({format}):\n{logs}"));
    assert!(failed.contains(id), "the chain's id is in the line ({format}): {failed}");
    if format == "json" {
        let line: serde_json::Value = serde_json::from_str(failed).unwrap();
        assert_eq!(line["span"]["name"], "message", "{line}");
        assert_eq!(line["span"]["chain"], id, "{line}");
        assert!(uuid::Uuid::parse_str(line["span"]["id"].as_str().unwrap()).is_ok(), "{line}");
        assert!(line["fields"]["message"].as_str().unwrap().contains("node failed"), "{line}");
        assert!(line["timestamp"].is_string(), "{line}");
    }
    assert_no_leak(&logs, &[value]);
}
