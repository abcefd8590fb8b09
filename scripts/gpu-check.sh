#!/usr/bin/env bash
# GPU check for a machine with an NVIDIA GPU (driver >= 525.60.13, CUDA 12 capable): installs the
# server with the `gpu` extra into a fresh venv, exactly as the -cuda image does (CUDA 12 cuBLAS and
# cuDNN 9 wheels, LD_LIBRARY_PATH at their lib directories), then records under OUT_DIR:
#
#   gpu-check-<gpu>.json           the machine (GPU, driver, library versions, load average, CPUs), the
#                                  CUDA check, the server's /info and /system, its GPU gauges
#   offline-gpu-<gpu>.json         Recognize throughput on device cuda / float16 against faster-whisper
#                                  called directly with the same device and compute type
#   capacity-gpu-<gpu>*.json/.md   the stt-bench real-time stream-capacity sweep
#
#   scripts/gpu-check.sh [OUT_DIR]           (default docs/benchmarks)
#   MODEL_PATH=/models/large-v3 scripts/gpu-check.sh     (a CTranslate2 model directory; default tiny.en)
#
# Any STT_* variable in the environment reaches the server too (e.g. STT_MODEL__NUM_WORKERS=4).
# It stops at the first failure; the server log is printed on the way out. Nothing here needs a
# cluster or the network beyond pip's index.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-docs/benchmarks}"
PYTHON="${PYTHON:-python3}"
WORK="$(mktemp -d -t stt-gpu-check.XXXXXX)"
VENV="$WORK/venv"
TOKEN=gpu-check-token
GRPC_PORT="${STT_BENCH_GRPC_PORT:-50161}"
HTTP_PORT="${STT_BENCH_HTTP_PORT:-8161}"
CAPACITY_BUDGET="${CAPACITY_BUDGET:-900}"
MAX_STREAMS="${MAX_STREAMS:-256}"
LOG="$WORK/server.log"
SERVER_PID=""

cleanup() {
    if [ -n "$SERVER_PID" ]; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    if [ -s "$LOG" ]; then
        echo "--- server log (last 40 lines): $LOG"
        tail -n 40 "$LOG"
    fi
}
trap cleanup EXIT

command -v nvidia-smi >/dev/null || { echo "gpu-check: nvidia-smi not found: this needs an NVIDIA GPU" >&2; exit 2; }
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
GPU_NAME="$(nvidia-smi --query-gpu=name --format=csv,noheader | head -n 1 | tr -c 'A-Za-z0-9\n' '-' \
    | tr '[:upper:]' '[:lower:]' | sed 's/-\{2,\}/-/g; s/-$//')"
mkdir -p "$OUT"

echo "== fresh venv with the server and gpu extras: $VENV"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
# hibari-tts synthesizes the benchmark's speech (as in the CPU benchmarks)
"$VENV/bin/python" -m pip install -q ".[server,gpu]" "hibari-tts>=0.2"
SITE="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
# what the -cuda image sets (Dockerfile.server)
export LD_LIBRARY_PATH="$SITE/nvidia/cublas/lib:$SITE/nvidia/cudnn/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export PATH="$VENV/bin:$PATH"

echo "== CUDA check (stt_server.engine.cuda_runtime)"
"$VENV/bin/python" - <<'EOF'
from stt_server.engine.cuda_runtime import check_cuda
check = check_cuda()
print("usable:", check.usable, "devices:", check.device_count)
if not check.usable:
    raise SystemExit(f"gpu-check: CUDA is not usable: {check.problem()}")
EOF

echo "== stt-server on device cuda, float16"
for port in "$GRPC_PORT" "$HTTP_PORT"; do  # another server on a taken port would answer for ours
    if ! "$VENV/bin/python" -c "import socket,sys; s=socket.socket(); s.bind(('127.0.0.1', int(sys.argv[1])))" "$port" 2>/dev/null; then
        echo "gpu-check: port $port is taken: set STT_BENCH_GRPC_PORT / STT_BENCH_HTTP_PORT" >&2
        exit 2
    fi
