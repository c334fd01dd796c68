//! The scale harness (issue 27): how Veil's cost grows with secrets, rule chains, integrations and
//! tenants. It prints markdown tables and the slopes fitted to them.
//!
//! `cargo bench -p veil-tests --bench scale -- [--quick] [--secrets 1000,10000] [--chains 1,10]
//! [--integrations …] [--tenants …] [--only secrets,chains,integrations,tenants,target]
//! [--postgres | --sqlite-only] [--load-secs 3] [--concurrency 32]`
//!
//! Every point is measured after a restart: the data is written while no server runs (through the
//! store and the server's `Host`, the code the API's handlers call), copied to a fresh data
//! directory, and the real `veil` program (`veil-e2e`) is started on it. The data is written
//! in a directory under `/dev/shm` so that 300,000 acknowledged writes do not wait for the disk
//! (each one is still a committed SQLite transaction with `synchronous=FULL`; only the medium is
//! memory); the server then runs on a copy on the disk. PostgreSQL points (`VEIL_TEST_POSTGRES`)
//! copy the same store into a fresh database with `veil migrate --replace`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::{Value, json};
use uuid::Uuid;
use veil_server::Host;
use veil_store::{
    Actor, Database, Limits, Role, SecretUpdate, SecretValue, Store, StoreConfig, TenantId, UserId,
};
use veil_tests::{
    Api, POSTGRES_ENV, PostgresDatabase, Receiver, Recorded, Server, db_path, generated_key, serve_command,
    text_secret, veil,
};

/// The options (after `--` on `cargo bench`'s command line).
#[derive(Parser, Debug)]
#[command(about = "Veil's scale harness: start-up, memory, throughput, rotation and listing as things grow")]
struct Opts {
    /// Smaller curves (secrets 1k,10k; chains, integrations, tenants 1,10,100; no target check).
    #[arg(long)]
    quick: bool,
    /// Secrets in one tenant, three versions each.
    #[arg(long, value_delimiter = ',')]
    secrets: Option<Vec<usize>>,
    /// Rule chains (one rest_api_call node using three secrets) in one tenant.
    #[arg(long, value_delimiter = ',')]
    chains: Option<Vec<usize>>,
    /// HTTP integrations (checking a header against a secret), feeding one chain.
    #[arg(long, value_delimiter = ',')]
    integrations: Option<Vec<usize>>,
    /// Tenants, each with three secrets and one chain.
    #[arg(long, value_delimiter = ',')]
    tenants: Option<Vec<usize>>,
    /// Sections to run: secrets, chains, integrations, tenants, target (100k secrets and 10,000 chains).
    #[arg(long, value_delimiter = ',')]
    only: Option<Vec<String>>,
    /// Measure PostgreSQL too (needs VEIL_TEST_POSTGRES; the default when it is set).
    #[arg(long)]
    postgres: bool,
    /// SQLite only, even when VEIL_TEST_POSTGRES is set.
    #[arg(long, conflicts_with = "postgres")]
    sqlite_only: bool,
    /// Seconds of each throughput measurement.
    #[arg(long, default_value_t = 3.0)]
    load_secs: f64,
    /// Requests in flight of the load generator.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Secrets of the target check.
    #[arg(long, default_value_t = 100_000)]
    target_secrets: usize,
    /// Chains of the target check.
    #[arg(long, default_value_t = 10_000)]
    target_chains: usize,
    /// Also copy the target's data directory here (to profile a start-up on it:
    /// `veil serve --data-dir DIR --max-secrets-per-tenant 1000000 --max-chains-per-tenant 1000000`).
    #[arg(long)]
    keep_target: Option<std::path::PathBuf>,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

/// Limits high enough for every curve: the harness measures growth, not the default quotas.
const MANY: usize = 1_000_000;

fn store_limits() -> Limits {
    Limits {
        max_secrets_per_tenant: MANY,
        max_chains_per_tenant: MANY,
        max_integrations_per_tenant: MANY,
        ..Limits::default()
    }
}

/// The same limits as `veil serve` flags.
const SERVE_LIMITS: [&str; 6] = [
    "--max-secrets-per-tenant",
    "1000000",
    "--max-chains-per-tenant",
    "1000000",
    "--max-integrations-per-tenant",
    "1000000",
];

// ---------------------------------------------------------------------------------------------
// Populating: a store written while no server runs.

/// A data directory being populated (under /dev/shm), with the store open on it between points.
struct Seed {
    dir: tempfile::TempDir,
    store: Option<Store>,
    host: Option<Arc<Host>>,
    /// The `Default` tenant's administrator (the one `admin` signs in to).
    admin: Actor,
    /// Secrets `scale-000000`… made so far.
    secrets: usize,
    /// Chains made so far.
    chains: Vec<Uuid>,
    integrations: usize,
    /// Extra tenants made so far.
    tenants: usize,
    /// The chain the integrations feed.
    fed_chain: Option<Uuid>,
}

fn shm_dir() -> tempfile::TempDir {
    let base = Path::new("/dev/shm");
    if base.is_dir() { tempfile::tempdir_in(base).unwrap() } else { tempfile::tempdir().unwrap() }
}

impl Seed {
    /// A fresh store made by the real server's first start (the `Default` tenant and `admin`),
    /// with the three secrets every chain uses and one no chain uses.
    async fn new() -> Self {
        let dir = shm_dir();
        let mut server = Server::start(dir.path()).await;
        assert!(server.terminate().success());
        drop(server);
        let store = open_store(dir.path()).await;
        let tenant = store.tenant_by_name("Default").await.unwrap().unwrap();
        let admin = Actor::tenant_admin(tenant.id, UserId::new_random(), "admin");
        for (name, value) in [
            ("scale-token", "tok-0"),
            ("scale-key", "key-0"),
            ("scale-extra", "extra-0"),
            ("scale-unused", "u-0"),
        ] {
            store.create(&admin, text_secret(name, value)).await.unwrap();
        }
        let host = Arc::new(Host::new(store.clone(), veil_core::Limits::default()));
        Self {
            dir,
            store: Some(store),
            host: Some(host),
            admin,
            secrets: 0,
            chains: Vec::new(),
            integrations: 0,
            tenants: 0,
            fed_chain: None,
        }
    }

