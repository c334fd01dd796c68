//! `veil migrate`: a SQLite store copied into a PostgreSQL database, then checked.
//!
//! Rows are copied as they are — ciphertexts, the wrapped keyring, ids (which the ciphertexts'
//! associated data binds), references, users, the audit log — in one PostgreSQL transaction,
//! from one consistent read of the SQLite file. Then every copied table is read back from both
//! sides and compared row by row, and both stores are opened with the master key and every
//! secret's current and kept earlier values are decrypted on both sides and compared.

use std::path::Path;

use sqlx::{ConnectOptions, Connection, QueryBuilder, Row};
use uuid::Uuid;

use crate::backend::{Database, PostgresBackend};
use crate::crypto::MasterKeySource;
use crate::error::{Result, StoreError};
use crate::model::Limits;
use crate::store::{Store, StoreConfig};

/// The tables copied, parents before children (the foreign keys hold at every insert).
const COPIED: &[&str] = &[
    "tenants",
    "data_keys",
    "key_rotations",
    "system_secrets",
    "customers",
    "users",
    "revoked_sessions",
    "roles",
    "secrets",
    "secret_shares",
    "secret_history",
    "secret_versions",
    "secret_pending",
    "secret_probes",
    "secret_uses",
    "owners",
    "secret_refs",
    "owner_links",
    "audit_log",
];

/// Tables left behind: integration start-up records are redone by the instances.
/// `tenant_usage` is kept by the target's own triggers as the copied rows are inserted.
const NOT_COPIED: &[&str] = &["cluster_work", "tenant_usage"];

/// Tables emptied by `--replace` (PostgreSQL's own `deleted_tenants` too).
const REPLACED: &[&str] = &[
    "tenants",
    "deleted_tenants",
    "data_keys",
    "key_rotations",
    "system_secrets",
    "customers",
    "users",
    "revoked_sessions",
    "roles",
    "secrets",
    "secret_shares",
    "secret_history",
    "secret_versions",
    "secret_pending",
    "secret_probes",
    "secret_uses",
    "owners",
    "secret_refs",
    "owner_links",
    "audit_log",
    "cluster_work",
    "tenant_usage",
];

/// Rows per `INSERT` (PostgreSQL takes at most 65,535 parameters per statement).
const BATCH_ROWS: usize = 1000;

/// Where a migration is, for a progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MigrateProgress<'a> {
    /// Rows to copy in all, known before the copy starts.
    Counted {
        /// Rows in every copied table.
        rows: u64,
    },
    /// More rows of `table` are in the target's transaction.
    Copied {
        /// The table.
        table: &'a str,
        /// Rows added by this step.
        rows: u64,
    },
    /// The copy is committed; checking it.
    Verifying {
        /// Rows to compare plus secrets to decrypt on both sides.
        items: u64,
    },
    /// More of the check is done.
    Verified {
        /// Items checked by this step.
        items: u64,
    },
}

/// What `veil migrate` copied and checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MigrateReport {
    /// Rows per table, in copy order.
    pub tables: Vec<(&'static str, u64)>,
    /// Secrets whose values decrypt the same on both sides.
    pub secrets: u64,
    /// Values compared: current and kept earlier ones.
    pub values: u64,
}

impl MigrateReport {
    /// Rows copied from `table`.
    pub fn rows(&self, table: &str) -> u64 {
        self.tables.iter().find(|(t, _)| *t == table).map_or(0, |(_, n)| *n)
    }
}

/// One cell of a copied row, typed by the PostgreSQL column it goes to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Cell {
    Null,
    Int(i64),
    Text(String),
    Bytes(Vec<u8>),
    Uuid(Uuid),
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Int,
    Text,
    Bytes,
    Uuid,
}

fn copy_error(message: String) -> StoreError {
    StoreError::Copy(message)
}

