//! `veil.toml`: every option of `veil serve` in one file. A key is the option's flag without its
//! dashes (`max-data-depth = 32` for `--max-data-depth 32`), at the top level of the file; a flag
//! on the command line wins over the environment, which wins over the file, which wins over the
//! defaults. The file is read before the command line is parsed for good: its values join the
//! command line where neither a flag nor a variable set the option, so every value goes through the
//! same parser (and gets the same error) however it was given.
//!
//! `veil config check` reports every problem of the file and of the settings it leads to;
//! `veil config show` prints the effective settings, where each came from, with the database
//! password and the master key redacted.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, Command};

/// `--config FILE` of the commands that take `veil serve`'s options.
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct ConfigArg {
    /// A configuration file (TOML) with any `veil serve` option, by its flag's name without the
    /// dashes (`max-data-depth = 32`); flags and environment variables win over it.
    #[arg(long = "config", env = "VEIL_CONFIG", value_name = "FILE")]
    pub(crate) file: Option<PathBuf>,
}

/// The id of [`ConfigArg::file`] (not a key of the file).
const CONFIG_ID: &str = "file";

/// `veil config`: check or show the configuration `veil serve` would run with.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum ConfigCommand {
    /// Check the configuration file and the settings it leads to, without starting: every
    /// problem is printed; exit status 0 when there is none, 1 otherwise.
    Check(Box<crate::serve::ServeArgs>),
    /// Print the effective settings (TOML, each with where it came from), the database password
    /// and the master key redacted.
    Show(Box<crate::serve::ServeArgs>),
}

/// Why the command line could not be completed from the file.
#[derive(Debug)]
pub(crate) enum Refused {
    /// The command line itself (clap prints it and exits).
    CommandLine(clap::Error),
    /// The file: every problem, each with the file and line.
    File(Vec<String>),
}

/// The subcommand (and its matches) whose options a configuration file may set: `serve`,
/// `config check`, `config show`.
fn options_command<'a>(
    command: &'a Command,
    matches: &'a ArgMatches,
) -> Option<(&'a Command, &'a ArgMatches)> {
    let (name, sub) = matches.subcommand()?;
    let sub_command = command.find_subcommand(name)?;
    match name {
        "serve" => Some((sub_command, sub)),
        "config" => {
            let (name, leaf) = sub.subcommand()?;
            Some((sub_command.find_subcommand(name)?, leaf))
        }
        _ => None,
    }
}

/// A command line completed from a configuration file.
#[derive(Debug)]
pub(crate) struct Completed {
    /// The command line, the file's settings added.
    pub(crate) argv: Vec<OsString>,
    /// The ids of the options the file set.
    pub(crate) from_file: Vec<String>,
}

/// `argv` with the settings of the configuration file (`--config` / `VEIL_CONFIG`) added where
/// neither a flag nor the environment set the option; `argv` itself when there is no file.
pub(crate) fn with_file(command: &Command, argv: Vec<OsString>) -> Result<Completed, Refused> {
    let matches = command.clone().try_get_matches_from(&argv).map_err(Refused::CommandLine)?;
    let unchanged = |argv| Ok(Completed { argv, from_file: Vec::new() });
    let Some((options, sub)) = options_command(command, &matches) else { return unchanged(argv) };
    let Some(file) = sub.get_one::<PathBuf>(CONFIG_ID) else { return unchanged(argv) };
    let text = std::fs::read_to_string(file).map_err(|e| {
        Refused::File(vec![format!("cannot read the configuration file {}: {e}", file.display())])
    })?;
    let settings = read(&text, options).map_err(|problems| {
        Refused::File(problems.into_iter().map(|p| format!("{}: {p}", file.display())).collect())
    })?;
    let mut completed = Completed { argv, from_file: Vec::new() };
    for (id, values) in settings {
        let given =
            matches!(sub.value_source(&id), Some(ValueSource::CommandLine | ValueSource::EnvVariable));
        if !given {
            completed.argv.extend(values);
            completed.from_file.push(id);
        }
    }
    Ok(completed)
}