    async fn open(&mut self) -> (&Store, &Arc<Host>) {
        if self.store.is_none() {
            let store = open_store(self.dir.path()).await;
            self.host = Some(Arc::new(Host::new(store.clone(), veil_core::Limits::default())));
            self.store = Some(store);
        }
        (self.store.as_ref().unwrap(), self.host.as_ref().unwrap())
    }

    /// Closes the store (its files are complete on their own after this).
    async fn close(&mut self) {
        self.host = None;
        if let Some(store) = self.store.take() {
            store.close().await;
        }
    }

    /// Adds secrets up to `n`, each with three versions; how long it took.
    async fn secrets_to(&mut self, n: usize) -> Duration {
        let from = self.secrets;
        let admin = self.admin.clone();
        let (store, _) = self.open().await;
        let started = Instant::now();
        for i in from..n {
            let info = store.create(&admin, text_secret(&secret_name(i), &format!("v1-{i}"))).await.unwrap();
            for v in 2..=3 {
                let update = SecretUpdate {
                    value: Some(SecretValue::from(format!("v{v}-{i}"))),
                    ..Default::default()
                };
                store.update(&admin, info.id, update).await.unwrap();
            }
        }
        let took = started.elapsed();
        self.secrets = n.max(from);
        took
    }

    /// Adds chains up to `n` (one rest_api_call node with three secrets, to the receiver).
    async fn chains_to(&mut self, n: usize, receiver: &str) -> Duration {
        let from = self.chains.len();
        let admin = self.admin.clone();
        let (_, host) = self.open().await;
        let host = Arc::clone(host);
        let started = Instant::now();
        for i in from..n {
            let id = Uuid::new_v4();
            host.save_chain(&admin, id, &chain_doc(i, receiver)).await.unwrap();
            self.chains.push(id);
        }
        started.elapsed()
    }

    /// Adds HTTP integrations up to `n`, each feeding one chain.
    async fn integrations_to(&mut self, n: usize, receiver: &str) -> Duration {
        if self.fed_chain.is_none() {
            self.chains_to(1, receiver).await;
            self.fed_chain = Some(self.chains[0]);
        }
        let chain = self.fed_chain.unwrap();
        let admin = self.admin.clone();
        let (_, host) = self.open().await;
        let host = Arc::clone(host);
        let started = Instant::now();
        for i in self.integrations..n {
            let doc = json!({
                "name": format!("device-group-{i:06}"),
                "type": "HTTP",
                "ruleChainId": chain,
                "configuration": {"enableSecurity": true, "headersFilter": {"X-Token": "$<secret:scale-token>"}},
                "uplinkConverter": "#{deviceName: \"d\", telemetry: payload}"
            });
            host.save_integration(&admin, Uuid::new_v4(), doc).await.unwrap();
        }
        self.integrations = n.max(self.integrations);
        started.elapsed()
    }

