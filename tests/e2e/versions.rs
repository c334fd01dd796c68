//! A secret's versions through the real binary: ETag and If-Match, the versions list, verify
//! (SECRET:WRITE, slowed down like logins), rollback reaching a running chain, and the CLI.

use serde_json::json;

use crate::cli::{ok, spawn_run};
use crate::cluster::bearer_chain;
use crate::support::{ADMIN_PASSWORD, Api, Receiver, Server, assert_no_leak};

const V1: &str = "tok-v1-9a8b7c";
const V2: &str = "tok-v2-mistyped";

/// What the receiver saw in the last request's Authorization header, after one message.
async fn sent_token(api: &Api<'_>, chain: &str, receiver: &Receiver) -> String {
    let (status, answer) =
        api.post(&format!("/api/rule-chains/{chain}/messages?wait=true"), json!({"data": {"t": 1}})).await;
    assert_eq!(status, 200, "{answer}");
    receiver.requests().last().unwrap().headers["authorization"].trim_start_matches("Bearer ").to_owned()
}

#[tokio::test]
async fn versions_check_and_set_verify_and_rollback_through_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let api = Api::new(&server).await;
    let receiver = Receiver::start().await;
    let (status, secret) = api
        .post("/api/secrets", json!({"name": "api-token", "type": "TEXT", "value": V1, "maxVersions": 3}))
        .await;
    assert_eq!(status, 201, "{secret}");
    assert_eq!(secret["maxVersions"], 3);
    let id = secret["id"].as_str().unwrap().to_owned();
    let (_, chain) = api.post("/api/rule-chains", bearer_chain(&receiver.url)).await;
    let chain = chain["id"].as_str().unwrap().to_owned();
    assert_eq!(sent_token(&api, &chain, &receiver).await, V1);

    // GET answers the version as its ETag; a PATCH based on it wins, a second one based on the
    // same version gets 412 naming the current one, and changes nothing.
    let resp = api.req(reqwest::Method::GET, &format!("/api/secrets/{id}")).send().await.unwrap();
    assert_eq!(resp.headers()["etag"], "\"1\"");
    let patch = |version: &str, value: &str| {
        api.req(reqwest::Method::PATCH, &format!("/api/secrets/{id}"))
            .header("If-Match", version)
            .json(&json!({"value": value}))
    };
    let resp = patch("\"1\"", V2).send().await.unwrap();
    assert_eq!((resp.status().as_u16(), resp.headers()["etag"].to_str().unwrap()), (200, "\"2\""));
    let (status, refused) = api.send(patch("\"1\"", "tok-v3-lost")).await;
    assert_eq!(status, 412, "{refused}");
    assert_eq!(refused["error"], "precondition_failed");
    assert_eq!(refused["currentVersion"], 2);
    assert_eq!(refused["message"], "secret 'api-token' is at version 2, not 1: read it again and retry");
    let (status, bad) = api.send(patch("soon", "x")).await;
    assert_eq!(
        (status, bad["message"].as_str().unwrap()),
        (400, "If-Match: expected the secret's version as its ETag, e.g. \"3\"")
    );
    assert_eq!(sent_token(&api, &chain, &receiver).await, V2, "the next message uses version 2");

    // The versions: newest first, fingerprints, never a value.
    for v in ["tok-v3", "tok-v4"] {
        assert_eq!(api.patch(&format!("/api/secrets/{id}"), json!({"value": v})).await.0, 200);
    }
    let (status, versions) = api.get(&format!("/api/secrets/{id}/versions")).await;
    assert_eq!(status, 200, "{versions}");
    let rows: Vec<(i64, &str)> = versions["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["version"].as_i64().unwrap(), v["state"].as_str().unwrap()))
        .collect();
    assert_eq!(rows, [(4, "CURRENT"), (3, "PREVIOUS"), (2, "PREVIOUS"), (1, "DESTROYED")]);
    assert_eq!(versions["data"][0]["createdBy"], "admin");
    assert_eq!(versions["data"][0]["fingerprint"].as_str().unwrap().len(), 12);

    // Verify: which version had a value, by fingerprint (a destroyed one too).
    let (status, answer) = api.post(&format!("/api/secrets/{id}/verify"), json!({"value": V1})).await;
    assert_eq!((status, answer), (200, json!({"matches": true, "version": 1})));
    let (_, answer) = api.post(&format!("/api/secrets/{id}/verify"), json!({"value": "nope"})).await;
    assert_eq!(answer, json!({"matches": false, "version": null}));
    // Guessing is slowed down like logins: after five misses the next guess must wait.
    for _ in 0..4 {
        api.post(&format!("/api/secrets/{id}/verify"), json!({"value": "guess"})).await;
    }
    let resp = api
        .req(reqwest::Method::POST, &format!("/api/secrets/{id}/verify"))
        .json(&json!({"value": "guess"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 429);
    assert!(resp.headers().contains_key("retry-after"));

    // Rollback: version 2's value comes back as version 5, and the chain's next message uses it.
    let (status, rolled) = api.post(&format!("/api/secrets/{id}/rollback"), json!({"version": 2})).await;
    assert_eq!((status, rolled["version"].as_i64()), (200, Some(5)), "{rolled}");
    assert_eq!(sent_token(&api, &chain, &receiver).await, V2);
    let (status, refused) = api.post(&format!("/api/secrets/{id}/rollback"), json!({"version": 1})).await;
    assert_eq!((status, refused["error"].as_str()), (409, Some("version_destroyed")), "{refused}");
    let (status, _) = api.post(&format!("/api/secrets/{id}/rollback"), json!({"version": 99})).await;
    assert_eq!(status, 404);
    let (status, refused) = api
        .send(
            api.req(reqwest::Method::POST, &format!("/api/secrets/{id}/rollback"))
                .header("If-Match", "\"4\"")
                .json(&json!({"version": 3})),
        )
        .await;
    assert_eq!((status, refused["currentVersion"].as_i64()), (412, Some(5)));

    let (_, audit) = api.get(&format!("/api/audit-logs?secretId={id}&pageSize=100")).await;
    let actions: Vec<&str> =
        audit["data"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert!(actions.contains(&"ROLLBACK") && actions.contains(&"VERIFY"), "{actions:?}");
    let seen = format!("{versions}{audit}{}", server.logs());
    assert_no_leak(&seen, &[V1, V2, "tok-v3", "tok-v4"]);
}

#[tokio::test]
async fn the_cli_lists_versions_verifies_rolls_back_and_checks_the_version() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data")).await;
    let config = dir.path().join("config");
    let login = ["login", "-u", "admin", "--password-stdin"];
    ok(&spawn_run(&config, &server, &login, &format!("{ADMIN_PASSWORD}\n")).await);
    let create = ["secret", "create", "api-token", "--max-versions", "5"];
    ok(&spawn_run(&config, &server, &create, &format!("{V1}\n")).await);
    ok(&spawn_run(
        &config,
        &server,
        &["secret", "update", "api-token", "--stdin", "--expect-version", "1"],
        V2,
    )
    .await);
    // Based on version 1 again: refused (conflict exit code), nothing changes.
    let stale = spawn_run(
        &config,
        &server,
        &["secret", "update", "api-token", "--stdin", "--expect-version", "1"],
        "x",
    )
    .await;
    assert_eq!(stale.code, 4, "{}", stale.stderr);
    assert!(
        stale.stderr.contains("is at version 2, not 1") && stale.stderr.contains("precondition_failed"),
        "{}",
        stale.stderr
    );

    let versions =
        ok(&spawn_run(&config, &server, &["secret", "versions", "api-token"], "").await).to_owned();
    let lines: Vec<&str> = versions.lines().map(str::trim_start).collect();
    assert!(lines[0].starts_with("VERSION") && lines[0].contains("FINGERPRINT"), "{versions}");
    assert!(
        lines[1].starts_with("2 ") && lines[1].contains("CURRENT") && lines[1].contains("admin"),
        "{versions}"
    );
    assert!(lines[2].starts_with("1 ") && lines[2].contains("PREVIOUS"), "{versions}");

    let matched = spawn_run(&config, &server, &["secret", "verify", "api-token"], &format!("{V1}\n")).await;
    assert_eq!(ok(&matched).trim(), "The value matches version 1 of 'api-token'");
    let missed = spawn_run(&config, &server, &["secret", "verify", "api-token"], "nope\n").await;
    assert_eq!(
        (missed.code, missed.stderr.trim()),
        (1, "error: the value matches no version of 'api-token'")
    );

    let rolled =
        spawn_run(&config, &server, &["secret", "rollback", "api-token", "--version", "1"], "").await;
    let shown = ok(&rolled);
    assert!(
        shown.lines().any(|l| l.trim_start().starts_with("version") && l.trim_end().ends_with('3')),
        "{shown}"
    );
    let api = Api::new(&server).await;
    let (_, list) = api.get("/api/secrets").await;
    assert_eq!(list["data"][0]["version"], 3);
    let all = format!("{versions}{shown}{}{}", matched.stdout, missed.stderr);
    assert_no_leak(&all, &[V1, V2]);
}

#[tokio::test]
#[ignore = "needs chromedriver (VEIL_TEST_CHROMEDRIVER)"]
async fn a_secret_page_lists_versions_rolls_back_checks_a_value_and_refuses_a_stale_change() {
    use crate::support::{Browser, RecordingProxy};
    use crate::ui::{log_in, screenshot, visit};

    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let proxy = RecordingProxy::start(&server.base).await;
    let browser = Browser::start().await;
    let api = Api::new(&server).await;
    let (_, secret) =
        api.post("/api/secrets", json!({"name": "api-token", "type": "TEXT", "value": V1})).await;
    let id = secret["id"].as_str().unwrap().to_owned();
    assert_eq!(api.patch(&format!("/api/secrets/{id}"), json!({"value": V2})).await.0, 200);
    let in_five_days = veil_store::now_ms() + 5 * 86_400_000;
    assert_eq!(api.patch(&format!("/api/secrets/{id}"), json!({"expiresAt": in_five_days})).await.0, 200);
    assert_eq!(api.post("/api/rule-chains", bearer_chain("http://127.0.0.1:9")).await.0, 201);
    log_in(&browser, &proxy.url, "admin", ADMIN_PASSWORD).await;

    // The list: the expiry within 30 days stands out.
    visit(&browser, &proxy.url, "#/secrets").await;
    browser.find("tr[data-name='api-token'] td.expires.expiring").await;

    // The versions, newest first; Roll back on the kept one.
    visit(&browser, &proxy.url, &format!("#/secrets/{id}")).await;
    browser.text_of("#secret-versions tr[data-version='2']", "Current").await;
    let kept = browser.text_of("#secret-versions tr[data-version='1']", "Kept").await;
    assert!(kept.contains("admin") && kept.contains("Roll back"), "{kept}");
    screenshot(&browser, "secret-versions").await;
    browser.click("#secret-versions tr[data-version='1'] button[data-action=rollback]").await;
    browser.text_of("#rollback-secret", "becomes version 3").await;
    browser.click("#rollback-secret button[data-action=submit]").await;
    browser.text_of("#secret-version", "3").await;
    browser.text_of("#secret-versions tr[data-version='3']", "Current").await;
    let (_, versions) = api.get(&format!("/api/secrets/{id}/versions")).await;
    assert_eq!(versions["data"][0]["fingerprint"], versions["data"][2]["fingerprint"], "version 1's value");

    // Check a value: which version had it.
    browser.click("button[title='Check a value']").await;
    browser.type_into("#verify-secret input[name=value]", V2).await;
    browser.click("#verify-secret button[data-action=submit]").await;
    browser.text_of("#verify-answer", "It is the value of version 2.").await;
    browser.click("#verify-secret button[data-action=cancel]").await;

    // The tenant requires check-and-set from now on (the settings page); the pages send the
    // version they showed anyway.
    visit(&browser, &proxy.url, "#/settings").await;
    browser.click("input[name=casRequired]").await;
    browser.click("button[data-action=save]").await;
    browser.text_of(".toast", "Settings saved").await;
    assert_eq!(api.get("/api/tenant-settings").await.1["casRequired"], true);
    visit(&browser, &proxy.url, &format!("#/secrets/{id}")).await;

    // Someone else changes the value while the dialog is open: Save is refused, nothing lost.
    browser.click("button[title='Change value']").await;
    // What the change reaches is shown before it is confirmed.
    let impact = browser.text_of("#change-secret #impact", "A new value reaches 1 place:").await;
    assert!(
        impact.contains("Forward") && impact.contains("/nodes/0/configuration/credentials/token"),
        "{impact}"
    );
    browser.client.execute("document.querySelector('#impact').scrollIntoView()", vec![]).await.unwrap();
    screenshot(&browser, "secret-change-impact").await;
    browser.type_into("#change-secret input[name=value]", "tok-from-the-browser").await;
    let elsewhere = api
        .req(reqwest::Method::PATCH, &format!("/api/secrets/{id}"))
        .header("If-Match", "\"3\"")
        .json(&json!({"value": "tok-from-elsewhere"}));
    assert_eq!(api.send(elsewhere).await.0, 200);
    browser.click("#change-secret button[data-action=submit]").await;
    browser.text_of("#change-secret .form-errors", "is at version 4, not 3").await;
    let (_, now) = api.get(&format!("/api/secrets/{id}")).await;
    assert_eq!(now["version"], 4);
    let (_, check) =
        api.post(&format!("/api/secrets/{id}/verify"), json!({"value": "tok-from-elsewhere"})).await;
    assert_eq!(check, json!({"matches": true, "version": 4}));
    assert_no_leak(&browser.exposed().await, &[V1, V2, "tok-from-elsewhere"]);
}

#[tokio::test]
async fn tenant_settings_require_check_and_set_and_refuse_suspicious_values() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let api = Api::new(&server).await;

    // A value pasted with a newline and a space: created, with warnings naming the value, never
    // quoting it.
    let (status, created) = api
        .post("/api/secrets", json!({"name": "pasted", "type": "TEXT", "value": " tok-pasted-77\n"}))
        .await;
    assert_eq!(status, 201, "{created}");
    let warnings: Vec<&str> =
        created["warnings"].as_array().unwrap().iter().map(|w| w["message"].as_str().unwrap()).collect();
    assert_eq!(warnings, ["ends with a newline (often pasted by accident)", "starts with whitespace"]);
    assert!(created["warnings"].as_array().unwrap().iter().all(|w| w["field"] == "value"));
    let (_, quoted) = api
        .post("/api/secrets", json!({"name": "quoted", "type": "TEXT", "value": "\"tok-quoted-88\""}))
        .await;
    assert_eq!(quoted["warnings"][0]["message"], "is surrounded by quotes (they become part of the value)");
    let (_, short) = api.post("/api/secrets", json!({"name": "short", "type": "TEXT", "value": "abc"})).await;
    assert!(short["warnings"][0]["message"].as_str().unwrap().starts_with("is 3 characters"), "{short}");
    let (_, clean) =
        api.post("/api/secrets", json!({"name": "clean", "type": "TEXT", "value": "tok-clean-99"})).await;
    assert!(clean.get("warnings").is_none(), "{clean}");
    // FILE values keep their whitespace: no warnings.
    let (_, file) = api
        .post(
            "/api/secrets",
            json!({"name": "cert", "type": "FILE", "fileName": "c.pem", "value": "IC0tLS0tQkVHSU4KCg=="}),
        )
        .await;
    assert!(file.get("warnings").is_none(), "{file}");

    // ?strict=true refuses instead, naming every problem; nothing is created or changed.
    let (status, refused) = api
        .post(
            "/api/secrets?strict=true",
            json!({"name": "strict", "type": "TEXT", "value": "tok-strict-11 "}),
        )
        .await;
    assert_eq!((status, refused["error"].as_str()), (400, Some("invalid_secret")), "{refused}");
    assert_eq!(refused["problems"], json!([{"field": "value", "message": "ends with whitespace"}]));
    assert_eq!(api.get("/api/secrets?textSearch=strict").await.1["totalElements"], 0);

    // The tenant's settings: strict values and check-and-set for every value change.
    let (status, settings) =
        api.put("/api/tenant-settings", json!({"casRequired": true, "strictValues": true})).await;
    assert_eq!(
        (status, settings),
        (
            200,
            json!({"destinationsRequired": false, "casRequired": true, "strictValues": true, "expiryNotices": null})
        )
    );
    let id = clean["id"].as_str().unwrap();
    let (status, refused) =
        api.patch(&format!("/api/secrets/{id}"), json!({"value": "tok-clean-100\n"})).await;
    assert_eq!(status, 400, "strict for the tenant: {refused}");
    let (status, refused) = api.patch(&format!("/api/secrets/{id}"), json!({"value": "tok-clean-100"})).await;
    assert_eq!(
        (status, refused["error"].as_str(), refused["currentVersion"].as_i64()),
        (428, Some("precondition_required"), Some(1))
    );
    assert_eq!(
        refused["message"],
        "secret 'clean': this tenant requires the version a value change is based on (send If-Match: \"<version>\", e.g. \"1\")"
    );
    let (status, _) = api.post(&format!("/api/secrets/{id}/rollback"), json!({"version": 1})).await;
    assert_eq!(status, 428, "a rollback is a value change too");
    // A description needs no version; a value with If-Match goes through.
    assert_eq!(api.patch(&format!("/api/secrets/{id}"), json!({"description": "d"})).await.0, 200);
    let (status, changed) = api
        .send(
            api.req(reqwest::Method::PATCH, &format!("/api/secrets/{id}"))
                .header("If-Match", "\"1\"")
                .json(&json!({"value": "tok-clean-100"})),
        )
        .await;
    assert_eq!((status, changed["version"].as_i64()), (200, Some(2)), "{changed}");
    assert_no_leak(
        &format!("{created}{quoted}{short}{refused}"),
        &["tok-pasted-77", "tok-quoted-88", "tok-strict-11"],
    );
}

#[tokio::test]
async fn last_use_is_shown_per_secret_and_per_consumer_and_unused_secrets_are_listed() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data")).await;
    let api = Api::new(&server).await;
    let receiver = Receiver::start().await;
    for name in ["api-token", "forgotten"] {
        let (status, _) = api.post("/api/secrets", json!({"name": name, "type": "TEXT", "value": V1})).await;
        assert_eq!(status, 201);
    }
    let (_, chain) = api.post("/api/rule-chains", bearer_chain(&receiver.url)).await;
    let chain_id = chain["id"].as_str().unwrap().to_owned();
    let (_, listed) = api.get("/api/secrets").await;
    assert!(listed["data"].as_array().unwrap().iter().all(|s| s["lastUsedTime"].is_null()), "{listed}");

    let before = veil_store::now_ms() / 60_000 * 60_000;
    assert_eq!(sent_token(&api, &chain_id, &receiver).await, V1);
    let (_, listed) = api.get("/api/secrets").await;
    let used =
        |name: &str| listed["data"].as_array().unwrap().iter().find(|s| s["name"] == name).unwrap().clone();
    let at = used("api-token")["lastUsedTime"].as_i64().expect("a time");
    assert!(at >= before && at <= veil_store::now_ms(), "the minute of the message: {at}");
    assert!(used("forgotten")["lastUsedTime"].is_null());
    let id = used("api-token")["id"].as_str().unwrap().to_owned();
    let (_, one) = api.get(&format!("/api/secrets/{id}")).await;
    assert_eq!(one["lastUsedTime"], at);
    let (_, usages) = api.get(&format!("/api/secrets/{id}/usages")).await;
    assert_eq!(usages["RULE_CHAIN"][0]["lastUsedTime"], at, "{usages}");

    // Unused for a day: only the one nothing used.
    let (_, unused) = api.get("/api/secrets?unusedForDays=1").await;
    let names: Vec<&str> =
        unused["data"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!((names, unused["totalElements"].as_i64()), (vec!["forgotten"], Some(1)));
    let config = dir.path().join("config");
    let login = ["login", "-u", "admin", "--password-stdin"];
    ok(&spawn_run(&config, &server, &login, &format!("{ADMIN_PASSWORD}\n")).await);
    let run = spawn_run(&config, &server, &["secret", "list", "--unused", "90"], "").await;
    let table = ok(&run);
    assert!(
        table.contains("LAST USED") && table.contains("forgotten") && !table.contains("api-token"),
        "{table}"
    );

    // After a restart the times stay (they outlive the audit retention too: their own table).
    drop(api);
    let mut server = server;
    server.terminate();
    let server = Server::start(&dir.path().join("data")).await;
    let api = Api::new(&server).await;
    let (_, one) = api.get(&format!("/api/secrets/{id}")).await;
    assert_eq!(one["lastUsedTime"], at);
}

/// A certificate for `cn` valid until `days` from now, signed by a fresh CA; the bundle holds it
/// and the CA's certificate. With the leaf's private key (PKCS#8 PEM).
fn bundle(cn: &str, days: i64) -> (String, String) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "Test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(vec![cn.to_owned()]).unwrap();
    leaf.distinguished_name.push(DnType::CommonName, cn);
    leaf.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(days);
    let cert = leaf.signed_by(&key, &Issuer::from_params(&ca, &ca_key)).unwrap();
    (format!("{}{}", cert.pem(), ca_cert.pem()), key.serialize_pem())
}

