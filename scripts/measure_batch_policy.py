"""Model time of the old and the new batch choice on the same queue of decodes (tiny.en, CPU).

A queue like the one 32 real-time streams build (finals of finished utterances ahead of partials
of open ones, lengths drawn from the bench's sentences) is drained twice per round through
``WhisperBackend.transcribe_batch``: in priority order, ``max_batch_size`` at a time (the old
``_take_batch``), and with ``choose_batch`` (frame budget, padding share). The two alternate, and
each side's process CPU time and wall time are summed, so both see the same host load. Writes JSON
with the host's load average.

    .venv/bin/python scripts/measure_batch_policy.py --rounds 5 --out docs/benchmarks/batch-policy-cpu-2core.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
from stt_server.bench.workload import speech_variants
from stt_server.config import ServerConfig
from stt_server.engine.backend import FINAL_MARGIN_FRAMES, PARTIAL_MARGIN_FRAMES, BatchItem, WhisperBackend
from stt_server.engine.batching import choose_batch, padded_frames


def queue(seed: int, *, finals: int, partials: int) -> list[BatchItem]:
    """Finals (whole utterances, 2 to 5 s) first, then partials (0.5 to 4 s of an open utterance)."""
    rng = random.Random(seed)
    pcm = [np.frombuffer(v.pcm, dtype="<i2").astype(np.float32) / 32768.0 for v in speech_variants(streams=6)]

    def clip(low: float, high: float) -> np.ndarray:
        source = rng.choice(pcm)
        length = int(rng.uniform(low, high) * 16_000)
        start = rng.randrange(0, source.size - length)
        return source[start:start + length]

    return ([BatchItem(audio=clip(2.0, 5.0), margin_frames=FINAL_MARGIN_FRAMES) for _ in range(finals)]
            + [BatchItem(audio=clip(0.5, 4.0), margin_frames=PARTIAL_MARGIN_FRAMES) for _ in range(partials)])


def old_batches(items: list[BatchItem], *, limit: int) -> list[list[BatchItem]]:
    return [items[i:i + limit] for i in range(0, len(items), limit)]


def new_batches(items: list[BatchItem], *, limit: int) -> list[list[BatchItem]]:
    left, out = list(items), []
    while left:
        widths = [padded_frames(samples=i.audio.size, final=i.margin_frames == FINAL_MARGIN_FRAMES) for i in left]
        ranks = [0 if i.margin_frames == FINAL_MARGIN_FRAMES else 2 for i in left]
        chosen = choose_batch(widths, limit=limit, ranks=ranks)
        out.append([left[i] for i in chosen])
        left = [item for index, item in enumerate(left) if index not in set(chosen)]
    return out


def drain(backend: WhisperBackend, batches: list[list[BatchItem]]) -> tuple[float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    for batch in batches:
        backend.transcribe_batch(batch)
    return time.process_time() - cpu, time.perf_counter() - wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--finals", type=int, default=6)
    parser.add_argument("--partials", type=int, default=26)
    parser.add_argument("--max-batch-size", type=int, default=8)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    settings: Any = ServerConfig().model  # the config section, as Engine passes it
    backend = WhisperBackend(settings)
    backend.load()
    load_start = os.getloadavg()
    totals = {"old": [0.0, 0.0], "new": [0.0, 0.0]}
    calls = {"old": 0, "new": 0}
    padded = {"old": 0, "new": 0}
    for round_ in range(args.rounds):
        items = queue(round_, finals=args.finals, partials=args.partials)
        plans = {"old": old_batches(items, limit=args.max_batch_size),
                 "new": new_batches(items, limit=args.max_batch_size)}
        for side in (("old", "new") if round_ % 2 == 0 else ("new", "old")):
            cpu, wall = drain(backend, plans[side])
            totals[side][0] += cpu
            totals[side][1] += wall
            calls[side] += len(plans[side])
            padded[side] += sum(len(b) * max(padded_frames(samples=i.audio.size,
                                                           final=i.margin_frames == FINAL_MARGIN_FRAMES) for i in b)
                                for b in plans[side])
    result = {
        "rounds": args.rounds, "queue": {"finals": args.finals, "partials": args.partials},
        "max_batch_size": args.max_batch_size, "cpu_count": os.cpu_count(),
        "load_average_start": list(load_start), "load_average_end": list(os.getloadavg()),
        **{side: {"cpu_seconds": round(totals[side][0], 3), "wall_seconds": round(totals[side][1], 3),
                  "model_calls": calls[side], "padded_frames": padded[side]} for side in totals},
        "cpu_ratio_new_over_old": round(totals["new"][0] / totals["old"][0], 3),
        "wall_ratio_new_over_old": round(totals["new"][1] / totals["old"][1], 3),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
