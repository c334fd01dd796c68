#!/usr/bin/env bash
# The REST API checked against its own OpenAPI document: schemathesis (PyPI) runs every operation
# of GET /api/openapi.json against a freshly started `veil serve`, first with a tenant
# administrator's token, then with a customer user's, and last the operations that end the
# session (logout, a user's password or deletion). Every answer must be no 5xx, have a documented
# status, content type and body, and carry no value of the secrets the run made
# (tests/fuzz/veil_checks.py); the server's log must hold none either. Bounded in time:
# VEIL_SCHEMATHESIS_SECS for the first pass (default 120), half of it for the second. A fixed
# seed (VEIL_SCHEMATHESIS_SEED, default 20261207) makes a failure replayable.
#   bash tests/fuzz/openapi.sh            (needs `pip install schemathesis` and a built `veil`)
set -euo pipefail
cd "$(dirname "$0")/../.."
secs="${VEIL_SCHEMATHESIS_SECS:-120}"
seed="${VEIL_SCHEMATHESIS_SEED:-20261207}"
bin="${VEIL_BIN:-target/debug/veil}"
work=$(mktemp -d)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
admin_password="fuzz-admin-password-1"
VEIL_ADMIN_PASSWORD="$admin_password" VEIL_SYSADMIN_PASSWORD="fuzz-sysadmin-password-1" \
  "$bin" serve --listen "127.0.0.1:$port" --data-dir "$work/data" > "$work/veil.log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do
  curl -sf -o /dev/null "$base/api/ready" && break
  sleep 0.2
done
eval "$(python3 tests/fuzz/openapi_setup.py "$base" "$admin_password")"
export VEIL_FUZZ_SECRET_VALUES="$VALUES"
export SCHEMATHESIS_HOOKS=veil_checks PYTHONPATH="$PWD/tests/fuzz${PYTHONPATH:+:$PYTHONPATH}"
checks="not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,no_secret_value"
# Ends the session the run uses: last, on its own.
ending=(--exclude-path /api/auth/logout --exclude-path-regex '^/api/users/\{id\}$')
run() {
  # From the scratch directory: schemathesis keeps its cache (.schemathesis/) where it runs.
  (cd "$work" && schemathesis run "$base/api/openapi.json" --checks "$checks" --seed "$seed" --workers 1 \
    --request-timeout 30 --suppress-health-check all --warnings off "$@")
}
echo "-- as a tenant administrator (${secs} s)"
run -H "Authorization: Bearer $ADMIN_TOKEN" --max-time "$secs" "${ending[@]}"
echo "-- as a customer user ($((secs / 2)) s)"
run -H "Authorization: Bearer $CUSTOMER_TOKEN" --max-time "$((secs / 2))" "${ending[@]}"
echo "-- the operations that end a session"
run -H "Authorization: Bearer $ADMIN_TOKEN" --max-time 30 \
  --include-path /api/auth/logout --include-path-regex '^/api/users/\{id\}$'
for value in $VALUES; do
  if grep -qF "$value" "$work/veil.log"; then
    echo "error: a secret's value is in the server's log"
    exit 1
  fi
done
if grep -q "panicked" "$work/veil.log"; then
  grep -B2 -A10 "panicked" "$work/veil.log" | head -40
  echo "error: the server panicked"
  exit 1
fi
echo "schemathesis: every operation checked; no 5xx, no undocumented answer, no value in any answer or log line"
