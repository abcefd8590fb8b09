"""Percentiles, summaries and SLO verdicts (pure)."""

from __future__ import annotations

import random

import numpy as np
import pytest
from stt_server.bench.slo import ERROR_RATE, FINAL_P99, ErrorTally, evaluate, judge
from stt_server.bench.stats import percentile, summarize


def test_percentile_matches_numpy_linear() -> None:
    rng = random.Random(7)
    values = [rng.uniform(0, 5) for _ in range(137)]
    for q in (0, 1, 50, 90, 99, 100):
        assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))


def test_percentile_small_samples() -> None:
    assert percentile([3.0], 99) == 3.0
    assert percentile([1.0, 2.0], 50) == 1.5
    assert percentile([4.0, 1.0, 3.0, 2.0], 100) == 4.0
    with pytest.raises(ValueError, match="empty"):
        percentile([], 50)
    with pytest.raises(ValueError, match="outside"):
        percentile([1.0], 101)


def test_summary_and_its_text() -> None:
    summary = summarize([0.1, 0.2, 0.3, 0.4, 1.0])
    assert (summary.count, summary.p50, summary.max) == (5, 0.3, 1.0)
    assert summary.triple() == "0.30 / 0.76 / 0.98 s (max 1.00, n=5)"
    assert summarize([0.004, 0.006]).triple(unit_ms=True) == "5.0 / 5.8 / 6.0 ms (max 6.0, n=2)"
    empty = summarize([])
    assert empty.count == 0 and empty.p99 is None and empty.triple() == "no data"


def test_judge_met_missed_and_no_data() -> None:
    assert judge(FINAL_P99, 4.99).verdict == "met"
    assert judge(FINAL_P99, 5.0).verdict == "met"  # "<=" in the seed
    assert judge(FINAL_P99, 5.01).verdict == "missed"
    assert judge(FINAL_P99, None).verdict == "no data"


def test_error_rate_excludes_shedding_statuses() -> None:
    tally = ErrorTally(attempts=200, by_status={"RESOURCE_EXHAUSTED": 10, "INTERNAL": 1},
                       by_code={"ERR1011": 10, "ERR1099": 1})
    assert tally.failures == 11 and tally.rate == pytest.approx(0.055)
    assert tally.availability_rate == pytest.approx(0.005)
    assert judge(ERROR_RATE, tally.availability_rate).verdict == "met"
    worse = ErrorTally(attempts=200, by_status={"INTERNAL": 2}, by_code={"ERR1099": 2})
    assert judge(ERROR_RATE, worse.availability_rate).verdict == "missed"


def test_evaluate_names_every_seed_target() -> None:
    results = evaluate(create_session=summarize([0.01, 0.4]), first_partial=summarize([1.0]),
                       final=summarize([]), errors=ErrorTally(attempts=0, by_status={}, by_code={}))
    verdicts = {r.name: r.verdict for r in results}
    assert verdicts == {"create_session_p99": "missed", "first_partial_p99": "met", "final_p99": "no data",
                        "error_rate": "no data"}
    assert [r.target for r in results] == [0.3, 2.5, 5.0, 0.005]
