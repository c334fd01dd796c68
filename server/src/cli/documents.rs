//! `veil chain …` and `veil integration …`: configurations as JSON documents.

use std::path::PathBuf;

use clap::Subcommand;
use serde_json::{Value, json};

use super::Global;
use super::client::{CliError, CliResult, Client};
use super::input::{json_arg, read_file};
use super::output::{self, Column, text, time};

/// `veil chain ...` and `veil integration ...`: JSON documents.
#[derive(Debug, Subcommand)]
pub(crate) enum DocCmd {
    /// Create from a JSON file (`-` for stdin).
    Create {
        /// The document.
        file: PathBuf,
    },
    /// List.
    List,
    /// Show one as JSON.
    Show {
        /// Its id.
        id: String,
    },
    /// Replace from a JSON file (`-` for stdin).
    Update {
        /// Its id.
        id: String,
        /// The document.
        file: PathBuf,
    },
    /// Delete.
    Delete {
        /// Its id.
        id: String,
    },
    /// Rule chains: process a message; integrations: send a downlink.
    Send {
        /// Its id.
        id: String,
        /// The message data (JSON).
        #[arg(long, default_value = "{}")]
        data: String,
        /// Message metadata (JSON object of strings).
        #[arg(long)]
        metadata: Option<String>,
        /// Message type (default POST_TELEMETRY_REQUEST).
        #[arg(long = "type")]
        msg_type: Option<String>,
        /// Originator (default `api`).
        #[arg(long)]
        originator: Option<String>,
        /// Rule chains: wait and print what every node did.
        #[arg(long)]
        wait: bool,
    },
}

/// `veil chain ...`: the document commands, and ThingsBoard's export format in and out.
#[derive(Debug, Subcommand)]
pub(crate) enum ChainCmd {
    #[command(flatten)]
    Doc(DocCmd),
    /// Convert a ThingsBoard rule chain export (JSON file, `-` for stdin): prints the Veil chain
    /// (the report of what became of each node goes to stderr); --save creates it too.
    Import {
        /// The export.
        file: PathBuf,
        /// Keep nodes Veil cannot run as `placeholder` nodes (the chain keeps its shape).
        #[arg(long)]
        keep_unsupported: bool,
        /// Create the rule chain (its secrets must exist).
        #[arg(long)]
        save: bool,
    },
    /// Print a rule chain as a ThingsBoard export.
    Export {
        /// Its id.
        id: String,
    },
}

/// `veil chain ...`.
pub(crate) async fn chain(global: &Global, cmd: ChainCmd) -> CliResult<()> {
    let (file, keep_unsupported, save) = match cmd {
        ChainCmd::Doc(cmd) => return documents(global, cmd, DocKind::RuleChain).await,
        ChainCmd::Export { id } => {
            let client = Client::authenticated(global.url.as_deref())?;
            output::json(&client.get(&format!("/api/rule-chains/{id}/export")).await?);
            return Ok(());
        }
        ChainCmd::Import { file, keep_unsupported, save } => (file, keep_unsupported, save),
    };
    let client = Client::authenticated(global.url.as_deref())?;
    let bytes = read_file(&file)?;
    let export: Value = serde_json::from_slice(&bytes)
        .map_err(|e| CliError::usage(format!("{}: not JSON ({e})", file.display())))?;
    let path = format!("/api/rule-chains/import?keepUnsupported={keep_unsupported}");
    let mut answer = client.post(&path, &export).await?;
    if global.output == output::Format::Table {
        for line in report_lines(&answer["report"]) {
            eprintln!("{}", output::escape(&line));
        }
    }
    if !save {
        match global.output {
            output::Format::Json => output::json(&answer),
            output::Format::Table => output::json(&answer["chain"]),
        }
        return Ok(());
    }
    let created = client.post("/api/rule-chains", &answer["chain"]).await?;
    let line = format!("Created rule chain '{}' with id {}", text(&created["name"]), text(&created["id"]));
    answer["saved"] = created;
    output::done(global.output, &answer, &line);
    Ok(())
}

