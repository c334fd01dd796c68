//! `veil serve`: listen (answering `503` while starting), open the store, make sure an
//! administrator exists, start the host (the stored rule chains and integrations), serve the API
//! until SIGTERM/Ctrl-C, then stop gracefully (see [`crate::lifecycle`]).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use argon2::password_hash::rand_core::{OsRng, RngCore};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::{ExposeSecret, SecretString};
use veil_store::{Bootstrap, Database, MasterKeySource, Role, Store, StoreConfig, UserId, UserRecord};

use crate::api;
use crate::auth::{PublicHosts, TokenKeys, hash_password};
use crate::edge::{self, AtStop, EdgeArgs};
use crate::error::ServerError;
use crate::host::Host;
use crate::lifecycle;
use crate::limits::LimitArgs;
use crate::logs::LogArgs;
use crate::state::AppState;

/// Options of `veil serve`.
#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8080", env = "VEIL_LISTEN")]
    pub(crate) listen: SocketAddr,
    /// Directory for the database and the generated master key.
    #[arg(long, default_value = "./veil-data", env = "VEIL_DATA_DIR")]
    pub(crate) data_dir: PathBuf,
    /// A PostgreSQL database (`postgres://user:password@host:port/db`) instead of SQLite in the
    /// data directory: several instances can share it.
    #[arg(long, env = "VEIL_DATABASE_URL", value_parser = parse_database_url)]
    pub(crate) database: Option<String>,
    /// File holding the master key (base64 of 32 bytes). `VEIL_MASTER_KEY` takes precedence.
    #[arg(long, env = "VEIL_MASTER_KEY_FILE")]
    pub(crate) master_key_file: Option<PathBuf>,
    /// A host name (with or without a port) the web UI is reached under, e.g. veil.example.com;
    /// repeat for several. Browser sessions are served only for these, IP addresses and
    /// localhost (a page of another site pointed at this address gets none).
    #[arg(long, env = "VEIL_PUBLIC_HOSTS", value_delimiter = ',', value_name = "HOST")]
    pub(crate) public_host: Vec<String>,
    /// When the web UI's session cookie is `Secure`: `auto` (when the browser came over HTTPS,
    /// directly or as `X-Forwarded-Proto: https` says) or `always` [default: auto].
    #[arg(long, env = "VEIL_COOKIE_SECURE", value_enum, default_value_t = crate::auth::CookieSecure::Auto)]
    pub(crate) cookie_secure: crate::auth::CookieSecure,
    /// Seconds a shutdown waits for the requests and messages in hand before it stops anyway
    /// [default: 10].
    #[arg(long, env = "VEIL_SHUTDOWN_GRACE", value_name = "SECS", default_value_t = 10)]
    pub(crate) shutdown_grace: u64,
    /// A directory whose files `files` secret providers may read (a provider's directory must
    /// lie under one); repeat for several. Without any, tenants cannot make `files` providers.
    #[arg(long, env = "VEIL_PROVIDER_DIRS", value_delimiter = ',', value_name = "DIR")]
    pub(crate) provider_dir: Vec<PathBuf>,
    /// A program `exec` secret providers may run (its path); repeat for several. Without any,
    /// tenants cannot make `exec` providers.
    #[arg(long, env = "VEIL_PROVIDER_COMMANDS", value_delimiter = ',', value_name = "PATH")]
    pub(crate) provider_command: Vec<PathBuf>,
    #[command(flatten)]
    pub(crate) limits: LimitArgs,
    #[command(flatten)]
    pub(crate) edge: EdgeArgs,
    #[command(flatten)]
    pub(crate) logs: LogArgs,
    #[command(flatten)]
    pub(crate) metrics: crate::metrics::MetricsArgs,
    #[command(flatten)]
    pub(crate) queue: crate::queue::QueueArgs,
    #[command(flatten)]
    pub(crate) config: crate::config::ConfigArg,
}

/// Accepts a PostgreSQL URL; the error never repeats the URL (it may hold a password).
pub(crate) fn parse_database_url(url: &str) -> Result<String, String> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(url.to_owned())
    } else {
        Err("expected a postgres:// URL (without --database, Veil uses SQLite in --data-dir)".into())
    }
}

fn io_error(context: String) -> impl FnOnce(std::io::Error) -> ServerError {
    move |source| ServerError::Io { context, source }
}

fn create_data_dir(dir: &Path) -> Result<(), ServerError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(io_error(format!("cannot create data directory {}", dir.display())))
}

fn master_key_source(args: &ServeArgs) -> MasterKeySource {
    if let Ok(key) = std::env::var("VEIL_MASTER_KEY") {
        return MasterKeySource::Base64(SecretString::from(key));
    }
    match &args.master_key_file {
        Some(path) => MasterKeySource::File(path.clone()),
        None => MasterKeySource::Generated(args.data_dir.join("master.key")),
    }
}

