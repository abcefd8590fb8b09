#!/usr/bin/env bash
# Regenerate docs/benchmarks/: load reports at 1, 4, 8, 12, 16 and 20 real-time streams and the offline
# Recognize comparison, against one local stt-server on the bundled tiny.en (CPU).
# Run it on a quiet machine: client and server share the host, so other work skews the latencies.
#
#   scripts/run-benchmarks.sh [OUT_DIR]        (default docs/benchmarks)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-docs/benchmarks}"
BIN=.venv/bin
TOKEN=bench-token
GRPC_PORT="${STT_BENCH_GRPC_PORT:-50151}"
HTTP_PORT="${STT_BENCH_HTTP_PORT:-8151}"
LOG="$(mktemp -t stt-bench-server.XXXXXX.log)"

STT_CONTROL_TOKEN="$TOKEN" "$BIN/stt-server" --grpc-host 127.0.0.1 --http-host 127.0.0.1 \
    --grpc-port "$GRPC_PORT" --http-port "$HTTP_PORT" --device cpu >"$LOG" 2>&1 &
SERVER_PID=$!
trap 'kill -TERM "$SERVER_PID" 2>/dev/null; wait "$SERVER_PID" 2>/dev/null || true' EXIT

load() {  # load SESSIONS LABEL
    # exit 1 means an SLO was missed: that is a result to record, not a failure of this script
    "$BIN/stt-bench" load --server "127.0.0.1:$GRPC_PORT" --sessions "$1" --duration 30 --realtime \
        --http "http://127.0.0.1:$HTTP_PORT" --token "$TOKEN" --out-dir "$OUT" --label "$2" \
        --connect-timeout 120 || [ $? -eq 1 ]
}

load 1 cpu-2core-1-stream
load 4 cpu-2core-4-streams
load 8 cpu-2core-8-streams
load 12 cpu-2core-12-streams
load 16 cpu-2core-16-streams
load 20 cpu-2core-20-streams  # past the per-key session limit (16): shows the shedding
"$BIN/stt-bench" offline --server "127.0.0.1:$GRPC_PORT" --direct --repeat 20 --out "$OUT/offline-cpu-2core.json"
echo "server log: $LOG"
