"""kopf handlers of stt-operator: thin glue between kopf's events and the `Reconciler`.

- SttServer create / update / resume: one reconcile pass, awaited. An invalid spec becomes a
  `Degraded` condition plus a Warning Event and `kopf.PermanentError` (no retry until the spec
  changes, so no crash loop); conflicts, 5xx and timeouts become `kopf.TemporaryError` with
  exponential backoff.
- Children (every kind we make, with our managed-by label): each watch event goes to the
  reconciler, which tells our own writes (nothing to do) and a controller's status update (a
  status refresh) from drift and deletions (a pass of their owner), so drift is corrected within
  one reconcile (well under a second on a quiet API server), the status follows the Deployment's
  real status, and creating a server's children does not cost it a second pass.
- One resync loop re-checks every SttServer each RESYNC_SEC, spread over the period (a safety net
  for missed events): the object and its children are listed, and a full pass runs only when
  they changed since the last clean pass (reconciler.py).
- Every SttServer event also goes to the autoscaler's shared scrape loop (autoscaling/timer.py
  registers its own event handler).

No kopf timer or daemon per object, and no delete handler: kopf would put its finalizer on every
SttServer for them. Without it a new SttServer's first pass starts one write and one round trip
sooner, and an SttServer can be deleted while no operator runs (the garbage collector removes its
children through their ownerReferences).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from typing import Any, Final

import kopf

import stt_operator.autoscaling.timer  # registers the autoscaler's SttServer event handler
import stt_operator.login  # noqa: F401 - registers kopf's login (in-cluster from the kubelet's env)
from stt_operator import heap
from stt_operator.autoscaling.kubeapi import KubeApi, credentials_from_env, own_namespace
from stt_operator.crd import GROUP, KIND, PLURAL, VERSION
from stt_operator.reconcile import MANAGED_BY
from stt_operator.reconciler import Reconciler, backoff, is_transient
from stt_operator.spec import SpecError

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
# kopf watches the monitoring kinds only while the cluster serves them (it re-scans CRDs itself).
WATCHED_CHILDREN: Final = (("", "v1", "configmaps"), ("", "v1", "services"), ("apps", "v1", "deployments"),
                           ("policy", "v1", "poddisruptionbudgets"),
                           ("monitoring.coreos.com", "v1", "servicemonitors"),
                           ("monitoring.coreos.com", "v1", "prometheusrules"),
                           ("monitoring.coreos.com", "v1alpha1", "alertmanagerconfigs"),
                           ("networking.k8s.io", "v1", "networkpolicies"))


logger = logging.getLogger(__name__)
RESYNC_LOG_LINE: Final = "resync round:"  # logged at INFO once per round that has SttServers (tests count it)


class _ChildEventsAtDebug(logging.Filter):
    """kopf logs "Handler 'drift-…' succeeded." at INFO for every child event: DEBUG is enough."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.INFO and str(record.msg).startswith("Handler 'drift-"):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        return True


CHILD_EVENTS_AT_DEBUG: Final = _ChildEventsAtDebug()


