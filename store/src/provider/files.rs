//! `files`: a directory whose files are secrets (a Kubernetes or Docker secret mount). A key is a
//! file name in it. The file is opened with `openat2(RESOLVE_BENEATH)`: `..`, absolute paths and
//! symbolic links that lead out of the directory are refused by the kernel, while the links a
//! Kubernetes mount is made of (`key -> ..data/key`) resolve as they should.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{FetchError, MAX_ANSWER_BYTES, ProviderPolicy, Source, read_configuration};
use crate::error::FieldProblem;
use crate::model::SecretValue;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    directory: String,
}

pub(crate) struct Files {
    /// Canonical, under one of the policy's roots.
    directory: PathBuf,
}

impl Files {
    pub(super) fn build(
        configuration: &serde_json::Value,
        policy: &ProviderPolicy,
    ) -> Result<Self, Vec<FieldProblem>> {
        let config: Config = read_configuration(configuration)?;
        let problem = |m: String| vec![FieldProblem::new("configuration.directory", m)];
        if policy.file_roots.is_empty() {
            return Err(problem(
                "files providers are off on this server: its operator allows directories with `veil serve --provider-dir DIR`"
                    .into(),
            ));
        }
        let asked = Path::new(&config.directory);
        if !asked.is_absolute() {
            return Err(problem(format!("'{}' is not an absolute path", config.directory)));
        }
        let directory = std::fs::canonicalize(asked)
            .map_err(|e| problem(format!("'{}' cannot be opened: {}", config.directory, e.kind())))?;
        if !directory.is_dir() {
            return Err(problem(format!("'{}' is not a directory", config.directory)));
        }
        let allowed = policy
            .file_roots
            .iter()
            .filter_map(|root| std::fs::canonicalize(root).ok())
            .any(|root| directory.starts_with(root));
        if !allowed {
            return Err(problem(format!(
                "'{}' is not under a directory this server allows providers to read",
                config.directory
            )));
        }
        Ok(Self { directory })
    }

    pub(super) fn check_source(&self, source: &Source) -> Vec<FieldProblem> {
        let mut problems = Vec::new();
        if let Err(message) = file_name(&source.key) {
            problems.push(FieldProblem::new("source.key", message));
        }
        for (field, set) in [("field", &source.field), ("version", &source.version), ("stage", &source.stage)]
        {
            if set.is_some() {
                problems.push(FieldProblem::new(
                    &format!("source.{field}"),
                    "a files provider has no such setting",
                ));
            }
        }
        problems
    }

    pub(super) async fn fetch(&self, source: &Source) -> Result<SecretValue, FetchError> {
        file_name(&source.key).map_err(FetchError::NotFound)?;
        let (directory, key) = (self.directory.clone(), source.key.clone());
        tokio::task::spawn_blocking(move || read_beneath(&directory, &key))
            .await
            .map_err(|_| FetchError::Failed("reading the file was interrupted".into()))?
    }

    pub(super) async fn keys(&self) -> Result<Vec<String>, FetchError> {
        let directory = self.directory.clone();
        tokio::task::spawn_blocking(move || {
            let entries = std::fs::read_dir(&directory)
                .map_err(|e| FetchError::Failed(format!("the directory cannot be listed: {}", e.kind())))?;
            let mut keys: Vec<String> = entries
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|name| {
                    file_name(name).is_ok() && open_beneath(&directory, name).is_ok_and(|f| is_file(&f))
                })
                .take(super::MAX_KEYS)
                .collect();
            keys.sort();
            Ok(keys)
        })
        .await
        .map_err(|_| FetchError::Failed("listing the directory was interrupted".into()))?
    }

    pub(super) async fn test(&self) -> Result<String, FetchError> {
        let keys = self.keys().await?;
        Ok(format!("the directory can be read: {} file(s)", keys.len()))
    }
}

/// A key is one file name: no `/`, not `.` or `..`, no leading `.` (a Kubernetes mount's own
/// `..data` entries), no NUL.
fn file_name(key: &str) -> Result<(), String> {
    if key.is_empty() || key.contains(['/', '\0']) || key.starts_with('.') || key.len() > 255 {
        return Err(format!(
            "'{key}' is not a file name in the provider's directory (no '/', no leading '.')"
        ));
    }
    Ok(())
}

fn is_file(file: &std::fs::File) -> bool {
    file.metadata().is_ok_and(|m| m.is_file())
}

#[cfg(target_os = "linux")]
fn open_beneath(directory: &Path, key: &str) -> std::io::Result<std::fs::File> {
    use rustix::fs::{Mode, OFlags, ResolveFlags};
    let dir =
        rustix::fs::open(directory, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?;
    let fd = rustix::fs::openat2(
        &dir,
        key,
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS,
    )?;
    Ok(std::fs::File::from(fd))
}

/// Elsewhere: the file's real path must lie in the directory.
#[cfg(not(target_os = "linux"))]
fn open_beneath(directory: &Path, key: &str) -> std::io::Result<std::fs::File> {
    let path = std::fs::canonicalize(directory.join(key))?;
    if !path.starts_with(directory) {
        return Err(std::io::Error::from_raw_os_error(18));
    }
    std::fs::File::open(path)
}

fn read_beneath(directory: &Path, key: &str) -> Result<SecretValue, FetchError> {
    let file = open_beneath(directory, key).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            FetchError::NotFound(format!("no file '{key}' in the provider's directory"))
        }
        std::io::ErrorKind::PermissionDenied => FetchError::Denied(format!("file '{key}' may not be read")),
        _ if e.raw_os_error() == Some(18) => {
            FetchError::Denied(format!("'{key}' leads out of the provider's directory; refused"))
        }
        kind => FetchError::Failed(format!("file '{key}' cannot be opened: {kind}")),
    })?;
    if !is_file(&file) {
        return Err(FetchError::NotFound(format!("'{key}' is not a file")));
    }
    let mut bytes = Vec::new();
    file.take(MAX_ANSWER_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| FetchError::Failed(format!("file '{key}' cannot be read: {}", e.kind())))?;
    if bytes.len() > MAX_ANSWER_BYTES {
        zeroize::Zeroize::zeroize(&mut bytes);
        return Err(FetchError::Failed(format!("file '{key}' is larger than {MAX_ANSWER_BYTES} bytes")));
    }
    Ok(SecretValue::new(bytes))
}
