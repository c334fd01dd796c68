use std::io::Write as _;
use std::path::Path;
use std::process::Stdio;

use serde_json::{Value, json};

use crate::support::{ADMIN_PASSWORD, Api, Receiver, Server, assert_no_leak, veil};

/// The value must never show in any output: quotes and a backslash inside.
const TOKEN: &str = "cli-\"tok\"\\en-2";

/// What one `veil` run printed and how it ended.
pub(crate) struct Run {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

/// `veil ARGS` against the server at `base`, with its own config directory, `stdin` piped in.
fn run_with(config: &Path, base: &str, args: &[String], stdin: &str) -> Run {
    let mut child = veil()
        .args(args)
        .env("XDG_CONFIG_HOME", config)
        .env("HOME", config)
        .env("VEIL_URL", base)
        .env_remove("VEIL_TOKEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs the CLI off the async runtime (the server under test shares it).
pub(crate) async fn spawn_run(config: &Path, server: &Server, args: &[&str], stdin: &str) -> Run {
    let (config, base, stdin) = (config.to_owned(), server.base.clone(), stdin.to_owned());
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || run_with(&config, &base, &args, &stdin)).await.unwrap()
}

pub(crate) fn ok(r: &Run) -> &str {
    assert_eq!(r.code, 0, "stdout: {}\nstderr: {}", r.stdout, r.stderr);
    &r.stdout
}

#[tokio::test]
async fn the_cli_manages_secrets_chains_and_users_with_clear_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data")).await;
    let config = dir.path().join("config");
    let receiver = Receiver::start().await;

    // Not logged in: auth exit code.
    let r = spawn_run(&config, &server, &["secret", "list"], "").await;
    let expected = format!("error: not logged in to {}: run `veil login` or set VEIL_TOKEN", server.base);
    assert_eq!((r.code, r.stderr.trim()), (5, expected.as_str()));
    // A value on the command line is refused first (usage), and never echoed back.
    for args in [
        &["secret", "create", "api-token", "--value", "s3cr3t-arg"][..],
        &["secret", "create", "api-token", "s3cr3t-arg"],
    ] {
        let r = spawn_run(&config, &server, args, "").await;
        assert_eq!(r.code, 2, "{}", r.stderr);
        assert!(r.stderr.contains("pipe it on stdin") && !r.stderr.contains("s3cr3t-arg"), "{}", r.stderr);
    }
    // Wrong password, then the right one; the token file is private.
    let r =
        spawn_run(&config, &server, &["login", "-u", "admin", "--password-stdin"], "wrong-password\n").await;
    assert_eq!(r.code, 5, "{}", r.stderr);
    let r = spawn_run(
        &config,
        &server,
        &["login", "-u", "admin", "--password-stdin"],
        &format!("{ADMIN_PASSWORD}\n"),
    )
    .await;
    assert!(ok(&r).starts_with(&format!("Logged in to {} as admin", server.base)), "{}", r.stdout);
    let file = config.join("veil").join("credentials.json");
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&file).unwrap().permissions()) & 0o777,
        0o600
    );

    // A value as an argument is refused with a hint (usage error), nothing is created.
    let r = spawn_run(&config, &server, &["secret", "create", "api-token", "--value", "x"], "").await;
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("pipe it on stdin"), "{}", r.stderr);
    // The value from stdin; one trailing newline is dropped.
    let r = spawn_run(
        &config,
        &server,
        &["secret", "create", "api-token", "--description", "API token"],
        &format!("{TOKEN}\n"),
    )
    .await;
    let shown = ok(&r);
    assert!(
        shown.contains("api-token") && shown.contains("API token") && field_line(shown, "version", "1"),
        "{shown}"
    );
    let r = spawn_run(&config, &server, &["secret", "create", "api-token"], "again").await;
    assert_eq!(r.code, 4, "name taken is a conflict: {}", r.stderr);
    let long_name = "n".repeat(1000);
    let r = spawn_run(&config, &server, &["secret", "create", &long_name], "v").await;
    assert_eq!(r.code, 6, "{}", r.stderr);
    assert!(r.stderr.contains("name"), "{}", r.stderr);

    // Tables for people, JSON for scripts.
    let r = spawn_run(&config, &server, &["secret", "list"], "").await;
    let table = ok(&r);
    assert!(
        table.lines().next().unwrap().split_whitespace().eq([
            "NAME",
            "TYPE",
            "VERSION",
            "DESCRIPTION",
            "SHARED",
            "WITH",
            "LAST",
            "USED",
            "EXPIRES",
            "ID"
        ]),
        "{table}"
    );
    assert!(table.lines().nth(1).unwrap().trim_start().starts_with("api-token  TEXT  1"), "{table}");
    let r = spawn_run(&config, &server, &["secret", "list", "--output", "json"], "").await;
    let listed: Value = serde_json::from_str(ok(&r)).unwrap();
    assert_eq!(
        (listed["totalElements"].clone(), listed["data"][0]["name"].clone()),
        (json!(1), json!("api-token"))
    );

    // The value reached the store intact: a chain using it sends it to a real service.
    let chain = veil_examples::REST_BEARER_CHAIN.replace("http://127.0.0.1:9000", &receiver.url);
    let chain_file = dir.path().join("chain.json");
    std::fs::write(&chain_file, chain).unwrap();
    let r = spawn_run(
        &config,
        &server,
        &["chain", "create", chain_file.to_str().unwrap(), "--output", "json"],
        "",
    )
    .await;
    let chain_id = serde_json::from_str::<Value>(ok(&r)).unwrap()["id"].as_str().unwrap().to_owned();
    let r = spawn_run(
        &config,
        &server,
        &[
            "chain",
            "send",
            &chain_id,
            "--data",
            "{\"t\": 1}",
            "--metadata",
            "{\"deviceName\": \"d1\"}",
            "--wait",
        ],
        "",
    )
    .await;
    assert!(ok(&r).contains("Send to API   Success"), "{}", r.stdout);
    assert_eq!(receiver.requests()[0].headers["authorization"], format!("Bearer {TOKEN}"));

    // In use: delete is a conflict naming the chain; usages show where.
    let r = spawn_run(&config, &server, &["secret", "delete", "api-token"], "").await;
    assert_eq!(r.code, 4);
    assert!(r.stderr.contains("in use by rule chain 'Telemetry to REST'"), "{}", r.stderr);
    let r = spawn_run(&config, &server, &["secret", "usages", "api-token"], "").await;
    assert!(ok(&r).contains("/nodes/0/configuration/credentials/token"), "{}", r.stdout);
    let r = spawn_run(&config, &server, &["secret", "show", "no-such-secret"], "").await;
    assert_eq!(r.code, 3, "{}", r.stderr);

    // Rotation from a file.
    let value_file = dir.path().join("value.txt");
    std::fs::write(&value_file, "rotated-token").unwrap();
    let r = spawn_run(
        &config,
        &server,
        &["secret", "update", "api-token", "--file", value_file.to_str().unwrap()],
        "",
    )
    .await;
    assert!(field_line(ok(&r), "version", "2"), "{}", r.stdout);

    // Customers, sharing, users.
    ok(&spawn_run(&config, &server, &["customer", "create", "Acme"], "").await);
    let r = spawn_run(&config, &server, &["secret", "share", "api-token", "--customer", "Acme"], "").await;
    assert_eq!(ok(&r).trim(), "Shared 'api-token' with customer 'Acme'");
    let r = spawn_run(
        &config,
        &server,
        &["user", "create", "acme-user", "--role", "CUSTOMER_USER", "--customer", "Acme", "--password-stdin"],
        "acme-password-1\n",
    )
    .await;
    assert!(ok(&r).contains("CUSTOMER_USER"), "{}", r.stdout);
    let r = spawn_run(
        &config,
        &server,
        &["user", "create", "x", "--role", "NO_SUCH_ROLE", "--password-stdin"],
        "password-123\n",
    )
    .await;
    assert_eq!(r.code, 6);
    assert!(r.stderr.contains("'NO_SUCH_ROLE' is not a role"), "{}", r.stderr);

    // The customer user may use but not manage: a permission error is the auth exit code.
    let other = dir.path().join("config-acme");
    ok(&spawn_run(&other, &server, &["login", "-u", "acme-user", "--password-stdin"], "acme-password-1\n")
        .await);
    let r = spawn_run(&other, &server, &["secret", "list", "--output", "json"], "").await;
    assert_eq!(serde_json::from_str::<Value>(ok(&r)).unwrap()["totalElements"], 1);
    // Customers by name, for the customer user and the administrator alike (JSON keeps the ids).
    let r = spawn_run(&other, &server, &["secret", "show", "api-token"], "").await;
    assert!(field_line(ok(&r), "sharedWith", "Acme"), "{}", r.stdout);
    let r = spawn_run(&config, &server, &["secret", "list"], "").await;
    let row = ok(&r).lines().find(|l| l.contains("api-token")).unwrap_or_default().to_owned();
    assert!(row.contains("Acme"), "{}", r.stdout);
    let r = spawn_run(&other, &server, &["secret", "update", "api-token", "--stdin"], "stolen").await;
    assert_eq!(r.code, 5, "{}", r.stderr);
    assert!(r.stderr.contains("missing permission SECRET:WRITE"), "{}", r.stderr);

    // The audit log shows what happened, never the value.
    let r = spawn_run(&config, &server, &["audit", "--secret", "api-token", "--output", "json"], "").await;
    let audit: Value = serde_json::from_str(ok(&r)).unwrap();
    let actions: Vec<&str> =
        audit["data"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    for wanted in ["CREATE", "USE", "DELETE_REFUSED", "VALUE_CHANGE", "SHARE"] {
        assert!(actions.contains(&wanted), "{wanted} missing from {actions:?}");
    }
    let r = spawn_run(&config, &server, &["audit"], "").await;
    assert!(ok(&r).lines().next().unwrap().contains("ACTION"), "{}", r.stdout);

    // Logged out: back to the auth exit code. VEIL_TOKEN works instead of the file.
    ok(&spawn_run(&config, &server, &["logout"], "").await);
    assert_eq!(spawn_run(&config, &server, &["secret", "list"], "").await.code, 5);
    let token = Api::new(&server).await.token;
    let mut cmd = veil();
    let out = cmd
        .args(["secret", "list", "--output", "json"])
        .env("XDG_CONFIG_HOME", &config)
        .env("VEIL_URL", &server.base)
        .env("VEIL_TOKEN", token)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // Nothing printed anywhere holds the value.
    assert_no_leak(&format!("{}{}", server.logs(), server.stdout()), &[TOKEN, "rotated-token"]);
}