#[tokio::test]
async fn certificates_and_keys_are_described_and_expiring_secrets_are_listed() {
    use base64::Engine as _;
    let b64 = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data")).await;
    let api = Api::new(&server).await;
    let (pem, key) = bundle("device-7.example.com", 10);
    let (status, cert) = api
        .post(
            "/api/secrets",
            json!({"name": "device-cert", "type": "FILE", "fileName": "d.pem", "value": b64(&pem)}),
        )
        .await;
    assert_eq!(status, 201, "{cert}");
    let info = &cert["certificate"];
    assert_eq!(
        (info["subject"].as_str(), info["issuer"].as_str()),
        (Some("CN=device-7.example.com"), Some("CN=Test CA"))
    );
    assert_eq!(info["certificates"], 2, "the leaf and its CA");
    let days_left = (info["notAfter"].as_i64().unwrap() - veil_store::now_ms()) / 86_400_000;
    assert!((9..=10).contains(&days_left), "{info}");
    assert_eq!(info["sha256Fingerprint"].as_str().unwrap().len(), 64);
    let (_, key_secret) = api
        .post(
            "/api/secrets",
            json!({"name": "device-key", "type": "FILE", "fileName": "k.pem", "value": b64(&key)}),
        )
        .await;
    assert_eq!(key_secret["privateKey"], json!({"algorithm": "EC", "encrypted": false}));
    assert!(key_secret.get("certificate").is_none());

    // A token with a known expiry in five days, one without.
    let in_five_days = veil_store::now_ms() + 5 * 86_400_000;
    let (status, token) = api
        .post(
            "/api/secrets",
            json!({"name": "api-token", "type": "TEXT", "value": V1, "expiresAt": in_five_days}),
        )
        .await;
    assert_eq!((status, token["expiresAt"].as_i64()), (201, Some(in_five_days)), "{token}");
    api.post("/api/secrets", json!({"name": "forever", "type": "TEXT", "value": V2})).await;
    let (status, bad) = api
        .post("/api/secrets", json!({"name": "x", "type": "TEXT", "value": V2, "expiresAt": "soon"}))
        .await;
    assert_eq!(
        (status, bad["message"].as_str()),
        (400, Some("expiresAt: must be a time in milliseconds since 1970"))
    );

    let expiring = |days: u32| {
        let api = &api;
        async move {
            let (_, page) = api.get(&format!("/api/secrets?expiringWithinDays={days}")).await;
            page["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["name"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(expiring(30).await, ["api-token", "device-cert"]);
    assert_eq!(expiring(7).await, ["api-token"]);
    assert!(expiring(1).await.is_empty());
    // Clearing the token's expiry takes it off the list.
    let id = token["id"].as_str().unwrap();
    let (status, cleared) = api.patch(&format!("/api/secrets/{id}"), json!({"expiresAt": null})).await;
    assert!(status == 200 && cleared.get("expiresAt").is_none(), "{cleared}");
    assert_eq!(expiring(30).await, ["device-cert"]);

    // The CLI: --expiring, and the certificate in `secret show`.
    let config = dir.path().join("config");
    let login = ["login", "-u", "admin", "--password-stdin"];
    ok(&spawn_run(&config, &server, &login, &format!("{ADMIN_PASSWORD}\n")).await);
    let run = spawn_run(&config, &server, &["secret", "list", "--expiring", "30"], "").await;
    let table = ok(&run);
    assert!(
        table.contains("EXPIRES") && table.contains("device-cert") && !table.contains("forever"),
        "{table}"
    );
    let run = spawn_run(
        &config,
        &server,
        &["secret", "update", "api-token", "--expires-at", "2030-01-31T00:00:00Z"],
        "",
    )
    .await;
    assert!(ok(&run).contains("2030-01-31T00:00:00Z"), "{}", run.stdout);
    let run = spawn_run(&config, &server, &["secret", "show", "device-cert"], "").await;
    let shown = ok(&run);
    assert!(
        shown.contains("CN=device-7.example.com (issuer CN=Test CA") && shown.contains("2 in the file"),
        "{shown}"
    );
    let run = spawn_run(&config, &server, &["secret", "show", "device-key"], "").await;
    assert!(
        ok(&run).lines().any(|l| l.trim_start().starts_with("privateKey") && l.trim_end().ends_with("EC")),
        "{}",
        run.stdout
    );
}

#[tokio::test]
async fn the_impact_of_a_change_names_every_consumer_what_reconnects_and_how_often_it_is_used() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let api = Api::new(&server).await;
    let receiver = Receiver::start().await;
    let (_, secret) =
        api.post("/api/secrets", json!({"name": "api-token", "type": "TEXT", "value": V1})).await;
    let id = secret["id"].as_str().unwrap().to_owned();
    let (_, bearer) = api.post("/api/rule-chains", bearer_chain(&receiver.url)).await;
    let mqtt = json!({"name": "Broker", "nodes": [{"type": "mqtt", "name": "Publish", "configuration": {
        "topicPattern": "t", "host": "127.0.0.1", "port": 9,
        "credentials": {"type": "basic", "username": "veil", "password": "$<secret:api-token>"}}}]});
    let (status, mqtt) = api.post("/api/rule-chains", mqtt).await;
    assert_eq!(status, 201, "{mqtt}");
    let (_, customer) = api.post("/api/customers", json!({"name": "Acme"})).await;
    let shared = json!({"customerId": customer["id"]});
    assert_eq!(api.post(&format!("/api/secrets/{id}/shares"), shared).await.0, 200);
    for _ in 0..3 {
        sent_token(&api, bearer["id"].as_str().unwrap(), &receiver).await;
    }

    let (status, impact) = api.get(&format!("/api/secrets/{id}/impact")).await;
    assert_eq!(status, 200, "{impact}");
    let rows: Vec<(&str, &str, &str, bool)> = impact["consumers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap(),
                c["node"].as_str().unwrap(),
                c["field"].as_str().unwrap(),
                c["reconnects"] == true,
            )
        })
        .collect();
    assert!(
        rows.contains(&("Forward", "Call", "/nodes/0/configuration/credentials/token", false)),
        "{impact}"
    );
    assert!(
        rows.contains(&("Broker", "Publish", "/nodes/0/configuration/credentials/password", true)),
        "{impact}"
    );
    assert_eq!(impact["reconnecting"], 1);
    let forward = impact["consumers"].as_array().unwrap().iter().find(|c| c["name"] == "Forward").unwrap();
    assert_eq!(forward["messagesPerMinute"], 0.05, "3 uses in the last hour: {forward}");
    assert!(forward["lastUsedTime"].is_i64());
    assert_eq!(impact["customers"], json!([{"id": customer["id"], "name": "Acme"}]));

    // Only someone who may change the value sees what a change touches.
    let grants = json!([{"resource": "SECRET", "operations": ["READ"]}]);
    assert_eq!(api.post("/api/roles", json!({"name": "Readers", "permissions": grants})).await.0, 201);
    let (status, _) = api
        .post(
            "/api/users",
            json!({"username": "reader", "password": "reader-password-1", "roles": ["Readers"]}),
        )
        .await;
    assert_eq!(status, 201);
    let reader = Api::as_user(&server, "reader", "reader-password-1").await;
    assert_eq!(reader.get(&format!("/api/secrets/{id}/impact")).await.0, 403);
}

