//! The real `veil` program: [`Server`] runs `veil serve` on a free loopback port with a temporary
//! data directory and keeps what it prints.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use serde_json::{Value, json};

/// The password of the tenant administrator `admin` of every server the kit starts.
pub const ADMIN_PASSWORD: &str = "correct horse battery staple";
/// The password of the system administrator `sysadmin` of every server the kit starts.
pub const SYSADMIN_PASSWORD: &str = "system horse battery staple";

/// A running `veil serve`.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// A client for it.
    pub client: reqwest::Client,
    logs: Arc<Mutex<String>>,
    stdout: Arc<Mutex<String>>,
}

/// The `veil` program under test: `veil-e2e`, built by this package next to the test binaries
/// (`target/<profile>/veil-e2e`, one level above the test executable in `deps/`), or the path in
/// `VEIL_BIN`. Cargo builds `veil-e2e` before this package's own tests only: another crate's test
/// that starts a [`Server`] runs after `cargo build -p veil-tests --bin veil-e2e` or sets `VEIL_BIN`.
pub fn veil_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("VEIL_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("the test executable's path");
    let dir = exe.parent().and_then(Path::parent).expect("target/<profile>/deps/<test>");
    dir.join(format!("veil-e2e{}", std::env::consts::EXE_SUFFIX))
}

/// A command running the `veil` program under test.
pub fn veil() -> Command {
    Command::new(veil_binary())
}

/// A `veil serve` command on a free port; the caller adds environment and spawns.
pub fn serve_command(data_dir: &Path) -> Command {
    let mut cmd = veil();
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env_remove("VEIL_MASTER_KEY")
        .env_remove("VEIL_MASTER_KEY_FILE")
        .env_remove("VEIL_LOG")
        .env_remove("RUST_LOG")
        .env("VEIL_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("VEIL_SYSADMIN_PASSWORD", SYSADMIN_PASSWORD)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

fn collect(
    reader: impl Read + Send + 'static,
    sink: Arc<Mutex<String>>,
    ready: Option<mpsc::Sender<String>>,
) {
    std::thread::spawn(move || {
        for line in BufReader::new(reader).lines().map_while(Result::ok) {
            if let (Some(tx), Some(addr)) = (&ready, line.split("veil listening on ").nth(1)) {
                // A text line ends with the address; a JSON line closes its string after it.
                let addr = addr.split('"').next().unwrap_or_default();
                let _ = tx.send(addr.trim().to_owned());
            }
            let mut s = sink.lock().unwrap();
            s.push_str(&line);
            s.push('\n');
        }
    });
}

impl Server {
    /// Starts `veil serve` on a free port with `data_dir`, and waits until it listens.
    pub async fn start(data_dir: &Path) -> Self {
        Self::start_with(serve_command(data_dir)).await
    }

    /// Starts a prepared [`serve_command`] (extra flags or environment) and waits until it is
    /// ready (`GET /api/ready`).
    pub async fn start_with(cmd: Command) -> Self {
        let mut server = Self::start_listening(cmd).await;
        server.wait_ready().await;
        server
    }

    /// Starts a prepared [`serve_command`] and waits only until it listens (it answers `503`
    /// while it starts).
    pub async fn start_listening(mut cmd: Command) -> Self {
        let mut child = cmd.spawn().expect("spawn veil");
        let logs = Arc::new(Mutex::new(String::new()));
        let stdout = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        collect(child.stderr.take().unwrap(), Arc::clone(&logs), Some(tx));
        collect(child.stdout.take().unwrap(), Arc::clone(&stdout), None);
        let base =
            tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(60))).await.unwrap();
        let base = match base {
            Ok(b) => b,
            Err(_) => {
                let _ = child.kill();
                panic!("veil did not start; log:\n{}", logs.lock().unwrap());
            }
        };
        Self { child, base, client: reqwest::Client::new(), logs, stdout }
    }

    /// Waits until `GET /api/ready` answers 200 (the server listens before it is ready).
    async fn wait_ready(&mut self) {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let ready = self.client.get(self.url("/api/ready")).send().await;
            if ready.is_ok_and(|r| r.status() == 200) {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("veil exited ({status}) before it was ready; log:\n{}", self.logs());
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("veil was not ready within 60 s; log:\n{}", self.logs());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The URL of `path` on this server.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A token of `admin`.
    pub async fn login(&self) -> String {
        self.login_as("admin", ADMIN_PASSWORD).await
    }

    /// A token of `username` (the login must succeed).
    pub async fn login_as(&self, username: &str, password: &str) -> String {
        let resp = self
            .client
            .post(self.url("/api/auth/login"))
            .json(&json!({"username": username, "password": password}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_owned()
    }

    /// Everything the server wrote to stderr so far.
    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().clone()
    }

    /// Everything the server wrote to stdout so far.
    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    /// The process id of `veil serve`.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The server's peak resident memory so far (VmHWM), in bytes.
    pub fn peak_rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
    }

    /// The server's resident memory now (VmRSS), in bytes.
    pub fn rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
    }

    /// CPU time the server has used so far (user and system).
    pub fn cpu_time(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap();
        // Fields after the command's closing parenthesis; utime and stime are the 12th and 13th.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        // Linux reports them in clock ticks of 1/100 s (USER_HZ).
        Duration::from_millis(ticks * 10)
    }

    /// Polls `/api/health` every 100 ms until the returned watcher is stopped; the watcher tells
    /// the slowest answer seen.
    pub fn watch_health(&self) -> HealthWatch {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (url, client, flag) = (self.url("/api/health"), self.client.clone(), Arc::clone(&stop));
        let task = tokio::spawn(async move {
            let mut slowest = Duration::ZERO;
            while !flag.load(std::sync::atomic::Ordering::SeqCst) {
                let started = std::time::Instant::now();
                let ok = tokio::time::timeout(Duration::from_secs(5), client.get(&url).send())
                    .await
                    .is_ok_and(|r| r.is_ok_and(|r| r.status() == 200));
                let took = if ok { started.elapsed() } else { Duration::from_secs(3600) };
                slowest = slowest.max(took);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            slowest
        });
        HealthWatch { stop, task }
    }

    /// Kills the server (SIGKILL) and waits for it.
    pub fn kill9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Sends SIGTERM (or another signal: `"-INT"`, …) without waiting.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill").args([signal, &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
    }

    /// Waits (without blocking the runtime) up to `within` for the process to exit: its status,
    /// or `None` when it still runs.
    pub async fn exit_within(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = std::time::Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the reader threads drain the pipes.
                tokio::time::sleep(Duration::from_millis(100)).await;
                return Some(status);
            }
            if std::time::Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// SIGTERM, then wait for the exit.
    pub fn terminate(&mut self) -> ExitStatus {
        let status = Command::new("kill").arg(self.child.id().to_string()).status().unwrap();
        assert!(status.success());
        let status = self.child.wait().unwrap();
        // Let the reader threads drain the pipes.
        std::thread::sleep(Duration::from_millis(100));
        status
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running `/api/health` poller (see [`Server::watch_health`]).
pub struct HealthWatch {
    stop: Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<Duration>,
}

impl HealthWatch {
    /// Stops polling and returns the slowest answer (an hour when one failed or took over 5 s).
    pub async fn slowest(self) -> Duration {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.task.await.unwrap()
    }
}