#[tokio::test]
async fn stray_values_and_passwords_are_refused_without_echo() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data")).await;
    let config = dir.path().join("config");
    for args in [
        &["secret", "create", "cli2", "CliVal-TANGO-34", "CliVal-UNIFORM-35"][..],
        &["secret", "create", "cli2", "CliVal-TANGO-34", "--CliVal-UNIFORM-35"],
        &["secret", "create", "cli2", "CliVal-TANGO-34", "-CliVal-UNIFORM-35"],
        &["secret", "create", "cli2", "--description", "d", "CliVal-TANGO-34", "CliVal-UNIFORM-35"],
        &["secret", "update", "cli2", "CliVal-TANGO-34", "CliVal-UNIFORM-35", "CliVal-V-36"],
    ] {
        let r = spawn_run(&config, &server, args, "").await;
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
        assert!(r.stderr.contains("pipe it on stdin"), "{}", r.stderr);
        assert!(!r.stderr.contains("CliVal") && !r.stdout.contains("CliVal"), "echoed: {}", r.stderr);
    }
    for args in [
        &["login", "-u", "admin", "CliPw-WHISKEY-37"][..],
        &["login", "-u", "admin", "CliPw-WHISKEY-37", "CliPw-XRAY-38"],
        &["user", "create", "bob", "CliPw-WHISKEY-37", "--role", "SECRET_MANAGER"],
        &["user", "update", "bob", "CliPw-WHISKEY-37", "CliPw-XRAY-38"],
    ] {
        let r = spawn_run(&config, &server, args, "").await;
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
        assert!(r.stderr.contains("--password-stdin"), "{}", r.stderr);
        assert!(!r.stderr.contains("CliPw") && !r.stdout.contains("CliPw"), "echoed: {}", r.stderr);
    }
    // Nothing reached the server.
    let (_, page) = Api::new(&server).await.get("/api/secrets").await;
    assert_eq!(page["totalElements"], 0);
}

