"""What a pod's volumes and env read from the API, fetched the way the Node authorizer allows.

A node may GET only the ConfigMaps, Secrets and service-account tokens of pods bound to it, one
object at a time (never a list), and NodeRestriction wants each TokenRequest bound to such a pod.
`fetch_sources` gets the named objects (a missing one is None: optional or not is the planner's
call); `TokenCache` holds each projected token with the moment it must be refreshed (80% of its
lifetime, as the kubelet's token manager does).
"""

from __future__ import annotations

import asyncio
import datetime
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from stt_operator.autoscaling.kubeapi import ApiError, KubeApi, resource_path

from stt_localfleet.launcherrors import CONTAINER_CREATING, LaunchError
from stt_localfleet.volumes import TokenItem

REFRESH_FRACTION: Final = 0.8
MAX_TOKEN_AGE_SEC: Final = 24 * 3600.0


async def _get(api: KubeApi, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        return await api.get(resource_path("v1", plural, namespace=namespace, name=name))
    except ApiError as exc:
        if exc.status == 404:
            return None
        # 403 right after binding: the Node authorizer's graph has not seen the pod yet. Retried.
        raise LaunchError(CONTAINER_CREATING, f'failed to get {plural[:-1]} "{namespace}/{name}": {exc}') from exc


async def fetch_sources(api: KubeApi, namespace: str, *, configmaps: Iterable[str], secrets: Iterable[str],
                        ) -> tuple[dict[str, dict[str, Any] | None], dict[str, dict[str, Any] | None]]:
    """The named ConfigMaps and Secrets of `namespace` (None for one that does not exist)."""
    cm_names, secret_names = sorted(set(configmaps)), sorted(set(secrets))
    found = await asyncio.gather(*(_get(api, "configmaps", namespace, n) for n in cm_names),
                                 *(_get(api, "secrets", namespace, n) for n in secret_names))
    return dict(zip(cm_names, found[:len(cm_names)], strict=True)), dict(zip(secret_names, found[len(cm_names):],
                                                                          strict=True))


def token_request(pod: Mapping[str, Any], item: TokenItem) -> dict[str, Any]:
    """The TokenRequest the kubelet sends for a projected serviceAccountToken source."""
    meta = pod.get("metadata") or {}
    return {
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
        "spec": {"audiences": [item.audience] if item.audience else [],
                 "expirationSeconds": item.expiration_seconds,
                 "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": meta.get("name"),
                                    "uid": meta.get("uid")}},
    }


def _parse_time(text: str) -> float:
    return datetime.datetime.fromisoformat(text).timestamp()


@dataclass(frozen=True)
class Token:
    value: str
    refresh_at: float  # wall-clock seconds


def refresh_time(*, issued_at: float, expires_at: float) -> float:
    """When to replace a token: at 80% of its lifetime, and at least once a day."""
    return issued_at + min(REFRESH_FRACTION * (expires_at - issued_at), MAX_TOKEN_AGE_SEC)


class TokenCache:
    """Projected tokens of the node's pods, by (pod uid, audience, expiration); fetched when due."""

    def __init__(self, api: KubeApi, *, clock: Callable[[], float] = time.time) -> None:
        self.api = api
        self.clock = clock
        self._tokens: dict[tuple[str, str, int], Token] = {}

    async def get(self, pod: Mapping[str, Any], item: TokenItem) -> Token:
        meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
        key = (str(meta.get("uid")), item.audience, item.expiration_seconds)
        cached = self._tokens.get(key)
        if cached is not None and self.clock() < cached.refresh_at:
            return cached
        account = spec.get("serviceAccountName") or "default"
        path = resource_path("v1", "serviceaccounts", namespace=meta.get("namespace"), name=account,
                             subresource="token")
        issued = self.clock()
        try:
            answer = await self.api.create(path, token_request(pod, item))
        except ApiError as exc:
            raise LaunchError(CONTAINER_CREATING, f'failed to fetch token for service account "{account}": {exc}'
                              ) from exc
        status = answer.get("status") or {}
        expires = _parse_time(status["expirationTimestamp"]) if status.get("expirationTimestamp") \
            else issued + item.expiration_seconds
        token = Token(value=str(status["token"]), refresh_at=refresh_time(issued_at=issued, expires_at=expires))
        self._tokens[key] = token
        return token

    def next_refresh(self, uid: str) -> float | None:
        """The earliest refresh time (wall clock) among the pod's tokens."""
        times = [t.refresh_at for k, t in self._tokens.items() if k[0] == uid]
        return min(times) if times else None

    def forget(self, uid: str) -> None:
        for key in [k for k in self._tokens if k[0] == uid]:
            del self._tokens[key]
