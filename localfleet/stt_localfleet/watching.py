"""Watch streams: `GET ...?watch=true[&resourceVersion=N][&timeoutSeconds=T]` as JSON lines.

Without a resourceVersion (or with "0") the stream starts with an ADDED event per existing object;
with one, it replays every later change from the store's history, or answers a 410 Expired ERROR
event when that history no longer reaches back so far (the client must re-list, as with etcd
compaction). Label/field selectors are applied to both the old and the new state, so an object
that stops matching is seen as DELETED and one that starts matching as ADDED. The stream ends
after timeoutSeconds, as the real server does, and the client reconnects.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from typing import Any, Final

import aiohttp.web

from stt_localfleet import errors
from stt_localfleet.routing import Target
from stt_localfleet.selectors import SelectorError, field_predicate, label_predicate
from stt_localfleet.store import Change, Store

DEFAULT_TIMEOUT_SEC: Final = 1800.0


def _expired(since: int, oldest: int) -> dict[str, Any]:
    return {"type": "ERROR", "object": {
        "apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Failure", "code": 410,
        "reason": "Expired", "message": f"too old resource version: {since} ({oldest - 1})"}}


async def stream(store: Store, target: Target, raw: aiohttp.web.BaseRequest,
                 params: Mapping[str, str]) -> aiohttp.web.StreamResponse:
    try:
        labels = label_predicate(params.get("labelSelector"))
        fields = field_predicate(params.get("fieldSelector"))
    except SelectorError as exc:
        raise errors.bad_request(str(exc)) from None
    by_name = field_predicate(f"metadata.name={target.name}" if target.name else None)

    def matches(obj: Mapping[str, Any] | None) -> bool:
        return obj is not None and labels(obj) and fields(obj) and by_name(obj)

    def to_event(change: Change) -> dict[str, Any] | None:
        if change.rtype.key != target.rtype.key:
            return None
        namespace = (change.obj.get("metadata") or {}).get("namespace")
        if target.namespace is not None and namespace != target.namespace:
            return None
        now, before = matches(change.obj), matches(change.old)
        kind = change.type
        if change.type == "MODIFIED":
            kind = "MODIFIED" if now and before else "ADDED" if now else "DELETED" if before else ""
        elif not now:
            kind = ""
        return {"type": kind, "object": change.obj} if kind else None

    timeout = float(params.get("timeoutSeconds") or DEFAULT_TIMEOUT_SEC)
    since_raw = params.get("resourceVersion") or "0"
    queue: asyncio.Queue[Change] = asyncio.Queue()
    # Registering and snapshotting happen with no await in between: nothing can slip through.
    store.listeners.add(queue.put_nowait)
    initial: list[dict[str, Any]] = []
    last_rv = store.rv
    if since_raw == "0":
        initial = [{"type": "ADDED", "object": o} for o in store.list(target.rtype, target.namespace)
                   if matches(o)]
    elif not since_raw.isdigit():
        store.listeners.discard(queue.put_nowait)
        raise errors.bad_request(f"invalid resourceVersion {since_raw!r}")
    elif int(since_raw) + 1 < store.oldest_rv() and int(since_raw) < store.rv:
        initial = [_expired(int(since_raw), store.oldest_rv())]
    else:
        initial = [e for c in store.history if c.rv > int(since_raw) for e in [to_event(c)] if e]

    response = aiohttp.web.StreamResponse(headers={"Content-Type": "application/json"})
    deadline = time.monotonic() + timeout
    try:
        await response.prepare(raw)
        for event in initial:
            await response.write(json.dumps(event).encode() + b"\n")
        if initial and initial[0]["type"] == "ERROR":
            return response
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                async with asyncio.timeout(remaining):
                    change = await queue.get()
            except TimeoutError:
                break
            if change.rv <= last_rv:
                continue
            live = to_event(change)
            if live is not None:
                await response.write(json.dumps(live).encode() + b"\n")
    except (ConnectionResetError, ConnectionError):
        pass  # the client went away; nothing to tell it
    finally:
        store.listeners.discard(queue.put_nowait)
    try:
        await response.write_eof()
    except (ConnectionResetError, ConnectionError):
        pass
    return response