done
MODEL_ARGS=()
if [ -n "${MODEL_PATH:-}" ]; then MODEL_ARGS=(--model "$MODEL_PATH"); fi
# The session limits (32 per pod, 16 per key) would cap the capacity sweep, not the GPU: the point is
# latency at N streams, so the server admits up to MAX_STREAMS (buffers sized to match).
STT_CONTROL_TOKEN="$TOKEN" STT_ENABLE_GPU_METRICS=1 STT_SERVER__REST_PORT=0 \
    STT_LIMITS__MAX_SESSIONS="$MAX_STREAMS" STT_LIMITS__MAX_SESSIONS_PER_API_KEY="$MAX_STREAMS" \
    STT_LIMITS__MAX_TOTAL_BUFFER_BYTES=$((MAX_STREAMS * 1920000)) stt-server --grpc-host 127.0.0.1 --http-host 127.0.0.1 \
    --grpc-port "$GRPC_PORT" --http-port "$HTTP_PORT" --device cuda --compute-type float16 \
    ${MODEL_ARGS[@]+"${MODEL_ARGS[@]}"} >"$LOG" 2>&1 &
SERVER_PID=$!
deadline=$((SECONDS + 600))  # a large model may take minutes to load onto the GPU
until curl -fsS "http://127.0.0.1:$HTTP_PORT/health/ready" >/dev/null 2>&1; do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then echo "gpu-check: stt-server exited" >&2; exit 1; fi
    if [ "$SECONDS" -ge "$deadline" ]; then echo "gpu-check: stt-server not ready in 600 s" >&2; exit 1; fi
    sleep 2
done

echo "== machine, server and GPU figures"
"$VENV/bin/python" - "$OUT/gpu-check-$GPU_NAME.json" "$HTTP_PORT" "$TOKEN" <<'EOF'
import json, os, subprocess, sys, time, urllib.request
from importlib import metadata

out, port, token = sys.argv[1], sys.argv[2], sys.argv[3]

def get(path):
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.read().decode()

import ctranslate2
from stt_server.engine.cuda_runtime import check_cuda
smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,compute_cap",
                      "--format=csv,noheader"], capture_output=True, text=True, check=True).stdout
versions = {}
for name in ("ctranslate2", "faster-whisper", "nvidia-cublas-cu12", "nvidia-cudnn-cu12", "nvidia-ml-py"):
    try:
        versions[name] = metadata.version(name)
    except metadata.PackageNotFoundError:
        versions[name] = None
check = check_cuda()
record = {
    "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    "loadavg": os.getloadavg(), "cpu_count": os.cpu_count(),
    "nvidia_smi": [line.strip() for line in smi.splitlines() if line.strip()],
    "packages": versions,
    "ctranslate2_cuda_devices": ctranslate2.get_cuda_device_count(),
    "ctranslate2_cuda_compute_types": sorted(ctranslate2.get_supported_compute_types("cuda")),
    "cuda_check": {"usable": check.usable, "device_count": check.device_count, "problem": check.problem()},
    "server_info": json.loads(get("/info")),
    "server_system": json.loads(get("/system")),
    "gpu_gauges": [line for line in get("/metrics").splitlines() if line.startswith("stt_gpu_")],
}
with open(out, "w") as handle:
    json.dump(record, handle, indent=2)
    handle.write("\n")
print(f"wrote {out}")
EOF

echo "== Recognize throughput: server vs faster-whisper directly (cuda, float16)"
stt-bench offline --server "127.0.0.1:$GRPC_PORT" --direct --device cuda --compute-type float16 --repeat 20 \
    --out "$OUT/offline-gpu-$GPU_NAME.json" || [ $? -eq 1 ]  # 1: the comparison missed its bar (a result)

echo "== real-time stream-capacity sweep"
stt-bench capacity --server "127.0.0.1:$GRPC_PORT" --http "http://127.0.0.1:$HTTP_PORT" --token "$TOKEN" \
    --budget "$CAPACITY_BUDGET" --max-streams "$MAX_STREAMS" --out-dir "$OUT" --label "gpu-$GPU_NAME" \
    --connect-timeout 120 || [ $? -eq 1 ]  # 1: not even the first step held the SLO (a result)

echo "gpu-check: figures under $OUT (commit them with the GPU name and driver in the message)"