#[tokio::test]
async fn stored_text_never_reaches_the_terminal_raw() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = Server::start(&data).await;
    let config = dir.path().join("config");
    let api = Api::new(&server).await;
    // Names with escape sequences, line breaks or bidirectional overrides are refused now...
    let name = "evil\u{1b}[31mRED\nsecond line\u{202e}gnp.exe\u{9b}2J";
    let chain = json!({"name": name, "nodes": [{"type": "log", "name": "Log", "configuration": {}}]});
    let (status, refused) = api.post("/api/rule-chains", chain).await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(refused["problems"][0]["path"], "/name");
    // ... but a database from before may hold one: the table and the JSON must not pass it through.
    let chain = json!({"name": "plain", "nodes": [{"type": "log", "name": "Log", "configuration": {}}]});
    assert_eq!(api.post("/api/rule-chains", chain).await.0, 201);
    server.terminate();
    {
        use sqlx::Connection as _;
        let url = format!("sqlite://{}", data.join("veil.db").display());
        let mut db = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::query("UPDATE owners SET name = ?").bind(name).execute(&mut db).await.unwrap();
        db.close().await.unwrap();
    }
    let server = Server::start(&data).await;
    ok(&spawn_run(
        &config,
        &server,
        &["login", "-u", "admin", "--password-stdin"],
        &format!("{ADMIN_PASSWORD}\n"),
    )
    .await);

    let r = spawn_run(&config, &server, &["chain", "list"], "").await;
    let table = ok(&r);
    let raw = |s: &str| s.chars().any(|c| c.is_control() && c != '\n' || c == '\u{202e}');
    assert!(!raw(table), "{table:?}");
    assert_eq!(table.lines().count(), 2, "one header and one row: {table}");
    assert!(table.contains("evil\\u{1b}[31mRED\\nsecond line\\u{202e}gnp.exe\\u{9b}2J"), "{table}");

    let r = spawn_run(&config, &server, &["chain", "list", "--output", "json"], "").await;
    let json_text = ok(&r);
    assert!(!raw(json_text), "{json_text:?}");
    let listed: Value = serde_json::from_str(json_text).unwrap();
    assert_eq!(listed["data"][0]["name"], name, "the JSON still says exactly what is stored");
}

