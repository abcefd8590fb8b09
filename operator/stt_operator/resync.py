"""The safety-net resync: every RESYNC_SEC, the whole fleet checked with a few LISTs.

Each round lists the SttServers and each child kind (our managed-by label) once per namespace
served (or once cluster-wide), groups the children by their owner's uid and asks the reconciler
whether each SttServer and its children are still as its last clean pass left them
(`Reconciler.in_record`). Only those that are not (an event was missed, or no clean pass yet) get
a full pass. So an unchanged fleet of 200 SttServers costs about thirty requests a round (a few
LISTs of four pages each), not a GET and a LIST per kind for each object; and the requests come in
one short burst, so the client's idle connections close between rounds. Each listed object is
reduced to what the comparison reads as soon as its page is parsed (`_slim_server`, `_child_version`).
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Mapping
from typing import Any, Final

from stt_operator.child_watch import Scope
from stt_operator.crd import PLURAL
from stt_operator.reconcile import MANAGED_BY, sttserver_owner
from stt_operator.reconciler import API_VERSION, Key, Reconciler, child_kinds, is_transient

logger = logging.getLogger(__name__)

RESYNC_LOG_LINE: Final = "resync round:"  # logged at INFO once per round that has SttServers (tests count it)

Versions = dict[tuple[str, str], str | None]  # (kind, name) -> resourceVersion


async def resync_loop(reconciler: Reconciler, *, scope: Scope, period: float) -> None:
    """Every `period`, one round; a failed round is logged and the next one tries again."""
    while True:
        await asyncio.sleep(period)
        try:
            checked, stale = await resync_round(reconciler, scope=scope)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not is_transient(exc):
                raise
            logger.warning("resync round failed (%s); the next one in %.0fs", exc, period)
            continue
        for key in stale:
            reconciler.request(*key)
        if checked:
            logger.info("%s %d SttServer(s) checked, %d out of date", RESYNC_LOG_LINE, checked, len(stale))


async def resync_round(reconciler: Reconciler, *, scope: Scope) -> tuple[int, list[Key]]:
    """(SttServers checked, those that need a full pass)."""
    api = reconciler.api
    apis, _ = await reconciler.monitoring_apis()
    servers = [server for path in scope.paths(API_VERSION, PLURAL) for server in await api.list(path, keep=_slim_server)
               if scope.admits(server["metadata"].get("namespace"))]
    if not servers:
        return 0, []
    owned: defaultdict[tuple[str, str], Versions] = defaultdict(dict)  # (namespace, owner uid) -> children
    for kind, (api_version, plural) in child_kinds(apis).items():
        for path in scope.paths(api_version, plural):  # each object reduced to its version as its page comes
            for namespace, owner_uid, name, version in await api.list(path, labels=MANAGED_BY, keep=_child_version):
                owned[namespace, owner_uid][kind, name] = version
    stale: list[Key] = []
    for server in servers:
        meta = server["metadata"]
        key = (meta["namespace"], meta["name"])
        if not reconciler.in_record(key, server, apis=apis, children=owned.get((meta["namespace"], meta["uid"]), {})):
            stale.append(key)
    return len(servers), stale


_SLIM_SERVER_FIELDS: Final = ("name", "namespace", "uid", "generation", "labels", "deletionTimestamp")


def _slim_server(server: Mapping[str, Any]) -> dict[str, Any]:
    """What `Reconciler.in_record` reads of a listed SttServer (its metadata without managedFields)."""
    meta = server.get("metadata") or {}
    return {"metadata": {key: meta[key] for key in _SLIM_SERVER_FIELDS if key in meta}}


def _child_version(child: Mapping[str, Any]) -> tuple[str, str, str, str | None] | None:
    """(namespace, owner uid, name, resourceVersion) of a listed child; None when no SttServer owns it."""
    owner = sttserver_owner(child)
    if owner is None:
        return None
    meta = child["metadata"]
    return meta.get("namespace"), str(owner.get("uid")), meta["name"], meta.get("resourceVersion")