    /// Adds tenants up to `n`, each with three secrets and one chain using them.
    async fn tenants_to(&mut self, n: usize, receiver: &str) -> Duration {
        let (store, host) = self.open().await;
        let (store, host) = (store.clone(), Arc::clone(host));
        let sysadmin = Actor {
            user_id: UserId::new_random(),
            username: "sysadmin".into(),
            tenant_id: TenantId::new_random(),
            customer_id: None,
            permissions: Role::SysAdmin.permissions(),
        };
        let started = Instant::now();
        for i in self.tenants..n {
            let tenant = store.create_tenant_as(&sysadmin, &format!("tenant-{i:06}")).await.unwrap();
            let admin = Actor::tenant_admin(tenant.id, UserId::new_random(), "admin");
            for (name, value) in
                [("scale-token", "tok-0"), ("scale-key", "key-0"), ("scale-extra", "extra-0")]
            {
                store.create(&admin, text_secret(name, &format!("{value}-{i}"))).await.unwrap();
            }
            host.save_chain(&admin, Uuid::new_v4(), &chain_doc(i, receiver)).await.unwrap();
        }
        self.tenants = n.max(self.tenants);
        started.elapsed()
    }
}

async fn open_store(dir: &Path) -> Store {
    let config = StoreConfig {
        database: Database::Sqlite(db_path(dir)),
        master_key: generated_key(dir),
        limits: store_limits(),
    };
    Store::open(config).await.unwrap()
}

fn secret_name(i: usize) -> String {
    format!("scale-{i:06}")
}

/// A rule chain of one rest_api_call node sending three secrets in headers to the receiver
/// (`/c/<i>`, so the receiver tells the chains apart).
fn chain_doc(i: usize, receiver: &str) -> Value {
    json!({
        "name": format!("forward-{i:06}"),
        "firstNodeIndex": 0,
        "nodes": [{
            "type": "rest_api_call",
            "name": "Call",
            "configuration": {
                "restEndpointUrlPattern": format!("{receiver}/c/{i}"),
                "requestMethod": "POST",
                "headers": {
                    "Authorization": "Bearer $<secret:scale-token>",
                    "X-Key": "$<secret:scale-key>",
                    "X-Extra": "$<secret:scale-extra>"
                },
                "readTimeoutMs": 5000
            }
        }],
        "connections": []
    })
}

// ---------------------------------------------------------------------------------------------
// Running: the real server on a copy of a seed.

/// Where a measured server keeps its data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
        }
    }
}