/// The columns of a PostgreSQL table, in order, with the kind of value each takes.
async fn columns(conn: &mut sqlx::PgConnection, table: &str) -> Result<Vec<(String, Kind)>> {
    let rows = sqlx::query(
        "SELECT column_name::text AS name, data_type::text AS type FROM information_schema.columns \
         WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
    )
    .bind(table)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| {
            let (name, ty): (String, String) = (r.try_get("name")?, r.try_get("type")?);
            let kind = match ty.as_str() {
                "uuid" => Kind::Uuid,
                "bigint" | "integer" => Kind::Int,
                "bytea" => Kind::Bytes,
                "text" => Kind::Text,
                other => {
                    return Err(copy_error(format!("{table}.{name}: cannot copy a column of type {other}")));
                }
            };
            Ok((name, kind))
        })
        .collect()
}

async fn read_only(file: &Path) -> Result<sqlx::SqliteConnection> {
    Ok(sqlx::sqlite::SqliteConnectOptions::new().filename(file).read_only(true).connect().await?)
}

fn select(table: &str, columns: &[(String, Kind)]) -> String {
    let names: Vec<String> = columns.iter().map(|(c, _)| format!("\"{c}\"")).collect();
    format!("SELECT {} FROM {table}", names.join(", "))
}

/// Rows decoded into cells by column kind; `uuid` reads an id column (SQLite keeps ids as text).
fn cells<R: Row>(
    rows: &[R],
    columns: &[(String, Kind)],
    uuid: impl Fn(&R, usize, &str) -> Result<Option<Uuid>>,
) -> Result<Vec<Vec<Cell>>>
where
    usize: sqlx::ColumnIndex<R>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Vec<u8>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    rows.iter()
        .map(|row| {
            columns
                .iter()
                .enumerate()
                .map(|(i, (name, kind))| {
                    let cell = match kind {
                        Kind::Int => row.try_get::<Option<i64>, _>(i)?.map(Cell::Int),
                        Kind::Text => row.try_get::<Option<String>, _>(i)?.map(Cell::Text),
                        Kind::Bytes => row.try_get::<Option<Vec<u8>>, _>(i)?.map(Cell::Bytes),
                        Kind::Uuid => uuid(row, i, name)?.map(Cell::Uuid),
                    };
                    Ok(cell.unwrap_or(Cell::Null))
                })
                .collect()
        })
        .collect()
}

/// A table's rows in the SQLite file, typed for PostgreSQL (ids stored as text become UUIDs).
async fn sqlite_rows(
    conn: &mut sqlx::SqliteConnection,
    table: &str,
    columns: &[(String, Kind)],
) -> Result<Vec<Vec<Cell>>> {
    let rows = sqlx::query(&select(table, columns)).fetch_all(&mut *conn).await?;
    cells(&rows, columns, |row, i, name| {
        row.try_get::<Option<String>, _>(i)?
            .map(|text| {
                text.parse().map_err(|_| copy_error(format!("{table}.{name}: '{text}' is not a UUID")))
            })
            .transpose()
    })
}

/// A table's rows in PostgreSQL.
async fn postgres_rows(
    conn: &mut sqlx::PgConnection,
    table: &str,
    columns: &[(String, Kind)],
) -> Result<Vec<Vec<Cell>>> {
    let rows = sqlx::query(&select(table, columns)).fetch_all(&mut *conn).await?;
    cells(&rows, columns, |row, i, _| Ok(row.try_get::<Option<Uuid>, _>(i)?))
}

