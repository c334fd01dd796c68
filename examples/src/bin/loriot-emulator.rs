//! A LORIOT network-server emulator to try the LORIOT integration by hand: session login, the
//! application's HTTP-push outputs, downlinks on `/1/rest`, plus `POST /emulator/uplink`,
//! `POST /emulator/expire-sessions` and `GET /emulator/downlinks`.
//!
//! `cargo run -p veil-examples --bin loriot-emulator -- --listen 127.0.0.1:8090 --user veil-user`
//!
//! Flags (each takes a value): `--listen`, `--user`, `--password`, `--app-id`, `--app-token`,
//! `--api-token`.

use std::net::SocketAddr;
use std::process::ExitCode;

use veil_examples::loriot::{Emulator, EmulatorConfig};

#[tokio::main]
async fn main() -> ExitCode {
    let mut config = EmulatorConfig::default();
    let mut listen = "127.0.0.1:8090".to_owned();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let slot = match flag.as_str() {
            "--listen" => &mut listen,
            "--user" => &mut config.username,
            "--password" => &mut config.password,
            "--app-id" => &mut config.app_id,
            "--app-token" => &mut config.app_token,
            "--api-token" => &mut config.api_token,
            _ => {
                eprintln!(
                    "unknown flag {flag}; known: --listen --user --password --app-id --app-token --api-token"
                );
                return ExitCode::from(2);
            }
        };
        let Some(value) = args.next() else {
            eprintln!("{flag} needs a value");
            return ExitCode::from(2);
        };
        *slot = value;
    }
    let addr: SocketAddr = match listen.parse() {
        Ok(addr) => addr,
        Err(e) => {
            eprintln!("--listen {listen}: {e}");
            return ExitCode::from(2);
        }
    };
    let (user, app_id) = (config.username.clone(), config.app_id.clone());
    let emulator = match Emulator::start_on(addr, config).await {
        Ok(emulator) => emulator,
        Err(e) => {
            eprintln!("cannot listen on {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("LORIOT emulator on {} (user {user}, app {app_id})", emulator.url());
    if let Err(e) = tokio::signal::ctrl_c().await {
        eprintln!("waiting for Ctrl-C: {e}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