/// A server started on a copy of a seed, with what its start cost.
struct Running {
    server: Server,
    _dir: tempfile::TempDir,
    _postgres: Option<PostgresDatabase>,
    ready: Duration,
    rss: u64,
    /// `veil migrate` into PostgreSQL, for PostgreSQL points.
    migrate: Option<Duration>,
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

/// Starts `veil serve` on a copy of `seed` (closed first) and measures the time to ready and
/// the resident memory a second later.
async fn start_on(seed: &mut Seed, backend: Backend) -> Running {
    seed.close().await;
    let dir = tempfile::tempdir().unwrap();
    let mut postgres = None;
    let mut migrate = None;
    let mut cmd = match backend {
        Backend::Sqlite => {
            copy_dir(seed.dir.path(), dir.path());
            serve_command(dir.path())
        }
        Backend::Postgres => {
            let (db, database) = PostgresDatabase::create();
            let Database::Postgres(url) = database else { unreachable!("a PostgreSQL database") };
            let started = Instant::now();
            let out = veil()
                .args(["migrate", "--replace", "--from"])
                .arg(seed.dir.path())
                .args(["--to", &url])
                .env_remove("VEIL_MASTER_KEY")
                .env_remove("VEIL_MASTER_KEY_FILE")
                .output()
                .unwrap();
            assert!(out.status.success(), "veil migrate: {}", String::from_utf8_lossy(&out.stderr));
            migrate = Some(started.elapsed());
            postgres = Some(db);
            let mut cmd = serve_command(dir.path());
            cmd.arg("--database").arg(&url).env("VEIL_MASTER_KEY_FILE", seed.dir.path().join("master.key"));
            cmd
        }
    };
    cmd.args(SERVE_LIMITS);
    let started = Instant::now();
    let server = Server::start_with(cmd).await;
    let ready = started.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss = server.rss();
    Running { server, _dir: dir, _postgres: postgres, ready, rss, migrate }
}

// ---------------------------------------------------------------------------------------------
// Measuring.

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The `q` quantile (0..=1) of `v`, nearest rank.
fn quantile(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

/// The median time of `GET path` over 15 requests (after two to warm up), in milliseconds.
async fn latency(api: &Api<'_>, path: &str) -> (f64, Value) {
    let mut times = Vec::new();
    let mut last = Value::Null;
    for i in 0..17 {
        let started = Instant::now();
        let (status, body) = api.get(path).await;
        let took = started.elapsed().as_secs_f64() * 1000.0;
        assert_eq!(status, 200, "{path}: {body}");
        if i >= 2 {
            times.push(took);
        }
        last = body;
    }
    (median(times), last)
}

/// Messages per second through `chains` (round robin), `concurrency` requests in flight, each
/// `POST /api/rule-chains/{id}/messages?wait=true` (the chain's call to the receiver included).
async fn throughput(
    server: &Server,
    token: &str,
    chains: &[Uuid],
    concurrency: usize,
    secs: f64,
) -> (f64, u64) {
    let client = reqwest::Client::builder().pool_max_idle_per_host(concurrency).build().unwrap();
    let urls: Arc<Vec<String>> = Arc::new(
        chains.iter().map(|id| server.url(&format!("/api/rule-chains/{id}/messages?wait=true"))).collect(),
    );
    let next = Arc::new(AtomicUsize::new(0));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let warm = Duration::from_millis(500);
    let start = Instant::now();
    let end = start + warm + Duration::from_secs_f64(secs);
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, urls, next, ok, failed) =
            (client.clone(), Arc::clone(&urls), Arc::clone(&next), Arc::clone(&ok), Arc::clone(&failed));
        let token = token.to_owned();
        tasks.push(tokio::spawn(async move {
            let body = json!({"data": {"temperature": 21}});
            loop {
                let now = Instant::now();
                if now >= end {
                    break;
                }
                let url = &urls[next.fetch_add(1, Ordering::Relaxed) % urls.len()];
                let resp = client.post(url).bearer_auth(&token).json(&body).send().await;
                let good = match resp {
                    Ok(r) => r.status() == 200 && r.bytes().await.is_ok(),
                    Err(_) => false,
                };
                if now >= start + warm {
                    if good { &ok } else { &failed }.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    (ok.load(Ordering::Relaxed) as f64 / secs, failed.load(Ordering::Relaxed))
}

/// Sends one message to each chain of `which` (indexes into `chains`), `concurrency` at once,
/// each admitted without waiting for its chain (`202`: the chains run while more are sent, as
/// uplinks do), then gathers what reached the receiver: until every admitted message arrived or
/// none arrived for a second. A message refused (the tenant's queue full) is not counted: the
/// caller sends it again.
async fn sweep(
    server: &Server,
    token: &str,
    receiver: &Receiver,
    chains: &[Uuid],
    which: &[usize],
    concurrency: usize,
) -> Vec<Recorded> {
    let client = reqwest::Client::builder().pool_max_idle_per_host(concurrency).build().unwrap();
    let queue: Arc<Vec<String>> = Arc::new(
        which.iter().map(|&i| server.url(&format!("/api/rule-chains/{}/messages", chains[i]))).collect(),
    );
    let next = Arc::new(AtomicUsize::new(0));
    let admitted = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..concurrency.min(queue.len()) {
        let (client, queue, next, admitted, token) =
            (client.clone(), Arc::clone(&queue), Arc::clone(&next), Arc::clone(&admitted), token.to_owned());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(url) = queue.get(i) else { break };
                let resp = client.post(url).bearer_auth(&token).json(&json!({"data": {"t": 1}})).send().await;
                if let Ok(r) = resp {
                    if r.status() == 202 {
                        admitted.fetch_add(1, Ordering::Relaxed);
                    }
                    let _ = r.bytes().await;
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let admitted = admitted.load(Ordering::Relaxed);
    let mut arrived = Vec::new();
    let mut last = Instant::now();
    while arrived.len() < admitted && last.elapsed() < Duration::from_secs(1) {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let more = receiver.drain();
        if !more.is_empty() {
            last = Instant::now();
            arrived.extend(more);
        }
    }
    arrived.extend(receiver.drain());
    arrived
}

/// What a rotation of `scale-token` showed.
struct Rotation {
    /// From the PATCH to each consumer's first message with the new value: p50 and p99 (ms).
    p50: f64,
    p99: f64,
    /// The same sweep of one message per chain before the PATCH, p50 and p99 of arrival (ms):
    /// the part of the figures above that is sending N messages at all.
    sweep_p50: f64,
    sweep_p99: f64,
    /// Messages sent after the PATCH was answered that carried the old value (must be 0).
    stale: usize,
}

/// The id of the secret `name` (from the secrets list, searched by name).
async fn secret_id(api: &Api<'_>, name: &str) -> String {
    let started = Instant::now();
    let (status, page) = api.get(&format!("/api/secrets?textSearch={name}")).await;
    assert_eq!(status, 200, "GET /api/secrets?textSearch={name} after {:?}: {page}", started.elapsed());
    let found = page["data"].as_array().unwrap().iter().find(|s| s["name"] == name);
    found.unwrap_or_else(|| panic!("no secret {name}: {page}"))["id"].as_str().unwrap().to_owned()
}

/// The chain index of a receiver path `/c/<i>`.
fn chain_of(uri: &str) -> Option<usize> {
    uri.strip_prefix("/c/")?.parse().ok()
}

/// Rotates `scale-token` and measures when each chain first sends the new value.
async fn rotation(
    api: &Api<'_>,
    receiver: &Receiver,
    chains: &[Uuid],
    concurrency: usize,
    round: usize,
) -> Rotation {
    let all: Vec<usize> = (0..chains.len()).collect();
    // The same sweep without a rotation: how long sending one message to every chain takes.
    receiver.drain();
    let started = Instant::now();
    let mut base: Vec<f64> = sweep(api.server, &api.token, receiver, chains, &all, concurrency)
        .await
        .iter()
        .filter(|r| chain_of(&r.uri).is_some())
        .map(|r| r.at.saturating_duration_since(started).as_secs_f64() * 1000.0)
        .collect();
    let (sweep_p50, sweep_p99) = (quantile(&mut base, 0.5), quantile(&mut base, 0.99));

    let id = secret_id(api, "scale-token").await;
    let new = format!("Bearer tok-{round}");
    let patched = Instant::now();
    let (status, body) =
        api.patch(&format!("/api/secrets/{id}"), json!({"value": format!("tok-{round}")})).await;
    assert_eq!(status, 200, "{body}");
    let answered = Instant::now();
    let mut first: HashMap<usize, f64> = HashMap::new();
    let mut stale = 0;
    for _ in 0..20 {
        let pending: Vec<usize> = all.iter().copied().filter(|i| !first.contains_key(i)).collect();
        if pending.is_empty() {
            break;
        }
        for r in sweep(api.server, &api.token, receiver, chains, &pending, concurrency).await {
            let Some(i) = chain_of(&r.uri) else { continue };
            if r.headers.get("authorization") == Some(&new) {
                first.entry(i).or_insert(r.at.saturating_duration_since(patched).as_secs_f64() * 1000.0);
            } else if r.at > answered {
                stale += 1;
            }
        }
    }
    assert_eq!(first.len(), chains.len(), "every chain uses the new value");
    let mut times: Vec<f64> = first.into_values().collect();
    Rotation { p50: quantile(&mut times, 0.5), p99: quantile(&mut times, 0.99), sweep_p50, sweep_p99, stale }
}

/// CPU milliseconds the server spends per PATCH of secret `name`'s value (50 in a row, then
/// half a second for the change to reach every running configuration).
async fn cpu_per_patch(api: &Api<'_>, name: &str) -> f64 {
    let id = secret_id(api, name).await;
    const PATCHES: u32 = 50;
    let idle_before = api.server.cpu_time();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle = api.server.cpu_time() - idle_before;
    let before = api.server.cpu_time();
    for k in 0..PATCHES {
        let (status, body) =
            api.patch(&format!("/api/secrets/{id}"), json!({"value": format!("{name}-{k}")})).await;
        assert_eq!(status, 200, "{body}");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let used = (api.server.cpu_time() - before).saturating_sub(idle);
    used.as_secs_f64() * 1000.0 / f64::from(PATCHES)
}

// ---------------------------------------------------------------------------------------------
// Fitting and printing.

/// Least-squares line through `(x, y)`: (slope, intercept).
fn fit(points: &[(f64, f64)]) -> (f64, f64) {
    let n = points.len() as f64;
    if points.len() < 2 {
        return (0.0, points.first().map_or(0.0, |p| p.1));
    }
    let (sx, sy) = points.iter().fold((0.0, 0.0), |(a, b), p| (a + p.0, b + p.1));
    let (mx, my) = (sx / n, sy / n);
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let sxx: f64 = points.iter().map(|p| (p.0 - mx) * (p.0 - mx)).sum();
    let slope = if sxx == 0.0 { 0.0 } else { sxy / sxx };
    (slope, my - slope * mx)
}

/// The slope of each segment between consecutive points: a curve is linear when they agree
/// (flat when they are about zero), worse than linear when they grow.
fn segments(points: &[(f64, f64)]) -> Vec<f64> {
    points.windows(2).map(|w| (w[1].1 - w[0].1) / (w[1].0 - w[0].0)).collect()
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1_048_576.0
}

/// Prints a slope line: `what`: the fit over `points` in `unit` per `per`, and each segment's.
fn slope_line(what: &str, points: &[(f64, f64)], per: f64, unit: &str) -> String {
    let (slope, intercept) = fit(points);
    let segs: Vec<String> = segments(points).iter().map(|s| format!("{:.2}", s * per)).collect();
    format!(
        "- {what}: {:.2} {unit} (fit over {} points, intercept {:.1}); segment by segment: {}",
        slope * per,
        points.len(),
        intercept,
        segs.join(", ")
    )
}

fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The sections.

struct Report {
    lines: Vec<String>,
    slopes: Vec<String>,
}

impl Report {
    fn say(&mut self, line: impl Into<String>) {
        let line = line.into();
        println!("{line}");
        self.lines.push(line);
    }
}

async fn secrets_section(opts: &Opts, backends: &[Backend], report: &mut Report, seed: &mut Seed) {
    let counts = opts.secrets.clone().unwrap_or(if opts.quick {
        vec![1000, 10_000]
    } else {
        vec![1000, 10_000, 100_000]
    });
    report.say("\n### Secrets (one tenant, three versions each)\n");
    report.say("| backend | secrets | written in | ready | RSS | list: first page | search | last page |");
    report.say("|---|---|---|---|---|---|---|---|");
    let mut rss: HashMap<Backend, Vec<(f64, f64)>> = HashMap::new();
    let mut ready: HashMap<Backend, Vec<(f64, f64)>> = HashMap::new();
    for &n in &counts {
        let from = seed.secrets;
        let took = seed.secrets_to(n).await;
        let rate = (n.saturating_sub(from) * 3) as f64 / took.as_secs_f64().max(1e-9);
        for &backend in backends {
            let run = start_on(seed, backend).await;
            let api = Api::new(&run.server).await;
            let (first, page) = latency(&api, "/api/secrets?page=0&pageSize=20").await;
            let total = page["totalElements"].as_u64().unwrap();
            assert!(total as usize >= n, "{total} secrets listed");
            let (search, _) = latency(&api, "/api/secrets?page=0&pageSize=20&textSearch=0042").await;
            let last_page = page["totalPages"].as_u64().unwrap() - 1;
            let (last, _) = latency(&api, &format!("/api/secrets?page={last_page}&pageSize=20")).await;
            let written = match run.migrate {
                Some(m) => format!(
                    "{:.1} s ({rate:.0} writes/s; migrate {:.1} s)",
                    took.as_secs_f64(),
                    m.as_secs_f64()
                ),
                None => format!("{:.1} s ({rate:.0} writes/s)", took.as_secs_f64()),
            };
            report.say(format!(
                "| {} | {} | {written} | {:.0} ms | {:.0} MB | {first:.1} ms | {search:.1} ms | {last:.1} ms |",
                backend.name(),
                thousands(n),
                run.ready.as_secs_f64() * 1000.0,
                mb(run.rss)
            ));
            rss.entry(backend).or_default().push((n as f64, mb(run.rss)));
            ready.entry(backend).or_default().push((n as f64, run.ready.as_secs_f64() * 1000.0));
        }
    }
    for &backend in backends {
        let b = backend.name();
        report.slopes.push(slope_line(
            &format!("{b}: memory per 10,000 secrets"),
            &rss[&backend],
            10_000.0,
            "MB",
        ));
        report.slopes.push(slope_line(
            &format!("{b}: start-up per 10,000 secrets"),
            &ready[&backend],
            10_000.0,
            "ms",
        ));
    }
}

/// Start-up, memory, throughput and rotation with the seed's chains running.
struct ChainPoint {
    ready: f64,
    rss: u64,
    one: f64,
    spread: f64,
    failed: u64,
    rotation: Rotation,
    patch_unused: f64,
    patch_used: f64,
}

async fn chain_point(
    opts: &Opts,
    seed: &mut Seed,
    backend: Backend,
    receiver: &Receiver,
    round: usize,
) -> ChainPoint {
    let run = start_on(seed, backend).await;
    let api = Api::new(&run.server).await;
    let chains = seed.chains.clone();
    let (one, f1) = throughput(&run.server, &api.token, &chains[..1], opts.concurrency, opts.load_secs).await;
    let (spread, f2) = throughput(&run.server, &api.token, &chains, opts.concurrency, opts.load_secs).await;
    receiver.drain();
    let rotation = rotation(&api, receiver, &chains, opts.concurrency, round).await;
    let patch_unused = cpu_per_patch(&api, "scale-unused").await;
    let patch_used = cpu_per_patch(&api, "scale-extra").await;
    receiver.drain();
    ChainPoint {
        ready: run.ready.as_secs_f64() * 1000.0,
        rss: run.rss,
        one,
        spread,
        failed: f1 + f2,
        rotation,
        patch_unused,
        patch_used,
    }
}

fn chain_header(report: &mut Report) {
    report.say(
        "| backend | chains | ready | RSS | msg/s, one chain | msg/s, all chains | rotation reaches all: p50 / p99 | one message to each (202), no rotation: p50 / p99 | old value after PATCH | CPU per PATCH: unused secret / used by every chain |",
    );
    report.say("|---|---|---|---|---|---|---|---|---|---|");
}

fn chain_row(report: &mut Report, backend: Backend, what: &str, p: &ChainPoint) {
    let failed = if p.failed > 0 { format!(" ({} failed)", p.failed) } else { String::new() };
    report.say(format!(
        "| {} | {what} | {:.0} ms | {:.0} MB | {:.0} | {:.0}{failed} | {:.0} / {:.0} ms | {:.0} / {:.0} ms | {} | {:.2} / {:.2} ms |",
        backend.name(),
        p.ready,
        mb(p.rss),
        p.one,
        p.spread,
        p.rotation.p50,
        p.rotation.p99,
        p.rotation.sweep_p50,
        p.rotation.sweep_p99,
        p.rotation.stale,
        p.patch_unused,
        p.patch_used
    ));
}

async fn chains_section(opts: &Opts, backends: &[Backend], report: &mut Report, receiver: &Receiver) {
    let counts = opts.chains.clone().unwrap_or(if opts.quick {
        vec![1, 10, 100]
    } else {
        vec![1, 10, 100, 1000, 10_000]
    });
    report.say("\n### Rule chains (one tenant; one rest_api_call node, three secrets in headers)\n");
    chain_header(report);
    let mut seed = Seed::new().await;
    let mut rss: HashMap<Backend, Vec<(f64, f64)>> = HashMap::new();
    let mut ready: HashMap<Backend, Vec<(f64, f64)>> = HashMap::new();
    let mut patch: HashMap<Backend, Vec<(f64, f64)>> = HashMap::new();
    let mut saved = Vec::new();
    for (round, &n) in counts.iter().enumerate() {
        let from = seed.chains.len();
        let took = seed.chains_to(n, &receiver.url).await;
        saved.push(format!(
            "{} → {}: {:.1} ms per chain",
            from,
            n,
            took.as_secs_f64() * 1000.0 / (n - from).max(1) as f64
        ));
        for &backend in backends {
            let p = chain_point(opts, &mut seed, backend, receiver, round + 1).await;
            chain_row(report, backend, &thousands(n), &p);
            rss.entry(backend).or_default().push((n as f64, mb(p.rss)));
            ready.entry(backend).or_default().push((n as f64, p.ready));
            patch.entry(backend).or_default().push((n as f64, p.patch_used));
        }
    }
    report.say(format!("\nSaving chains (deploy, check, one transaction each): {}.", saved.join("; ")));
    for &backend in backends {
        let b = backend.name();
        let per_chain = fit(&rss[&backend]).0 * 1024.0;
        report.slopes.push(slope_line(
            &format!("{b}: memory per 1,000 chains"),
            &rss[&backend],
            1000.0,
            "MB",
        ));
        report.slopes.push(format!("- {b}: memory per chain: {per_chain:.1} KB"));
        report.slopes.push(slope_line(
            &format!("{b}: start-up per 1,000 chains"),
            &ready[&backend],
            1000.0,
            "ms",
        ));
        report.slopes.push(slope_line(
            &format!("{b}: CPU of a PATCH per 1,000 consumers"),
            &patch[&backend],
            1000.0,
            "ms",
        ));
    }
}

async fn integrations_section(opts: &Opts, backends: &[Backend], report: &mut Report, receiver: &Receiver) {
    let counts = opts.integrations.clone().unwrap_or(if opts.quick {
        vec![1, 10, 100]
    } else {
        vec![1, 10, 100, 1000]
    });
    report.say(
        "\n### HTTP integrations (one tenant; each checks a header against a secret, all feed one chain)\n",
    );
    report.say("| backend | integrations | ready | RSS | CPU per PATCH of the secret they check |");
    report.say("|---|---|---|---|---|");
    let mut seed = Seed::new().await;
    let mut rss: HashMap<Backend, Vec<(f64, f64)>> = HashMap::new();
    for &n in &counts {
        seed.integrations_to(n, &receiver.url).await;
        for &backend in backends {
            let run = start_on(&mut seed, backend).await;
            let api = Api::new(&run.server).await;
            let patch = cpu_per_patch(&api, "scale-token").await;
            report.say(format!(
                "| {} | {} | {:.0} ms | {:.0} MB | {patch:.2} ms |",
                backend.name(),
                thousands(n),
                run.ready.as_secs_f64() * 1000.0,
                mb(run.rss)
            ));
            rss.entry(backend).or_default().push((n as f64, mb(run.rss)));
        }
    }
    for &backend in backends {
        let b = backend.name();
        report.slopes.push(slope_line(
            &format!("{b}: memory per 1,000 integrations"),
            &rss[&backend],
            1000.0,
            "MB",
        ));
    }
}

async fn tenants_section(opts: &Opts, backends: &[Backend], report: &mut Report, receiver: &Receiver) {
    let counts =
        opts.tenants.clone().unwrap_or(if opts.quick { vec![1, 10, 100] } else { vec![1, 10, 100, 1000] });
    report.say("\n### Tenants (each with three secrets and one chain using them)\n");
    report.say("| backend | tenants | ready | RSS |");
    report.say("|---|---|---|---|");
    let mut seed = Seed::new().await;
    let mut rss: HashMap<Backend, Vec<(f64, f64)>> = HashMap::new();
    for &n in &counts {
        seed.tenants_to(n, &receiver.url).await;
        for &backend in backends {
            let run = start_on(&mut seed, backend).await;
            report.say(format!(
                "| {} | {} | {:.0} ms | {:.0} MB |",
                backend.name(),
                thousands(n),
                run.ready.as_secs_f64() * 1000.0,
                mb(run.rss)
            ));
            rss.entry(backend).or_default().push((n as f64, mb(run.rss)));
        }
    }
    for &backend in backends {
        let b = backend.name();
        report.slopes.push(slope_line(
            &format!("{b}: memory per 1,000 tenants"),
            &rss[&backend],
            1000.0,
            "MB",
        ));
    }
}

/// Issue 27's targets: 100k secrets and 10,000 chains in one tenant on SQLite.
async fn target_section(opts: &Opts, report: &mut Report, receiver: &Receiver, seed: &mut Seed) {
    let (secrets, chains) = (opts.target_secrets, opts.target_chains);
    report.say(format!(
        "\n### Target: {} secrets (three versions each) and {} chains in one tenant, SQLite\n",
        thousands(secrets),
        thousands(chains)
    ));
    seed.secrets_to(secrets).await;
    let took = seed.chains_to(chains, &receiver.url).await;
    if let Some(keep) = &opts.keep_target {
        seed.close().await;
        std::fs::create_dir_all(keep).unwrap();
        copy_dir(seed.dir.path(), keep);
    }
    let run = start_on(seed, Backend::Sqlite).await;
    let api = Api::new(&run.server).await;
    let (first, page) = latency(&api, "/api/secrets?page=0&pageSize=20").await;
    let (search, _) = latency(&api, "/api/secrets?page=0&pageSize=20&textSearch=0042").await;
    let last_page = page["totalPages"].as_u64().unwrap() - 1;
    let (last, _) = latency(&api, &format!("/api/secrets?page={last_page}&pageSize=20")).await;
    let rotation = rotation(&api, receiver, &seed.chains, opts.concurrency, 99).await;
    // Every chain has used three secrets now: the list shows when each was last used.
    let (used_first, _) = latency(&api, "/api/secrets?page=0&pageSize=20").await;
    let ready = run.ready.as_secs_f64() * 1000.0;
    let ok = |good: bool| if good { "yes" } else { "**no**" };
    report.say(format!("(chains saved in {:.1} s)\n", took.as_secs_f64()));
    report.say("| target | measured | met |");
    report.say("|---|---|---|");
    report.say(format!("| ready < 3 s after a restart | {ready:.0} ms | {} |", ok(ready < 3000.0)));
    report.say(format!(
        "| resident < 1 GB after a restart | {:.0} MB | {} |",
        mb(run.rss),
        ok(run.rss < 1 << 30)
    ));
    report.say(format!(
        "| rotation reaches every consumer, p99 < 1 s | p50 {:.0} ms, p99 {:.0} ms (one message to each, admitted with 202, without a rotation: p50 {:.0} ms, p99 {:.0} ms); old value after the PATCH: {} | {} |",
        rotation.p50,
        rotation.p99,
        rotation.sweep_p50,
        rotation.sweep_p99,
        rotation.stale,
        ok(rotation.p99 < 1000.0 && rotation.stale == 0)
    ));
    report.say(format!(
        "| secrets list < 20 ms: first page, search, last page | {first:.1} / {search:.1} / {last:.1} ms | {} |",
        ok(first.max(search).max(last) < 20.0)
    ));
    report.say(format!(
        "| (the first page again, once every chain has used its secrets: {} uses recorded) | {used_first:.1} ms | {} |",
        thousands(3 * chains),
        ok(used_first < 20.0)
    ));
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let opts = Opts::parse();
    // The kit finds `veil-e2e` beside this bench's directory (`target/release/`), where cargo
    // builds it for benches (or takes `VEIL_BIN`).
    let binary = veil_tests::veil_binary();
    assert!(
        binary.exists(),
        "{} is missing (built for benches: {})",
        binary.display(),
        env!("CARGO_BIN_EXE_veil-e2e")
    );
    let postgres = !opts.sqlite_only && (opts.postgres || std::env::var_os(POSTGRES_ENV).is_some());
    if opts.postgres && std::env::var_os(POSTGRES_ENV).is_none() {
        eprintln!(
            "--postgres needs {POSTGRES_ENV} (a PostgreSQL server URL whose user may create databases)"
        );
        std::process::exit(2);
    }
    let backends: Vec<Backend> =
        if postgres { vec![Backend::Sqlite, Backend::Postgres] } else { vec![Backend::Sqlite] };
    let sections: Vec<String> = opts.only.clone().unwrap_or_else(|| {
        let mut all: Vec<String> =
            ["secrets", "chains", "integrations", "tenants"].iter().map(|s| s.to_string()).collect();
        if !opts.quick {
            all.push("target".into());
        }
        all
    });
    let started = Instant::now();
    let receiver = Receiver::start().await;
    let mut report = Report { lines: Vec::new(), slopes: Vec::new() };
    report.say(format!(
        "## Veil scale run ({} cores; load: {} in flight, {} s per point)",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        opts.concurrency,
        opts.load_secs
    ));
    let mut secrets_seed = None;
    for section in &sections {
        match section.as_str() {
            "secrets" => {
                let mut seed = Seed::new().await;
                secrets_section(&opts, &backends, &mut report, &mut seed).await;
                secrets_seed = Some(seed);
            }
            "chains" => chains_section(&opts, &backends, &mut report, &receiver).await,
            "integrations" => integrations_section(&opts, &backends, &mut report, &receiver).await,
            "tenants" => tenants_section(&opts, &backends, &mut report, &receiver).await,
            "target" => {
                let mut seed = match secrets_seed.take() {
                    Some(seed) => seed,
                    None => Seed::new().await,
                };
                target_section(&opts, &mut report, &receiver, &mut seed).await;
            }
            other => {
                eprintln!("unknown section '{other}' (secrets, chains, integrations, tenants, target)");
                std::process::exit(2);
            }
        }
    }
    println!("\n### Slopes\n");
    for line in &report.slopes {
        println!("{line}");
    }
    println!("\n(run took {:.0} s)", started.elapsed().as_secs_f64());
}
