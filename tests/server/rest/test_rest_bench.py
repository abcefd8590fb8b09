"""``stt-bench rest`` against a real server (fake engine): both protocols measured, figures rendered."""

from __future__ import annotations

from typing import Any

import numpy as np
from rest_harness import rest_server
from stt_server.bench import rest
from stt_server.client import WavAudio


async def test_measure_interleaves_both_protocols_and_counts_every_request() -> None:
    audio = WavAudio(pcm=(np.sin(np.arange(16_000) / 8) * 3000).astype("<i2").tobytes(), sample_rate_hz=16_000)
    async with rest_server() as api:
        figures = await rest.measure(grpc_target=api.server.target,
                                     rest_url=api.base_url, clients=3, rounds=2, audio=audio)
        assert {p: f.requests for p, f in figures.items()} == {"grpc": 6, "rest": 6}
        assert figures["grpc"].transcript == figures["rest"].transcript == "fake 16000 samples"
        assert api.sample("stt_grpc_requests_total", {"method": "Recognize", "protocol": "rest",
                                                      "grpc_status": "OK"}) == 7  # 6 + the warm-up
    result: dict[str, Any] = {"clients": 3, "rounds": 2, "audio_sec": 1.0, "machine_before": rest.machine(),
              "machine_after": rest.machine(), "protocols": [f.to_dict() for f in figures.values()],
              "same_transcript": True}
    markdown = rest.render_markdown(result)
    assert "| grpc | 6 |" in markdown and "| rest | 6 |" in markdown and "load average" in markdown
    assert len(result["machine_before"]["loadavg"]) == 3
