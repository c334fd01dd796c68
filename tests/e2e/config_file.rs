//! `veil.toml`: one file for every option of `veil serve`, with flags > environment > file >
//! defaults; `veil config check` and `veil config show`.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::json;

use crate::support::{Api, Server, serve_command, veil};

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/veil.toml");

/// `veil <args>` with none of the `VEIL_…` settings of the environment the tests run in.
fn clean(args: &[&str]) -> Command {
    let mut cmd = veil();
    cmd.args(args);
    for (name, _) in std::env::vars() {
        if name.starts_with("VEIL_") && name != "VEIL_BIN" {
            cmd.env_remove(name);
        }
    }
    cmd.env_remove("RUST_LOG");
    cmd
}

fn text(out: &Output) -> (i32, String, String) {
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write(dir: &Path, name: &str, content: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path.to_str().unwrap().to_owned()
}

/// The line of `veil config show` for `key`.
fn shown<'a>(show: &'a str, key: &str) -> &'a str {
    show.lines()
        .find(|l| l.starts_with(&format!("{key} =")) || l.starts_with(&format!("# {key} =")))
        .unwrap_or_else(|| panic!("no line for {key}:\n{show}"))
}

#[test]
fn the_example_holds_every_option_and_checks_clean() {
    let (code, out, err) = text(&clean(&["config", "check", "--config", EXAMPLE]).output().unwrap());
    assert_eq!((code, out.trim()), (0, "the configuration is valid"), "{err}");
    let example = std::fs::read_to_string(EXAMPLE).unwrap();
    let (_, help, _) = text(&clean(&["serve", "--help"]).output().unwrap());
    let options: Vec<&str> = help
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("--"))
        .filter_map(|l| l.split([' ', '=']).next())
        .filter(|o| !["help", "config", "url", "output"].contains(o))
        .collect();
    assert!(options.len() > 30, "{help}");
    for option in &options {
        let set = example
            .lines()
            .any(|l| l.starts_with(&format!("{option} = ")) || l.starts_with(&format!("# {option} = ")));
        assert!(set, "examples/veil.toml lacks {option}");
    }
    // Every value it sets is the default: shown as from the file, with the value `show` gives without it.
    let (_, with_file, _) = text(&clean(&["config", "show", "--config", EXAMPLE]).output().unwrap());
    let (_, without, _) = text(&clean(&["config", "show"]).output().unwrap());
    for option in options {
        let (a, b) = (shown(&with_file, option), shown(&without, option));
        let value = |l: &str| l.trim_start_matches("# ").split("  #").next().unwrap().trim().to_owned();
        if a.starts_with('#') {
            continue; // commented out in the example: no default to set
        }
        assert!(a.ends_with("# configuration file"), "{a}");
        assert_eq!(value(a), value(b), "the example's {option} is not the default");
    }
}

#[test]
fn flags_win_over_the_environment_which_wins_over_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file =
        write(dir.path(), "veil.toml", "max-data-depth = 7\nshutdown-grace = 3\nlog-format = \"json\"\n");
    let show = |cmd: &mut Command| text(&cmd.output().unwrap()).1;
    let only_file = show(&mut clean(&["config", "show", "--config", &file]));
    assert_eq!(shown(&only_file, "max-data-depth"), "max-data-depth = 7  # configuration file");
    assert_eq!(shown(&only_file, "shutdown-grace"), "shutdown-grace = 3  # configuration file");
    assert_eq!(shown(&only_file, "log-format"), "log-format = \"json\"  # configuration file");
    assert_eq!(shown(&only_file, "max-nodes-per-chain"), "# max-nodes-per-chain = 1000  # default");
    let env = show(clean(&["config", "show", "--config", &file]).env("VEIL_MAX_DATA_DEPTH", "9"));
    assert_eq!(shown(&env, "max-data-depth"), "max-data-depth = 9  # environment");
    assert_eq!(shown(&env, "shutdown-grace"), "shutdown-grace = 3  # configuration file");
    let flag = show(
        clean(&["config", "show", "--config", &file, "--max-data-depth", "11"])
            .env("VEIL_MAX_DATA_DEPTH", "9"),
    );
    assert_eq!(shown(&flag, "max-data-depth"), "max-data-depth = 11  # command line");
    // What `show` prints is itself a configuration file that checks clean.
    let again = write(dir.path(), "shown.toml", &only_file);
    let (code, _, err) = text(&clean(&["config", "check", "--config", &again]).output().unwrap());
    assert_eq!(code, 0, "{err}\n{only_file}");
    // VEIL_CONFIG names the file as --config does.
    let by_env = show(clean(&["config", "show"]).env("VEIL_CONFIG", &file));
    assert_eq!(shown(&by_env, "max-data-depth"), "max-data-depth = 7  # configuration file");
}