/// The import report as lines a person reads.
fn report_lines(report: &Value) -> Vec<String> {
    let empty = Vec::new();
    let list = |key: &str| report[key].as_array().unwrap_or(&empty).clone();
    let mut lines = Vec::new();
    for node in list("nodes") {
        let what = match node["outcome"].as_str() {
            Some("imported") => format!("imported as {}", text(&node["veilType"])),
            Some("placeholder") => format!("kept as a placeholder: {}", text(&node["reason"])),
            _ => format!("left out: {}", text(&node["reason"])),
        };
        lines.push(format!("node '{}' ({}): {what}", text(&node["name"]), text(&node["thingsboardType"])));
        let ignored: Vec<String> =
            node["ignoredSettings"].as_array().unwrap_or(&empty).iter().map(text).collect();
        if !ignored.is_empty() {
            lines.push(format!("  settings Veil's node does not have, left out: {}", ignored.join(", ")));
        }
        let written: Vec<String> =
            node["writtenOutCredentials"].as_array().unwrap_or(&empty).iter().map(text).collect();
        if !written.is_empty() {
            lines.push(format!(
                "  credentials written out, not secrets (move them into secrets): {}",
                written.join(", ")
            ));
        }
    }
    lines.extend(list("leftOut").iter().map(|l| format!("left out: {}", text(l))));
    for secret in list("missingSecrets") {
        lines.push(format!(
            "missing secret '{}' ({}): create it before saving (veil secret create {} --type {})",
            text(&secret["name"]),
            text(&secret["type"]),
            text(&secret["name"]),
            text(&secret["type"]),
        ));
    }
    lines
}

/// Which kind of configuration a command is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DocKind {
    /// `veil chain …`, `veil node-types`.
    RuleChain,
    /// `veil integration …`, `veil integration-types`.
    Integration,
}

/// `veil chain ...` and `veil integration ...`.
pub(crate) async fn documents(global: &Global, cmd: DocCmd, kind: DocKind) -> CliResult<()> {
    let integrations = kind == DocKind::Integration;
    let client = Client::authenticated(global.url.as_deref())?;
    let out = global.output;
    let (base, what) =
        if integrations { ("/api/integrations", "integration") } else { ("/api/rule-chains", "rule chain") };
    let read_doc = |file: &PathBuf| -> CliResult<Value> {
        let bytes = read_file(file)?;
        serde_json::from_slice(&bytes)
            .map_err(|e| CliError::usage(format!("{}: not JSON ({e})", file.display())))
    };
    match cmd {
        DocCmd::Create { file } => {
            let created = client.post(base, &read_doc(&file)?).await?;
            let line =
                format!("Created {what} '{}' with id {}", text(&created["name"]), text(&created["id"]));
            output::done(out, &created, &line);
        }
        DocCmd::List => {
            let answer = client.get_all(base).await?;
            let mut columns = vec![Column { heading: "NAME", read: |v| text(&v["name"]) }];
            if integrations {
                columns.push(Column { heading: "TYPE", read: |v| text(&v["type"]) });
                columns.push(Column { heading: "STATUS", read: |v| text(&v["status"]) });
            }
            columns.push(Column { heading: "UPDATED", read: |v| time(&v["updatedTime"]) });
            columns.push(Column { heading: "ID", read: |v| text(&v["id"]) });
            output::page(out, &answer, &columns);
        }
        DocCmd::Show { id } => output::json(&client.get(&format!("{base}/{id}")).await?),
        DocCmd::Update { id, file } => {
            let updated =
                client.call(reqwest::Method::PUT, &format!("{base}/{id}"), Some(&read_doc(&file)?)).await?;
            output::done(out, &updated, &format!("Updated {what} '{}'", text(&updated["name"])));
        }
        DocCmd::Delete { id } => {
            let answer = client.delete(&format!("{base}/{id}")).await?;
            output::done(out, &answer, &format!("Deleted {what} {id}"));
        }
        DocCmd::Send { id, data, metadata, msg_type, originator, wait } => {
            let mut msg = json!({"data": json_arg("data", &data)?});
            if let Some(m) = metadata {
                msg["metadata"] = json_arg("metadata", &m)?;
            }
            if let Some(t) = msg_type {
                msg["type"] = json!(t);
            }
            if let Some(o) = originator {
                msg["originator"] = json!(o);
            }
            if integrations {
                let sent = client.post(&format!("{base}/{id}/downlink"), &msg).await?;
                output::done(out, &sent, &format!("Downlink sent: {}", sent["sent"]));
            } else {
                let path = format!("{base}/{id}/messages{}", if wait { "?wait=true" } else { "" });
                let answer = client.post(&path, &msg).await?;
                let steps = answer["trace"].as_array().cloned().unwrap_or_default();
                if wait {
                    output::list(
                        out,
                        &answer,
                        &steps,
                        &[
                            Column { heading: "NODE", read: |v| text(&v["nodeName"]) },
                            Column { heading: "RELATION", read: |v| text(&v["relation"]) },
                            Column { heading: "ERROR", read: |v| text(&v["error"]) },
                        ],
                    );
                } else {
                    output::done(out, &answer, &format!("Message {} accepted", text(&answer["msgId"])));
                }
            }
        }
    }
    Ok(())
}