/// A password from `var`, or a generated one (and whether it was generated).
fn initial_password(var: &str) -> (SecretString, bool) {
    match std::env::var(var) {
        Ok(p) if !p.is_empty() => (SecretString::from(p), false),
        _ => {
            let mut bytes = [0u8; 18];
            OsRng.fill_bytes(&mut bytes);
            (SecretString::from(URL_SAFE_NO_PAD.encode(bytes)), true)
        }
    }
}

/// Creates a user whose password comes from `var` or is generated and printed once.
async fn first_user(
    first_start: &Bootstrap,
    tenant: &veil_store::TenantRecord,
    username: &str,
    role: Role,
    var: &str,
) -> Result<(), ServerError> {
    let (password, generated) = initial_password(var);
    let hash = {
        let password = password.clone();
        tokio::task::spawn_blocking(move || hash_password(&password))
            .await
            .map_err(|e| io_error(format!("hashing the {username} password"))(std::io::Error::other(e)))?
    };
    first_start
        .create_user(&UserRecord {
            id: UserId::new_random(),
            tenant_id: tenant.id,
            customer_id: None,
            username: username.into(),
            password_hash: hash,
            roles: vec![role.as_str().to_owned()],
            created_time: tenant.created_time,
            tokens_valid_after: 0,
        })
        .await?;
    tracing::info!(tenant = %tenant.name, "created user '{username}' ({})", role.as_str());
    if generated {
        // Printed once, on stdout, never logged.
        println!("Created user '{username}' with password: {}", password.expose_secret());
        println!("(set {var} before the first start to choose it)");
    }
    Ok(())
}

/// First start: tenant "Default" and its administrator `admin`; the system tenant and its
/// administrator `sysadmin` (also added to data directories made before it existed). One
/// instance at a time (a cluster-wide lease): instances starting together on an empty database
/// make one of each, and one prints the generated password.
async fn bootstrap(store: &Store, first_start: &Bootstrap) -> Result<(), ServerError> {
    let _one_instance_at_a_time = store.lease(uuid::Uuid::nil(), "first start").await?;
    if store.count_users().await? == 0 {
        let tenant = match store.tenant_by_name("Default").await? {
            Some(t) => t,
            None => first_start.create_tenant("Default").await?,
        };
        first_user(first_start, &tenant, "admin", Role::TenantAdmin, "VEIL_ADMIN_PASSWORD").await?;
    }
    store.ensure_system_tenant().await?;
    match store.user_by_name("sysadmin").await? {
        Some(u) if u.tenant_id != veil_store::SYSTEM_TENANT => {
            tracing::warn!("a tenant user is named 'sysadmin': no system administrator was created");
        }
        Some(_) => {}
        None => {
            let system = veil_store::TenantRecord {
                id: veil_store::SYSTEM_TENANT,
                name: "System".into(),
                created_time: veil_store::now_ms(),
                destinations_required: false,
                cas_required: false,
                strict_values: false,
                expiry_notices: None,
            };
            first_user(first_start, &system, "sysadmin", Role::SysAdmin, "VEIL_SYSADMIN_PASSWORD").await?;
        }
    }
    Ok(())
}

/// Runs the server until a shutdown signal: listens at once (every request but liveness answers
/// `503` until the server is ready), opens the store and starts everything, serves the API, and
/// at the first signal stops within `--shutdown-grace`.
pub(crate) async fn run(args: ServeArgs) -> Result<(), ServerError> {
    create_data_dir(&args.data_dir)?;
    let stopping = lifecycle::on_signals()?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(io_error(format!("cannot listen on {}", args.listen)))?;
    let addr = listener.local_addr().map_err(io_error("reading the bound address".into()))?;
    tracing::info!("veil listening on http://{addr}");
    let (started, until_started) = tokio::sync::oneshot::channel::<()>();
    let starting = edge::serve(
        listener,
        lifecycle::starting_router(),
        &args.edge,
        async {
            tokio::select! {
                _ = until_started => {},
                () = stopping.wait() => {},
            }
        },
        AtStop::KeepListening,
    );
    // A signal during start-up stops it where it is: no request was taken in yet.
    let start = async {
        let opened = tokio::select! {
            opened = start(&args, &stopping) => Some(opened),
            () = stopping.wait() => None,
        };
        drop(started);
        opened
    };
    let (listener, opened) = tokio::join!(starting, start);
    let Some(opened) = opened else {
        tracing::info!("stopped while starting");
        return Ok(());
    };
    let (store, host, state) = opened?;
    let served = match listener {
        Some(listener) if !stopping.is_set() => {
            tracing::info!("veil ready");
            let grace = Duration::from_secs(args.shutdown_grace);
            let router = api::router(state);
            let metrics = match args.metrics.metrics_listen {
                Some(addr) => Some(serve_metrics(addr, &host, &args.edge, &stopping, grace).await?),
                None => None,
            };
            edge::serve(listener, router, &args.edge, stopping.wait(), AtStop::Close { grace }).await;
            if let Some(metrics) = metrics {
                let _ = metrics.await;
            }
            // The grace period counts from the signal: what the connections took is gone from it.
            host.shutdown(grace.saturating_sub(stopping.elapsed())).await;
            Ok(())
        }
        _ => {
            host.shutdown(Duration::ZERO).await;
            Ok(())
        }
    };
    drop(host);
    store.close().await;
    tracing::info!("stopped");
    served
}