#[tokio::test]
async fn veil_serve_runs_with_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "veil.toml",
        "max-data-depth = 3\nlog-format = \"json\"\ncookie-secure = \"always\"\n",
    );
    let mut cmd = serve_command(&dir.path().join("data"));
    cmd.args(["--config", &file]);
    let mut server = Server::start_with(cmd).await;
    let api = Api::new(&server).await;
    let chain = json!({"name": "Deep", "nodes": [{"type": "log", "name": "Log", "configuration": {}}], "connections": []});
    let (status, chain) = api.post("/api/rule-chains", chain).await;
    assert_eq!(status, 201, "{chain}");
    let url = format!("/api/rule-chains/{}/messages", chain["id"].as_str().unwrap());
    let (status, body) = api.post(&url, json!({"data": {"a": {"b": {"c": {"d": 1}}}}})).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["message"].as_str().unwrap().contains("limit maxDataDepth (3)"), "{body}");
    // cookie-secure = "always": the session cookie is Secure without a TLS proxy's word.
    let session = server
        .client
        .post(server.url("/api/auth/session"))
        .json(&json!({"username": "admin", "password": crate::support::ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(session.status(), 200);
    assert!(
        session.headers()["set-cookie"].to_str().unwrap().contains("; Secure"),
        "{:?}",
        session.headers()
    );
    assert!(server.terminate().success());
    for line in server.logs().lines() {
        serde_json::from_str::<serde_json::Value>(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    }
}

#[test]
fn every_problem_of_a_file_is_named_with_its_line_and_nothing_starts() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "veil.toml",
        "listen = \"nope\"\nmax-data-depht = 3\n\nmax-chains-per-tenant = 0\nlog-format = \"xml\"\n[limits]\nx = 1\n",
    );
    let expected = [
        format!(
            "error: {file}: line 1: listen: invalid value 'nope' for '--listen <LISTEN>': invalid socket address syntax"
        ),
        format!(
            "error: {file}: line 2: max-data-depht: unknown key (veil serve has no --max-data-depht; see `veil serve --help`)"
        ),
        format!(
            "error: {file}: line 4: max-chains-per-tenant: invalid value '0' for '--max-chains-per-tenant <N>': must be at least 1"
        ),
        format!(
            "error: {file}: line 5: log-format: invalid value 'xml' for '--log-format <FORMAT>' [possible values: text, json]"
        ),
        format!(
            "error: {file}: line 6: limits: unknown key (veil serve has no --limits; see `veil serve --help`)"
        ),
    ];
    let (code, _, err) = text(&clean(&["config", "check", "--config", &file]).output().unwrap());
    assert_eq!(code, 1, "{err}");
    assert_eq!(err.lines().collect::<Vec<_>>(), expected.iter().map(String::as_str).collect::<Vec<_>>());
    let data = dir.path().join("data");
    let (code, _, err) =
        text(&clean(&["serve", "--config", &file, "--data-dir", data.to_str().unwrap()]).output().unwrap());
    assert_eq!(code, 1, "{err}");
    assert_eq!(err.lines().count(), expected.len(), "{err}");
    assert!(!data.exists(), "nothing was started");
    // A TOML syntax error names its line and column.
    let broken = write(dir.path(), "broken.toml", "listen = \"127.0.0.1:1\"\nmax-data-depth = = 3\n");
    let (code, _, err) = text(&clean(&["config", "check", "--config", &broken]).output().unwrap());
    assert_eq!(code, 1);
    assert!(err.contains("line 2, column"), "{err}");
    let (code, _, err) =
        text(&clean(&["config", "check", "--config", "/nonexistent/veil.toml"]).output().unwrap());
    assert_eq!(code, 1);
    assert!(err.contains("cannot read the configuration file /nonexistent/veil.toml"), "{err}");
}

#[test]
fn show_and_check_never_print_the_database_password_or_the_master_key() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = write(dir.path(), "short.key", "c2hvcnQ=\n");
    let file = write(
        dir.path(),
        "veil.toml",
        &format!(
            "database = \"postgres://veil:hunter2-db-pass@127.0.0.1:1/veil\"\nmaster-key-file = \"{key_file}\"\n"
        ),
    );
    let (code, out, err) = text(
        &clean(&["config", "show", "--config", &file])
            .env("VEIL_MASTER_KEY", "bWFzdGVyLWtleS1zZWNyZXQ=")
            .output()
            .unwrap(),
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        shown(&out, "database"),
        "database = \"postgres://veil:[REDACTED]@127.0.0.1:1/veil\"  # configuration file"
    );
    assert!(out.contains("# master key: from VEIL_MASTER_KEY (not shown)"), "{out}");
    assert!(!out.contains("hunter2") && !out.contains("bWFzdGVy"), "{out}");
    // A key file that holds no key is a problem check finds (without printing what it holds).
    let (code, out, err) = text(&clean(&["config", "check", "--config", &file]).output().unwrap());
    assert_eq!(code, 1, "{out}");
    assert_eq!(
        err.trim(),
        format!("error: master-key-file: {key_file} does not hold a master key (base64 of 32 bytes)")
    );
    assert!(!format!("{out}{err}").contains("hunter2") && !err.contains("c2hvcnQ"), "{err}");
}
