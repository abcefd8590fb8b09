"""Offline throughput comparison (pure parts)."""

from __future__ import annotations

import numpy as np
import pytest
from stt_server.bench.offline import Throughput, _float32_16k, compare, median_round
from stt_server.client import WavAudio


def test_compare_within_five_percent() -> None:
    direct = Throughput("direct", audio_sec=10.0, wall_sec=1.0, runs=3)
    assert compare(Throughput("server", 10.0, 1.05, 3), direct)["ok"] is True      # 4.8% slower
    verdict = compare(Throughput("server", 10.0, 1.06, 3), direct)                  # 5.7% slower
    assert verdict["ok"] is False and verdict["ratio"] == pytest.approx(1 / 1.06)
    assert compare(Throughput("server", 10.0, 0.5, 3), direct)["ratio"] == pytest.approx(2.0)


def test_median_round_ignores_one_slow_round() -> None:
    t = median_round([1.0, 1.1, 9.0], name="server", audio_sec=12.0)
    assert t.wall_sec == 1.1 and t.runs == 3 and t.x_realtime == pytest.approx(12.0 / 1.1)


def test_wav_audio_to_float32_16k() -> None:
    stereo_8k = np.array([[1000, 3000]] * 8000, dtype="<i2")  # 1 s, two channels
    samples = _float32_16k(WavAudio(stereo_8k.tobytes(), 8000, channels=2))
    assert samples.dtype == np.float32
    assert abs(len(samples) - 16000) <= 16
    assert samples[4000] == pytest.approx(2000 / 32768, rel=1e-3)
