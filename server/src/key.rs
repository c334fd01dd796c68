//! `veil key …`: work on the master key with every server stopped. `generate` writes a new key
//! file; `rekey` wraps the data keys again under a new master key (the values stay as they are).
//! `rotate` and `status` talk to a running server instead (`cli/keys.rs`).

use std::path::PathBuf;

use secrecy::SecretString;
use veil_store::{Database, MasterKeySource, StoreError};

use crate::error::ServerError;

/// `veil key …`
#[derive(Debug, clap::Subcommand)]
pub(crate) enum KeyCommand {
    /// Write a new random master key (base64 of 32 bytes) to FILE, mode 0600; never overwrites.
    Generate {
        /// Where to write it.
        file: PathBuf,
    },
    /// Wrap the data keys again under a new master key, in one transaction (stop every `veil
    /// serve` on the database first). Afterwards the old key is refused and the new one opens
    /// everything.
    Rekey(RekeyArgs),
    /// Rotate the data key of a running server (SYS_ADMIN, after `veil login`): a new key seals
    /// new values at once, every stored value is sealed again under it in the background, then
    /// the older keys are retired.
    Rotate(crate::cli::RotateArgs),
    /// The data keys of a running server, the values each seals, and the latest rotation.
    Status,
}

/// Options of `veil key rekey`.
#[derive(Debug, clap::Args)]
pub(crate) struct RekeyArgs {
    /// The data directory of a SQLite store (holding `veil.db`, and `master.key` unless
    /// --master-key-file says otherwise).
    #[arg(long, required_unless_present = "database", conflicts_with = "database")]
    data_dir: Option<PathBuf>,
    /// A PostgreSQL database (`postgres://user:password@host:port/db`).
    #[arg(long, value_parser = crate::serve::parse_database_url)]
    database: Option<String>,
    /// The current master key's file. `VEIL_MASTER_KEY` takes precedence; with --data-dir the
    /// default is `<data-dir>/master.key`.
    #[arg(long, env = "VEIL_MASTER_KEY_FILE")]
    master_key_file: Option<PathBuf>,
    /// The new master key's file (make one with `veil key generate FILE`).
    #[arg(long)]
    new_master_key_file: PathBuf,
}

pub(crate) async fn run(cmd: KeyCommand) -> Result<(), ServerError> {
    match cmd {
        KeyCommand::Rotate(_) | KeyCommand::Status => {
            unreachable!("run as client commands (lib.rs): they talk to a running server")
        }
        KeyCommand::Generate { file } => {
            veil_store::generate_master_key(&file)?;
            println!(
                "Wrote a new master key to {} (mode 0600). Keep it apart from the database.",
                file.display()
            );
        }
        KeyCommand::Rekey(args) => {
            let current = if let Ok(key) = std::env::var("VEIL_MASTER_KEY") {
                MasterKeySource::Base64(SecretString::from(key))
            } else {
                match (&args.master_key_file, &args.data_dir) {
                    (Some(file), _) => MasterKeySource::File(file.clone()),
                    (None, Some(dir)) => MasterKeySource::File(dir.join("master.key")),
                    (None, None) => {
                        return Err(StoreError::MasterKey(
                            "--master-key-file is needed with --database (or set VEIL_MASTER_KEY)".into(),
                        )
                        .into());
                    }
                }
            };
            let database = match (&args.data_dir, &args.database) {
                (Some(dir), _) => Database::Sqlite(dir.join("veil.db")),
                (None, Some(url)) => Database::Postgres(url.clone()),
                (None, None) => unreachable!("clap requires one of them"),
            };
            let report = veil_store::rekey(
                &database,
                &current,
                &MasterKeySource::File(args.new_master_key_file.clone()),
            )
            .await?;
            println!(
                "Wrapped {} data key(s) under the new master key. Start every server with --master-key-file {} \
                 (or VEIL_MASTER_KEY); the old key no longer opens this database.",
                report.data_keys,
                args.new_master_key_file.display()
            );
        }
    }
    Ok(())
}
