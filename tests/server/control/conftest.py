"""Fixtures for the control-plane tests (defined in ``control_harness``)."""

from control_harness import start_plane

__all__ = ["start_plane"]
