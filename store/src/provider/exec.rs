//! `exec`: a program the server's operator allowed, run without a shell for each fetch. Two ways
//! to talk to it:
//! - `json` (default, Vector's exec backend protocol): `{"version": "1.0", "secrets": [KEY]}` on
//!   its standard input; it prints `{"KEY": {"value": "...", "error": null}}`;
//! - `argument`: the key is its last argument; it prints the value (one trailing newline is
//!   dropped).
//!
//! It runs with an empty environment (but `PATH`), no standard error, a timeout (killed after it)
//! and at most [`MAX_ANSWER_BYTES`] of output.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde::Deserialize;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::{FetchError, MAX_ANSWER_BYTES, ProviderPolicy, Source, excerpt, read_configuration};
use crate::error::FieldProblem;
use crate::model::SecretValue;

/// The longest `timeoutSeconds`.
const MAX_TIMEOUT_SECONDS: u64 = 60;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Config {
    command: Vec<String>,
    #[serde(default)]
    protocol: Protocol,
    #[serde(default = "default_timeout")]
    timeout_seconds: u64,
}

fn default_timeout() -> u64 {
    10
}

#[derive(Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "camelCase")]
enum Protocol {
    #[default]
    Json,
    Argument,
}

pub(crate) struct Exec {
    program: PathBuf,
    args: Vec<String>,
    protocol: Protocol,
    timeout: Duration,
}

impl Exec {
    pub(super) fn build(
        configuration: &serde_json::Value,
        policy: &ProviderPolicy,
    ) -> Result<Self, Vec<FieldProblem>> {
        let config: Config = read_configuration(configuration)?;
        let mut problems = Vec::new();
        if !(1..=MAX_TIMEOUT_SECONDS).contains(&config.timeout_seconds) {
            problems.push(FieldProblem::new(
                "configuration.timeoutSeconds",
                format!("must be between 1 and {MAX_TIMEOUT_SECONDS}"),
            ));
        }
        let program = match config.command.first() {
            None => {
                problems.push(FieldProblem::new(
                    "configuration.command",
                    "must name a program: [\"/path/to/program\", args…]",
                ));
                None
            }
            Some(program) => match allowed(program, policy) {
                Ok(path) => Some(path),
                Err(message) => {
                    problems.push(FieldProblem::new("configuration.command", message));
                    None
                }
            },
        };
        if let Some(arg) = config.command.iter().find(|a| a.contains('\0')) {
            problems.push(FieldProblem::new(
                "configuration.command",
                format!("argument '{}' holds a NUL", arg.escape_debug()),
            ));
        }
        match program {
            Some(program) if problems.is_empty() => Ok(Self {
                program,
                args: config.command[1..].to_vec(),
                protocol: config.protocol,
                timeout: Duration::from_secs(config.timeout_seconds),
            }),
            _ => Err(problems),
        }
    }

    pub(super) fn check_source(&self, source: &Source) -> Vec<FieldProblem> {
        let mut problems = Vec::new();
        if source.key.is_empty() || source.key.contains('\0') || source.key.len() > 1024 {
            problems.push(FieldProblem::new("source.key", "must be 1..1024 characters without NUL"));
        }
        for (field, set) in [("field", &source.field), ("version", &source.version), ("stage", &source.stage)]
        {
            if set.is_some() {
                problems.push(FieldProblem::new(
                    &format!("source.{field}"),
                    "an exec provider has no such setting",
                ));
            }
        }
        problems
    }