async fn insert(
    conn: &mut sqlx::PgConnection,
    table: &str,
    columns: &[(String, Kind)],
    rows: &[Vec<Cell>],
) -> Result<()> {
    let names: Vec<String> = columns.iter().map(|(c, _)| format!("\"{c}\"")).collect();
    let mut query =
        QueryBuilder::<sqlx::Postgres>::new(format!("INSERT INTO {table} ({}) ", names.join(", ")));
    query.push_values(rows, |mut values, row| {
        for (cell, (_, kind)) in row.iter().zip(columns) {
            match (cell, kind) {
                (Cell::Null, Kind::Int) => values.push_bind(None::<i64>),
                (Cell::Null, Kind::Text) => values.push_bind(None::<String>),
                (Cell::Null, Kind::Bytes) => values.push_bind(None::<Vec<u8>>),
                (Cell::Null, Kind::Uuid) => values.push_bind(None::<Uuid>),
                (Cell::Int(v), _) => values.push_bind(*v),
                (Cell::Text(v), _) => values.push_bind(v.clone()),
                (Cell::Bytes(v), _) => values.push_bind(v.clone()),
                (Cell::Uuid(v), _) => values.push_bind(*v),
            };
        }
    });
    query.build().execute(&mut *conn).await.map_err(|e| copy_error(format!("copying {table}: {e}")))?;
    Ok(())
}

