//! Values and passwords from stdin, a file or a prompt, never from an argument (arguments land in
//! shell history and process listings).

use std::io::Read as _;
use std::path::PathBuf;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use super::client::{CliError, CliResult};

pub(super) const VALUE_ARG_REFUSED: &str = "refusing --value: a value on the command line lands in shell history and \
     process listings; pipe it on stdin (printf %s \"$VALUE\" | veil secret create NAME) or use --file";

pub(super) const PASSWORD_ARG_REFUSED: &str = "refusing an extra argument: a password on the command line lands in shell \
     history and process listings; type it at the prompt or pipe it with --password-stdin";

/// A password (or anything) given where no argument belongs is refused before anything else
/// happens, and never echoed.
pub(super) fn refuse_stray(stray: &[String]) -> CliResult<()> {
    if stray.is_empty() { Ok(()) } else { Err(CliError::usage(PASSWORD_ARG_REFUSED)) }
}

pub(super) fn read_stdin() -> CliResult<Vec<u8>> {
    let mut buf = Vec::new();
    std::io::stdin().read_to_end(&mut buf).map_err(|e| CliError::failure(format!("reading stdin: {e}")))?;
    Ok(buf)
}

/// A TEXT value from stdin: one trailing newline (what `echo` adds) is dropped.
pub(super) fn text_value(bytes: Vec<u8>) -> CliResult<String> {
    let mut text = String::from_utf8(bytes)
        .map_err(|_| CliError::usage("the value is not UTF-8 text; use --type FILE"))?;
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    Ok(text)
}

pub(super) fn read_file(path: &PathBuf) -> CliResult<Vec<u8>> {
    if path.as_os_str() == "-" {
        return read_stdin();
    }
    std::fs::read(path).map_err(|e| CliError::usage(format!("cannot read {}: {e}", path.display())))
}

pub(super) fn json_arg(name: &str, raw: &str) -> CliResult<Value> {
    serde_json::from_str(raw).map_err(|e| CliError::usage(format!("--{name}: not JSON ({e})")))
}

pub(super) fn password(from_stdin: bool) -> CliResult<String> {
    if from_stdin {
        let text = text_value(read_stdin()?)?;
        return Ok(text);
    }
    rpassword::prompt_password("Password: ")
        .map_err(|e| CliError::usage(format!("cannot prompt for a password ({e}); use --stdin")))
}

/// A new value: from the file (exactly as stored there), or from stdin — read to its end with
/// `--stdin` or from a pipe (one trailing newline dropped), prompted for without echo on a terminal.
pub(super) fn new_value(file: Option<&PathBuf>, file_kind: bool, from_stdin: bool) -> CliResult<Value> {
    let bytes = match file {
        Some(path) => read_file(path)?,
        None if !from_stdin && std::io::IsTerminal::is_terminal(&std::io::stdin()) => {
            if file_kind {
                return Err(CliError::usage("FILE values come from --file or a pipe, not the terminal"));
            }
            let typed = rpassword::prompt_password("Value: ")
                .map_err(|e| CliError::usage(format!("cannot read the value from the terminal: {e}")))?;
            return Ok(json!(typed));
        }
        None => {
            let piped = read_stdin()?;
            if file_kind {
                piped
            } else {
                return Ok(json!(text_value(piped)?));
            }
        }
    };
    if file_kind {
        Ok(json!(STANDARD.encode(&bytes)))
    } else {
        String::from_utf8(bytes)
            .map(|t| json!(t))
            .map_err(|_| CliError::usage("the value is not UTF-8 text; use --type FILE"))
    }
}

/// `--current-password-stdin`: the current password on stdin's first line, the new one on the
/// second (one trailing newline dropped).
pub(super) fn current_and_new_password() -> CliResult<(String, String)> {
    let text = text_value(read_stdin()?)?;
    let (current, new) = text.split_once('\n').ok_or_else(|| {
        CliError::usage("--current-password-stdin: put the current password on the first line of stdin and the new one on the second")
    })?;
    Ok((current.strip_suffix('\r').unwrap_or(current).to_owned(), new.to_owned()))
}

/// A time argument: ms since the epoch or RFC 3339.
pub(super) fn time_arg(name: &str, raw: &str) -> CliResult<i64> {
    if let Ok(ms) = raw.parse::<i64>() {
        return Ok(ms);
    }
    time::OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339)
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
        .map_err(|_| CliError::usage(format!("--{name}: '{raw}' is neither RFC 3339 nor milliseconds")))
}
