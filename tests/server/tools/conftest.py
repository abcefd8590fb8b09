"""Fixtures for the tools' tests (defined in ``tools_harness``)."""

from tools_harness import leaky_app, start_plane

__all__ = ["leaky_app", "start_plane"]
