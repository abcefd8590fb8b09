"""One poll of ``/metrics.json`` + ``/system``, and its flat form for CSV files and plots."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import aiohttp

from stt_server.tools.http_fetch import fetch_json


async def take_snapshot(
    session: aiohttp.ClientSession, *, metrics_url: str, system_url: str, token: str | None
) -> dict[str, Any]:
    """``{"ts": <unix seconds>, "metrics": <metrics.json body>, "system": <system body>}``."""
    metrics = await fetch_json(session, metrics_url, token=token)
    system = await fetch_json(session, system_url, token=token)
    return {"ts": time.time(), "metrics": metrics, "system": system}


def flatten(data: Mapping[str, Any], *, prefix: str = "") -> dict[str, float | str | None]:
    """Nested dicts to dotted keys (``metrics.metrics.decode_pending``); lists are skipped.

    Per-stream and per-key maps are included too, so a CSV can grow columns between runs; plots
    pick their series by name.
    """
    flat: dict[str, float | str | None] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, prefix=f"{name}."))
        elif isinstance(value, bool):
            flat[name] = float(value)
        elif isinstance(value, int | float | str) or value is None:
            flat[name] = value
    return flat