/// The 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// The file's settings as command-line words, by option id; or every problem, with its line.
fn read(text: &str, options: &Command) -> Result<Vec<(String, Vec<OsString>)>, Vec<String>> {
    let document = toml_edit::Document::parse(text).map_err(|e| vec![e.to_string().trim_end().to_owned()])?;
    let Some(table) = document.as_item().as_table() else { return Ok(Vec::new()) };
    let mut settings = Vec::new();
    let mut problems = Vec::new();
    for (key, item) in table.iter() {
        let line = table.key(key).and_then(|k| k.span()).map_or(0, |span| line_of(text, span.start));
        let at = format!("line {line}: {key}");
        let arg = options
            .get_arguments()
            .find(|a| a.get_long() == Some(key) && a.get_id().as_str() != CONFIG_ID && !a.is_hide_set());
        let Some(arg) = arg else {
            problems.push(format!("{at}: unknown key (veil serve has no --{key}; see `veil serve --help`)"));
            continue;
        };
        let Some(value) = item.as_value() else {
            problems.push(format!(
                "{at}: expected a value (`{key} = …` at the top level), found a {}",
                item.type_name()
            ));
            continue;
        };
        match words(arg, value) {
            Ok(words) => {
                // Parsed alone, as the command line would parse it: the same checks, the same reason.
                let alone = std::iter::once(OsString::from(options.get_name())).chain(words.iter().cloned());
                match options.clone().try_get_matches_from(alone) {
                    Ok(_) => settings.push((arg.get_id().as_str().to_owned(), words)),
                    Err(why) => problems.push(format!("{at}: {}", clap_reason(&why))),
                }
            }
            Err(why) => problems.push(format!("{at}: {why}")),
        }
    }
    if problems.is_empty() { Ok(settings) } else { Err(problems) }
}

/// The command-line words for `value` of `arg`: `--key=value` per value (a list for an option
/// that repeats; a boolean for a switch).
fn words(arg: &clap::Arg, value: &toml_edit::Value) -> Result<Vec<OsString>, String> {
    let long = arg.get_long().unwrap_or_default();
    if matches!(arg.get_action(), ArgAction::SetTrue) {
        return match value.as_bool() {
            Some(true) => Ok(vec![OsString::from(format!("--{long}"))]),
            Some(false) => Ok(Vec::new()),
            None => Err(format!("expected true or false, found {}", value.type_name())),
        };
    }
    let scalar = |v: &toml_edit::Value| -> Result<String, String> {
        match v {
            toml_edit::Value::String(s) => Ok(s.value().clone()),
            toml_edit::Value::Integer(i) => Ok(i.value().to_string()),
            toml_edit::Value::Boolean(b) => Ok(b.value().to_string()),
            other => Err(format!("expected a string or a whole number, found {}", other.type_name())),
        }
    };
    let values = match value {
        toml_edit::Value::Array(items) if matches!(arg.get_action(), ArgAction::Append) => {
            items.iter().map(scalar).collect::<Result<Vec<_>, _>>()?
        }
        toml_edit::Value::Array(_) => return Err("expected one value, found an array".into()),
        single => vec![scalar(single)?],
    };
    Ok(values.into_iter().map(|v| OsString::from(format!("--{long}={v}"))).collect())
}

/// clap's reason (and the possible values), without its `error: ` prefix, usage and hints.
fn clap_reason(error: &clap::Error) -> String {
    let text = error.to_string();
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("For more information") && !l.starts_with("Usage:"))
        .collect();
    let joined = lines.join(" ");
    joined.strip_prefix("error: ").unwrap_or(&joined).to_owned()
}

/// Where a setting came from, as `veil config show` says it.
fn source_name(source: Option<ValueSource>, from_file: bool) -> &'static str {
    match source {
        Some(ValueSource::CommandLine) if from_file => "configuration file",
        Some(ValueSource::CommandLine) => "command line",
        Some(ValueSource::EnvVariable) => "environment",
        _ => "default",
    }
}

/// The default an option's help states (`[default: 64]`), for options whose default is not
/// clap's own (an absent limit takes the engine's default).
fn stated_default(arg: &clap::Arg) -> Option<String> {
    let help = arg.get_help()?.to_string();
    let start = help.find("[default: ")? + "[default: ".len();
    Some(help[start..].split(']').next()?.to_owned())
}

/// A TOML value for a command-line value: numbers bare, everything else quoted.
fn toml_value(raw: &str) -> String {
    if !raw.is_empty() && raw.bytes().all(|b| b.is_ascii_digit()) || raw == "true" || raw == "false" {
        raw.to_owned()
    } else {
        // A JSON string is a TOML basic string (the same escapes).
        serde_json::Value::from(raw).to_string()
    }
}

