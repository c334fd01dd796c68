//! veil-server: the `veil` program. `veil serve` runs the HTTP API, the rule engine and the
//! integrations over the secret store; the other subcommands are a client of that API. The
//! library's entry point, [`run`], is what the `veil` binary (and the test suite's copy of it,
//! `veil-e2e` in `tests/`) calls; [`Host`] is what runs over a store without HTTP (the test kit
//! deploys through it).

mod api;
mod auth;
mod cli;
mod config;
mod edge;
mod error;
mod host;
mod key;
mod lifecycle;
mod limits;
mod logs;
mod metrics;
mod migrate;
mod queue;
mod reference;
mod serve;
mod state;
mod thingsboard;
mod ui;

/// mimalloc rather than glibc's malloc for every program built on this library (`veil`, the test
/// suite's `veil-e2e`): per forwarded message it halves the time spent allocating (see the
/// performance section of the README).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use crate::host::{BrokenConfig, Host, HostError, HostResult};
pub use crate::reference::{Reference, reference};

/// Veil: a rule engine whose configurations take credentials from an encrypted secret store.
#[derive(Debug, Parser)]
#[command(name = "veil", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    global: cli::Global,
}

/// What `veil` does: run the server, work on its data directly, or be a client of its API.
#[derive(Debug, Subcommand)]
enum Command {
    #[command(flatten)]
    Server(ServerCommand),
    /// Print the reference of the node or integration types built into this program (Markdown;
    /// no server needed): what nodes/README.md and integrations/README.md hold.
    Docs {
        /// Which reference.
        #[arg(value_enum)]
        which: Reference,
    },
    /// Print the OpenAPI 3.1 document of the REST API (JSON; no server needed): what
    /// `GET /api/openapi.json` serves.
    Openapi,
    #[command(flatten)]
    Client(ClientCommand),
}

/// The commands that run the server or work on its data (logging, a multi-threaded runtime).
#[derive(Debug, Subcommand)]
enum ServerCommand {
    /// Run the server: REST API over the embedded SQLite store (or PostgreSQL with --database).
    Serve(Box<serve::ServeArgs>),
    /// Copy a SQLite data directory into a PostgreSQL database, then check the copy.
    Migrate(migrate::MigrateArgs),
    /// The master key: generate a new one, or rekey a stopped store under it.
    #[command(subcommand)]
    Key(key::KeyCommand),
    /// The configuration `veil serve` would run with: check it, or show it.
    #[command(subcommand)]
    Config(config::ConfigCommand),
}

/// The commands that talk to a running server.
#[derive(Debug, Subcommand)]
enum ClientCommand {
    /// Log in and keep the token (in the config directory, mode 0600).
    Login(cli::LoginArgs),
    /// End this session at the server and forget the saved token (--everywhere: every session of the account).
    Logout(cli::LogoutArgs),
    /// Secrets: values in from stdin or a file, never out.
    #[command(subcommand)]
    Secret(Box<cli::SecretCmd>),
    /// Secret providers: where linked secrets' values live (files, exec, AWS, Vault).
    #[command(subcommand)]
    Provider(cli::ProviderCmd),
    /// Rule chains.
    #[command(subcommand)]
    Chain(cli::ChainCmd),
    /// Integrations (`send` sends a downlink).
    #[command(subcommand)]
    Integration(cli::DocCmd),
    /// Users of your tenant.
    #[command(subcommand)]
    User(cli::UserCmd),
    /// Customers of your tenant.
    #[command(subcommand)]
    Customer(cli::CustomerCmd),
    /// Tenants (the system administrator).
    #[command(subcommand)]
    Tenant(cli::TenantCmd),
    /// The audit log.
    Audit(cli::AuditArgs),
    /// Node types rule chains may use, and which of their fields take secrets.
    NodeTypes,
    /// Integration types, and which of their fields take secrets.
    IntegrationTypes,
    /// Your tenant's settings (`--destinations-required true|false` to change it).
    Settings(cli::SettingsArgs),
}

/// Parses a `veil` command line as the program does, without running it (the docs test checks every
/// command line the guides show with it).
pub fn parse_command_line<I, T>(args: I) -> Result<(), clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    Cli::try_parse_from(args).map(|_| ())
}