#[tokio::test]
async fn changing_your_own_password_from_the_cli_needs_the_current_one() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data")).await;
    let config = dir.path().join("config");
    let user = json!({"username": "dana", "password": "dana password 1", "roles": ["SECRET_MANAGER"]});
    assert_eq!(Api::new(&server).await.post("/api/users", user).await.0, 201);
    ok(&spawn_run(&config, &server, &["login", "-u", "dana", "--password-stdin"], "dana password 1\n").await);

    // dana may not list users; her own name still resolves.
    let r = spawn_run(&config, &server, &["user", "update", "dana", "--password-stdin"], "dana password 2\n")
        .await;
    assert_eq!(r.code, 6, "{}", r.stderr);
    assert!(r.stderr.contains("currentPassword: is required"), "{}", r.stderr);
    assert!(r.stderr.contains("--current-password-stdin"), "{}", r.stderr);
    let r = spawn_run(
        &config,
        &server,
        &["user", "update", "dana", "--password-stdin", "--current-password-stdin"],
        "wrong password 0\ndana password 2\n",
    )
    .await;
    assert_eq!(r.code, 5, "a wrong current password: {}", r.stderr);
    assert!(r.stderr.contains("currentPassword: is not your current password"), "{}", r.stderr);
    let r = spawn_run(
        &config,
        &server,
        &["user", "update", "dana", "--password-stdin", "--current-password-stdin"],
        "dana password 1\ndana password 2\n",
    )
    .await;
    assert!(ok(&r).contains("dana"), "{}", r.stdout);
    server.login_as("dana", "dana password 2").await;
    let everything = format!("{}{}{}", server.logs(), r.stdout, r.stderr);
    assert_no_leak(&everything, &["dana password 1", "dana password 2"]);
    assert!(!everything.contains("dana password"), "not even a part of one: {everything}");
}

