"""CapacitySearch and search_capacity against a fake runner: no server, no model."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest
from audio_fixtures import SENTENCES, silence, synthesize
from stt_server.bench.capacity import (
    CapacityResult,
    CapacitySearch,
    SearchSettings,
    Trial,
    recommend,
    trials_table,
)
from stt_server.bench.capacity_run import search_capacity
from stt_server.bench.workload import load_files


def trial(streams: int, *, p99_limit: int, worst_limit: int, seconds: float = 40.0) -> Trial:
    """A server that holds the P99s up to ``p99_limit`` streams and every latency up to ``worst_limit``."""
    p99 = 1.0 if streams <= p99_limit else 3.0
    worst = 2.0 if streams <= worst_limit else 4.0
    return Trial(streams=streams, slo_met=streams <= p99_limit, refused=0, first_partial_p99=p99,
                 first_partial_max=max(p99, worst), final_p99=1.0, final_max=1.5, wall_seconds=seconds)


class FakeRunner:
    """Runs 'trials' instantly but advances a fake clock by each trial's length."""

    def __init__(self, *, p99_limit: int, worst_limit: int, seconds: float = 40.0,
                 flaky: dict[int, int] | None = None) -> None:
        self.p99_limit, self.worst_limit, self.seconds = p99_limit, worst_limit, seconds
        self.flaky = dict(flaky or {})  # streams -> the run (1-based) at that N that misses the SLO
        self.now = 0.0
        self.ran: list[int] = []

    def clock(self) -> float:
        return self.now

    async def __call__(self, streams: int) -> Trial:
        self.ran.append(streams)
        self.now += self.seconds
        if self.flaky.get(streams) == self.ran.count(streams):
            return trial(streams, p99_limit=0, worst_limit=0, seconds=self.seconds)
        return trial(streams, p99_limit=self.p99_limit, worst_limit=self.worst_limit, seconds=self.seconds)


async def run(runner: FakeRunner, **settings: object) -> CapacityResult:
    search = CapacitySearch(SearchSettings(**{"budget_sec": 10_000.0, **settings}))  # type: ignore[arg-type]
    return await search_capacity(search, runner, clock=runner.clock)


async def test_doubles_then_bisects_both_boundaries_then_repeats_them() -> None:
    runner = FakeRunner(p99_limit=27, worst_limit=21)
    result = await run(runner, start=4, repeats=2)
    assert runner.ran[:5] == [4, 8, 16, 32, 24]  # doubling until the P99 fails, then bisecting
    assert result.p99_streams == 27 and result.worst_streams == 21
    assert result.p99_confirmed and result.worst_confirmed
    assert runner.ran.count(27) == 2 and runner.ran.count(21) == 2 and 28 in runner.ran and 22 in runner.ran
    assert result.stopped == "boundaries found and repeated"
    assert result.recommendation is not None and result.recommendation.max_sessions == 27
    assert result.recommendation.target_active_sessions_per_replica == 20


async def test_a_failed_repeat_moves_the_boundary_down_and_the_search_goes_on() -> None:
    runner = FakeRunner(p99_limit=12, worst_limit=12, flaky={12: 2})  # 12's second run misses
    result = await run(runner, start=4, repeats=2)
    assert result.p99_streams == 11 and result.p99_confirmed
    assert runner.ran.count(11) == 2


async def test_stops_within_the_budget_and_says_why() -> None:
    runner = FakeRunner(p99_limit=100, worst_limit=50, seconds=60.0)
    result = await run(runner, start=2, budget_sec=300.0)
    assert runner.now <= 300.0 and len(runner.ran) == 5  # a sixth trial would end at 360 s
    assert "time budget" in result.stopped
    assert result.p99_streams == 32 and not result.p99_confirmed


async def test_nothing_holds() -> None:
    runner = FakeRunner(p99_limit=0, worst_limit=0)
    result = await run(runner, start=4)
    assert runner.ran == [4, 2, 1]
    assert result.p99_streams is None and result.recommendation is None


async def test_max_streams_holding_ends_the_search_with_a_note() -> None:
    runner = FakeRunner(p99_limit=1000, worst_limit=1000)
    result = await run(runner, start=8, max_streams=40, repeats=2)
    assert runner.ran == [8, 16, 32, 40, 40]
    assert result.at_max and result.p99_streams == 40


def test_refused_streams_or_missing_finals_fail_a_trial_even_with_good_latencies() -> None:
    good = trial(8, p99_limit=8, worst_limit=8)
    assert good.p99_ok and good.worst_ok
    assert not Trial(**{**good.__dict__, "refused": 3}).p99_ok  # the server shed load: not capacity
    assert not Trial(**{**good.__dict__, "missing_finals": 1}).worst_ok


def test_recommendation_keeps_headroom_and_the_worst_case() -> None:
    rec = recommend(p99_streams=32, worst_streams=28)
    assert rec is not None and (rec.max_sessions, rec.target_active_sessions_per_replica) == (32, 24)
    rec = recommend(p99_streams=32, worst_streams=10)
    assert rec is not None and rec.target_active_sessions_per_replica == 10
    assert recommend(p99_streams=1, worst_streams=None) is not None


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        SearchSettings(start=0)
    with pytest.raises(ValueError):
        SearchSettings(start=10, max_streams=5)


def test_trials_table_has_one_row_per_trial() -> None:
    rows = trials_table([trial(4, p99_limit=8, worst_limit=2), trial(16, p99_limit=8, worst_limit=2)])
    assert len(rows) == 4 and "| 1 | 4 |" in rows[2] and "| met | missed |" in rows[2] and "missed | missed" in rows[3]


def _wav(path: Path, samples: np.ndarray, *, rate: int = 16_000) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return path


def test_audio_files_become_clips_with_their_speech_located(tmp_path: Path) -> None:
    speech = np.asarray(synthesize(SENTENCES[0]), dtype=np.float32)
    samples = np.concatenate([silence(1.0), speech, silence(1.5), speech, silence(1.0)])
    (clip,) = load_files([str(_wav(tmp_path / "two.wav", samples))])
    assert len(clip.plan) == 2
    first_start, second_start = 1.0, 1.0 + speech.size / 16_000 + 1.5
    assert abs(clip.plan[0].start_sec - first_start) < 0.35 and abs(clip.plan[1].start_sec - second_start) < 0.35
    assert clip.duration_sec == pytest.approx(samples.size / 16_000, abs=0.01)


def test_an_audio_file_without_speech_or_not_a_wav_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="no speech found"):
        load_files([str(_wav(tmp_path / "quiet.wav", silence(3.0)))])
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(RuntimeError, match="notes.txt"):
        load_files([str(tmp_path / "notes.txt")])
