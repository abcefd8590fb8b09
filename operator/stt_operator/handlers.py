"""kopf handlers of stt-operator: thin glue between the watch events and the `Reconciler`.

- SttServer: every watch event (the initial listing too) goes to `Reconciler.server_changed`,
  which runs a pass in the background when the spec (generation) or labels moved since the last
  clean pass, and nothing for our own status writes. A new SttServer's pass is built from its
  ADDED event. An invalid spec becomes a `Degraded` condition, a Warning Event and one WARNING log
  line, and is not retried until the spec changes; conflicts, 5xx and timeouts are retried with
  exponential backoff (reconciler.py).
- Children (every kind we make, with our managed-by label) are watched by child_watch.py, not by
  kopf, and each event goes to `Reconciler.child_changed`, which tells our own writes (nothing to
  do) and a controller's status update (a status refresh) from drift and deletions (a pass of
  their owner).
- One resync loop re-checks the whole fleet each RESYNC_SEC (a safety net for missed events): a
  LIST per kind and namespace, compared with the reconciler's records, and a full pass only for
  the SttServers whose object or children moved since their last clean pass (resync.py).
- Every SttServer event also goes to the autoscaler's shared scrape loop (autoscaling/timer.py
  registers its own event handler).

Why event handlers and not kopf's create/update/resume handlers: those keep kopf's diff base in
an annotation (one more PATCH and one more watch event per change of every SttServer) and run
kopf's cause detection on every event, while the reconciler already knows from its last pass
whether anything changed. In a burst of 50 new SttServers on two cores, that bookkeeping and
kopf's handling of the children's events took most of the operator's CPU, on the cores the API
server needs to create the children. No kopf timer, daemon or delete handler either: kopf would
put its finalizer on every SttServer for them, and without one an SttServer can be deleted while
no operator runs (the garbage collector removes its children through their ownerReferences).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Mapping
from typing import Any, Final

import kopf

import stt_operator.autoscaling.timer  # registers the autoscaler's SttServer event handler
import stt_operator.login  # noqa: F401 - registers kopf's login (in-cluster from the kubelet's env)
from stt_operator import heap
from stt_operator.autoscaling.kubeapi import KubeApi, credentials_from_env, own_namespace
from stt_operator.child_watch import Scope, watch_children
from stt_operator.crd import GROUP, PLURAL, VERSION
from stt_operator.reconcile import sttserver_owner
from stt_operator.reconciler import Reconciler
from stt_operator.resync import resync_loop

RESYNC_SEC: Final = float(os.environ.get("STT_OPERATOR_RESYNC_SEC", "30"))
# Whole seconds: kopf sends it as `timeoutSeconds`, which kube-apiserver parses as an integer ("60.0" is a 400).
WATCH_TIMEOUT_SEC: Final = int(float(os.environ.get("STT_OPERATOR_WATCH_TIMEOUT_SEC", "60")))
# Requests in flight to the API server at once (the rest wait their turn): each TLS connection in
# the pool costs a 256 KiB read buffer plus OpenSSL's state, which stay in the process's RSS after a
# burst (aiohttp's own limit is 100); those waiting for a turn queue here, outside their timeout,
# rather than in the API server.
API_IN_FLIGHT: Final = 32
# kopf's own requests get as long (settings.networking.request_timeout): on a busy machine the API
# server takes seconds, and a pass that times out is retried whole.
API_TIMEOUT_SEC: Final = 30.0

logger = logging.getLogger(__name__)
# The namespaces served (`stt-operator run --namespace`, set by cli.py before kopf starts): the child
# watches follow them as kopf's SttServer watch does.
SCOPE: Scope = Scope()

EVENT_HANDLER_IDS: Final = ("reconcile", "autoscaler")  # the SttServer event handlers here and in timer.py


class _EventHandlersAtDebug(logging.Filter):
    """kopf logs "Handler 'reconcile' succeeded." at INFO for every SttServer watch event, our own
    status writes included: DEBUG is enough (the reconciler logs what it did and what failed)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.INFO and _is_routine(str(record.msg)):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        return True


def _is_routine(message: str) -> bool:
    return message.endswith(" succeeded.") and any(message.startswith(f"Handler '{handler_id}'")
                                                     for handler_id in EVENT_HANDLER_IDS)


EVENT_HANDLERS_AT_DEBUG: Final = _EventHandlersAtDebug()
logging.getLogger("kopf.objects").addFilter(EVENT_HANDLERS_AT_DEBUG)


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: Any, **_: Any) -> None:
    # kopf's own Events only for trouble; our Events describe what we did (events.py).
    settings.posting.level = logging.WARNING
    # Short server-side watch timeouts: a lost stream is noticed and re-established quickly.
    settings.watching.server_timeout = WATCH_TIMEOUT_SEC
    settings.watching.client_timeout = WATCH_TIMEOUT_SEC + 10
    settings.watching.connect_timeout = 5
    settings.networking.request_timeout = API_TIMEOUT_SEC
    settings.networking.connect_timeout = 5
    api = KubeApi(credentials_from_env(), timeout_sec=API_TIMEOUT_SEC, max_in_flight=API_IN_FLIGHT)
    await api.__aenter__()
    memo["api"] = api
    reconciler = memo["reconciler"] = Reconciler(api, operator_namespace=own_namespace())
    memo["tasks"] = [
        asyncio.create_task(resync_loop(reconciler, scope=SCOPE, period=RESYNC_SEC), name="stt-operator resync"),
        asyncio.create_task(watch_children(api, scope=SCOPE, on_event=lambda type_, obj: child_event(
            reconciler, type_, obj), timeout_sec=WATCH_TIMEOUT_SEC), name="stt-operator child watches"),
        asyncio.create_task(heap.trim_every(), name="stt-operator heap trim")]


@kopf.on.cleanup()
async def close(memo: Any, **_: Any) -> None:
    for task in memo.get("tasks", ()):
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    if "reconciler" in memo:
        await memo["reconciler"].close()
    if "api" in memo:
        await memo["api"].__aexit__(None, None, None)


def child_event(reconciler: Reconciler, type_: str, body: Mapping[str, Any]) -> None:
    """One watch event of a child (child_watch.py) to its owner's reconciler record."""
    owner, namespace = sttserver_owner(body), (body.get("metadata") or {}).get("namespace")
    if owner is not None and namespace is not None:
        reconciler.child_changed(namespace, str(owner.get("name")), body, deleted=type_ == "DELETED")


@kopf.on.event(GROUP, VERSION, PLURAL, id="reconcile")
async def server_event(type: str | None, body: kopf.Body, name: str, namespace: str | None, memo: Any,
                       **_: Any) -> None:
    """Every SttServer event (the initial listing too): a pass when needed; forget the deleted."""
    if namespace is None or "reconciler" not in memo:
        return
    if type == "DELETED":
        memo["reconciler"].forget(namespace, name)
    else:
        memo["reconciler"].server_changed(namespace, name, dict(body))
