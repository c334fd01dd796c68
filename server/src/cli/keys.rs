//! `veil key rotate|status`: the data keys of a running server (SYS_ADMIN). A rotation makes a new
//! data key seal every new value at once; the server then seals every stored value again under it
//! in the background (`--wait` shows its progress).

use std::time::Duration;

use serde_json::{Value, json};

use super::Global;
use super::client::{CliError, CliResult, Client};
use super::output::{self, Column, text, time};

/// How long `--wait` waits without progress before it gives up (the rotation goes on).
const STALLED: Duration = Duration::from_secs(120);

/// `veil key rotate`
#[derive(Debug, clap::Args)]
pub(crate) struct RotateArgs {
    /// Wait until every stored value is sealed with the new key and the older keys are retired,
    /// with a progress bar on stderr.
    #[arg(long)]
    wait: bool,
}

pub(crate) async fn rotate_keys(global: &Global, args: RotateArgs) -> CliResult<()> {
    let client = Client::authenticated(global.url.as_deref())?;
    let started = client.post("/api/system/keys/rotate", &json!({})).await?;
    let key = started["rotation"]["keyId"].as_i64().unwrap_or_default();
    if !args.wait {
        output::done(
            global.output,
            &started,
            &format!(
                "Data key {key} seals new values from now on; {} stored values are being sealed again (veil key status)",
                text(&started["rotation"]["total"])
            ),
        );
        return Ok(());
    }
    let bar = indicatif::ProgressBar::new(started["rotation"]["total"].as_u64().unwrap_or(0)).with_style(
        indicatif::ProgressStyle::with_template(
            "{msg:>10} [{bar:40}] {human_pos}/{human_len} ({per_sec}, {eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_message("sealing");
    let (mut last_done, mut last_change) = (-1, std::time::Instant::now());
    let status = loop {
        let status = client.get("/api/system/keys").await?;
        let rotation = &status["rotation"];
        if rotation["keyId"].as_i64() != Some(key) {
            return Err(CliError::failure("another rotation replaced this one"));
        }
        let done = rotation["done"].as_i64().unwrap_or(0);
        bar.set_position(u64::try_from(done).unwrap_or(0));
        if !rotation["finishedTime"].is_null() {
            break status;
        }
        if done != last_done {
            (last_done, last_change) = (done, std::time::Instant::now());
        } else if last_change.elapsed() > STALLED {
            bar.finish_and_clear();
            return Err(CliError::failure(format!(
                "the rotation has made no progress for {} s ({done} values done); see the server log",
                STALLED.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    bar.finish_and_clear();
    let rotation = &status["rotation"];
    let seconds = (rotation["finishedTime"].as_i64().unwrap_or(0)
        - rotation["startedTime"].as_i64().unwrap_or(0)) as f64
        / 1000.0;
    let done = rotation["done"].as_f64().unwrap_or(0.0);
    output::done(
        global.output,
        &status,
        &format!(
            "Data key {key} seals every value: {} values sealed again in {seconds:.1} s ({:.0} values/s); older keys retired",
            text(&rotation["done"]),
            if seconds > 0.0 { done / seconds } else { done }
        ),
    );
    Ok(())
}

pub(crate) async fn key_status(global: &Global) -> CliResult<()> {
    let client = Client::authenticated(global.url.as_deref())?;
    let status = client.get("/api/system/keys").await?;
    let keys: Vec<Value> = status["keys"].as_array().cloned().unwrap_or_default();
    output::list(
        global.output,
        &status,
        &keys,
        &[
            Column { heading: "KEY", read: |v| text(&v["id"]) },
            Column { heading: "CREATED", read: |v| time(&v["created"]) },
            Column { heading: "VALUES", read: |v| text(&v["values"]) },
        ],
    );
    if global.output == output::Format::Table {
        output::say(&format!("active key: {}", text(&status["activeKey"])));
        let r = &status["rotation"];
        if !r.is_null() {
            let state = if r["finishedTime"].is_null() {
                "running".to_owned()
            } else {
                format!("finished {}", time(&r["finishedTime"]))
            };
            output::say(&format!(
                "rotation to key {}: {}/{} values, started {} by {}, {state}",
                text(&r["keyId"]),
                text(&r["done"]),
                text(&r["total"]),
                time(&r["startedTime"]),
                text(&r["startedBy"])
            ));
        }
    }
    Ok(())
}
