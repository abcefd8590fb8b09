#!/usr/bin/env bash
# Operator latency and cost (issue 14 §4): 50 and then 200 SttServers applied at once on the local
# cluster, measured for the operator at BEFORE (a git worktree of that commit, first on PYTHONPATH)
# and for this working tree, interleaved in one run so that both see the same machine.
# A third variant, `after-image`, runs this tree from a fresh venv with only `.[operator]` installed,
# as Dockerfile.operator does, so its RSS is the shipped image's (a development venv made before
# the operator dropped the `kubernetes` package still has it, and kopf imports it when present).
# A fourth, `floor`, runs no operator: the benchmark creates each SttServer's children itself the
# moment its POST is answered, which is the best latency any operator could reach on this cluster.
# Writes docs/benchmarks/operator-50-200.{json,md}. About 15 minutes on 2 cores; the steady window
# starts 90 s after the burst, past the first two resyncs (extra arguments go to operator_bench).
#
#   scripts/bench-operator.sh [BEFORE_COMMIT] [OUT_DIR]     (default c460418, docs/benchmarks)
set -euo pipefail
cd "$(dirname "$0")/.."
BEFORE="${1:-c460418}"
OUT="${2:-docs/benchmarks}"
WORK="$(mktemp -d -t stt-operator-bench.XXXXXX)"
git worktree add --detach "$WORK/before" "$BEFORE" >/dev/null
trap 'git worktree remove --force "$WORK/before"; rm -rf "$WORK"' EXIT

.venv/bin/python -m venv "$WORK/opvenv"
"$WORK/opvenv/bin/pip" install --quiet --disable-pip-version-check ".[operator]"

PATH="$PWD/.venv/bin:$PATH" .venv/bin/python -m stt_localfleet.operator_bench --dir "$WORK/cluster" \
    --count 50 --count 200 --variant "before=$WORK/before/operator" --variant after= \
    --variant "after-image=@$WORK/opvenv/bin/python" --variant floor=client --settle 90 --window 45 \
    --out "$OUT" --label 50-200 "${@:3}"
# Name the before code by its commit, not by the temporary worktree it ran from.
sed -i -E "s#$WORK/before/operator#$BEFORE (git worktree)#g; s#@$WORK/opvenv/bin/python#this tree in a venv with only .[operator]#g" \
    "$OUT/operator-50-200.md" "$OUT/operator-50-200.json"
