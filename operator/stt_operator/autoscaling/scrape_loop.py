"""One scrape loop for every SttServer the operator serves, instead of one polling loop each.

The kopf daemon of each SttServer (`timer.py`) registers its object here and waits; the loop keeps
each object's next due time (its own `scrapeIntervalSeconds`), sleeps until the earliest, lists the
server pods of each namespace with a due object once, and starts `autoscale_once` for each due
object with its share of those pods.

A pass that can learn nothing is skipped: with no pod Ready there is no metric to read (the
decision can only repeat "no metrics"), so once such a pass has written its status, later passes
are skipped until the pods (their names, phases, readiness, deletion), the spec generation or the
Deployment's replica count in the pods' number change. Fifty SttServers whose pods are all Pending
then cost one pod LIST per namespace per interval, and nothing else.

Objects due within `BATCH_SEC` of each other run in the same round (a pass may come that much
early), so objects created together keep sharing their rounds and LISTs instead of each listing
the namespace's pods at its own moment.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import aiohttp

from stt_operator.autoscaling.behavior import History
from stt_operator.autoscaling.decision import Decision
from stt_operator.autoscaling.kubeapi import ApiError, KubeApi, matches_labels, resource_path
from stt_operator.autoscaling.scraper import pod_is_ready, slim_pod
from stt_operator.builders.labels import APP_NAME, selector_labels
from stt_operator.spec import SpecError, SttServerSpec, parse_spec

log = logging.getLogger("stt_operator.autoscaling")
DEFAULT_INTERVAL_SEC: Final = 15.0
BATCH_SEC: Final = 1.0  # at most a quarter of an object's interval
CONCURRENCY: Final = 16  # passes in flight at once: one slow pod or API call never holds the others back
SERVER_PODS: Final = {"app.kubernetes.io/name": APP_NAME}
TRANSIENT: Final = (ApiError, aiohttp.ClientError, OSError, ValueError)

Key = tuple[str, str]
PostEvent = Callable[[str, str, str], Awaitable[None]]
PodsFingerprint = tuple[object, ...]


class AutoscalePass(Protocol):
    """`timer.autoscale_once`, as the loop calls it (tests pass a recorder)."""

    def __call__(self, api: KubeApi, body: Mapping[str, Any], *, state: Any, spec: SttServerSpec,
                 post_event: PostEvent, pods: Sequence[Mapping[str, Any]]) -> Awaitable[Decision | None]: ...


@dataclass(eq=False)
class Entry:
    """One registered SttServer: kopf's live body, its autoscaler state, when it is next due."""

    body: Mapping[str, Any]
    state: Any  # timer.AutoscalerState (kept opaque here: timer.py imports this module)
    post_event: PostEvent
    due: float = 0.0
    idle_fingerprint: PodsFingerprint | None = None  # the pods of the last pass that found none Ready
    running: asyncio.Task[None] | None = field(default=None, repr=False)
    last_error: str | None = None
    parsed: tuple[object, SttServerSpec] | None = None  # (resourceVersion, spec): parsing costs ~1.5 ms


def pods_fingerprint(spec: SttServerSpec, generation: object, pods: Iterable[Mapping[str, Any]]) -> PodsFingerprint:
    """What a pass without a Ready pod depends on: the spec generation and each pod's name and state."""
    return (generation, *sorted(
        (str((p.get("metadata") or {}).get("name")), str((p.get("status") or {}).get("phase")),
         pod_is_ready(p), bool((p.get("metadata") or {}).get("deletionTimestamp")))
        for p in pods))