/// Serves `/metrics` on `addr` (without a token) until the server stops.
async fn serve_metrics(
    addr: SocketAddr,
    host: &Arc<Host>,
    edge: &EdgeArgs,
    stopping: &lifecycle::Stopping,
    grace: Duration,
) -> Result<tokio::task::JoinHandle<()>, ServerError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(io_error(format!("cannot listen on {addr} for metrics")))?;
    let bound = listener.local_addr().map_err(io_error("reading the bound address".into()))?;
    tracing::info!("metrics on http://{bound}/metrics");
    let (router, edge, stopping) =
        (crate::metrics::separate_router(Arc::clone(host)), edge.clone(), stopping.clone());
    Ok(tokio::spawn(async move {
        edge::serve(listener, router, &edge, stopping.wait(), AtStop::Close { grace }).await;
    }))
}

/// How often an instance looks for a data key rotation to take over.
const KEY_ROTATION_CHECK_EVERY: Duration = Duration::from_secs(5);

/// Opens the store, makes the first users, starts the host and its background tasks: what the
/// API is served over.
async fn start(
    args: &ServeArgs,
    stopping: &lifecycle::Stopping,
) -> Result<(Store, Arc<Host>, AppState), ServerError> {
    let database = match &args.database {
        Some(url) => Database::Postgres(url.clone()),
        None => Database::Sqlite(args.data_dir.join("veil.db")),
    };
    let shown = database.to_string();
    let (store, first_start) = Store::open_for_startup(StoreConfig {
        database,
        master_key: master_key_source(args),
        limits: args.limits.store_limits(),
    })
    .await?;
    tracing::info!(database = %shown, secrets = store.secret_count(), "store opened");
    store.set_provider_policy(veil_store::ProviderPolicy {
        file_roots: args.provider_dir.clone(),
        commands: args.provider_command.clone(),
    });
    match start_host(args, store.clone(), first_start, stopping.clone()).await {
        Ok((host, state)) => Ok((store, host, state)),
        Err(e) => {
            store.close().await;
            Err(e)
        }
    }
}

async fn start_host(
    args: &ServeArgs,
    store: Store,
    first_start: Bootstrap,
    stopping: lifecycle::Stopping,
) -> Result<(Arc<Host>, AppState), ServerError> {
    bootstrap(&store, &first_start).await?;
    let tokens = TokenKeys::load(&store).await?;
    let dummy_hash = hash_password(&SecretString::from("not a real password"));
    let limits = args.limits.limits();
    tracing::info!(?limits, "limits");
    let host = Arc::new(Host::new(store, limits));
    // Subscribed before the start: a chain, integration or secret changed through another
    // instance while this one reads its configuration is followed, not lost until its next change.
    let (secret_changes, owner_changes) = (host.store().subscribe(), host.store().subscribe_owners());
    host.start_all().await?;
    if args.queue.queue.is_some() {
        let queue =
            crate::queue::Queue::connect(&args.queue, host.store()).await.map_err(ServerError::Queue)?;
        host.use_queue(queue);
    }
    // Expiry notices: at start-up, then every hour, while the server runs.
    let notices = Arc::downgrade(&host);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(crate::host::EXPIRY_CHECK_EVERY);
        loop {
            tick.tick().await;
            let Some(host) = notices.upgrade() else { break };
            host.send_expiry_notices().await;
        }
    });
    // A data key rotation left unfinished (its instance died): taken over at start-up, then
    // checked for every few seconds.
    let rotations = Arc::downgrade(&host);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(KEY_ROTATION_CHECK_EVERY);
        loop {
            tick.tick().await;
            let Some(host) = rotations.upgrade() else { break };
            let store = host.store().clone();
            drop(host);
            crate::api::run_key_rotation(&store).await;
        }
    });
    host.follow_secret_changes(secret_changes);
    host.follow_owner_changes(owner_changes);
    let state = AppState {
        host: Arc::clone(&host),
        tokens,
        login_limiter: Default::default(),
        dummy_hash: Arc::from(dummy_hash),
        public_hosts: PublicHosts::new(&args.public_host, args.cookie_secure),
        metrics: crate::metrics::MetricsAccess::new(&args.metrics),
        stopping,
    };
    Ok((host, state))
}
