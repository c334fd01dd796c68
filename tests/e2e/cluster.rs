//! Two `veil` processes on one PostgreSQL database, as behind a load balancer: what is changed
//! through one is used by the other without a restart.

use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

use crate::support::{Api, PostgresDatabase, Receiver, Server, serve_command};

/// One master key for the cluster (each instance has a data directory of its own).
const MASTER_KEY: [u8; 32] = [42; 32];

pub(crate) async fn instance(database: &str, dir: &std::path::Path) -> Server {
    let mut cmd = serve_command(dir);
    cmd.arg("--database")
        .arg(database)
        .env("VEIL_MASTER_KEY", base64::engine::general_purpose::STANDARD.encode(MASTER_KEY));
    Server::start_with(cmd).await
}

pub(crate) fn bearer_chain(url: &str) -> Value {
    json!({
        "name": "Forward",
        "firstNodeIndex": 0,
        "nodes": [{
            "type": "rest_api_call",
            "name": "Call",
            "configuration": {
                "restEndpointUrlPattern": format!("{url}/ingest"),
                "requestMethod": "POST",
                "credentials": {"type": "bearer", "token": "$<secret:api-token>"},
                "readTimeoutMs": 5000
            }
        }],
        "connections": []
    })
}

#[tokio::test]
#[ignore = "needs PostgreSQL (VEIL_TEST_POSTGRES)"]
async fn a_value_rotated_through_one_instance_is_used_by_the_next_message_on_the_other() {
    let (_db, database) = PostgresDatabase::create();
    let veil_store::Database::Postgres(database) = database else { unreachable!("a PostgreSQL database") };
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = instance(&database, dir_a.path()).await;
    let b = instance(&database, dir_b.path()).await;
    let (api_a, api_b) = (Api::new(&a).await, Api::new(&b).await);
    let receiver = Receiver::start().await;

    // Made through A: the secret and the chain; the chain runs on B too.
    let (status, secret) =
        api_a.post("/api/secrets", json!({"name": "api-token", "type": "TEXT", "value": "v0"})).await;
    assert_eq!(status, 201, "{secret}");
    let secret_id = secret["id"].as_str().unwrap().to_owned();
    let (status, chain) = api_a.post("/api/rule-chains", bearer_chain(&receiver.url)).await;
    assert_eq!(status, 201, "{chain}");
    let chain_id = chain["id"].as_str().unwrap().to_owned();
    let messages = format!("/api/rule-chains/{chain_id}/messages?wait=true");
    let send_b = || api_b.post(&messages, json!({"data": {"t": 1}}));
    let start = Instant::now();
    loop {
        let (status, _) = send_b().await;
        if status == 200 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "the chain saved on A never ran on B: {status}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(receiver.requests().last().unwrap().headers["authorization"], "Bearer v0");

    // Each rotation answered by A: the next message processed by B sends the new value once B
    // has it; how long that takes is measured.
    let mut delays = Vec::new();
    for i in 1..=200 {
        let value = format!("v{i}");
        let (status, body) = api_a.patch(&format!("/api/secrets/{secret_id}"), json!({"value": value})).await;
        assert_eq!(status, 200, "{body}");
        let answered = Instant::now();
        loop {
            let (status, body) = send_b().await;
            assert_eq!(status, 200, "{body}");
            let sent = receiver.requests().last().unwrap().headers["authorization"].clone();
            if sent == format!("Bearer {value}") {
                delays.push(answered.elapsed());
                break;
            }
            assert_eq!(sent, format!("Bearer v{}", i - 1), "B sent neither the old nor the new value");
            assert!(answered.elapsed() < Duration::from_secs(10), "B never used {value}");
        }
    }
    delays.sort();
    let (p50, p99) = (delays[delays.len() / 2], delays[delays.len() * 99 / 100]);
    println!(
        "PATCH answered on A -> next message on B sends the new value, over {} rotations: p50 {p50:?}, p99 {p99:?}, max {:?}",
        delays.len(),
        delays.last().unwrap()
    );
    assert!(p99 < Duration::from_millis(100), "p99 {p99:?}");

    // A delete through B of the chain stops it on A; then the secret can be deleted through A.
    assert_eq!(api_b.delete(&format!("/api/rule-chains/{chain_id}")).await.0, 204);
    let start = Instant::now();
    loop {
        let (status, _) =
            api_a.post(&format!("/api/rule-chains/{chain_id}/messages?wait=true"), json!({"data": {}})).await;
        if status == 404 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "the chain deleted on B still runs on A");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(api_a.delete(&format!("/api/secrets/{secret_id}")).await.0, 204);
}

/// A LORIOT integration saved through A starts on both instances, but its start-up — the
/// account login and the application output — happens once for the cluster (the other instance
/// takes the outcome under the database lease); a rotated password makes one new login, not
/// one per instance; uplinks through either instance reach the chain.
#[tokio::test]
#[ignore = "needs PostgreSQL (VEIL_TEST_POSTGRES)"]
async fn a_loriot_integration_on_two_instances_creates_one_output_and_takes_uplinks_on_both() {
    use veil_examples::loriot::{Emulator, EmulatorConfig};
    const PUSH_AUTH: &str = "Basic bG9yaW90OnB1c2g=";
    let (_db, database) = PostgresDatabase::create();
    let veil_store::Database::Postgres(database) = database else { unreachable!("a PostgreSQL database") };
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = instance(&database, dir_a.path()).await;
    let b = instance(&database, dir_b.path()).await;
    let (api_a, api_b) = (Api::new(&a).await, Api::new(&b).await);
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let receiver = Receiver::start().await;
    let config = EmulatorConfig::default();
    for (name, value) in [
        ("loriot-password", config.password.as_str()),
        ("loriot-app-token", config.app_token.as_str()),
        ("loriot-push-auth", PUSH_AUTH),
        ("dashboard-token", "dash-token"),
    ] {
        let (status, body) =
            api_a.post("/api/secrets", json!({"name": name, "type": "TEXT", "value": value})).await;
        assert_eq!(status, 201, "{body}");
    }
    let chain: Value =
        serde_json::from_str(&veil_examples::LORIOT_CHAIN.replace("http://127.0.0.1:9000", &receiver.url))
            .unwrap();
    let (status, chain) = api_a.post("/api/rule-chains", chain).await;
    assert_eq!(status, 201, "{chain}");
    let key = format!("loriot-{}", uuid::Uuid::new_v4().simple());
    let path = format!("/api/v1/integrations/loriot/{key}");
    let mut integration = veil_examples::loriot_integration(chain["id"].as_str().unwrap());
    integration["routingKey"] = json!(key);
    integration["configuration"]["apiBaseUrl"] = json!(emulator.url());
    integration["configuration"]["loriotDownlinkUrl"] = json!(format!("{}/1/rest", emulator.url()));
    integration["configuration"]["httpEndpoint"] = json!(a.url(&path));
    let (status, created) = api_a.post("/api/integrations", integration).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();

    // Active on both; one login, one output.
    for api in [&api_a, &api_b] {
        crate::support::eventually("the integration to be active on both instances", async || {
            let (code, body) = api.get(&format!("/api/integrations/{id}")).await;
            (code == 200 && body["status"] == "active").then_some(())
        })
        .await;
    }
    assert_eq!(emulator.outputs().len(), 1, "{:?}", emulator.outputs());
    assert_eq!(emulator.logins().len(), 1, "one start-up for the cluster");

    // Uplinks: LORIOT's push (to A's URL), then straight to B and to A.
    let uplink = json!({"cmd": "rx", "EUI": "0004A30B001C0530", "fcnt": 3, "port": 2, "data": "00E7028F"});
    assert_eq!(emulator.push_uplink(uplink.clone()).await, [(a.url(&path), 200)]);
    let client = reqwest::Client::new();
    for server in [&b, &a] {
        let response = client
            .post(server.url(&path))
            .header("authorization", PUSH_AUTH)
            .json(&uplink)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    }
    crate::support::eventually("three uplinks at the dashboard", async || {
        (receiver.requests().len() == 3).then_some(())
    })
    .await;

    // A new password, rotated through B: both instances start the integration again, one logs in.
    emulator.set_password("loriot-pass-2");
    let (_, found) = api_b.get("/api/secrets?textSearch=loriot-password").await;
    let secret_id = found["data"][0]["id"].as_str().unwrap().to_owned();
    let (status, body) =
        api_b.patch(&format!("/api/secrets/{secret_id}"), json!({"value": "loriot-pass-2"})).await;
    assert_eq!(status, 200, "{body}");
    crate::support::eventually("the new login", async || (emulator.logins().len() == 2).then_some(())).await;
    for api in [&api_a, &api_b] {
        crate::support::eventually("the integration to be active again on both", async || {
            let (_, body) = api.get(&format!("/api/integrations/{id}")).await;
            (body["status"] == "active").then_some(())
        })
        .await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let logins = emulator.logins();
    assert_eq!(logins.len(), 2, "one login per start-up of the cluster: {logins:?}");
    assert!(logins[1].ok);
    assert_eq!(emulator.outputs().len(), 1);
}

/// Three instances started at the same moment on an empty database: all of them start, and the
/// first start happens once — one keyring, one tenant "Default", one `admin` whose generated
/// password is printed by exactly one instance and works on all three.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL (VEIL_TEST_POSTGRES)"]
async fn instances_starting_together_on_an_empty_database_make_one_administrator() {
    let (_db, database) = PostgresDatabase::create();
    let veil_store::Database::Postgres(database) = database else { unreachable!("a PostgreSQL database") };
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let start = |dir: &std::path::Path| {
        let mut cmd = serve_command(dir);
        cmd.arg("--database")
            .arg(&database)
            .env("VEIL_MASTER_KEY", base64::engine::general_purpose::STANDARD.encode(MASTER_KEY))
            .env_remove("VEIL_ADMIN_PASSWORD");
        Server::start_with(cmd)
    };
    let (a, b, c) = tokio::join!(start(dirs[0].path()), start(dirs[1].path()), start(dirs[2].path()));
    let servers = [a, b, c];
    let printed: Vec<String> = servers
        .iter()
        .flat_map(|s| {
            s.stdout()
                .lines()
                .filter_map(|l| l.strip_prefix("Created user 'admin' with password: ").map(str::to_owned))
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(printed.len(), 1, "one instance made the administrator: {printed:?}");
    for server in &servers {
        let response = server
            .client
            .post(server.url("/api/auth/login"))
            .json(&json!({"username": "admin", "password": printed[0]}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{}", server.base);
    }
    let api = Api::as_user(&servers[0], "sysadmin", crate::support::SYSADMIN_PASSWORD).await;
    let (status, tenants) = api.get("/api/tenants").await;
    assert_eq!(status, 200, "{tenants}");
    let names: Vec<&str> =
        tenants["data"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names.iter().filter(|n| **n == "Default").count(), 1, "{names:?}");
}

/// `veil migrate` moves a SQLite data directory with 10,000 secrets, a chain and an integration
/// to PostgreSQL (the figures it prints are shown with `--nocapture`); an instance on the copy,
/// with the same master key, logs the same admin in, lists every secret and sends the chain's
/// secret; a second run refuses the non-empty target.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL (VEIL_TEST_POSTGRES)"]
async fn veil_migrate_moves_a_sqlite_store_with_10000_secrets_to_postgres() {
    const SECRETS: usize = 10_000;
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start().await;
    let (chain_id, integration_id) = {
        let mut server = Server::start(dir.path()).await;
        let api = Api::new(&server).await;
        let (status, body) =
            api.post("/api/secrets", json!({"name": "api-token", "type": "TEXT", "value": "tok-1"})).await;
        assert_eq!(status, 201, "{body}");
        let (status, chain) = api.post("/api/rule-chains", bearer_chain(&receiver.url)).await;
        assert_eq!(status, 201, "{chain}");
        let integration = json!({"name": "Devices", "type": "HTTP", "ruleChainId": chain["id"],
            "configuration": {"enableSecurity": false}, "uplinkConverter": "#{deviceName: \"d\", telemetry: payload}"});
        let (status, integration) = api.post("/api/integrations", integration).await;
        assert_eq!(status, 201, "{integration}");
        assert!(server.terminate().success());
        (chain["id"].as_str().unwrap().to_owned(), integration["id"].as_str().unwrap().to_owned())
    };
    // The bulk of the secrets, written straight into the stopped server's store.
    {
        let store =
            crate::support::open_at(dir.path(), crate::support::generated_key(dir.path())).await.unwrap();
        let tenant = store.tenant_by_name("Default").await.unwrap().unwrap();
        let admin = veil_store::Actor::tenant_admin(tenant.id, veil_store::UserId::new_random(), "admin");
        for i in 1..SECRETS {
            let secret = crate::support::text_secret(&format!("device-{i:05}"), &format!("value-{i}"));
            store.create(&admin, secret).await.unwrap();
        }
        store.close().await;
    }

    let (_db, database) = PostgresDatabase::create();
    let veil_store::Database::Postgres(url) = database else { unreachable!("a PostgreSQL database") };
    let migrate = || {
        let mut cmd = crate::support::veil();
        cmd.args(["migrate", "--from"]).arg(dir.path()).args(["--to", &url]);
        cmd.env_remove("VEIL_MASTER_KEY").env_remove("VEIL_MASTER_KEY_FILE");
        cmd.output().unwrap()
    };
    let out = migrate();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    println!("{stdout}");
    assert!(stdout.contains("secrets/s"), "{stdout}");
    assert!(stdout.contains(&format!("secrets {SECRETS},")), "{stdout}");
    assert!(stdout.contains(&format!("({SECRETS} secrets, {SECRETS} values)")), "{stdout}");

    // An instance on the copy.
    let instance_dir = tempfile::tempdir().unwrap();
    let mut cmd = serve_command(instance_dir.path());
    cmd.arg("--database").arg(&url).env("VEIL_MASTER_KEY_FILE", dir.path().join("master.key"));
    let server = Server::start_with(cmd).await;
    let api = Api::new(&server).await;
    let (status, page) = api.get("/api/secrets?pageSize=1").await;
    assert_eq!((status, page["totalElements"].as_u64()), (200, Some(SECRETS as u64)), "{page}");
    let (status, _) = api.get(&format!("/api/integrations/{integration_id}")).await;
    assert_eq!(status, 200);
    let (status, trace) =
        api.post(&format!("/api/rule-chains/{chain_id}/messages?wait=true"), json!({"data": {"t": 1}})).await;
    assert_eq!(status, 200, "{trace}");
    assert_eq!(receiver.requests().last().unwrap().headers["authorization"], "Bearer tok-1");

    let again = migrate();
    assert!(!again.status.success());
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.contains("already holds Veil data") && stderr.contains("--replace"), "{stderr}");
}

/// A random number below `n` (a fresh UUID's bits: the races need variety, not a generator).
fn random_below(n: u64) -> u64 {
    u64::from_le_bytes(uuid::Uuid::new_v4().as_bytes()[..8].try_into().unwrap()) % n
}

/// 200 rounds of a chain save racing a delete of the secret it uses, each request sent to a
/// random instance after a random pause: every round has one winner (the chain saved and the
/// delete refused as in use, or the secret deleted and the save refused as unknown), both kinds
/// of round occur, no reference to a deleted secret remains, and every saved chain runs on both
/// instances with its secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL (VEIL_TEST_POSTGRES)"]
async fn deletes_racing_saves_over_two_instances_leave_no_chain_without_its_secret() {
    let (_db, database) = PostgresDatabase::create();
    let veil_store::Database::Postgres(url) = database.clone() else { unreachable!("a PostgreSQL database") };
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = instance(&url, dir_a.path()).await;
    let b = instance(&url, dir_b.path()).await;
    let apis = [Api::new(&a).await, Api::new(&b).await];
    let receiver = Receiver::start().await;
    let pick = || &apis[random_below(2) as usize];
    let (mut saved, mut deleted) = (Vec::new(), 0);
    for round in 0..200 {
        let name = format!("race-{round}");
        let (status, secret) = pick()
            .post("/api/secrets", json!({"name": name, "type": "TEXT", "value": format!("v-{round}")}))
            .await;
        assert_eq!(status, 201, "{secret}");
        let id = secret["id"].as_str().unwrap().to_owned();
        for api in &apis {
            crate::support::eventually("both instances to know the secret", async || {
                let (_, page) = api.get(&format!("/api/secrets?textSearch={name}")).await;
                (page["totalElements"] == 1).then_some(())
            })
            .await;
        }
        let mut chain = bearer_chain(&receiver.url);
        chain["name"] = json!(format!("chain-{round}"));
        chain["nodes"][0]["configuration"]["credentials"]["token"] = json!(format!("$<secret:{name}>"));
        let (saver, deleter) = (pick(), pick());
        let (pause_save, pause_delete) = (random_below(3), random_below(3));
        let ((save, body), (delete, refusal)) = tokio::join!(
            async {
                tokio::time::sleep(Duration::from_millis(pause_save)).await;
                saver.post("/api/rule-chains", chain).await
            },
            async {
                tokio::time::sleep(Duration::from_millis(pause_delete)).await;
                deleter.delete(&format!("/api/secrets/{id}")).await
            }
        );
        match (save, delete) {
            (201, 409) => {
                assert_eq!(refusal["error"], "secret_in_use", "{refusal}");
                saved.push((body["id"].as_str().unwrap().to_owned(), format!("Bearer v-{round}")));
            }
            (400, 204) => {
                assert!(body.to_string().contains(&name), "the refusal names the secret: {body}");
                deleted += 1;
            }
            other => {
                panic!("round {round}: save and delete both won or both lost: {other:?} {body} {refusal}")
            }
        }
    }
    println!(
        "200 races: {} chains saved (delete refused), {deleted} secrets deleted (save refused)",
        saved.len()
    );
    assert!(
        !saved.is_empty() && deleted > 0,
        "both outcomes occur: {} saved, {deleted} deleted",
        saved.len()
    );
    let store = crate::support::open_with(
        database,
        veil_store::MasterKeySource::Base64(
            base64::engine::general_purpose::STANDARD.encode(MASTER_KEY).into(),
        ),
    )
    .await
    .unwrap();
    assert_eq!(store.dangling_references().await.unwrap(), 0);
    store.close().await;
    // Every saved chain runs on both instances and sends its secret.
    for (chain_id, sent) in &saved {
        for api in &apis {
            let path = format!("/api/rule-chains/{chain_id}/messages?wait=true");
            let (status, trace) = api.post(&path, json!({"data": {"t": 1}})).await;
            assert_eq!(status, 200, "{trace}");
            assert_eq!(trace["trace"][0]["relation"], json!(["Success"]), "{trace}");
            assert_eq!(&receiver.requests().last().unwrap().headers["authorization"], sent);
        }
    }
}

/// `kill -9` of instance A while writers create secrets through both: B answers every write
/// throughout; once A is back (on the same database) both list every acknowledged write, and A
/// follows B's changes again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL (VEIL_TEST_POSTGRES)"]
async fn kill_9_of_one_instance_during_writes_through_both_loses_nothing_and_it_catches_up() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    let (_db, database) = PostgresDatabase::create();
    let veil_store::Database::Postgres(url) = database else { unreachable!("a PostgreSQL database") };
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut a = instance(&url, dir_a.path()).await;
    let b = instance(&url, dir_b.path()).await;
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let b_failures = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for (server, label) in [(&a, "a"), (&b, "b")] {
        let token = server.login().await;
        for w in 0..4 {
            let (client, url, token) = (server.client.clone(), server.url("/api/secrets"), token.clone());
            let (acknowledged, b_failures, stop) =
                (Arc::clone(&acknowledged), Arc::clone(&b_failures), Arc::clone(&stop));
            writers.push(tokio::spawn(async move {
                for i in 0.. {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let name = format!("{label}{w}-{i}");
                    let body = json!({"name": name, "type": "TEXT", "value": format!("value of {name}")});
                    match client.post(&url).bearer_auth(&token).json(&body).send().await {
                        Ok(resp) if resp.status() == 201 => acknowledged.lock().unwrap().push(name),
                        _ if label == "a" => break,
                        other => b_failures.lock().unwrap().push(format!("{name}: {other:?}")),
                    }
                }
            }));
        }
    }
    let acked = || acknowledged.lock().unwrap().len();
    crate::support::eventually("300 acknowledged writes", async || (acked() >= 300).then_some(())).await;
    a.kill9();
    let at_kill = acked();
    crate::support::eventually("200 more writes through B", async || {
        (acked() >= at_kill + 200).then_some(())
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    assert_eq!(*b_failures.lock().unwrap(), Vec::<String>::new(), "B answered every write");
    let acknowledged = acknowledged.lock().unwrap().clone();
    drop(a);

    let a = instance(&url, dir_a.path()).await;
    for server in [&a, &b] {
        let api = Api::new(server).await;
        let mut present = std::collections::HashSet::new();
        for page in 0.. {
            let (status, body) = api.get(&format!("/api/secrets?pageSize=1000&page={page}")).await;
            assert_eq!(status, 200, "{body}");
            present.extend(
                body["data"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap().to_owned()),
            );
            if body["hasNext"] != true {
                break;
            }
        }
        let lost: Vec<&String> = acknowledged.iter().filter(|n| !present.contains(*n)).collect();
        assert!(
            lost.is_empty(),
            "{}: {} of {} acknowledged writes missing: {lost:?}",
            server.base,
            lost.len(),
            acknowledged.len()
        );
    }
    // A follows the change feed again: what B writes now, A lists.
    let (api_a, api_b) = (Api::new(&a).await, Api::new(&b).await);
    let (status, _) =
        api_b.post("/api/secrets", json!({"name": "after-restart", "type": "TEXT", "value": "x"})).await;
    assert_eq!(status, 201);
    crate::support::eventually("A to list what B wrote after the restart", async || {
        let (_, page) = api_a.get("/api/secrets?textSearch=after-restart").await;
        (page["totalElements"] == 1).then_some(())
    })
    .await;
}

/// Two instances on one new PostgreSQL database; the database and the instances' data folders
/// last as long as the first two values.
async fn two_instances() -> (PostgresDatabase, [tempfile::TempDir; 2], Server, Server) {
    let (db, database) = PostgresDatabase::create();
    let veil_store::Database::Postgres(url) = database else { unreachable!("a PostgreSQL database") };
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let a = instance(&url, dirs[0].path()).await;
    let b = instance(&url, dirs[1].path()).await;
    (db, dirs, a, b)
}

/// One round of racing saves: `PUT path` through each instance after a random pause of 0–2 ms,
/// instance `i` sending `body(i)`; both are answered 200. Returns what GET shows after them.
async fn racing_puts(apis: &[Api<'_>; 2], path: &str, round: usize, body: impl Fn(usize) -> Value) -> Value {
    let put = |i: usize, pause: u64| {
        let body = body(i);
        async move {
            tokio::time::sleep(Duration::from_millis(pause)).await;
            apis[i].send(apis[i].req(reqwest::Method::PUT, path).json(&body)).await
        }
    };
    let ((sa, ba), (sb, bb)) = tokio::join!(put(0, random_below(3)), put(1, random_below(3)));
    assert_eq!((sa, sb), (200, 200), "round {round}: {ba} {bb}");
    apis[0].get(path).await.1
}

/// Saves of one rule chain racing through both instances, each after a random pause: whichever
/// commits last is the chain GET shows, and both instances must end up running that one — the
/// running chain is also what a secret's change is told to (its consumers), so a runtime left
/// behind runs a configuration nobody can see and misses the rotations of the secrets the
/// stored one uses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL (VEIL_TEST_POSTGRES)"]
async fn saves_of_one_chain_racing_over_two_instances_leave_both_running_the_stored_one() {
    let (_db, _dirs, a, b) = two_instances().await;
    let apis = [Api::new(&a).await, Api::new(&b).await];
    let version = |name: &str| {
        json!({
            "name": "Versions",
            "firstNodeIndex": 0,
            "nodes": [{"type": "log", "name": name, "configuration": {}}],
            "connections": []
        })
    };
    let (status, chain) = apis[0].post("/api/rule-chains", version("first")).await;
    assert_eq!(status, 201, "{chain}");
    let path = format!("/api/rule-chains/{}", chain["id"].as_str().unwrap());
    let messages = format!("{path}/messages?wait=true");
    let running = async |api: &Api<'_>| {
        let (status, trace) = api.post(&messages, json!({"data": {}})).await;
        (status == 200).then(|| trace["trace"][0]["nodeName"].as_str().unwrap_or_default().to_owned())
    };
    for round in 0..150 {
        let stored =
            racing_puts(&apis, &path, round, |i| version(&format!("{}-{round}", ["a", "b"][i]))).await;
        let stored = stored["nodes"][0]["name"].as_str().unwrap().to_owned();
        for (i, api) in apis.iter().enumerate() {
            let what =
                format!("round {round}: instance {} to run the stored chain '{stored}'", ["A", "B"][i]);
            crate::support::eventually(&what, async || {
                running(api).await.filter(|name| *name == stored).map(drop)
            })
            .await;
        }
    }
}

/// Saves of one HTTP integration racing through both instances, each with a routing key of its
/// own: whichever commits last is what GET shows, and both instances end up taking uplinks at
/// its routing key (the running integration is also what a secret's change is told to).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL (VEIL_TEST_POSTGRES)"]
async fn saves_of_one_integration_racing_over_two_instances_leave_both_running_the_stored_one() {
    let (_db, _dirs, a, b) = two_instances().await;
    let servers = [&a, &b];
    let apis = [Api::new(&a).await, Api::new(&b).await];
    let chain = json!({"name": "Sink", "nodes": [{"type": "log", "name": "Log", "configuration": {}}], "connections": []});
    let (status, chain) = apis[0].post("/api/rule-chains", chain).await;
    assert_eq!(status, 201, "{chain}");
    let version = |key: &str| {
        json!({"name": "hook", "type": "HTTP", "ruleChainId": chain["id"], "routingKey": key,
               "configuration": {"enableSecurity": false},
               "uplinkConverter": "#{deviceName: \"d\", telemetry: payload}"})
    };
    let (status, integration) = apis[0].post("/api/integrations", version("first")).await;
    assert_eq!(status, 201, "{integration}");
    let path = format!("/api/integrations/{}", integration["id"].as_str().unwrap());
    let client = reqwest::Client::new();
    for round in 0..100 {
        let stored =
            racing_puts(&apis, &path, round, |i| version(&format!("{}-{round}", ["a", "b"][i]))).await;
        let key = stored["routingKey"].as_str().unwrap().to_owned();
        for (i, server) in servers.iter().enumerate() {
            let uplink = server.url(&format!("/api/v1/integrations/http/{key}"));
            let what = format!(
                "round {round}: instance {} to take uplinks at the stored key '{key}'",
                ["A", "B"][i]
            );
            crate::support::eventually(&what, async || {
                let answer = client.post(&uplink).json(&json!({"t": 1})).send().await.ok()?;
                answer.status().is_success().then_some(())
            })
            .await;
        }
    }
}
