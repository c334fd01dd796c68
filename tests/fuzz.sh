#!/usr/bin/env bash
# Runs every fuzz target of the repository for FUZZ_SECS seconds each (default 60), like a
# benchmark: not part of CI. Needs a nightly toolchain and cargo-fuzz:
#   rustup toolchain install nightly && cargo install cargo-fuzz
# Each target starts from its seeds when it has any; a crash stops the script with the input
# saved under <crate>/fuzz/artifacts/<target>/ (replay: cargo +nightly fuzz run <target> <file>).
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${FUZZ_SECS:-60}"
run() {
  local crate=$1 target=$2
  local seeds=()
  [ -d "$crate/fuzz/seeds/$target" ] && seeds=("fuzz/seeds/$target")
  mkdir -p "$crate/fuzz/corpus/$target"
  local log="$crate/fuzz/$target.log"
  echo "== $crate: $target ($secs s; log: $log)"
  if (cd "$crate" && cargo +nightly fuzz run "$target" "fuzz/corpus/$target" "${seeds[@]}" -- \
      -max_total_time="$secs" -rss_limit_mb=4096) > "$log" 2>&1; then
    grep -E '^(Done|#[0-9]+ +DONE)' "$log" | tail -n 1
  else
    tail -n 40 "$log"
    echo "error: $target crashed or did not build (see $log)"
    exit 1
  fi
}
run core placeholder
run core rule_chain
run core markers
run store destinations
run store feed
run integrations uplink
echo "every target ran $secs s without a crash"
