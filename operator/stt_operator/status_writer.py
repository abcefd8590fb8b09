"""The one writer of an SttServer's `.status`: read, recompute, PATCH with a precondition, retry on 409.

Two parts of the operator write status: the reconciler (Ready, Progressing, Degraded, the replica
numbers, endpoints) and the autoscaler daemon (ScalingActive and `status.autoscaling`). Both share
the `conditions` list, and a JSON merge patch replaces a list whole, so each write carries the
resourceVersion it was computed from. On a 409 the object is read again and the caller's pure
`update` runs again on the fresh status: a write never rests on a stale copy, so neither writer
drops the other's conditions. A pass whose patch would change nothing writes nothing (the steady
state costs no API writes, like the HPA's updateStatusIfNeeded).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol

from stt_operator.autoscaling.kubeapi import ApiError, resource_path
from stt_operator.crd import GROUP, PLURAL, VERSION

ATTEMPTS: Final = 3

StatusUpdate = Callable[[Mapping[str, Any]], Mapping[str, Any]]
"""current `.status` -> the fields to write (a merge patch of `.status`; None deletes a key)."""


class StatusClient(Protocol):
    """The two calls the writer needs (KubeApi has them; tests pass a fake)."""

    async def get_or_none(self, path: str) -> dict[str, Any] | None: ...

    async def merge_patch(self, path: str, patch: Mapping[str, Any]) -> dict[str, Any]: ...


@dataclass(frozen=True)
class StatusWrite:
    """A write that happened: the status it was computed from, the status after it, the object read."""

    before: Mapping[str, Any]
    after: Mapping[str, Any]
    body: Mapping[str, Any]


def apply_merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: what the API server stores after merge-patching `target` with `patch`."""
    if not isinstance(patch, Mapping):
        return patch
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = apply_merge_patch(result.get(key), value)
    return result


def _object_path(body: Mapping[str, Any]) -> str:
    meta = body["metadata"]
    return resource_path(f"{GROUP}/{VERSION}", PLURAL, namespace=meta.get("namespace") or "default",
                         name=meta["name"])


async def write_status(api: StatusClient, body: Mapping[str, Any], update: StatusUpdate, *,
                       attempts: int = ATTEMPTS) -> StatusWrite | None:
    """Write `update(current status)` to `body`'s status when it changes anything.

    `body` is the object as the caller last read it; its resourceVersion is the precondition of the
    first attempt. On a 409 the object is read afresh and `update` recomputed from it, at most
    `attempts` times in all, then the 409 is raised. Returns None when nothing needed writing or
    the object is gone.
    """
    path = _object_path(body)
    for attempt in range(attempts):
        before: Mapping[str, Any] = body.get("status") or {}
        patch = update(before)
        after = apply_merge_patch(before, patch)
        if after == before:
            return None
        try:
            await api.merge_patch(f"{path}/status", {
                "metadata": {"resourceVersion": body["metadata"]["resourceVersion"]}, "status": dict(patch)})
            return StatusWrite(before=before, after=after, body=body)
        except ApiError as exc:
            if exc.status != 409 or attempt == attempts - 1:
                raise
        fresh = await api.get_or_none(path)
        if fresh is None:
            return None
        body = fresh
    return None
