"""Audio capture: one WAV per session written off the loop, and each retention rule."""

from __future__ import annotations

import os
import wave
from pathlib import Path

import numpy as np
import pytest
from stt_server.capture.storage import AudioCapture, RetentionPolicy, enforce_retention
from stt_server.config import StorageSettings

DAY = 86400.0


def make_files(directory: Path, *, count: int, size: int, start: float = 1_000_000.0, step: float = 10.0) -> list[Path]:
    paths = []
    for index in range(count):
        path = directory / f"f{index:02d}.wav"
        path.write_bytes(b"x" * size)
        os.utime(path, (start + index * step, start + index * step))
        paths.append(path)
    return paths


def test_one_wav_per_session_with_the_audio(tmp_path: Path) -> None:
    capture = AudioCapture(StorageSettings(persist_audio=True, directory=tmp_path))
    try:
        first, second = capture.open("sess-a"), capture.open("sess-b")
        tone = np.sin(np.linspace(0, 200, 16000)).astype(np.float32) * 0.5
        first.write(tone[:8000])
        second.write(tone)
        first.write(tone[8000:])
        first.close()
        second.close()
        assert capture.flush()
    finally:
        capture.stop()
    files = sorted(tmp_path.glob("*.wav"))
    assert [p.name.split("_", 1)[1] for p in files] == ["sess-a.wav", "sess-b.wav"]
    with wave.open(str(first.path)) as handle:
        assert (handle.getframerate(), handle.getnchannels(), handle.getsampwidth()) == (16000, 1, 2)
        frames = np.frombuffer(handle.readframes(handle.getnframes()), dtype="<i2")
    np.testing.assert_allclose(frames / 32767, tone, atol=1e-4)


def test_session_without_audio_leaves_no_file(tmp_path: Path) -> None:
    capture = AudioCapture(StorageSettings(persist_audio=True, directory=tmp_path))
    try:
        capture.open("silent").close()
        assert capture.flush()
    finally:
        capture.stop()
    assert list(tmp_path.glob("*.wav")) == []


def test_max_files_keeps_the_newest(tmp_path: Path) -> None:
    paths = make_files(tmp_path, count=5, size=10)
    deleted = enforce_retention(tmp_path, RetentionPolicy(max_files=2))
    assert deleted == paths[:3]
    assert sorted(tmp_path.glob("*.wav")) == paths[3:]


def test_max_bytes_removes_oldest_until_under(tmp_path: Path) -> None:
    paths = make_files(tmp_path, count=4, size=100)
    deleted = enforce_retention(tmp_path, RetentionPolicy(max_bytes=250))
    assert deleted == paths[:2]
    assert sum(p.stat().st_size for p in tmp_path.glob("*.wav")) <= 250


def test_max_age_days_removes_old_files(tmp_path: Path) -> None:
    now = 1_000_000.0 + 10 * DAY
    old = make_files(tmp_path, count=2, size=1, start=now - 3 * DAY)
    young = tmp_path / "young.wav"
    young.write_bytes(b"y")
    os.utime(young, (now - 0.5 * DAY, now - 0.5 * DAY))
    deleted = enforce_retention(tmp_path, RetentionPolicy(max_age_days=1), now=now)
    assert sorted(deleted) == sorted(old)
    assert list(tmp_path.glob("*.wav")) == [young]


@pytest.mark.parametrize("limit", [None, -1])
def test_null_or_negative_means_no_limit(tmp_path: Path, limit: int | None) -> None:
    make_files(tmp_path, count=3, size=100, start=0.0)
    policy = RetentionPolicy.from_settings(
        StorageSettings(max_bytes=limit, max_files=limit, max_age_days=limit)
    )
    assert policy == RetentionPolicy()
    assert enforce_retention(tmp_path, policy) == []
    assert len(list(tmp_path.glob("*.wav"))) == 3


def test_retention_runs_after_each_session(tmp_path: Path) -> None:
    make_files(tmp_path, count=3, size=10, start=0.0)
    capture = AudioCapture(StorageSettings(persist_audio=True, directory=tmp_path, max_files=2))
    try:
        writer = capture.open("new")
        writer.write(np.zeros(1600, dtype=np.float32))
        assert capture.flush()
        assert len(list(tmp_path.glob("*.wav"))) == 4  # retention waits for the session to end
        writer.close()
        assert capture.flush()
    finally:
        capture.stop()
    names = sorted(p.name for p in tmp_path.glob("*.wav"))
    assert len(names) == 2 and any(name.endswith("_new.wav") for name in names)
