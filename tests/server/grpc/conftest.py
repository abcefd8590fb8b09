"""Fixtures for the gRPC tests; the helpers live in grpc_harness.py."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import pytest
from grpc_harness import RunningServer, running_server


@pytest.fixture
def server_factory() -> Callable[..., contextlib.AbstractAsyncContextManager[RunningServer]]:
    return running_server
