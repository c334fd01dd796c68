#!/bin/bash
# The machine's ceiling for the side-by-side scenario (tests/bench/side-by-side/side_by_side.sh), in one run:
#   sink-direct      wrk straight at the sink (POST with the basic-auth header): what loopback, wrk and the
#                    Node.js sink manage on this machine with nothing in between;
#   veil-*-nocall    Veil with a chain that answers without calling out (the same filter, no REST call);
#   veil-*           the full scenario (filter -> POST to the sink with the secret's basic auth).
# Veil's full paths can be no faster than the slower of the sink alone and Veil alone: this shows how close
# they are to that. Run from the repository root after `cargo build --release`.
# env: BENCH_DIR (default tests/bench/side-by-side), VEIL_BIN (default target/release/veil), DUR, REPS, CONC, OUT_DIR
set -e
BENCH_DIR=$(readlink -f "${BENCH_DIR:-tests/bench/side-by-side}")
VEIL_BIN=$(readlink -f "${VEIL_BIN:-target/release/veil}")
D=${OUT_DIR:-$(mktemp -d -t veil-ceiling.XXXX)}; mkdir -p "$D"; cd "$D"
command -v wrk >/dev/null || { apt-get update; apt-get install -y wrk; }
cp "$BENCH_DIR"/{sink.js,post.lua,post_veil.lua,bench_target.py,setup_veil.py} .
rm -rf results.jsonl veil-data
cleanup() { kill $(cat sink.pid veil.pid 2>/dev/null) 2>/dev/null || true; }; trap cleanup EXIT
wait_url() { for _ in $(seq 120); do curl -sf -o /dev/null "$1" && return 0; sleep 0.5; done; echo "no answer at $1"; exit 1; }
node sink.js > sink.log 2>&1 & echo $! > sink.pid
export VEIL_ADMIN_PASSWORD=ceiling-admin
VEIL_LOG=warn "$VEIL_BIN" serve --listen 127.0.0.1:8080 --data-dir "$D/veil-data" > veil.log 2>&1 & echo $! > veil.pid
wait_url 127.0.0.1:9000/stats; wait_url 127.0.0.1:8080/api/ready
python3 setup_veil.py; set -a; . ./veil.env; set +a
# The same filter alone, and an HTTP integration feeding it.
python3 - <<'EOF'
import json, os, urllib.request
def call(method, path, body):
    req = urllib.request.Request("http://127.0.0.1:8080" + path, data=json.dumps(body).encode(), method=method)
    req.add_header("content-type", "application/json"); req.add_header("authorization", "Bearer " + os.environ["TOKEN"])
    return json.loads(urllib.request.urlopen(req).read())
chain = call("POST", "/api/rule-chains", {"name": "answer only", "firstNodeIndex": 0, "nodes": [
    {"type": "script", "name": "filter", "configuration": {"mode": "filter", "script": "msg.temperature > 20"}}]})
integ = call("POST", "/api/integrations", {"name": "answer only", "type": "HTTP", "enabled": True,
    "ruleChainId": chain["id"], "routingKey": "nocall", "configuration": {},
    "uplinkConverter": "#{deviceName: payload.deviceName, telemetry: payload}"})
open("veil.env", "a").write(f"NOCALL_CHAIN={chain['id']}\nNOCALL_ROUTING={integ['routingKey']}\n")
EOF
. ./veil.env
BODY='{"temperature": 25, "humidity": 40, "deviceName": "dev-1"}'
echo "| target | c | req/s | p50 ms | p99 ms | errors | sink reqs | auth mismatches | CPU % | RSS MB |"
echo "|---|---|---|---|---|---|---|---|---|---|"
WRK_AUTH="Basic $(printf veil:peer-s3cret | base64)" LABEL=sink-direct TARGET_URL=http://127.0.0.1:9000/ingest \
  TARGET_PID=$(cat sink.pid) LUA=post.lua python3 bench_target.py
VEIL_JWT=$TOKEN LABEL=veil-wait-nocall TARGET_URL="http://127.0.0.1:8080/api/rule-chains/$NOCALL_CHAIN/messages?wait=true" \
  TARGET_PID=$(cat veil.pid) LUA=post_veil.lua python3 bench_target.py
VEIL_JWT=$TOKEN LABEL=veil-wait TARGET_URL="http://127.0.0.1:8080/api/rule-chains/$CHAIN/messages?wait=true" \
  TARGET_PID=$(cat veil.pid) LUA=post_veil.lua python3 bench_target.py
WRK_BODY=$BODY LABEL=veil-uplink-nocall TARGET_URL="http://127.0.0.1:8080/api/v1/integrations/http/$NOCALL_ROUTING" \
  TARGET_PID=$(cat veil.pid) LUA=post_veil.lua python3 bench_target.py
WRK_BODY=$BODY LABEL=veil-uplink TARGET_URL="http://127.0.0.1:8080/api/v1/integrations/http/$ROUTING" \
  TARGET_PID=$(cat veil.pid) LUA=post_veil.lua python3 bench_target.py
echo "results: $D/results.jsonl"