/// Whether a `veil ... show`-style answer has the line `<key>   <value>` (any alignment).
fn field_line(shown: &str, key: &str, value: &str) -> bool {
    shown.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == [key, value])
}

/// The system administrator's `veil tenant create/list/delete`; the password only from stdin.
#[tokio::test]
async fn the_system_administrator_manages_tenants_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data")).await;
    let config = dir.path().join("config");
    let login = ["login", "-u", "sysadmin", "--password-stdin"];
    ok(&spawn_run(&config, &server, &login, &format!("{}\n", crate::support::SYSADMIN_PASSWORD)).await);
    let r = spawn_run(
        &config,
        &server,
        &["tenant", "create", "Globex", "--admin", "globex-admin", "p4ss-arg"],
        "",
    )
    .await;
    assert_eq!(r.code, 2, "a password argument is refused: {}", r.stderr);
    assert!(!r.stderr.contains("p4ss-arg"), "{}", r.stderr);
    let r = spawn_run(
        &config,
        &server,
        &["tenant", "create", "Globex", "--admin", "globex-admin", "--stdin"],
        "globex password 42\n",
    )
    .await;
    assert!(
        ok(&r).starts_with("Created tenant 'Globex' and administrator 'globex-admin' with id "),
        "{}",
        r.stdout
    );
    let r = spawn_run(&config, &server, &["tenant", "list"], "").await;
    assert!(ok(&r).lines().any(|l| l.trim_start().starts_with("Globex ")), "{}", r.stdout);
    // The new administrator logs in to the new tenant.
    let theirs = dir.path().join("config-globex");
    ok(&spawn_run(
        &theirs,
        &server,
        &["login", "-u", "globex-admin", "--password-stdin"],
        "globex password 42\n",
    )
    .await);
    let r = spawn_run(&config, &server, &["tenant", "delete", "Globex"], "").await;
    assert_eq!(ok(&r).trim(), "Deleted tenant 'Globex'");
    let r = spawn_run(&config, &server, &["tenant", "list"], "").await;
    assert!(!ok(&r).contains("Globex"), "{}", r.stdout);
}

/// `--allow-host` on create and update, `--allow-any-host`, and `veil settings`.
#[tokio::test]
async fn the_cli_sets_allowed_destinations_and_the_tenant_setting() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data")).await;
    let config = dir.path().join("config");
    let login = ["login", "-u", "admin", "--password-stdin"];
    ok(&spawn_run(&config, &server, &login, &format!("{ADMIN_PASSWORD}\n")).await);
    let create = [
        "secret",
        "create",
        "loriot-password",
        "--allow-host",
        "*.LORIOT.io",
        "--allow-host",
        "10.0.0.5:8443",
    ];
    let shown = spawn_run(&config, &server, &create, "pw\n").await;
    let listed = ["allowedDestinations", "*.loriot.io,", "10.0.0.5:8443"];
    assert!(
        ok(&shown).lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == listed),
        "{}",
        shown.stdout
    );
    let bad =
        spawn_run(&config, &server, &["secret", "create", "x", "--allow-host", "bad_host!"], "v\n").await;
    assert_eq!(bad.code, 6, "{}", bad.stderr);
    assert!(bad.stderr.contains("allowedDestinations/0: 'bad_host!' is not a host name"), "{}", bad.stderr);
    let narrowed = spawn_run(
        &config,
        &server,
        &["secret", "update", "loriot-password", "--allow-host", "eu1.loriot.io:443"],
        "",
    )
    .await;
    assert!(field_line(ok(&narrowed), "allowedDestinations", "eu1.loriot.io:443"), "{}", narrowed.stdout);
    let cleared =
        spawn_run(&config, &server, &["secret", "update", "loriot-password", "--allow-any-host"], "").await;
    assert!(ok(&cleared).lines().any(|l| l.trim() == "allowedDestinations"), "{}", cleared.stdout);
    let settings = spawn_run(&config, &server, &["settings"], "").await;
    assert!(field_line(ok(&settings), "destinationsRequired", "false"), "{}", settings.stdout);
    let on = spawn_run(&config, &server, &["settings", "--destinations-required", "true"], "").await;
    assert!(field_line(ok(&on), "destinationsRequired", "true"), "{}", on.stdout);
    let cas = spawn_run(&config, &server, &["settings", "--cas-required", "true"], "").await;
    assert!(field_line(ok(&cas), "casRequired", "true"), "{}", cas.stdout);
    assert!(field_line(ok(&cas), "destinationsRequired", "true"), "the others stay: {}", cas.stdout);
    assert!(field_line(ok(&cas), "strictValues", "false"), "{}", cas.stdout);
}

