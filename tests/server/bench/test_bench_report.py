"""The filled-in seed 002 report, Markdown and JSON, and the derived notes (pure)."""

from __future__ import annotations

import json

from stt_server.bench.notes import derive_notes
from stt_server.bench.report import LoadReport, ResourceDelta, Workload, render_json, render_markdown
from stt_server.bench.slo import ErrorTally, evaluate
from stt_server.bench.stats import summarize

SEED_FIELDS = (
    "Date:", "Environment:", "Server Version:", "Model:", "Config (key limits):", "Client Mix (realtime/batch):",
    "- Concurrent sessions:", "- Audio duration per session:", "- Input type:", "- Client pacing:", "- Duration:",
    "- CreateSession P50/P90/P99:", "- First partial P50/P90/P99:", "- Final result P50/P90/P99:",
    "- Error rate (by code):", "- CPU/RSS/threads delta:", "- Bottlenecks observed:", "- Mitigations:",
)


def _report(**overrides: object) -> LoadReport:
    create = summarize([0.004, 0.005, 0.006])
    first = summarize([0.8, 1.1, 1.4])
    final = summarize([0.9, 1.2, 6.0])
    errors = ErrorTally(attempts=40, by_status={"RESOURCE_EXHAUSTED": 2}, by_code={"ERR1011": 2})
    resources = ResourceDelta(cpu_seconds=110.0, rss_before_bytes=400 << 20, rss_after_bytes=420 << 20,
                              threads_before=20, threads_after=22, wall_seconds=60.0)
    fields: dict[str, object] = {
        "date": "2026-11-22T23:00:00Z", "environment": "linux x86_64, 2 CPUs", "server_version": "0.1.0",
        "model": "tiny.en (cpu, int8)", "config_limits": {"max_sessions": 32, "max_decode_pending": 16},
        "client_mix": "8 realtime streaming clients, 0 batch",
        "workload": Workload(8, 14.2, "speech", True, 60.0, 40, 120),
        "create_session": create, "first_partial": first, "final": final, "errors": errors, "missing_finals": 1,
        "resources": resources,
        "slo": evaluate(create_session=create, first_partial=first, final=final, errors=errors),
        "server_side": {"partial_drop_count": 12}, "label": "8 streams",
    }
    fields.update(overrides)
    return LoadReport(**fields)  # type: ignore[arg-type]


def test_markdown_fills_every_seed_field() -> None:
    text = render_markdown(_report())
    for seed_field in SEED_FIELDS:
        line = next((line for line in text.splitlines() if line.startswith(seed_field)), None)
        assert line is not None, seed_field
        assert line.removeprefix(seed_field).strip(), f"{seed_field} left empty"
    assert "- Concurrent sessions: 8" in text
    assert "- First partial P50/P90/P99: 1.10 / 1.34 / 1.39 s (max 1.40, n=3)" in text
    assert "1 utterance(s) got no final" in text
    assert "2 of 40 calls (5.00%); by code: ERR1011: 2" in text and "counted against the SLO: 0.00%" in text
    assert "RSS 400.0 MiB -> 420.0 MiB (+20.0 MiB); threads 20 -> 22 (+2)" in text
    assert "1.83 cores busy" in text


def test_markdown_slo_table_marks_met_and_missed() -> None:
    text = render_markdown(_report())
    assert "| CreateSession P99 | <= 0.3 s | 0.006 s | **met** |" in text
    assert "| Streaming final P99 (utterance end -> final) | <= 5 s | 5.904 s | **missed** |" in text
    assert "| <= 0.5% | 0.00% | **met** |" in text


def test_json_round_trips_the_figures() -> None:
    body = json.loads(render_json(_report()))
    assert body["workload"]["concurrent_sessions"] == 8
    assert body["results"]["final_sec"]["p99"] == body["slo"][2]["observed"]
    assert {r["name"]: r["verdict"] for r in body["slo"]} == {
        "create_session_p99": "met", "first_partial_p99": "met", "final_p99": "missed", "error_rate": "met"}
    assert body["results"]["errors"]["by_code"] == {"ERR1011": 2}
    assert body["results"]["resources"]["cpu_cores_busy"] == 110.0 / 60.0


def test_spurious_finals_are_reported() -> None:
    text = render_markdown(_report(spurious_finals=3))
    assert "; 3 final(s) with text over no planned speech" in text
    assert json.loads(render_json(_report(spurious_finals=3)))["results"]["spurious_finals"] == 3
    assert "over no planned speech" not in render_markdown(_report())


def test_report_without_control_plane_says_so() -> None:
    text = render_markdown(_report(resources=ResourceDelta()))
    assert "- CPU/RSS/threads delta: n/a (no --http control plane given)" in text


def test_notes_name_their_evidence() -> None:
    report = _report()
    bottlenecks, mitigations = derive_notes(
        slo=report.slo, resources=report.resources, server_side={"partial_drop_count": 12,
        "rate_limit_blocks": {"decode_queue": 3, "total_buffer": 0}}, cpu_count=2, missing_finals=1)
    joined = " | ".join(bottlenecks)
    assert "1.83 of 2 cores" in joined and "12 partial decodes" in joined and "decode_queue=3" in joined
    assert "total_buffer" not in joined and "1 utterance(s) got no final" in joined
    assert any("fewer --sessions" in m for m in mitigations)
    quiet, none = derive_notes(slo=[], resources=_report().resources.__class__(), server_side={}, cpu_count=2,
                               missing_finals=0)
    assert quiet == [] and none == []
