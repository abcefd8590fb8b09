#!/usr/bin/env bash
# Issue 14 section 3: unary Recognize on a 5-minute synthesized recording (VAD chunks batched through
# the decode scheduler) against faster-whisper's plain, sequential transcribe on the same audio, plus
# faster-whisper's BatchedInferencePipeline as a reference; rounds interleaved, WER from jiwer.
# Writes docs/benchmarks/offline-long-<label>.json/.md. The recording is synthesized at run time.
#
#   scripts/bench-long-recognize.sh [SECONDS] [ROUNDS] [LABEL]     (default 300 5 cpu-2core)
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_LONG="${1:-300}"
ROUNDS="${2:-5}"
LABEL="${3:-cpu-2core}"
BIN=.venv/bin
GRPC_PORT="${STT_BENCH_GRPC_PORT:-50161}"
LOG="$(mktemp -t stt-bench-long.XXXXXX.log)"

# 5 minutes of 16 kHz PCM is 9.6 MB: above the 4 MiB default message size, so raise it for this run.
STT_SERVER__MAX_MESSAGE_BYTES=33554432 "$BIN/stt-server" --rest-port 0 \
    --grpc-host 127.0.0.1 --http-host 127.0.0.1 --grpc-port "$GRPC_PORT" --http-port 0 --device cpu \
    >"$LOG" 2>&1 &
SERVER_PID=$!
trap 'kill -TERM "$SERVER_PID" 2>/dev/null; wait "$SERVER_PID" 2>/dev/null || true' EXIT

# exit 1 means the target was missed: that is a result to record, not a failure of this script
"$BIN/stt-bench" offline --server "127.0.0.1:$GRPC_PORT" --long "$SECONDS_LONG" --rounds "$ROUNDS" \
    --label "$LABEL" || [ $? -eq 1 ]
echo "server log: $LOG"
