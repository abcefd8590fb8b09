"""A local Kubernetes API server: kmock's KubernetesEmulator over real HTTP, made honest enough for kopf.

`LocalApiServer` serves on 127.0.0.1:<free port> and writes a kubeconfig for it, so the real
`stt-operator` process (or kubectl-like clients) talk to it exactly as to kube-apiserver. kmock
brings the HTTP server, request parsing and recording, Status error bodies and API discovery;
this module routes resource requests to `store.Store`, which adds the write rules kmock leaves
out (see `store.py`), and streams watches with resourceVersion resumption (`watching.py`).

Emulated: CRUD + PATCH (merge, JSON, strategic subset) on namespaced and cluster resources, the
status and scale subresources, list/watch with label and field selectors, resourceVersion,
generation, uid, 404/409/410/422 semantics, finalizers and deletionTimestamp, graceful deletion
of node-bound pods, ownerReference garbage collection (background and orphan), CRD install with
schema defaulting, pruning and validation, discovery, both Event APIs, fault injection.

NOT emulated (never rely on these here): admission webhooks and admission plugins, CEL rules
(`x-kubernetes-validations`), `format` checks, validation of built-in kinds (use
kubernetes-validate in tests instead), RBAC/authentication (any token is accepted), server-side
apply, dry-run, field managers/managedFields, foreground deletion (treated as background),
deletecollection, watch bookmarks, API priority and fairness, any controller except the garbage
collector (no Deployment->ReplicaSet->Pod, no kubelet, no scheduler, no Service endpoints or
nodePort allocation, no defaulting of built-in kinds), conversion webhooks between CRD versions.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import pathlib
import signal
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any, Final, Self

import aiohttp.web
import kmock
import yaml
from kmock._internal import parsing as kmock_parsing
from typing_extensions import override

from stt_localfleet import errors, routing, watching
from stt_localfleet.faults import FaultPlan
from stt_localfleet.store import CRD_KEY, Store

logger = logging.getLogger(__name__)

REQUEST_LOG_LIMIT: Final = 20000
FAULTS_PATH: Final = "/_localfleet/faults"  # not a Kubernetes path: fault injection from other processes
_REASONS = {409: "Conflict", 500: "InternalError", 503: "ServiceUnavailable", 429: "TooManyRequests",
            504: "Timeout", 404: "NotFound"}


class LocalKubernetesEmulator(kmock.KubernetesEmulator):  # type: ignore[misc]
    """kmock's emulator with resource requests served by `Store` and faults applied first."""

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.store = Store()
        self.faults = FaultPlan()
        self.store.listeners.add(self._on_change)
        self._sync_discovery()

    @override
    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        # kmock's request parser fails on collection paths ending in "/namespaces" (e.g. GET
        # /api/v1/namespaces, which kopf lists): parse those without the Kubernetes fields.
        try:
            kmock_parsing.parse_path(raw_request.path)
        except ValueError:
            pass
        else:
            return await super().__call__(raw_request)
        body = await raw_request.read()
        try:
            data = json.loads(body) if body else None
        except ValueError:
            data = None
        request = kmock.Request(id=len(self._requests), raw_request=raw_request, url=raw_request.url,
                                method=raw_request.method, params=dict(raw_request.query),
                                headers=dict(raw_request.headers), body=body, text=body.decode(errors="replace"),
                                data=data)
        self._requests.append(request)
        try:
            return await self._handle(request)
        except Exception as exc:  # noqa: BLE001 - rendered as a Status body, as kmock does
            return await self._render_error(exc)

    @override
    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        raw = request._raw_request
        if raw is None:  # only kmock's own unit tests build requests without one
            raise errors.bad_request("no HTTP request behind this request")
        method, path = raw.method.upper(), raw.path
        if len(self._requests) > REQUEST_LOG_LIMIT:
            # kmock records every request for assertions; a long demo must not grow without bound.
            del self._requests[: REQUEST_LOG_LIMIT // 2]
        fault = self.faults.take(method, path)
        if fault is not None:
            if fault.hang_sec is not None:
                await self.faults.hang(fault)
                raise errors.status_error(503, "ServiceUnavailable", "injected fault: released after hanging")
            raise errors.status_error(fault.status, _REASONS.get(fault.status, "InternalError"),
                                      f"injected fault {fault.status} for {method} {path}")
        if path == FAULTS_PATH:
            return self._serve_faults(method, request.data)
        target = routing.parse_target(self.store, path)
        if target is None:
            # Discovery (/api, /apis, /version) and user reactions: kmock's own handling, but not
            # KubernetesEmulator's object tracking, which the Store replaces.
            return await kmock.RawHandler._handle(self, request)
        params = dict(raw.query)
        if method == "GET" and params.get("watch") in ("true", "1"):
            return await watching.stream(self.store, target, raw, params)
        content_type = raw.headers.get("Content-Type", "application/json")
        body: Any = request.data
        result = routing.handle(self.store, target, method=method, params=params, body=body,
                                content_type=content_type)
        return aiohttp.web.json_response(result, status=201 if method == "POST" else 200)

    def _serve_faults(self, method: str, body: Any) -> aiohttp.web.StreamResponse:
        """The fault plan over HTTP, for tests whose API server runs in another process."""
        if method == "DELETE":
            self.faults.clear()
            return aiohttp.web.json_response({"faults": []})
        if method == "POST" and isinstance(body, Mapping):
            try:
                self.faults.add(method=str(body["method"]), path=str(body["path"]),
                                status=int(body.get("status", 500)), times=int(body.get("times", 1)),
                                hang_sec=None if body.get("hang_sec") is None else float(body["hang_sec"]))
            except (KeyError, TypeError, ValueError) as exc:
                raise errors.bad_request(f"a fault needs method, path and optionally status, times, "
                                         f"hang_sec: {exc}") from None
        elif method != "GET":
            raise errors.status_error(405, "MethodNotAllowed", "GET, POST or DELETE the fault plan")
        return aiohttp.web.json_response({"faults": [
            {"method": f.method, "path": f.path.pattern, "status": f.status, "times": f.times,
             "hang_sec": f.hang_sec, "hits": f.hits} for f in self.faults.faults]},
            status=201 if method == "POST" else 200)

    @override
    async def _serve_version(self, request: kmock.Request) -> Any:
        document: Any = await super()._serve_version(request)
        if document.get("groupVersion") == "/v1":
            document["groupVersion"] = "v1"  # kmock writes the core group's version as "/v1"
        return document

    def _on_change(self, change: Any) -> None:
        if change.rtype.key == CRD_KEY:
            self._sync_discovery()

    def _sync_discovery(self) -> None:
        """Mirror the store's resource types into kmock's discovery documents."""
        for existing in list(self.resources):
            del self.resources[existing]
        for rtype in self.store.types.values():
            key = kmock.resource(group=rtype.group, version=rtype.version, plural=rtype.plural)
            self.resources[key] = kmock.ResourceInfo(
                kind=rtype.kind, namespaced=rtype.namespaced, singular=rtype.kind.lower(),
                verbs=routing.VERBS, shortnames=set(rtype.short_names), subresources=set(rtype.subresources))


class LocalApiServer:
    """Start/stop the emulator on a TCP port; install CRDs and namespaces; write a kubeconfig."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, crd_paths: Iterable[pathlib.Path] = (),
                 namespaces: Iterable[str] = ()) -> None:
        self.emulator = LocalKubernetesEmulator()
        self._server = kmock.Server(self.emulator, host=host, port=port or None)
        self._crd_paths = list(crd_paths)
        self._namespaces = list(namespaces)

    async def __aenter__(self) -> Self:
        await self.emulator.__aenter__()
        await self._server.__aenter__()
        for path in self._crd_paths:
            self.install_crds(path)
        for namespace in self._namespaces:
            self.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.faults.clear()
        try:
            await self._server.__aexit__(exc_type, exc, tb)
        finally:
            await self.emulator.__aexit__(exc_type, exc, tb)

    @property
    def store(self) -> Store:
        return self.emulator.store

    @property
    def faults(self) -> FaultPlan:
        return self.emulator.faults

    @property
    def url(self) -> str:
        return f"http://{self._server.host}:{self._server.port}"

    def write_kubeconfig(self, path: pathlib.Path, *, namespace: str = "default") -> pathlib.Path:
        """A kubeconfig whose current context points at this server (token auth, plain HTTP)."""
        config = {
            "apiVersion": "v1", "kind": "Config", "current-context": "localfleet",
            "clusters": [{"name": "localfleet", "cluster": {"server": self.url}}],
            "users": [{"name": "localfleet", "user": {"token": "localfleet"}}],
            "contexts": [{"name": "localfleet",
                          "context": {"cluster": "localfleet", "user": "localfleet", "namespace": namespace}}],
        }
        # Written whole and then renamed: a process waiting for the file never reads half of it.
        partial = path.with_name(path.name + ".partial")
        partial.write_text(yaml.safe_dump(config, sort_keys=False))
        partial.replace(path)
        return path

    def apply(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """Create, or replace the spec of, one object given as a manifest (in-process kubectl apply)."""
        rtype = self.store_type(manifest)
        meta = manifest.get("metadata") or {}
        namespace = (meta.get("namespace") or "default") if rtype.namespaced else None
        if (rtype.key, namespace, meta.get("name")) in self.store.objects:
            current = self.store.get(rtype, namespace, meta["name"])
            merged = {**current, **{k: v for k, v in manifest.items() if k != "metadata"}}
            merged["metadata"] = {**current["metadata"], **meta,
                                  "resourceVersion": current["metadata"]["resourceVersion"]}
            return self.store.replace(rtype, namespace, meta["name"], merged)
        return self.store.create(rtype, namespace, manifest)

    def store_type(self, manifest: Mapping[str, Any]) -> Any:
        api_version, kind = manifest.get("apiVersion", ""), manifest.get("kind")
        group, _, version = api_version.rpartition("/")
        for rtype in self.store.types.values():
            if (rtype.group, rtype.version, rtype.kind) == (group, version, kind):
                return rtype
        raise LookupError(f"no resource type serves {api_version} {kind}")

    def install_crds(self, path: pathlib.Path) -> list[str]:
        """Install every CRD found in a YAML file (or a directory of them); returns their names."""
        files = sorted(path.glob("*.yaml")) if path.is_dir() else [path]
        names = []
        for file in files:
            for doc in yaml.safe_load_all(file.read_text()):
                if isinstance(doc, Mapping) and doc.get("kind") == "CustomResourceDefinition":
                    names.append(self.apply(doc)["metadata"]["name"])
        return names


async def _serve(args: argparse.Namespace) -> None:
    crds = [pathlib.Path(p) for p in args.crds]
    async with LocalApiServer(host=args.host, port=args.port, crd_paths=crds,
                              namespaces=args.namespace) as server:
        if args.kubeconfig:
            server.write_kubeconfig(pathlib.Path(args.kubeconfig))
        print(json.dumps({"url": server.url, "kubeconfig": args.kubeconfig}), flush=True)
        stop = asyncio.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(signum, stop.set)
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    """`python -m stt_localfleet.apiserver --port P --kubeconfig OUT [--crds PATH ...]`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (printed on stdout)")
    parser.add_argument("--kubeconfig", help="write a kubeconfig for this server here")
    parser.add_argument("--crds", action="append", default=[], help="a CRD YAML file or directory; repeatable")
    parser.add_argument("--namespace", action="append", default=[], help="create this namespace; repeatable")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    try:
        asyncio.run(_serve(args))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