def select_children_on_the_server(settings: kopf.OperatorSettings) -> None:
    """Watch only objects with our managed-by label: the API server filters (`labelSelector`), so
    the cluster's other ConfigMaps, Services and Deployments never reach the operator. The handlers'
    `labels=` filter alone runs in the client, after every object has been sent, decoded and cached."""
    selector = ",".join(f"{k}={v}" for k, v in MANAGED_BY.items())
    for group, version, plural in WATCHED_CHILDREN:
        settings.watching.label_selectors[group, version, plural] = selector
    logging.getLogger("kopf.objects").addFilter(CHILD_EVENTS_AT_DEBUG)  # the same filter is added once


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: Any, **_: Any) -> None:
    # kopf's own Events only for trouble; our Events describe what we did (events.py).
    settings.posting.level = logging.WARNING
    # Keep kopf's bookkeeping in annotations of our group, not in the (schema-pruned) status.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration")
    # Short server-side watch timeouts: a lost stream is noticed and re-established quickly.
    settings.watching.server_timeout = WATCH_TIMEOUT_SEC
    settings.watching.client_timeout = WATCH_TIMEOUT_SEC + 10
    settings.watching.connect_timeout = 5
    settings.networking.request_timeout = API_TIMEOUT_SEC
    settings.networking.connect_timeout = 5
    select_children_on_the_server(settings)
    api = KubeApi(credentials_from_env(), timeout_sec=API_TIMEOUT_SEC, max_in_flight=API_IN_FLIGHT)
    await api.__aenter__()
    memo["api"] = api
    memo["reconciler"] = Reconciler(api, operator_namespace=own_namespace())
    memo["servers"] = set()  # (namespace, name) of every SttServer seen and not deleted
    memo["resync"] = asyncio.create_task(resync_loop(memo["reconciler"], memo["servers"]), name="stt-operator resync")
    memo["trim"] = asyncio.create_task(heap.trim_every(), name="stt-operator heap trim")


async def resync_loop(reconciler: Reconciler, servers: set[tuple[str, str]], *, period: float = RESYNC_SEC) -> None:
    """Every `period`, ask for a checked pass of each SttServer, spread evenly over the period."""
    while True:
        keys = sorted(servers)
        if not keys:
            await asyncio.sleep(period)
            continue
        for key in keys:
            if key in servers:
                reconciler.request(*key, check_first=True)
            await asyncio.sleep(period / len(keys))
        logger.info("%s asked for a checked pass of %d SttServer(s)", RESYNC_LOG_LINE, len(keys))


@kopf.on.cleanup()
async def close(memo: Any, **_: Any) -> None:
    for task in (memo.get("resync"), memo.get("trim")):
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    if "reconciler" in memo:
        await memo["reconciler"].close()
    if "api" in memo:
        await memo["api"].__aexit__(None, None, None)


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL)
async def reconcile_server(name: str, namespace: str | None, memo: Any, retry: int, body: kopf.Body | None = None,
                           **_: Any) -> None:
    if namespace is None:  # pragma: no cover - SttServer is namespaced; kopf types allow None
        return
    try:
        await memo["reconciler"].reconcile(namespace, name, fresh=body)
    except SpecError as exc:
        raise kopf.PermanentError(f"invalid spec: {exc.field}: {exc.message}") from exc
    except Exception as exc:
        if is_transient(exc):
            raise kopf.TemporaryError(f"API trouble, retrying: {exc}", delay=backoff(retry)) from exc
        raise


def _owner_of(body: kopf.Body) -> str | None:
    """The SttServer a child belongs to (by ownerReference, not just by label)."""
    for ref in body.metadata.get("ownerReferences") or ():
        if ref.get("kind") == KIND and ref.get("apiVersion", "").startswith(f"{GROUP}/"):
            return str(ref.get("name"))
    return None


@kopf.on.event(GROUP, VERSION, PLURAL, id="track")
async def server_event(type: str | None, name: str, namespace: str | None, memo: Any,
                       **_: Any) -> None:
    """Every SttServer event (the initial listing too) keeps the resync loop's set current."""
    if namespace is None or "reconciler" not in memo:
        return
    if type == "DELETED":
        memo["servers"].discard((namespace, name))
        memo["reconciler"].forget(namespace, name)
    else:
        memo["servers"].add((namespace, name))


def _register_child_watch(group: str, version: str, plural: str) -> None:
    @kopf.on.event(group, version, plural, labels=dict(MANAGED_BY), id=f"drift-{plural}")
    async def child_changed(body: kopf.Body, type: str | None, namespace: str | None,
                            memo: Any, **_: Any) -> None:
        owner = _owner_of(body)
        if owner is not None and namespace is not None and "reconciler" in memo:
            memo["reconciler"].child_changed(namespace, owner, body, deleted=type == "DELETED")


for _group, _version, _plural in WATCHED_CHILDREN:
    _register_child_watch(_group, _version, _plural)
