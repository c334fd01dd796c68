//! The `veil` binary.

fn main() -> std::process::ExitCode {
    veil_server::run()
}
