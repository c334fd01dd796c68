//! `veil audit`: the audit log, filtered and paged.

use serde_json::Value;

use super::Global;
use super::client::{CliResult, Client, query};
use super::input::time_arg;
use super::output::{self, Column, text, time};
use super::secret::secret_id;

/// `veil audit`
#[derive(Debug, clap::Args)]
pub(crate) struct AuditArgs {
    /// Entries about this secret (name or id).
    #[arg(long)]
    secret: Option<String>,
    /// Entries by this actor (user name).
    #[arg(long)]
    actor: Option<String>,
    /// From this time (RFC 3339, e.g. 2026-11-27T10:00:00Z, or ms since the epoch).
    #[arg(long)]
    from: Option<String>,
    /// Before this time.
    #[arg(long)]
    to: Option<String>,
    /// Page (from 0).
    #[arg(long, default_value_t = 0)]
    page: usize,
    /// Entries per page.
    #[arg(long, default_value_t = 50)]
    page_size: usize,
}

/// `veil audit`
pub(crate) async fn audit(global: &Global, args: AuditArgs) -> CliResult<()> {
    let client = Client::authenticated(global.url.as_deref())?;
    let mut path = format!("/api/audit-logs?page={}&pageSize={}", args.page, args.page_size);
    if let Some(s) = &args.secret {
        path.push_str(&format!("&secretId={}", secret_id(&client, s).await?));
    }
    if let Some(a) = &args.actor {
        path.push_str(&format!("&actor={}", query(a)));
    }
    if let Some(f) = &args.from {
        path.push_str(&format!("&from={}", time_arg("from", f)?));
    }
    if let Some(t) = &args.to {
        path.push_str(&format!("&to={}", time_arg("to", t)?));
    }
    let answer = client.get(&path).await?;
    output::page(
        global.output,
        &answer,
        &[
            Column { heading: "TIME", read: |v| time(&v["time"]) },
            Column { heading: "ACTOR", read: |v| text(&v["actorName"]) },
            Column { heading: "ACTION", read: |v| text(&v["action"]) },
            Column { heading: "TARGET", read: |v| text(&v["targetName"]) },
            Column { heading: "OUTCOME", read: |v| text(&v["outcome"]) },
            Column {
                heading: "DETAILS",
                read: |v| match &v["details"] {
                    Value::Object(m) if m.is_empty() => String::new(),
                    other => other.to_string(),
                },
            },
        ],
    );
    Ok(())
}
