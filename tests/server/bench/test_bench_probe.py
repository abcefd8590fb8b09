"""``server_side_delta``: the decode-latency maximum of a run survives the server's 60 s window."""

from __future__ import annotations

from stt_server.bench.probe import server_side_delta


def _snapshot(*, count: int, latency_max: float | None) -> dict[str, object]:
    timing: dict[str, object] = {"count": count, "latency_total_sec": count * 0.5}
    if latency_max is not None:
        timing["latency_max_sec"] = latency_max
    return {"metrics": {"decode_timing": timing}}


def test_polled_peak_wins_over_the_windowed_value_at_the_end() -> None:
    # a 4 s decode early in a long run: gone from the server's window by the end, kept by the poller
    out = server_side_delta(_snapshot(count=0, latency_max=0.0), _snapshot(count=10, latency_max=0.7),
                            peaks={"decode_latency_max_sec": 4.0, "decode_pending": 3.0})
    assert out["decode_latency_max_sec"] == 4.0
    assert out["peak_decode_pending"] == 3.0 and "peak_decode_latency_max_sec" not in out


def test_without_polls_the_end_value_is_used() -> None:
    out = server_side_delta(_snapshot(count=0, latency_max=None), _snapshot(count=2, latency_max=1.5), peaks={})
    assert out["decode_latency_max_sec"] == 1.5
    assert server_side_delta(_snapshot(count=0, latency_max=None), _snapshot(count=0, latency_max=None),
                             peaks={})["decode_latency_max_sec"] is None
