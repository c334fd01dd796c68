//! The server's logs: what passes (`--log`, a tracing filter), in which format (`--log-format`:
//! lines for people, one JSON object per line for a collector), and the cap on the libraries
//! whose verbose output carries what Veil injected from secrets — the same in both formats.

use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LogFormat {
    /// Lines for people (coloured on a terminal).
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, `fields` (with `message`),
    /// and `span`/`spans` (a message's path through a chain: the chain and the message id).
    Json,
}

/// `veil serve` settings of the logs.
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct LogArgs {
    /// What is logged: a level (`info`, `debug`…) or tracing directives
    /// (`info,veil_core=debug`); `RUST_LOG` when unset [default: info].
    #[arg(long = "log", env = "VEIL_LOG", value_name = "FILTER", value_parser = parse_filter)]
    pub(crate) filter: Option<String>,
    /// How log lines are written: `text` or `json` (one object per line) [default: text].
    #[arg(long, env = "VEIL_LOG_FORMAT", value_enum, value_name = "FORMAT")]
    pub(crate) log_format: Option<LogFormat>,
}

fn parse_filter(raw: &str) -> Result<String, String> {
    tracing_subscriber::EnvFilter::try_new(raw)
        .map(|_| raw.to_owned())
        .map_err(|e| format!("not a log filter: {e}"))
}

/// Clients whose debug/trace output carries what Veil injected from secrets: broker protocol
/// frames (AMQP's SASL response, MQTT's CONNECT) and HTTP/TLS connection details (a secret in a
/// URL host, lowercased). Events and spans from targets starting with these names pass only at
/// INFO or above, whatever `--log` asks: the cap is a second filter that every event must also
/// pass, so a more specific directive (`lapin::io_loop=trace`) cannot lift it.
const CREDENTIAL_FRAME_LOGGERS: &[&str] =
    &["lapin", "amq_protocol", "rumqttc", "reqwest", "hyper", "hyper_util", "h2", "rustls"];

/// Whether the log cap lets an event or span of this target and level through.
fn under_log_cap(metadata: &tracing::Metadata<'_>) -> bool {
    *metadata.level() <= tracing::Level::INFO
        || !CREDENTIAL_FRAME_LOGGERS.iter().any(|prefix| metadata.target().starts_with(prefix))
}

/// The filter asked for (`RUST_LOG` when none, `info` when neither), and the cap.
fn log_filter<S>(wanted: Option<String>) -> impl tracing_subscriber::layer::Filter<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    use tracing_subscriber::filter::FilterExt as _;
    let wanted = wanted.or_else(|| std::env::var("RUST_LOG").ok());
    let env = wanted
        .and_then(|w| tracing_subscriber::EnvFilter::try_new(w).ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new("info"));
    env.and(tracing_subscriber::filter::filter_fn(under_log_cap))
}

/// Installs the process's logger (stderr).
pub(crate) fn init(args: &LogArgs) {
    let filter = || args.filter.clone().or_else(|| std::env::var("VEIL_LOG").ok());
    match args.log_format.unwrap_or_default() {
        LogFormat::Text => {
            let layer = tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .with_filter(log_filter(filter()));
            tracing_subscriber::registry().with(layer).init();
        }
        LogFormat::Json => {
            let layer = tracing_subscriber::fmt::layer()
                .json()
                .with_current_span(true)
                .with_span_list(true)
                .with_writer(std::io::stderr)
                .with_filter(log_filter(filter()));
            tracing_subscriber::registry().with(layer).init();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filter_that_does_not_parse_is_refused_naming_the_problem() {
        assert!(parse_filter("info,veil_core=debug").is_ok());
        let refused = parse_filter("info,veil_core=loud").unwrap_err();
        assert!(refused.starts_with("not a log filter"), "{refused}");
    }
}
