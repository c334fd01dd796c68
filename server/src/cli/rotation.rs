//! `veil secret stage|rotation|promote|drop-pending`: a staged rotation from the command line —
//! a pending value tested on every consumer, the probe table, promotion, dropping.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::{Value, json};

use super::client::{CliError, CliResult, Client};
use super::input::new_value;
use super::output::{self, Column, text, time};
use super::secret::{SECRET_FIELDS, secret_id};

/// `veil secret stage NAME`
#[derive(Debug, Args)]
pub(crate) struct Stage {
    /// Name or id.
    secret: String,
    /// Read the pending value from stdin (a pipe is read without it too).
    #[arg(long)]
    stdin: bool,
    /// Read the pending value from this file.
    #[arg(long)]
    file: Option<PathBuf>,
    /// FILE secrets: the file name that comes with the value (default: --file's name).
    #[arg(long)]
    file_name: Option<String>,
    /// Check-and-set: stage nothing unless version N is still the current one.
    #[arg(long, value_name = "N")]
    expect_version: Option<i64>,
    /// Wait for every consumer's probe and show the table (exit 1 when one failed).
    #[arg(long)]
    wait: bool,
}

/// `veil secret rotation NAME`
#[derive(Debug, Args)]
pub(crate) struct Show {
    /// Name or id.
    secret: String,
    /// Wait until no probe is running (exit 1 when one failed).
    #[arg(long)]
    wait: bool,
    /// Test the pending value on every consumer again first.
    #[arg(long)]
    again: bool,
}

/// `veil secret promote NAME`
#[derive(Debug, Args)]
pub(crate) struct Promote {
    /// Name or id.
    secret: String,
    /// Promote although a consumer's probe failed.
    #[arg(long)]
    force: bool,
    /// Check-and-set: promote nothing unless version N is still the current one.
    #[arg(long, value_name = "N")]
    expect_version: Option<i64>,
}

/// How long `--wait` waits for probes (each has 15 s; they run 8 configurations at a time).
const WAIT_AT_MOST: Duration = Duration::from_secs(300);

pub(super) async fn stage(client: &Client, out: output::Format, cmd: Stage) -> CliResult<()> {
    let id = secret_id(client, &cmd.secret).await?;
    let current = client.get(&format!("/api/secrets/{id}")).await?;
    let is_file = current["type"] == "FILE";
    let mut body = json!({"pendingValue": new_value(cmd.file.as_ref(), is_file, cmd.stdin)?});
    if is_file {
        let name = cmd.file_name.or_else(|| {
            cmd.file.as_ref().and_then(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned())
        });
        if let Some(name) = name {
            body["fileName"] = json!(name);
        }
    }
    let path = format!("/api/secrets/{id}");
    let staged = client.call_if_match(reqwest::Method::PATCH, &path, Some(&body), cmd.expect_version).await?;
    if cmd.wait {
        return show(client, out, &id, true).await;
    }
    let pending = &staged["pending"];
    output::done(
        out,
        &staged,
        &format!(
            "Staged version {} of '{}' (fingerprint {}); its consumers are being tested: veil secret rotation {} --wait",
            text(&pending["version"]),
            cmd.secret,
            text(&pending["fingerprint"]),
            cmd.secret
        ),
    );
    Ok(())
}

pub(super) async fn rotation(client: &Client, out: output::Format, cmd: Show) -> CliResult<()> {
    let id = secret_id(client, &cmd.secret).await?;
    if cmd.again {
        client.post(&format!("/api/secrets/{id}/rotation/probe"), &json!({})).await?;
    }
    show(client, out, &id, cmd.wait || cmd.again).await
}

/// Shows the probe table of secret `id`; with `wait`, once no probe runs, failing when one failed.
async fn show(client: &Client, out: output::Format, id: &str, wait: bool) -> CliResult<()> {
    let path = format!("/api/secrets/{id}/rotation");
    let started = Instant::now();
    let answer = loop {
        let answer = client.get(&path).await?;
        if !wait || answer["summary"]["probing"] == 0 {
            break answer;
        }
        if started.elapsed() > WAIT_AT_MOST {
            return Err(CliError::failure("probes still running after 5 minutes"));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let rows = answer["consumers"].as_array().cloned().unwrap_or_default();
    output::list(
        out,
        &answer,
        &rows,
        &[
            Column { heading: "USED BY", read: |v| text(&v["type"]) },
            Column { heading: "NAME", read: |v| text(&v["name"]) },
            Column { heading: "NODE", read: |v| text(&v["node"]) },
            Column { heading: "FIELD", read: |v| text(&v["field"]) },
            Column { heading: "RESULT", read: |v| text(&v["result"]) },
            Column { heading: "REASON", read: |v| text(&v["reason"]) },
            Column { heading: "TIME", read: |v| time(&v["time"]) },
        ],
    );
    if out == output::Format::Table {
        let p = &answer["pending"];
        output::say(&format!(
            "pending version {} (fingerprint {}, staged by {} at {})",
            text(&p["version"]),
            text(&p["fingerprint"]),
            text(&p["createdBy"]),
            time(&p["createdTime"])
        ));
    }
    match answer["summary"]["failed"].as_u64() {
        Some(failed) if wait && failed > 0 => {
            Err(CliError::failure(format!("{failed} consumer(s) refused the pending value")))
        }
        _ => Ok(()),
    }
}

pub(super) async fn promote(client: &Client, out: output::Format, cmd: Promote) -> CliResult<()> {
    let id = secret_id(client, &cmd.secret).await?;
    let path = format!("/api/secrets/{id}/rotation/promote");
    let body: Value = json!({"force": cmd.force});
    let promoted =
        client.call_if_match(reqwest::Method::POST, &path, Some(&body), cmd.expect_version).await?;
    output::object(out, &promoted, SECRET_FIELDS);
    Ok(())
}

pub(super) async fn drop_pending(client: &Client, out: output::Format, secret: &str) -> CliResult<()> {
    let id = secret_id(client, secret).await?;
    let answer = client.delete(&format!("/api/secrets/{id}/rotation")).await?;
    output::done(out, &answer, &format!("Dropped the pending value of '{secret}'"));
    Ok(())
}