/// Copies the SQLite store `from` (a `veil.db`) into the PostgreSQL database `to`, then checks
/// the copy (see the module). The target must hold no Veil data unless `replace` (which empties
/// it first, in the same transaction). `master_key` is the key of the SQLite store; the
/// instances on PostgreSQL must use the same one.
pub async fn migrate_to_postgres(
    from: &Path,
    master_key: MasterKeySource,
    to: &str,
    replace: bool,
    progress: &mut dyn FnMut(MigrateProgress<'_>),
) -> Result<MigrateReport> {
    if !from.is_file() {
        return Err(copy_error(format!("{}: no Veil database there", from.display())));
    }
    // Open the source as `veil serve` would: checks the master key, brings its schema up to date.
    let source = Store::open(StoreConfig {
        database: Database::Sqlite(from.to_owned()),
        master_key: master_key.clone(),
        limits: Limits::default(),
    })
    .await?;
    let result = copy_and_check(&source, from, master_key, to, replace, progress).await;
    source.close().await;
    result
}

async fn copy_and_check(
    source: &Store,
    from: &Path,
    master_key: MasterKeySource,
    to: &str,
    replace: bool,
    progress: &mut dyn FnMut(MigrateProgress<'_>),
) -> Result<MigrateReport> {
    let target = PostgresBackend::connect(to).await?;
    let copied = copy(from, &target, replace, progress).await;
    target.close().await;
    let report = copied?;
    check(source, master_key, to, report, progress).await
}

async fn copy(
    from: &Path,
    target: &PostgresBackend,
    replace: bool,
    progress: &mut dyn FnMut(MigrateProgress<'_>),
) -> Result<MigrateReport> {
    target.migrate().await?;
    let mut src = read_only(from).await?;
    // One read transaction: the copy is one consistent state even if a server is writing.
    let mut snapshot = src.begin().await?;
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name <> '_sqlx_migrations'",
    )
    .fetch_all(&mut *snapshot)
    .await?;
    if let Some(unknown) =
        tables.iter().find(|t| !COPIED.contains(&t.as_str()) && !NOT_COPIED.contains(&t.as_str()))
    {
        return Err(copy_error(format!(
            "table {unknown}: this version of veil does not know how to copy it"
        )));
    }
    let mut tx = target.pool().begin().await?;
    let mut held = Vec::new();
    for table in REPLACED {
        let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}")).fetch_one(&mut *tx).await?;
        if n > 0 {
            held.push(format!("{table}: {n}"));
        }
    }
    if !held.is_empty() {
        if !replace {
            return Err(copy_error(format!(
                "the target database already holds Veil data ({}); pass --replace to empty it and copy over it",
                held.join(", ")
            )));
        }
        sqlx::query(&format!("TRUNCATE {} CASCADE", REPLACED.join(", "))).execute(&mut *tx).await?;
    }
    let mut shapes = Vec::with_capacity(COPIED.len());
    let mut total = 0;
    for table in COPIED {
        let columns = columns(&mut tx, table).await?;
        let n: i64 =
            sqlx::query_scalar(&format!("SELECT count(*) FROM {table}")).fetch_one(&mut *snapshot).await?;
        total += n as u64;
        shapes.push((*table, columns));
    }
    progress(MigrateProgress::Counted { rows: total });
    let mut report = MigrateReport::default();
    for (table, columns) in &shapes {
        let rows = sqlite_rows(&mut snapshot, table, columns).await?;
        for batch in rows.chunks(BATCH_ROWS) {
            insert(&mut tx, table, columns, batch).await?;
            progress(MigrateProgress::Copied { table, rows: batch.len() as u64 });
        }
        report.tables.push((table, rows.len() as u64));
    }
    // Audit entries keep their ids; new ones continue after them.
    sqlx::query(
        "SELECT setval(pg_get_serial_sequence('audit_log', 'id'), COALESCE((SELECT max(id) FROM audit_log), 0) + 1, false)",
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    snapshot.rollback().await?;
    src.close().await?;
    Ok(report)
}

/// Reads every copied table back from both sides and compares them, then decrypts every
/// secret's values on both sides.
async fn check(
    source: &Store,
    master_key: MasterKeySource,
    to: &str,
    mut report: MigrateReport,
    progress: &mut dyn FnMut(MigrateProgress<'_>),
) -> Result<MigrateReport> {
    let secrets = source.all_secrets();
    let rows: u64 = report.tables.iter().map(|(_, n)| n).sum();
    progress(MigrateProgress::Verifying { items: rows + secrets.len() as u64 });
    let target = PostgresBackend::connect(to).await?;
    let compared = compare_tables(source, &target, &report, progress).await;
    target.close().await;
    compared?;
    let copy = Store::open(StoreConfig {
        database: Database::Postgres(to.to_owned()),
        master_key,
        limits: Limits::default(),
    })
    .await?;
    let compared = (|| {
        if copy.secret_count() != secrets.len() {
            return Err(copy_error(format!(
                "the copy holds {} secrets, the source {}",
                copy.secret_count(),
                secrets.len()
            )));
        }
        for info in &secrets {
            let mine = source.values_for_masking(info.tenant_id, &info.name)?;
            let theirs = copy.values_for_masking(info.tenant_id, &info.name)?;
            let same = mine.len() == theirs.len()
                && mine.iter().zip(&theirs).all(|(a, b)| a.expose_bytes() == b.expose_bytes());
            if !same {
                return Err(copy_error(format!("secret '{}' ({}) differs in the copy", info.name, info.id)));
            }
            report.values += mine.len() as u64;
            report.secrets += 1;
            progress(MigrateProgress::Verified { items: 1 });
        }
        Ok(())
    })();
    copy.close().await;
    compared.map(|()| report)
}

async fn compare_tables(
    source: &Store,
    target: &PostgresBackend,
    report: &MigrateReport,
    progress: &mut dyn FnMut(MigrateProgress<'_>),
) -> Result<()> {
    let Some(from) = source.sqlite_file() else {
        return Err(StoreError::Internal("the source of a migration is a SQLite store".into()));
    };
    let mut src = read_only(from).await?;
    let mut dst = target.pool().acquire().await?;
    for (table, copied) in &report.tables {
        let columns = columns(&mut dst, table).await?;
        let mut mine = sqlite_rows(&mut src, table, &columns).await?;
        let mut theirs = postgres_rows(&mut dst, table, &columns).await?;
        mine.sort_unstable();
        theirs.sort_unstable();
        if mine.len() as u64 != *copied || mine != theirs {
            return Err(copy_error(format!(
                "{table}: the copy differs from the source ({} rows there, {} here)",
                mine.len(),
                theirs.len()
            )));
        }
        progress(MigrateProgress::Verified { items: *copied });
    }
    src.close().await?;
    Ok(())
}
