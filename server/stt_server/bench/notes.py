"""Bottleneck and mitigation notes derived from a run's figures (pure heuristics, stated plainly)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stt_server.bench.report import ResourceDelta
from stt_server.bench.slo import SloResult


def derive_notes(
    *, slo: list[SloResult], resources: ResourceDelta, server_side: Mapping[str, Any], cpu_count: int | None,
    missing_finals: int,
) -> tuple[list[str], list[str]]:
    """``(bottlenecks, mitigations)``: each note names the figure it rests on."""
    bottlenecks: list[str] = []
    mitigations: list[str] = []
    missed = {r.name for r in slo if r.verdict == "missed"}
    cores = resources.cpu_cores_busy
    if cores is not None and cpu_count and cores >= 0.85 * cpu_count:
        bottlenecks.append(f"server CPU saturated ({cores:.2f} of {cpu_count} cores busy on average)")
        mitigations.append("fewer streams per replica (lower limits.max_sessions) or more replicas / a GPU")
    drops = server_side.get("partial_drop_count", 0)
    if drops:
        bottlenecks.append(f"decode queue shed {drops} partial decodes (metrics.partial_drop_count)")
        mitigations.append("partials were dropped before finals, as designed; raise partial_interval_sec to "
                           "ask for fewer")
    blocks = server_side.get("rate_limit_blocks", {})
    if isinstance(blocks, Mapping) and any(blocks.values()):
        shed = ", ".join(f"{k}={v}" for k, v in blocks.items() if v)
        bottlenecks.append(f"limits refused requests ({shed})")
    if server_side.get("session_limit_rejects"):
        bottlenecks.append(f"max_sessions refused {server_side['session_limit_rejects']} sessions (ERR1011)")
    if "final_p99" in missed or "first_partial_p99" in missed:
        mitigations.append("latency SLO missed at this load: run again with fewer --sessions to find the "
                           "largest load that holds it")
    if missing_finals:
        bottlenecks.append(f"{missing_finals} utterance(s) got no final before the stream ended")
    return bottlenecks, mitigations
