"""Matching results to planned utterances and audio-clock latencies (pure)."""

from __future__ import annotations

import pytest
from stt_server.bench.latency import Received, SendLog, Utterance, assign, match_utterances


def _sends(*, chunk_sec: float = 0.1, total_sec: float = 10.0, t0: float = 100.0) -> SendLog:
    """A real-time sender: the chunk ending at audio time t leaves at wall time t0 + t."""
    log = SendLog()
    n = round(total_sec / chunk_sec)
    for i in range(1, n + 1):
        log.record(audio_end_sec=i * chunk_sec, wall_sec=t0 + i * chunk_sec)
    return log


PLAN = [Utterance(0, 1.0, 3.0, "hello there"), Utterance(1, 5.0, 7.5, "general kenobi")]


def test_sent_at_finds_the_chunk_holding_the_sample() -> None:
    log = _sends()
    assert log.sent_at(1.0) == pytest.approx(101.0)
    assert log.sent_at(1.05) == pytest.approx(101.1)
    assert log.sent_at(10.5) is None


def test_assign_by_overlap_and_tolerance() -> None:
    assert assign(Received(0, False, 1.2, 2.0), PLAN) == PLAN[0]
    assert assign(Received(0, True, 4.7, 7.9), PLAN) == PLAN[1]  # VAD padding outside the plan
    assert assign(Received(0, True, 3.2, 3.3), PLAN) == PLAN[0]
    assert assign(Received(0, True, 3.9, 4.2), PLAN) is None  # silence between utterances


def test_latencies_on_the_audio_clock() -> None:
    received = [
        Received(101.9, False, 1.0, 1.8, "hello"),
        Received(102.5, False, 1.0, 2.4, "hello there"),
        Received(103.6, True, 1.0, 3.0, "hello there"),
        Received(105.8, False, 5.0, 5.6, "general"),
        Received(108.0, True, 5.0, 6.2, "general"),      # the server split the utterance ...
        Received(108.4, True, 6.2, 7.5, "kenobi"),       # ... its last final counts
    ]
    got = match_utterances(PLAN, received, sends=_sends())
    assert [g.utterance.index for g in got] == [0, 1]
    assert got[0].first_partial_sec == pytest.approx(0.9)   # speech start 1.0 s sent at 101.0
    assert got[0].final_sec == pytest.approx(0.6)           # end 3.0 s sent at 103.0
    assert got[0].final_text == "hello there"
    assert got[1].first_partial_sec == pytest.approx(0.8)
    assert got[1].final_sec == pytest.approx(0.9)
    assert got[1].final_text == "general kenobi"


def test_missing_results_and_unsent_utterances() -> None:
    got = match_utterances(PLAN, [Received(101.5, True, 1.0, 3.0, "hi")], sends=_sends(total_sec=6.0))
    # The second utterance never finished sending: no record for it.
    assert len(got) == 1
    assert got[0].first_partial_sec == pytest.approx(0.5) and got[0].final_sec == pytest.approx(-1.5)
    silent = match_utterances(PLAN, [], sends=_sends())
    assert [(g.first_partial_sec, g.final_sec) for g in silent] == [(None, None), (None, None)]
