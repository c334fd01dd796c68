//! The `veil` program, built in this package so the end-to-end suite can start it.

fn main() -> std::process::ExitCode {
    veil_server::run()
}
