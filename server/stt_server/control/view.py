"""What the control plane needs to know about the running server, and nothing more.

``SttServerApp`` implements ``ServerView``; tests pass a small fake. Keeping the control plane on
this narrow protocol lets it be built and tested without the engine or the gRPC server.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class HealthReport:
    """One snapshot of the server's health; ``reasons`` are readable and empty when healthy."""

    grpc_running: bool
    model_loaded: bool
    workers_healthy: bool
    loading: bool
    draining: bool
    reasons: tuple[str, ...] = ()

    @property
    def healthy(self) -> bool:
        return self.grpc_running and self.model_loaded and self.workers_healthy

    @property
    def ready(self) -> bool:
        return self.healthy and not self.loading and not self.draining


class ServerView(Protocol):
    """The running server as the control plane sees it."""

    started_at: float  # time.time() at start

    def health(self) -> HealthReport: ...

    def info(self) -> dict[str, Any]:
        """version, model, device, compute_type, limits, uptime_sec."""
        ...

    def metrics_json_extra(self) -> dict[str, Any]:
        """Extra ``/metrics.json`` figures, e.g. ``{"api_key_sessions": {"<hashed id>": n}}``."""
        ...
