#!/usr/bin/env bash
# Soak stt-server: 30 minutes at max_sessions with valid and hostile traffic (issue 13). Writes
# docs/benchmarks/soak-<label>.json: RSS every 10 s, every answer by input kind, unexpected answers,
# the server's error counts, and whether its stderr stayed JSON lines. Exit 1 when a target is missed
# (RSS growth after warm-up over 5 %, an unexpected answer, a non-JSON log line, an unclean drain).
#
#   scripts/soak.sh [LABEL] [extra stt_server.bench.soak flags, e.g. --duration 120 --sessions 4]
set -euo pipefail
cd "$(dirname "$0")/.."
LABEL="${1:-cpu-2core}"
shift || true
exec .venv/bin/python -m stt_server.bench.soak --out "docs/benchmarks/soak-${LABEL}.json" "$@"