#[tokio::test]
async fn veil_key_rekey_moves_a_stopped_store_to_a_new_master_key() {
    use std::process::Stdio;

    use crate::support::{serve_command, veil};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = Server::start(&data).await;
    let api = Api::new(&server).await;
    let receiver = Receiver::start().await;
    api.post("/api/secrets", json!({"name": "api-token", "type": "TEXT", "value": V1})).await;
    let (_, chain) = api.post("/api/rule-chains", bearer_chain(&receiver.url)).await;
    let chain = chain["id"].as_str().unwrap().to_owned();
    drop(api);
    assert!(server.terminate().success());

    let new_key = dir.path().join("new.key");
    let out = veil().arg("key").arg("generate").arg(&new_key).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&new_key).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    let out = veil()
        .args(["key", "rekey", "--data-dir"])
        .arg(&data)
        .arg("--new-master-key-file")
        .arg(&new_key)
        .env_remove("VEIL_MASTER_KEY")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(said.starts_with("Wrapped 1 data key(s) under the new master key."), "{said}");

    // The old key (still <data>/master.key) is refused with the usual clear error.
    let mut old = serve_command(&data);
    old.stdout(Stdio::null());
    let out = old.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("error: the master key does not match this database"), "{stderr}");
    // The new one opens everything: the chain sends the same token.
    let mut cmd = serve_command(&data);
    cmd.arg("--master-key-file").arg(&new_key);
    let server = Server::start_with(cmd).await;
    let api = Api::new(&server).await;
    assert_eq!(sent_token(&api, &chain, &receiver).await, V1);
}