/// Runs a client command; errors print on stderr with their exit code.
fn run_client(runtime: &tokio::runtime::Runtime, global: &cli::Global, command: ClientCommand) -> ExitCode {
    client_exit(runtime.block_on(async {
        match command {
            ClientCommand::Login(args) => cli::login(global, args).await,
            ClientCommand::Logout(args) => cli::logout(global, &args).await,
            ClientCommand::Secret(cmd) => cli::secret(global, *cmd).await,
            ClientCommand::Provider(cmd) => cli::provider(global, cmd).await,
            ClientCommand::Chain(cmd) => cli::chain(global, cmd).await,
            ClientCommand::Integration(cmd) => cli::documents(global, cmd, cli::DocKind::Integration).await,
            ClientCommand::User(cmd) => cli::user(global, cmd).await,
            ClientCommand::Customer(cmd) => cli::customer(global, cmd).await,
            ClientCommand::Tenant(cmd) => cli::tenant(global, cmd).await,
            ClientCommand::Audit(args) => cli::audit(global, args).await,
            ClientCommand::NodeTypes => cli::types(global, cli::DocKind::RuleChain).await,
            ClientCommand::IntegrationTypes => cli::types(global, cli::DocKind::Integration).await,
            ClientCommand::Settings(args) => cli::settings(global, args).await,
        }
    }))
}

/// The exit code of a client command, its error printed.
fn client_exit(result: Result<(), cli::CliError>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", e.message);
            e.exit_code()
        }
    }
}

/// Runs a client command on a single-threaded runtime.
fn client_runtime(run: impl FnOnce(&tokio::runtime::Runtime) -> ExitCode) -> ExitCode {
    match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => run(&rt),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Parses the command line and runs the command: the whole `veil` program.
pub fn run() -> ExitCode {
    use clap::{CommandFactory as _, FromArgMatches as _};
    let command = Cli::command();
    let completed = match config::with_file(&command, std::env::args_os().collect()) {
        Ok(completed) => completed,
        Err(config::Refused::CommandLine(e)) => e.exit(),
        Err(config::Refused::File(problems)) => {
            for problem in problems {
                eprintln!("error: {problem}");
            }
            return ExitCode::FAILURE;
        }
    };
    let cli =
        match command.clone().try_get_matches_from(&completed.argv).and_then(|m| Cli::from_arg_matches(&m)) {
            Ok(cli) => cli,
            Err(e) => e.exit(),
        };
    let server_command = match cli.command {
        Command::Docs { which } => {
            print!("{}", reference(which));
            return ExitCode::SUCCESS;
        }
        Command::Openapi => {
            use std::io::Write as _;
            // A closed pipe (`veil openapi | head`) is not an error worth a panic.
            let _ = writeln!(std::io::stdout(), "{}", api::openapi_document());
            return ExitCode::SUCCESS;
        }
        Command::Client(command) => {
            return client_runtime(|rt| run_client(rt, &cli.global, command));
        }
        // `veil key rotate|status` talk to a running server, like the client commands.
        Command::Server(ServerCommand::Key(key::KeyCommand::Rotate(args))) => {
            return client_runtime(|rt| client_exit(rt.block_on(cli::rotate_keys(&cli.global, args))));
        }
        Command::Server(ServerCommand::Key(key::KeyCommand::Status)) => {
            return client_runtime(|rt| client_exit(rt.block_on(cli::key_status(&cli.global))));
        }
        Command::Server(ServerCommand::Config(config::ConfigCommand::Check(args))) => {
            let problems = config::check(&args);
            for problem in &problems {
                eprintln!("error: {problem}");
            }
            if problems.is_empty() {
                println!("the configuration is valid");
                return ExitCode::SUCCESS;
            }
            return ExitCode::FAILURE;
        }
        Command::Server(ServerCommand::Config(config::ConfigCommand::Show(_))) => {
            print!("{}", config::show(&command, &completed.argv, &completed.from_file));
            return ExitCode::SUCCESS;
        }
        Command::Server(command) => command,
    };
    match &server_command {
        ServerCommand::Serve(args) => logs::init(&args.logs),
        _ => logs::init(&logs::LogArgs::default()),
    }
    // Short scripts run on these threads (longer ones move to the script threads): a stack with
    // room to spare for what they may build within their small budget.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .thread_stack_size(8 * 1024 * 1024)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match server_command {
            ServerCommand::Serve(args) => serve::run(*args).await,
            ServerCommand::Migrate(args) => migrate::run(args).await,
            ServerCommand::Key(cmd) => key::run(cmd).await,
            ServerCommand::Config(_) => Ok(()),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