    pub(super) async fn fetch(&self, source: &Source) -> Result<SecretValue, FetchError> {
        let key = source.key.as_str();
        let mut command = tokio::process::Command::new(&self.program);
        command
            .args(&self.args)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        if let Protocol::Argument = self.protocol {
            command.arg(key);
        }
        let run = async {
            let mut child = command
                .spawn()
                .map_err(|e| FetchError::Failed(format!("the command cannot be started: {}", e.kind())))?;
            let mut stdin = child.stdin.take().expect("piped");
            if let Protocol::Json = self.protocol {
                let request = serde_json::json!({ "version": "1.0", "secrets": [key] });
                // A program that does not read its input is not an error here: its answer is.
                let _ = stdin.write_all(request.to_string().as_bytes()).await;
            }
            drop(stdin);
            let mut out = Vec::new();
            let stdout = child.stdout.take().expect("piped");
            stdout.take(MAX_ANSWER_BYTES as u64 + 1).read_to_end(&mut out).await.map_err(|e| {
                FetchError::Failed(format!("the command's output cannot be read: {}", e.kind()))
            })?;
            if out.len() > MAX_ANSWER_BYTES {
                zeroize::Zeroize::zeroize(&mut out);
                return Err(FetchError::Failed(format!(
                    "the command printed more than {MAX_ANSWER_BYTES} bytes"
                )));
            }
            let status = child
                .wait()
                .await
                .map_err(|e| FetchError::Failed(format!("the command was lost: {}", e.kind())))?;
            Ok((status, out))
        };
        let (status, mut out) = tokio::time::timeout(self.timeout, run).await.map_err(|_| {
            FetchError::Failed(format!(
                "the command did not finish within {} s (it was stopped)",
                self.timeout.as_secs()
            ))
        })??;
        if !status.success() {
            zeroize::Zeroize::zeroize(&mut out);
            return Err(FetchError::Failed(match status.code() {
                Some(code) => format!("the command exited with status {code}"),
                None => "the command was killed by a signal".to_owned(),
            }));
        }
        let value = match self.protocol {
            Protocol::Argument => {
                if out.ends_with(b"\n") {
                    out.pop();
                    if out.ends_with(b"\r") {
                        out.pop();
                    }
                }
                SecretValue::new(out)
            }
            Protocol::Json => {
                let answer = json_answer(&out, key);
                zeroize::Zeroize::zeroize(&mut out);
                answer?
            }
        };
        if value.is_empty() {
            return Err(FetchError::NotFound(format!("the command printed an empty value for '{key}'")));
        }
        Ok(value)
    }

    pub(super) async fn test(&self) -> Result<String, FetchError> {
        let meta = tokio::fs::metadata(&self.program)
            .await
            .map_err(|e| FetchError::Failed(format!("the program cannot be found: {}", e.kind())))?;
        use std::os::unix::fs::PermissionsExt as _;
        if meta.permissions().mode() & 0o111 == 0 {
            return Err(FetchError::Failed("the program is not executable".into()));
        }
        Ok(format!("the program {} is there and executable (keys are not listed)", self.program.display()))
    }
}

/// The program, if the policy allows it: compared with the allowed ones after resolving links.
fn allowed(program: &str, policy: &ProviderPolicy) -> Result<PathBuf, String> {
    if policy.commands.is_empty() {
        return Err(
            "exec providers are off on this server: its operator allows programs with `veil serve --provider-command PATH`"
                .into(),
        );
    }
    let path =
        std::fs::canonicalize(program).map_err(|e| format!("'{program}' cannot be found: {}", e.kind()))?;
    let ok = policy.commands.iter().filter_map(|c| std::fs::canonicalize(c).ok()).any(|c| c == path);
    if ok {
        Ok(path)
    } else {
        Err(format!("'{program}' is not a program this server allows providers to run"))
    }
}

#[derive(Deserialize)]
struct Entry {
    value: Option<String>,
    error: Option<String>,
}

/// The value of `key` in a Vector-style answer.
fn json_answer(out: &[u8], key: &str) -> Result<SecretValue, FetchError> {
    let mut answer: std::collections::HashMap<String, Entry> = serde_json::from_slice(out).map_err(|_| {
        FetchError::Failed("the command's output is not the JSON object of the exec protocol".into())
    })?;
    let entry = answer
        .remove(key)
        .ok_or_else(|| FetchError::NotFound(format!("the command's answer has no entry for '{key}'")))?;
    if let Some(error) = entry.error {
        return Err(FetchError::NotFound(format!(
            "the command answered for '{key}': {}",
            excerpt(&error, 200)
        )));
    }
    entry
        .value
        .map(SecretValue::from)
        .ok_or_else(|| FetchError::NotFound(format!("the command's answer for '{key}' has no value")))
}