/// The effective settings of `veil serve` as `veil config show` prints them. `argv` is the
/// command line as completed from the file ([`with_file`]); `from_file` the ids the file set.
pub(crate) fn show(command: &Command, argv: &[OsString], from_file: &[String]) -> String {
    let Ok(matches) = command.clone().try_get_matches_from(argv) else { return String::new() };
    let Some((options, sub)) = options_command(command, &matches) else { return String::new() };
    let mut out = String::from("# The settings `veil serve` would run with, and where each came from.\n");
    if let Some(file) = sub.get_one::<PathBuf>(CONFIG_ID) {
        out.push_str(&format!("# configuration file: {}\n", file.display()));
    }
    if std::env::var_os("VEIL_MASTER_KEY").is_some() {
        out.push_str("# master key: from VEIL_MASTER_KEY (not shown)\n");
    }
    for arg in options.get_arguments() {
        let id = arg.get_id().as_str();
        let Some(long) = arg.get_long() else { continue };
        if id == CONFIG_ID || arg.is_hide_set() || long == "help" || long == "version" {
            continue;
        }
        let source = source_name(sub.value_source(id), from_file.iter().any(|f| f == id));
        let raw: Vec<String> = sub
            .get_raw(id)
            .map(|values| values.map(|v| v.to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        let raw: Vec<String> = match long {
            "database" => raw.iter().map(|url| redact_url(url)).collect(),
            // A NATS URL's user info is a user and password, or a token alone.
            "queue" => raw.iter().map(|url| crate::queue::shown_url(url)).collect(),
            _ => raw,
        };
        let line = match (raw.as_slice(), matches!(arg.get_action(), ArgAction::Append)) {
            ([], _) => match stated_default(arg) {
                // A value (`64`, `info`), or words that describe one ("the number of CPUs").
                Some(default) if !default.contains(' ') => {
                    format!("# {long} = {}  # default", toml_value(&default))
                }
                Some(default) => format!("# {long} =  # default: {default}"),
                None => format!("# {long} =  # not set"),
            },
            (values, true) => {
                let items: Vec<String> = values.iter().map(|v| toml_value(v)).collect();
                format!("{long} = [{}]  # {source}", items.join(", "))
            }
            ([value, ..], false) if matches!(arg.get_action(), ArgAction::SetTrue) => {
                format!("{long} = {value}  # {source}")
            }
            ([value, ..], false) => format!("{long} = {}  # {source}", toml_value(value)),
        };
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// A database URL with its password replaced by `[REDACTED]`.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:[REDACTED]{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// What `veil config check` finds wrong with settings that parsed: files that cannot be read, a
/// data directory that cannot be made. Nothing is created or changed.
pub(crate) fn check(args: &crate::serve::ServeArgs) -> Vec<String> {
    let mut problems = Vec::new();
    if std::env::var_os("VEIL_MASTER_KEY").is_none()
        && let Some(file) = &args.master_key_file
        && let Err(why) = readable_key(file)
    {
        problems.push(format!("master-key-file: {why}"));
    }
    if args.database.is_none() {
        let dir = &args.data_dir;
        let existing = dir.ancestors().find(|p| p.exists());
        match existing {
            Some(p) if p.is_dir() => {
                let read_only = std::fs::metadata(p).map(|m| m.permissions().readonly()).unwrap_or(false);
                if read_only {
                    problems.push(format!("data-dir: {} is read-only", p.display()));
                }
            }
            Some(p) => problems.push(format!("data-dir: {} is not a directory", p.display())),
            None => problems.push(format!("data-dir: no part of {} exists", dir.display())),
        }
    }
    problems
}

/// Whether `file` holds a master key (base64 of 32 bytes); the reason when not. The key itself
/// never appears in the reason.
fn readable_key(file: &Path) -> Result<(), String> {
    use base64::Engine as _;
    let text = std::fs::read_to_string(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    match base64::engine::general_purpose::STANDARD.decode(text.trim()) {
        Ok(bytes) if bytes.len() == 32 => Ok(()),
        _ => Err(format!("{} does not hold a master key (base64 of 32 bytes)", file.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_password_is_redacted_and_nothing_else_changes() {
        assert_eq!(
            redact_url("postgres://veil:s3cret@db:5432/veil"),
            "postgres://veil:[REDACTED]@db:5432/veil"
        );
        assert_eq!(redact_url("postgres://veil@db/veil"), "postgres://veil@db/veil");
        assert_eq!(redact_url("postgres://db/veil"), "postgres://db/veil");
        assert_eq!(redact_url("postgres://a:p@ss@db/veil"), "postgres://a:[REDACTED]@db/veil");
    }

    #[test]
    fn lines_are_counted_from_one() {
        let text = "a = 1\n\nb = 2\n";
        assert_eq!(line_of(text, 0), 1);
        assert_eq!(line_of(text, text.find('b').unwrap()), 3);
    }
}