#[tokio::test]
async fn the_cli_imports_a_thingsboard_export_reports_it_saves_and_exports_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data")).await;
    let config = dir.path().join("config");
    let login = ["login", "-u", "admin", "--password-stdin"];
    ok(&spawn_run(&config, &server, &login, &format!("{ADMIN_PASSWORD}\n")).await);
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/thingsboard/telemetry-forwarder.json");

    // Converted and printed, not stored; the report on stderr names what to do.
    let r = spawn_run(&config, &server, &["chain", "import", file], "").await;
    let chain: Value = serde_json::from_str(ok(&r)).unwrap();
    assert_eq!(chain["nodes"].as_array().unwrap().len(), 3, "{chain}");
    let report: Vec<&str> = r.stderr.lines().collect();
    assert!(report.contains(&"node 'Post to the API' (org.thingsboard.rule.engine.rest.TbRestApiCallNode): imported as rest_api_call"), "{}", r.stderr);
    assert!(
        report.contains(&"node 'Save timeseries' (org.thingsboard.rule.engine.telemetry.TbMsgTimeseriesNode): left out: Veil has no node that does what it does"),
        "{}",
        r.stderr
    );
    assert!(
        report.contains(&"missing secret 'mqtt-password' (TEXT): create it before saving (veil secret create mqtt-password --type TEXT)"),
        "{}",
        r.stderr
    );
    let r = spawn_run(&config, &server, &["chain", "list"], "").await;
    assert!(!ok(&r).contains("Telemetry forwarder"), "nothing stored: {}", r.stdout);

    // --save needs the secrets; with them it creates the chain, placeholders kept.
    let r = spawn_run(&config, &server, &["chain", "import", file, "--save"], "").await;
    assert_eq!(r.code, 6, "the server refused the input: {}", r.stderr);
    assert!(r.stderr.contains("secret 'api-token' does not exist"), "{}", r.stderr);
    for name in ["api-token", "mqtt-password"] {
        ok(&spawn_run(&config, &server, &["secret", "create", name], "value-of-it").await);
    }
    let r = spawn_run(&config, &server, &["chain", "import", file, "--keep-unsupported", "--save"], "").await;
    let line = ok(&r).trim().to_owned();
    assert!(line.starts_with("Created rule chain 'Telemetry forwarder' with id "), "{line}");
    let id = line.rsplit(' ').next().unwrap();
    let r = spawn_run(&config, &server, &["chain", "export", id], "").await;
    let exported: Value = serde_json::from_str(ok(&r)).unwrap();
    assert_eq!(exported["metadata"]["nodes"].as_array().unwrap().len(), 4);
    assert_eq!(
        exported["metadata"]["nodes"][2]["configuration"]["credentials"]["password"],
        "${secret:mqtt-password;type:TEXT}"
    );
    assert_no_leak(&format!("{}{}", r.stdout, r.stderr), &["value-of-it"]);
}
