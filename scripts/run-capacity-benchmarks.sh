#!/usr/bin/env bash
# Stream capacity before/after, side by side: two local stt-servers on the bundled tiny.en (CPU),
# "before" from the source of BEFORE_REF (git archive, nothing checked out) and "after" from this
# working tree, loaded in turn with the same audio (stt-bench load, real-time speech streams),
# alternating which goes first each round, so both see the same host load. Writes every run's seed
# 002 report under OUT_DIR/capacity-runs/ and the side-by-side table as
# OUT_DIR/capacity-before-after.{md,json} (with the host's load average around each run).
#
#   scripts/run-capacity-benchmarks.sh [OUT_DIR]            (default docs/benchmarks)
#   BEFORE_REF=c460418 STREAMS="16 24 32" ROUNDS=3 DURATION=30 STT_CAPACITY_PORT_BASE=50461 \
#       scripts/run-capacity-benchmarks.sh
#
# Run it on a quiet machine: client and servers share the host, so other work skews the latencies.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-docs/benchmarks}"
BIN=.venv/bin
BEFORE_REF="${BEFORE_REF:-c460418}"  # main before issue 14's pipeline changes
STREAMS="${STREAMS:-16 24 32}"
ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-30}"
TOKEN=bench-token
WORK="$(mktemp -d -t stt-capacity.XXXXXX)"
RUNS="$OUT/capacity-runs"
mkdir -p "$RUNS" "$WORK/before"
git archive "$BEFORE_REF" server | tar -x -C "$WORK/before"

PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

# The per-key and total session limits (16 and 32 by default) would refuse the larger loads: the
# point here is latency at N streams, so both servers admit up to 64.
start_server() {  # start_server SIDE PYTHONPATH GRPC_PORT HTTP_PORT
    PYTHONPATH="$2" STT_CONTROL_TOKEN="$TOKEN" STT_LIMITS__MAX_SESSIONS=64 STT_LIMITS__MAX_SESSIONS_PER_API_KEY=64 \
        "$BIN/python" -m stt_server.cli --grpc-host 127.0.0.1 --http-host 127.0.0.1 \
        --grpc-port "$3" --http-port "$4" --device cpu --log-level WARNING >"$WORK/server-$1.log" 2>&1 &
    PIDS+=($!)
}
# Ports: another stt-server on the host must not answer for one of ours, so refuse taken ones.
PORT_BASE="${STT_CAPACITY_PORT_BASE:-50461}"
B_GRPC=$PORT_BASE; A_GRPC=$((PORT_BASE + 1)); B_HTTP=$((PORT_BASE + 2)); A_HTTP=$((PORT_BASE + 3))
for port in $B_GRPC $A_GRPC $B_HTTP $A_HTTP; do
    if ! "$BIN/python" -c "import socket,sys; s=socket.socket(); s.bind(('127.0.0.1', int(sys.argv[1])))" "$port" 2>/dev/null; then
        echo "port $port is taken: set STT_CAPACITY_PORT_BASE to a free range" >&2
        exit 2
    fi
done
start_server before "$WORK/before/server" $B_GRPC $B_HTTP
start_server after "" $A_GRPC $A_HTTP
sleep 5
for pid in "${PIDS[@]}"; do
    kill -0 "$pid" 2>/dev/null || { echo "a server exited at start; logs in $WORK" >&2; tail -3 "$WORK"/server-*.log >&2; exit 2; }
done

load() {  # load SIDE GRPC_PORT HTTP_PORT STREAMS ROUND
    # exit 1 means an SLO was missed: that is a result to record, not a failure of this script
    local rc=0
    "$BIN/stt-bench" load --server "127.0.0.1:$2" --sessions "$4" --duration "$DURATION" --realtime \
        --http "http://127.0.0.1:$3" --token "$TOKEN" --out-dir "$RUNS" --label "$1-$4-streams-r$5" \
        --connect-timeout 180 >/dev/null || rc=$?
    if [ "$rc" -gt 1 ]; then echo "stt-bench load failed ($rc); server logs in $WORK" >&2; exit "$rc"; fi
}

for n in $STREAMS; do
    for round in $(seq 1 "$ROUNDS"); do
        if (( round % 2 )); then order="before after"; else order="after before"; fi
        for side in $order; do
            echo "$(date -u +%H:%M:%S) $side, $n streams, round $round (load average $(cut -d' ' -f1-3 /proc/loadavg))"
            if [ "$side" = before ]; then load before $B_GRPC $B_HTTP "$n" "$round"; else load after $A_GRPC $A_HTTP "$n" "$round"; fi
        done
    done
done
"$BIN/python" scripts/compare_capacity_runs.py "$RUNS" --before-ref "$BEFORE_REF" \
    --after-ref "$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- server || echo '+changes')" \
    --out "$OUT/capacity-before-after"
echo "server logs: $WORK"
