"""The REST tests reuse the gRPC harness (a real SttServerApp on loopback), so its folder goes on sys.path."""

from __future__ import annotations

import sys
from pathlib import Path

_GRPC_TESTS = str(Path(__file__).resolve().parents[1] / "grpc")
if _GRPC_TESTS not in sys.path:
    sys.path.insert(0, _GRPC_TESTS)
