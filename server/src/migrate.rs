//! `veil migrate --from <data dir> --to postgres://…`: moves a SQLite store to PostgreSQL (see
//! [`veil_store::migrate_to_postgres`]), with a progress bar on stderr and a summary on stdout.

use std::path::PathBuf;
use std::time::Instant;

use secrecy::SecretString;
use veil_store::{Database, MasterKeySource, MigrateProgress, MigrateReport};

use crate::error::ServerError;

/// Options of `veil migrate`.
#[derive(Debug, clap::Args)]
pub(crate) struct MigrateArgs {
    /// The data directory of the SQLite store (holding `veil.db`, and `master.key` unless the
    /// key comes from `VEIL_MASTER_KEY` or --master-key-file). Stop `veil serve` on it first.
    #[arg(long)]
    from: PathBuf,
    /// The PostgreSQL database to copy into (`postgres://user:password@host:port/db`). It must
    /// hold no Veil data, unless --replace.
    #[arg(long, value_parser = crate::serve::parse_database_url)]
    to: String,
    /// Empty the target's Veil tables first (in the same transaction as the copy).
    #[arg(long)]
    replace: bool,
    /// File holding the SQLite store's master key. `VEIL_MASTER_KEY` takes precedence; the
    /// default is `<from>/master.key`.
    #[arg(long, env = "VEIL_MASTER_KEY_FILE")]
    master_key_file: Option<PathBuf>,
}

/// The master key, as `veil serve` finds it, except that it is never generated here.
fn master_key(args: &MigrateArgs) -> MasterKeySource {
    if let Ok(key) = std::env::var("VEIL_MASTER_KEY") {
        return MasterKeySource::Base64(SecretString::from(key));
    }
    MasterKeySource::File(args.master_key_file.clone().unwrap_or_else(|| args.from.join("master.key")))
}

/// A bar on stderr (drawn only on a terminal) for the copy, then one for the check.
fn progress_bar() -> impl FnMut(MigrateProgress<'_>) {
    let style = indicatif::ProgressStyle::with_template(
        "{msg:>10} [{bar:40}] {human_pos}/{human_len} ({per_sec}, {eta})",
    )
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
    .progress_chars("=> ");
    let mut bar = indicatif::ProgressBar::hidden();
    move |step| match step {
        MigrateProgress::Counted { rows } => {
            bar = indicatif::ProgressBar::new(rows).with_style(style.clone()).with_message("copying");
        }
        MigrateProgress::Copied { rows, .. } => bar.inc(rows),
        MigrateProgress::Verifying { items } => {
            bar.finish_and_clear();
            bar = indicatif::ProgressBar::new(items).with_style(style.clone()).with_message("checking");
        }
        MigrateProgress::Verified { items } => {
            bar.inc(items);
            if bar.length().is_some_and(|n| bar.position() >= n) {
                bar.finish_and_clear();
            }
        }
    }
}

fn summary(report: &MigrateReport, from: &std::path::Path, to: &Database, seconds: f64) -> String {
    let rows: Vec<String> = report.tables.iter().map(|(t, n)| format!("{t} {n}")).collect();
    let per_second = if seconds > 0.0 { report.secrets as f64 / seconds } else { 0.0 };
    format!(
        "Copied {} into {to} and checked it in {seconds:.1} s ({per_second:.0} secrets/s).\n\
         Rows: {}.\n\
         Every row is the same on both sides; every secret's values decrypt the same ({} secrets, {} values).\n\
         Start the instances with --database and the same master key as the SQLite store.",
        from.display(),
        rows.join(", "),
        report.secrets,
        report.values,
    )
}

/// Runs `veil migrate`.
pub(crate) async fn run(args: MigrateArgs) -> Result<(), ServerError> {
    let started = Instant::now();
    let from = args.from.join("veil.db");
    let mut progress = progress_bar();
    let report =
        veil_store::migrate_to_postgres(&from, master_key(&args), &args.to, args.replace, &mut progress)
            .await?;
    let to = Database::Postgres(args.to.clone());
    println!("{}", summary(&report, &args.from, &to, started.elapsed().as_secs_f64()));
    Ok(())
}
