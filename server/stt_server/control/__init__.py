"""The HTTP control plane: metrics, health, info and system figures on one aiohttp app."""

from stt_server.control.server import ControlPlane
from stt_server.control.view import HealthReport, ServerView

__all__ = ["ControlPlane", "HealthReport", "ServerView"]
