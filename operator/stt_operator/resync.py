"""The safety-net resync: every RESYNC_SEC, the whole fleet checked with a few LISTs.

Each round lists the SttServers and each child kind (our managed-by label) once per namespace
served (or once cluster-wide), groups the children by their owner's uid and asks the reconciler
whether each SttServer and its children are still as its last clean pass left them
(`Reconciler.in_record`). Only those that are not (an event was missed, or no clean pass yet) get
a full pass. So an unchanged fleet of 200 SttServers costs about six requests a round, not a GET
and a LIST per kind for each object; and the requests come in one short burst, so the client's
idle connections close between rounds.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from typing import Final

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
    servers = [server for path in scope.paths(API_VERSION, PLURAL) for server in await api.list(path)
               if scope.admits(server["metadata"].get("namespace"))]
    if not servers:
        return 0, []
    owned: defaultdict[tuple[str, str], Versions] = defaultdict(dict)  # (namespace, owner uid) -> children
    for kind, (api_version, plural) in child_kinds(apis).items():
        for path in scope.paths(api_version, plural):  # one kind at a time: one listing in memory at once
            for child in await api.list(path, labels=MANAGED_BY):
                meta = child["metadata"]
                owner = sttserver_owner(child)
                if owner is not None:
                    owned[meta.get("namespace"), str(owner.get("uid"))][kind, meta["name"]] = meta.get("resourceVersion")
    stale: list[Key] = []
    for server in servers:
        meta = server["metadata"]
        key = (meta["namespace"], meta["name"])
        if not reconciler.in_record(key, server, apis=apis, children=owned.get((meta["namespace"], meta["uid"]), {})):
            stale.append(key)
    return len(servers), stale
