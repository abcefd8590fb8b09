"""`events.EventQueue`: Events are posted in the background, a few at a time; the queue is bounded."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from stt_operator.events import EventQueue

OWNER = {"apiVersion": "sttfleet.io/v1alpha1", "kind": "SttServer",
         "metadata": {"name": "a", "namespace": "ns", "uid": "u", "resourceVersion": "1"}}


class SlowApi:
    """Records each Event POST; each waits until released, so in-flight posts can be counted."""

    def __init__(self) -> None:
        self.posted: list[str] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self.release = asyncio.Event()

    async def create(self, path: str, obj: Mapping[str, Any]) -> dict[str, Any]:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        await self.release.wait()
        self.in_flight -= 1
        assert path == "/api/v1/namespaces/ns/events"
        self.posted.append(obj["message"])
        return dict(obj)


async def test_events_are_posted_in_the_background_at_most_two_at_a_time() -> None:
    api = SlowApi()
    queue = EventQueue(api, at_once=2)  # type: ignore[arg-type]
    for i in range(6):
        queue.post(OWNER, type_="Normal", reason="Created", message=f"m{i}")
    assert api.posted == []  # nothing is awaited by the caller
    await asyncio.sleep(0.01)
    assert api.in_flight == 2
    api.release.set()
    await asyncio.wait_for(queue.flush(), 5)
    assert sorted(api.posted) == [f"m{i}" for i in range(6)]
    assert api.most_in_flight == 2
    await queue.close()


async def test_past_its_limit_the_queue_drops_new_events_and_close_stops_the_workers() -> None:
    api = SlowApi()
    queue = EventQueue(api, at_once=1, limit=3)  # type: ignore[arg-type]
    for i in range(10):
        queue.post(OWNER, type_="Warning", reason="Degraded", message=f"m{i}")
    assert queue.dropped == 7  # three wait (the worker has not run yet), the rest are dropped
    await queue.close(timeout=0.05)  # the API never answers: close gives up after its timeout
    assert api.posted == [] and queue.dropped == 7


async def test_events_wait_while_the_reconciler_writes_children_but_not_for_ever() -> None:
    api = SlowApi()
    api.release.set()
    quiet = asyncio.Event()  # clear: a pass is writing children
    queue = EventQueue(api, quiet=quiet, quiet_wait_sec=30)  # type: ignore[arg-type]
    queue.post(OWNER, type_="Normal", reason="CreatedService", message="m0")
    await asyncio.sleep(0.05)
    assert api.posted == []
    quiet.set()
    await asyncio.wait_for(queue.flush(), 5)
    assert api.posted == ["m0"]
    await queue.close()

    busy = EventQueue(api, quiet=asyncio.Event(), quiet_wait_sec=0.05)  # type: ignore[arg-type]
    busy.post(OWNER, type_="Normal", reason="CreatedService", message="m1")
    await asyncio.wait_for(busy.flush(), 5)  # never quiet: posted once the wait runs out
    assert api.posted == ["m0", "m1"]
    await busy.close()
