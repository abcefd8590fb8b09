"""Leader election over a `coordination.k8s.io/v1` Lease, as client-go's leaderelection does.

Several operator replicas run; the one holding the Lease runs kopf, the others wait. The holder
renews every RENEW_SEC; a standby takes the Lease once `renewTime + leaseDurationSeconds` has
passed, or at once when the holder released it on a clean shutdown. Writes carry the Lease's
`resourceVersion`, so two standbys racing for an expired Lease cannot both win. kopf's own peering
is not used: with identical replicas (one Deployment, one priority) it pauses every operator.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import aiohttp

from stt_operator.autoscaling.kubeapi import ApiError, KubeApi, resource_path

LEASE_SEC: Final = 15
RENEW_SEC: Final = 5.0
RETRY_SEC: Final = 2.0
# The holder gives up when it could not renew for this long, before a standby may take over.
RENEW_DEADLINE_SEC: Final = 10.0
# What a request to the API server may raise when the server or the network is in trouble.
API_TROUBLE: Final = (ApiError, aiohttp.ClientError, TimeoutError, OSError)
logger = logging.getLogger(__name__)


def default_identity() -> str:
    """The pod's name (POD_NAME, else the hostname) plus a random suffix: a restarted container is a new candidate."""
    return f"{os.environ.get('POD_NAME') or socket.gethostname()}_{uuid.uuid4().hex[:8]}"


def micro_time(moment: datetime) -> str:
    """A Lease's MicroTime: RFC 3339 in UTC with microseconds."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def can_take(spec: Mapping[str, Any], *, identity: str, now: datetime) -> bool:
    """True when the Lease is free, ours, or its holder stopped renewing it."""
    holder = spec.get("holderIdentity")
    if not holder or holder == identity:
        return True
    renewed = spec.get("renewTime") or spec.get("acquireTime")
    if not renewed:
        return True
    expiry = datetime.fromisoformat(renewed) + timedelta(seconds=int(spec.get("leaseDurationSeconds") or LEASE_SEC))
    return now > expiry


class LeaderElector:
    """Acquire, renew and release one Lease for `identity`."""

    def __init__(self, api: KubeApi, *, namespace: str, name: str, identity: str | None = None,
                 lease_sec: int = LEASE_SEC, renew_sec: float = RENEW_SEC, retry_sec: float = RETRY_SEC) -> None:
        self.api = api
        self.path = resource_path("coordination.k8s.io/v1", "leases", namespace=namespace, name=name)
        self.collection = resource_path("coordination.k8s.io/v1", "leases", namespace=namespace)
        self.name = name
        self.identity = identity or default_identity()
        self.lease_sec = lease_sec
        self.renew_sec = renew_sec
        self.retry_sec = retry_sec

    async def try_acquire(self) -> bool:
        """One attempt to take or renew the Lease; False when another live replica holds it."""
        now = datetime.now(UTC)
        lease = await self.api.get_or_none(self.path)
        if lease is None:
            body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": self.name},
                    "spec": {"holderIdentity": self.identity, "leaseDurationSeconds": self.lease_sec,
                             "acquireTime": micro_time(now), "renewTime": micro_time(now), "leaseTransitions": 0}}
            try:
                await self.api.create(self.collection, body)
            except ApiError as exc:
                if exc.status == 409:
                    return False
                raise
            return True
        spec = lease.get("spec") or {}
        if not can_take(spec, identity=self.identity, now=now):
            return False
        patch: dict[str, Any] = {"metadata": {"resourceVersion": lease["metadata"]["resourceVersion"]},
                                 "spec": {"holderIdentity": self.identity, "leaseDurationSeconds": self.lease_sec,
                                          "renewTime": micro_time(now)}}
        if spec.get("holderIdentity") != self.identity:
            patch["spec"]["acquireTime"] = micro_time(now)
            patch["spec"]["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + 1
        try:
            await self.api.merge_patch(self.path, patch)
        except ApiError as exc:
            if exc.status == 409:  # someone else wrote it in between
                return False
            raise
        return True

    async def acquire(self) -> None:
        """Wait until this replica holds the Lease."""
        logger.info("waiting to lead: lease %s as %s", self.name, self.identity)
        while True:
            try:
                if await self.try_acquire():
                    logger.info("leading: lease %s as %s", self.name, self.identity)
                    return
            except asyncio.CancelledError:
                raise
            except API_TROUBLE as exc:  # API trouble: keep trying, a standby has nothing else to do
                logger.warning("lease %s: %s", self.name, exc)
            await asyncio.sleep(self.retry_sec)

    async def hold(self, lost: asyncio.Event) -> None:
        """Renew until cancelled; set `lost` when another replica took over or renewals kept failing."""
        last_renewed = asyncio.get_running_loop().time()
        while True:
            await asyncio.sleep(self.renew_sec)
            try:
                if not await self.try_acquire():
                    logger.error("lease %s was taken over by another replica", self.name)
                    lost.set()
                    return
                last_renewed = asyncio.get_running_loop().time()
            except asyncio.CancelledError:
                raise
            except API_TROUBLE as exc:
                logger.warning("lease %s: renewal failed: %s", self.name, exc)
                if asyncio.get_running_loop().time() - last_renewed > RENEW_DEADLINE_SEC:
                    logger.error("lease %s: no renewal for %.0f s, stepping down", self.name, RENEW_DEADLINE_SEC)
                    lost.set()
                    return

    async def release(self) -> None:
        """Hand the Lease back on a clean shutdown, so a standby takes over at once."""
        try:
            lease = await self.api.get_or_none(self.path)
            if lease is None or (lease.get("spec") or {}).get("holderIdentity") != self.identity:
                return
            await self.api.merge_patch(self.path, {
                "metadata": {"resourceVersion": lease["metadata"]["resourceVersion"]},
                "spec": {"holderIdentity": None, "leaseDurationSeconds": 1}})
            logger.info("released lease %s", self.name)
        except asyncio.CancelledError:
            raise
        except API_TROUBLE as exc:  # the Lease then simply expires
            logger.warning("lease %s: could not release it: %s", self.name, exc)
