"""Whether the server accepts new work: loading, ready, draining."""

from __future__ import annotations

import asyncio

from stt_server.errors import ErrorCode, SttError


class ServingState:
    """Shared by the app (which changes it) and the servicer and health checks (which read it)."""

    def __init__(self) -> None:
        self.loading = True
        self.draining = False
        self.load_error: str | None = None
        self.ready = asyncio.Event()

    def mark_loaded(self) -> None:
        self.loading = False
        if not self.draining:
            self.ready.set()

    def mark_failed(self, reason: str) -> None:
        self.loading = False
        self.load_error = reason
        self.ready.clear()

    def mark_draining(self) -> None:
        self.draining = True
        self.ready.clear()

    def check_accepting(self) -> None:
        """Raise ERR1020 while draining, ERR1021 while loading or after a failed load."""
        if self.draining:
            raise SttError(ErrorCode.DRAINING)
        if self.load_error is not None:
            raise SttError(ErrorCode.NOT_READY, reason=f"model failed to load: {self.load_error}")
        if self.loading:
            raise SttError(ErrorCode.NOT_READY, reason="model is loading")