/// The expiry notices the chain's debug events show: (secret, version, days left, threshold).
async fn notices_seen(api: &Api<'_>, chain_id: &str) -> Vec<(String, i64, i64, i64)> {
    let (_, events) = api.get(&format!("/api/rule-chains/{chain_id}/events")).await;
    let mut seen: Vec<(String, i64, i64, i64)> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let d = &e["input"]["data"];
            assert_eq!(e["input"]["type"], "SECRET_EXPIRY", "{e}");
            let name = d["name"].as_str().unwrap().to_owned();
            (
                name,
                d["version"].as_i64().unwrap(),
                d["daysLeft"].as_i64().unwrap(),
                d["threshold"].as_i64().unwrap(),
            )
        })
        .collect();
    seen.sort();
    seen
}

#[tokio::test]
async fn expiry_notices_go_into_the_chosen_chain_once_per_threshold_and_version() {
    use base64::Engine as _;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = Server::start(&data).await;
    let api = Api::new(&server).await;
    let chain = json!({"name": "Expiry", "nodes": [
        {"type": "log", "name": "Log", "debugMode": true, "configuration": {"prefix": "EXPIRY "}}]});
    let (_, chain) = api.post("/api/rule-chains", chain).await;
    let chain_id = chain["id"].as_str().unwrap().to_owned();
    let in_five_days = veil_store::now_ms() + 5 * 86_400_000 - 60_000;
    let (_, token) = api
        .post(
            "/api/secrets",
            json!({"name": "api-token", "type": "TEXT", "value": V1, "expiresAt": in_five_days}),
        )
        .await;
    let (pem, _) = bundle("device-7.example.com", 10);
    let b64 = base64::engine::general_purpose::STANDARD.encode(&pem);
    api.post(
        "/api/secrets",
        json!({"name": "device-cert", "type": "FILE", "fileName": "d.pem", "value": b64}),
    )
    .await;
    api.post("/api/secrets", json!({"name": "forever", "type": "TEXT", "value": V2})).await;

    // Bad settings name their field.
    let bad = json!({"expiryNotices": {"ruleChainId": chain_id, "daysBefore": [30, 0]}});
    let (status, refused) = api.put("/api/tenant-settings", bad).await;
    assert_eq!(
        (status, refused["problems"][0]["path"].as_str()),
        (400, Some("/expiryNotices/daysBefore/1")),
        "{refused}"
    );
    let nowhere = json!({"expiryNotices": {"ruleChainId": uuid::Uuid::new_v4(), "daysBefore": [7]}});
    let (status, refused) = api.put("/api/tenant-settings", nowhere).await;
    assert_eq!((status, refused["problems"][0]["path"].as_str()), (400, Some("/expiryNotices/ruleChainId")));

    let notices = json!({"expiryNotices": {"ruleChainId": chain_id, "daysBefore": [30, 7, 1]}});
    let (status, settings) = api.put("/api/tenant-settings", notices.clone()).await;
    assert_eq!(
        (status, settings["expiryNotices"]["daysBefore"].clone()),
        (200, json!([30, 7, 1])),
        "{settings}"
    );
    let first = crate::support::eventually("two notices", async || {
        let seen = notices_seen(&api, &chain_id).await;
        (seen.len() >= 2).then_some(seen)
    })
    .await;
    assert_eq!(first, [("api-token".into(), 1, 5, 7), ("device-cert".into(), 1, 10, 30)]);

    // Saved again: nothing new. A new version of the token: its own notice.
    assert_eq!(api.put("/api/tenant-settings", notices.clone()).await.0, 200);
    let id = token["id"].as_str().unwrap();
    assert_eq!(api.patch(&format!("/api/secrets/{id}"), json!({"value": "tok-v2-rotated"})).await.0, 200);
    assert_eq!(api.put("/api/tenant-settings", notices).await.0, 200);
    let seen = notices_seen(&api, &chain_id).await;
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert!(seen.contains(&("api-token".into(), 2, 5, 7)), "{seen:?}");
    assert_no_leak(&server.logs(), &[V1, "tok-v2-rotated"]);

    // After a restart (the start-up check runs) nothing is sent twice.
    drop(api);
    server.terminate();
    let server = Server::start(&data).await;
    let api = Api::new(&server).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(notices_seen(&api, &chain_id).await.is_empty(), "no notice sent twice");

    // The CLI shows and changes them.
    let config = dir.path().join("config");
    let login = ["login", "-u", "admin", "--password-stdin"];
    ok(&spawn_run(&config, &server, &login, &format!("{ADMIN_PASSWORD}\n")).await);
    let args = ["settings", "--expiry-notices", &chain_id, "--expiry-days", "14,3"];
    let run = spawn_run(&config, &server, &args, "").await;
    assert!(ok(&run).contains(&format!("rule chain {chain_id} at 14, 3 days")), "{}", run.stdout);
    let run = spawn_run(&config, &server, &["settings", "--no-expiry-notices"], "").await;
    assert!(ok(&run).lines().any(|l| l.trim() == "expiryNotices"), "{}", run.stdout);
    assert!(api.get("/api/tenant-settings").await.1["expiryNotices"].is_null());
}
