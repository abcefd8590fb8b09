"""``stt-bench offline --long``: the recording's composition and the report (pure, no model or server)."""

from __future__ import annotations

import numpy as np
import pytest
from stt_server.bench.long_audio import compose_long
from stt_server.bench.long_offline import MethodResult, render_markdown, summarize, word_error_rate


def test_the_script_repeats_with_pauses_until_the_length_is_reached() -> None:
    clips = [np.ones(16_000, np.float32), np.ones(8_000, np.float32)]
    recording = compose_long(clips, ["one two", "three"], duration_sec=10.0, seed=1)
    assert recording.duration_sec >= 10.0
    assert recording.reference.startswith("one two three one two")
    spoken = int(np.count_nonzero(recording.samples))
    said = recording.reference.split()
    assert spoken == 16_000 * said.count("one") + 8_000 * said.count("three")
    with pytest.raises(ValueError, match="one text per clip"):
        compose_long(clips, ["only one"], duration_sec=5.0)


def test_the_report_compares_medians_and_wer_points() -> None:
    recording = compose_long([np.ones(16_000, np.float32)], ["hello world"], duration_sec=60.0)
    results = {"server": MethodResult("server", (4.0, 5.0, 6.0), 0.021),
               "sequential": MethodResult("sequential", (9.0, 10.0, 30.0), 0.020)}
    report = summarize(results, recording=recording, load_before=(1.0, 2.0, 3.0), load_after=(1.5, 2.0, 3.0))
    assert report["speedup_vs_sequential"] == 2.0
    assert report["wer_delta_points"] == pytest.approx(0.1)
    assert report["ok"] is True
    assert report["host"]["loadavg_before"] == [1.0, 2.0, 3.0] and report["host"]["cpu_count"]
    assert "**2.00x**" in render_markdown(report)
    slower = {**results, "server": MethodResult("server", (8.0,), 0.05)}
    assert summarize(slower, recording=recording, load_before=(0, 0, 0), load_after=(0, 0, 0))["ok"] is False


def test_wer_ignores_case_and_punctuation() -> None:
    assert word_error_rate("Hello, world.", "hello world") == 0.0
    assert word_error_rate("one two three four", "one two four") == 0.25
