"""``stt-bench capacity`` against a real server on the bundled tiny.en, with a tiny budget.

The search must run real load trials (latencies measured from real partials and finals), stop on
its own at ``max_streams`` or within the budget, and write the reports with seed 002's report.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from audio_fixtures import SENTENCES, synthesize
from grpc_harness import assert_no_leaks, make_config, running_server
from prometheus_client import CollectorRegistry
from rich.console import Console
from stt_server.bench.capacity import SearchSettings
from stt_server.bench.capacity_run import CapacityOptions, run_capacity, write_reports
from stt_server.bench.load import LoadOptions
from stt_server.bench.workload import compose, trim_silence
from stt_server.engine.backend import WhisperBackend
from stt_server.engine.engine import Engine
from stt_server.metrics import ServerMetrics

pytestmark = pytest.mark.slow


async def test_capacity_runs_real_trials_and_stops_on_its_own(whisper_backend: WhisperBackend,
                                                              tmp_path: Path) -> None:
    clip = compose([trim_silence(np.asarray(synthesize(SENTENCES[0])))], texts=[SENTENCES[0]],
                   lead_sec=0.3, tail_sec=1.0)
    engine = Engine(config=make_config(), metrics=ServerMetrics(CollectorRegistry()), backend=whisper_backend)
    async with running_server(engine=engine) as server:
        options = CapacityOptions(
            load=LoadOptions(server=server.target, sessions=1, duration_sec=0.1, realtime=True, label="tiny"),
            settings=SearchSettings(start=1, max_streams=2, repeats=1, budget_sec=90.0,
                                    first_trial_estimate_sec=10.0))
        result, report = await run_capacity(options, inputs=[clip], console=Console(file=io.StringIO()))
        await assert_no_leaks(server)
    assert [t.streams for t in result.trials] == [1, 2] or "time budget" in result.stopped
    assert all(t.first_partial_p99 is not None and t.final_p99 is not None for t in result.trials)
    assert result.trials[0].p99_ok, result.trials[0]  # one stream on tiny.en is far inside the SLO
    md, js = write_reports(result, report, server=server.target, out_dir=tmp_path, label="tiny")
    assert "## Trials" in md.read_text() and "### Load Test Report" in md.read_text()
    assert json.loads(js.read_text())["trials"][0]["streams"] == 1
