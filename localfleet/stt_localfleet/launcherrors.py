"""Why a container cannot start: the kubelet's waiting reasons, as one exception type.

Planning a container (image, env, volumes) raises `LaunchError(reason, message)`; the pod worker
shows it as the container's `state.waiting` and posts a Warning Event, then retries.
"""

from __future__ import annotations

from typing import Final

CONFIG_ERROR: Final = "CreateContainerConfigError"
IMAGE_NOT_LOCAL: Final = "ImageNotLocal"
CONTAINER_CREATING: Final = "ContainerCreating"
RUN_CONTAINER_ERROR: Final = "RunContainerError"


class LaunchError(Exception):
    """The container cannot start; `reason` is the kubelet's waiting reason, `message` says why."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message