class ScrapeLoop:
    """The shared loop: `register` an SttServer, `unregister` it when it goes; `run` until none is left."""

    def __init__(self, api: KubeApi, *, autoscale: AutoscalePass,
                 clock: Callable[[], float] = time.monotonic, concurrency: int = CONCURRENCY) -> None:
        self.api = api
        self.entries: dict[Key, Entry] = {}
        self._autoscale = autoscale
        self._clock = clock
        self._slots = asyncio.Semaphore(concurrency)
        self._wake = asyncio.Event()
        self.closed = False

    def register(self, body: Mapping[str, Any], *, state: Any, post_event: PostEvent, first_delay: float = 0.0) -> Key:
        """Add an SttServer; its first pass is due after `first_delay` seconds."""
        meta = body["metadata"]
        key = (str(meta.get("namespace") or "default"), str(meta["name"]))
        self.entries[key] = Entry(body=body, state=state, post_event=post_event, due=self._clock() + first_delay)
        self._wake.set()
        return key

    async def unregister(self, key: Key) -> None:
        entry = self.entries.pop(key, None)
        self._wake.set()  # the loop ends when the last one goes
        if entry is not None and entry.running is not None and not entry.running.done():
            entry.running.cancel()
            await asyncio.gather(entry.running, return_exceptions=True)

    async def run(self) -> None:
        """Run rounds until no SttServer is registered (the last one's daemon stopped); then `closed`."""
        while self.entries:
            now = self._clock()
            pending = [e.due for e in self.entries.values() if e.running is None or e.running.done()]
            wait = max(0.0, min(pending) - now) if pending else DEFAULT_INTERVAL_SEC
            self._wake.clear()
            if wait > 0:
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=wait)
                except TimeoutError:
                    pass
                continue
            await self.start_due(now)
            await asyncio.sleep(0)  # let the passes just started run before the next due check
        self.closed = True  # no await since `entries` was found empty: no registration is lost
        running = [e.running for e in self.entries.values() if e.running is not None]
        await asyncio.gather(*running, return_exceptions=True)

    async def start_due(self, now: float) -> list[asyncio.Task[None]]:
        """One round: list pods once per namespace with a due SttServer, start each due pass."""
        due: dict[Key, tuple[Entry, SttServerSpec]] = {}
        for key, entry in self.entries.items():
            if entry.running is not None and not entry.running.done():
                continue
            if entry.due > now + min(BATCH_SEC, self._interval(entry) / 4):
                continue
            spec = self._parse(entry, now)
            if spec is not None:
                due[key] = (entry, spec)
        pods_by_namespace: dict[str, list[dict[str, Any]] | BaseException] = {}
        for namespace in sorted({key[0] for key in due}):
            try:
                pods_by_namespace[namespace] = await self.api.list(resource_path("v1", "pods", namespace=namespace),
                                                                   labels=SERVER_PODS, keep=slim_pod)
            except asyncio.CancelledError:
                raise
            except TRANSIENT as exc:
                pods_by_namespace[namespace] = exc
        started = []
        for key, (entry, spec) in due.items():
            interval = spec.autoscaling.scrape_interval_seconds
            entry.due = now + interval
            listed = pods_by_namespace[key[0]]
            if isinstance(listed, BaseException):
                await self._report(entry, listed)
                continue
            pods = [p for p in listed if matches_labels(p, selector_labels(spec))]
            fingerprint = None if any(pod_is_ready(p) for p in pods) else \
                pods_fingerprint(spec, entry.body["metadata"].get("generation"), pods)
            if fingerprint is not None and fingerprint == entry.idle_fingerprint:
                continue  # no pod Ready and nothing changed since the pass that said so
            entry.running = asyncio.create_task(self._pass(entry, spec, pods, fingerprint))
            started.append(entry.running)
        return started

    @staticmethod
    def _interval(entry: Entry) -> float:
        return entry.parsed[1].autoscaling.scrape_interval_seconds if entry.parsed else DEFAULT_INTERVAL_SEC

    def _parse(self, entry: Entry, now: float) -> SttServerSpec | None:
        """The spec when autoscaling is on; otherwise schedule the next look and return None."""
        version = entry.body["metadata"].get("resourceVersion")
        try:
            if entry.parsed is not None and version is not None and entry.parsed[0] == version:
                spec = entry.parsed[1]
            else:
                spec = parse_spec(entry.body)
                entry.parsed = (version, spec)
        except SpecError as exc:
            # The reconciler reports an invalid spec (Degraded/InvalidSpec and an Event).
            log.warning("autoscaling %s paused, invalid spec: %s", entry.body["metadata"]["name"], exc)
            entry.due = now + DEFAULT_INTERVAL_SEC
            return None
        if not spec.autoscaling.enabled:
            entry.state.history = History()  # a later re-enable starts fresh, as a new HPA would
            entry.state.spec_replicas_seen, entry.state.overridden_replicas = spec.replicas, None  # by hand now
            entry.idle_fingerprint = None
            entry.due = now + min(DEFAULT_INTERVAL_SEC, spec.autoscaling.scrape_interval_seconds)
            return None
        return spec

    async def _pass(self, entry: Entry, spec: SttServerSpec, pods: Sequence[Mapping[str, Any]],
                    fingerprint: PodsFingerprint | None) -> None:
        async with self._slots:
            try:
                decision = await self._autoscale(self.api, entry.body, state=entry.state, spec=spec,
                                                 post_event=entry.post_event, pods=pods)
            except asyncio.CancelledError:
                raise
            except TRANSIENT as exc:
                entry.idle_fingerprint = None  # a failed pass proves nothing: try again next time
                await self._report(entry, exc)
            else:
                entry.last_error = None
                # No Deployment yet (no decision, nothing written): the next round tries again.
                entry.idle_fingerprint = fingerprint if decision is not None else None
            finally:
                self._wake.set()  # this entry may be due again before the loop's current wait ends

    async def _report(self, entry: Entry, exc: BaseException) -> None:
        """Transient API trouble or a Secret without a usable CA: an Event once per new message."""
        log.warning("autoscaling %s failed: %s", entry.body["metadata"]["name"], exc)
        if str(exc) != entry.last_error:
            try:
                await entry.post_event("Warning", "FailedComputeMetricsReplicas", str(exc))
            except asyncio.CancelledError:
                raise
            except TRANSIENT as post_failed:
                log.warning("could not post an Event for %s: %s", entry.body["metadata"]["name"], post_failed)
        entry.last_error = str(exc)
