"""The autoscaling of the operator: one pass per SttServer every scrape interval, from one shared loop.

Each pass lists the server's pods, scrapes them (`scraper`), decides (`decision`, the HPA's rules),
and, when the decision says so, patches the Deployment's replicas, emits a `SuccessfulRescale`
Event and records `status.autoscaling` plus the `ScalingActive` condition. The recommendation
history lives in memory per object (as in the HPA controller); `lastScaleTime` lives in status.

Every watch event of an SttServer hands its latest body to the operator's one `ScrapeLoop`
(`track`; `untrack` when it is deleted: the kopf event handler `autoscaler`, registered when this
module is imported); the loop runs each object's passes
at its own `scrapeIntervalSeconds` (read afresh from the latest spec each time), lists pods once
per namespace, and skips passes that have no Ready pod to learn from. With autoscaling off it does
nothing: the reconciler applies `spec.replicas` (and the scale subresource).

No kopf daemon per object: a daemon costs two tasks and kopf's bookkeeping per SttServer, and kopf
puts a finalizer on every object that has one, which costs each new SttServer a write and a
round trip before its first reconcile and makes it undeletable without a running operator.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import kopf

from stt_operator.autoscaling.behavior import History, record_scale
from stt_operator.autoscaling.decision import AutoscalingPolicy, Decision, decide
from stt_operator.autoscaling.kubeapi import KubeApi, credentials_from_env, resource_path
from stt_operator.autoscaling.scrape_loop import DEFAULT_INTERVAL_SEC, Key, ScrapeLoop
from stt_operator.autoscaling.scraper import (
    ScrapeResult,
    ScrapeTls,
    pod_targets,
    scrape_pods,
    slim_pod,
    tls_context,
)
from stt_operator.builders.labels import selector_labels
from stt_operator.crd import GROUP, PLURAL, VERSION
from stt_operator.events import post_event
from stt_operator.spec import AutoscalingSpec, SttServerSpec
from stt_operator.status import make_condition, merge_conditions
from stt_operator.status_writer import write_status

log = logging.getLogger("stt_operator.autoscaling")
__all__ = ["DEFAULT_INTERVAL_SEC"]  # re-exported: the interval of a pass with autoscaling off
TOKEN_ENV: Final = ("STT_CONTROL_TOKEN", "STT_AUTH__CONTROL_TOKEN")
TOKEN_FILE_ENV: Final = ("STT_AUTH__CONTROL_TOKEN_FILE",)


def policy_from_spec(autoscaling: AutoscalingSpec) -> AutoscalingPolicy:
    """The typed `spec.autoscaling` (from `parse_spec`) as the decision's policy."""
    return AutoscalingPolicy(
        min_replicas=autoscaling.min_replicas,
        max_replicas=autoscaling.max_replicas,
        target_decode_pending=autoscaling.target_decode_pending_per_replica,
        target_active_sessions=autoscaling.target_active_sessions_per_replica,
        behavior=autoscaling.behavior,
    )


def now_iso() -> str:
    return datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def _secret_value(api: KubeApi, namespace: str, name: str, key: str) -> str | None:
    """One key of a Secret as text (None when the Secret or the key is missing)."""
    secret = await api.get_or_none(resource_path("v1", "secrets", namespace=namespace, name=name)) or {}
    if key in (secret.get("data") or {}):
        return base64.b64decode(secret["data"][key]).decode().strip()
    value = (secret.get("stringData") or {}).get(key)
    return None if value is None else str(value).strip()


def _mounted_secret(pod_spec: Mapping[str, Any], container: Mapping[str, Any], path: str) -> tuple[str, str] | None:
    """(secret name, key) of the Secret volume file at `path` in the container, if it is one."""
    volumes = {v.get("name"): v for v in pod_spec.get("volumes") or ()}
    for mount in container.get("volumeMounts") or ():
        base = str(mount.get("mountPath", "")).rstrip("/")
        secret = (volumes.get(mount.get("name")) or {}).get("secret")
        if secret and path.startswith(base + "/"):
            relative = mount.get("subPath") or path[len(base) + 1:]
            by_path = {i.get("path"): i.get("key") for i in secret.get("items") or ()}
            return secret.get("secretName", ""), by_path.get(relative, relative)
    return None


async def read_control_token(api: KubeApi, deployment: Mapping[str, Any], namespace: str) -> str | None:
    """The control-plane token, found the way the pods get it: an env var from a Secret (or a
    literal), or a token file mounted from a Secret volume."""
    pod_spec = (((deployment.get("spec") or {}).get("template") or {}).get("spec") or {})
    containers = pod_spec.get("containers") or []
    container = containers[0] if containers else {}
    for env in container.get("env") or []:
        ref = (env.get("valueFrom") or {}).get("secretKeyRef")
        if env.get("name") in TOKEN_ENV:
            if ref:
                return await _secret_value(api, namespace, ref["name"], ref["key"])
            if env.get("value"):
                return str(env["value"])
        if env.get("name") in TOKEN_FILE_ENV and env.get("value"):
            mounted = _mounted_secret(pod_spec, container, str(env["value"]))
            if mounted:
                return await _secret_value(api, namespace, *mounted)
    return None


async def control_plane_tls(api: KubeApi, spec: SttServerSpec) -> ScrapeTls | None:
    """How to scrape pods whose control plane serves HTTPS (`spec.secrets.tls`), else None.

    The CA is the TLS Secret's `ca.crt` (cert-manager writes it there); without one the system's
    CAs are trusted. The certificate must name the Service, `<name>.<namespace>.svc`: that name is
    verified, not the pod IP (see scraper's module docstring and docs/autoscaling.md).
    """
    secret = spec.secrets.tls_secret_name
    if secret is None:
        return None
    ca = await _secret_value(api, spec.namespace, secret, "ca.crt")
    trust = f"ca.crt of Secret {secret}" if ca else f"the system CAs (Secret {secret} has no ca.crt)"
    return ScrapeTls(context=tls_context(ca), server_name=f"{spec.name}.{spec.namespace}.svc", trust=trust)


@dataclass
class AutoscalerState:
    """What one SttServer's autoscaler remembers between passes (in memory, like the HPA's)."""

    history: History = field(default_factory=History)
    last_scale_time: str | None = None
    inactive_reason: str | None = None  # the last ScalingActive=False reason already announced
    last_error: str | None = None  # the last failed pass's message already announced
    spec_replicas_seen: int | None = None  # spec.replicas at the last pass
    overridden_replicas: int | None = None  # a spec.replicas set while autoscaling, which it overrides


def override_message(state: AutoscalerState, kept: int) -> str | None:
    """Why a spec.replicas someone set (`kubectl scale`, an edit) has no effect, while it has none."""
    if state.overridden_replicas is None:
        return None
    return (f"spec.replicas={state.overridden_replicas} is ignored while spec.autoscaling.enabled is true: "
            f"the autoscaler keeps {kept}; set spec.autoscaling.enabled to false to size by hand")


def note_spec_replicas(state: AutoscalerState, *, spec_replicas: int, kept: int) -> bool:
    """Track spec.replicas against the count the autoscaler keeps; True when an override is new.

    Only a change of spec.replicas counts: a manifest's standing `replicas: 1` under an autoscaler
    that went to 2 is no request. A later pass that keeps the asked count clears the override.
    """
    new = False
    if state.spec_replicas_seen is not None and spec_replicas != state.spec_replicas_seen:
        state.overridden_replicas = spec_replicas if spec_replicas != kept else None
        new = state.overridden_replicas is not None
    elif state.overridden_replicas is not None and state.overridden_replicas == kept:
        state.overridden_replicas = None
    state.spec_replicas_seen = spec_replicas
    return new


def status_patch(decision: Decision, scrape: ScrapeResult, *, state: AutoscalerState,
                 current: Mapping[str, Any], generation: int | None, now: str) -> dict[str, Any]:
    """`status.autoscaling` and the ScalingActive condition for one pass, merged into `current`
    (the stored status; the reconciler's conditions in it stay as they are)."""
    message = "; ".join(m for m in (decision.scaling_active_message,
                                    override_message(state, decision.desired_replicas)) if m)
    scaling = make_condition("ScalingActive", decision.scaling_active, decision.scaling_active_reason, message)
    return {
        "autoscaling": {
            "lastScaleTime": state.last_scale_time,
            "currentReplicas": decision.current_replicas,
            "desiredReplicas": decision.desired_replicas,
            "reason": decision.reason,
            "currentMetrics": [
                {k: v for k, v in (("name", r.metric), ("target", r.target), ("averageValue", r.average),
                                   ("recommendedReplicas", r.replicas), ("error", r.error)) if v is not None}
                for r in decision.recommendations
            ],
            "unhealthyPods": [{"name": u.name, "reason": u.reason} for u in scrape.unhealthy],
        },
        "conditions": merge_conditions(current.get("conditions") or (), [scaling], generation=generation, now=now),
    }


async def autoscale_once(
    api: KubeApi,
    body: Mapping[str, Any],
    *,
    state: AutoscalerState,
    spec: SttServerSpec,
    post_event: Callable[[str, str, str], Awaitable[None]],
    now: float | None = None,
    scrape_timeout_sec: float = 2.0,
    pods: Sequence[Mapping[str, Any]] | None = None,
) -> Decision | None:
    """One pass for one SttServer (`spec` is `parse_spec(body)`); returns the decision (None when
    there is no Deployment yet). `pods`: the server's pods when the caller listed them already."""
    namespace, name = spec.namespace, spec.name
    policy = policy_from_spec(spec.autoscaling)
    dep_path = resource_path("apps/v1", "deployments", namespace=namespace, name=name)
    deployment = await api.get_or_none(dep_path)
    if deployment is None:
        return None
    replicas = (deployment.get("spec") or {}).get("replicas")
    current = 1 if replicas is None else int(replicas)  # the API server defaults an unset count to 1
    if pods is None:
        pods = await api.list(resource_path("v1", "pods", namespace=namespace), labels=selector_labels(spec),
                              keep=slim_pod)
    token = await read_control_token(api, deployment, namespace)
    tls = await control_plane_tls(api, spec)
    scrape = await scrape_pods(pod_targets(pods), token=token, tls=tls, timeout_sec=scrape_timeout_sec)
    stamp = time.time() if now is None else now
    decision = decide(scrape.samples, current_replicas=current, policy=policy, history=state.history, now=stamp)
    state.history = decision.history
    if decision.scale:
        await api.merge_patch(dep_path, {"spec": {"replicas": decision.desired_replicas}})
        state.history = record_scale(state.history, previous=current, new=decision.desired_replicas,
                                     behavior=policy.behavior, now=stamp)
        state.last_scale_time = now_iso()
        await post_event("Normal", "SuccessfulRescale",
                         f"New size: {decision.desired_replicas}; reason: {decision.reason}")
        log.info("%s/%s scaled %d -> %d: %s", namespace, name, current, decision.desired_replicas, decision.reason)
    if not decision.scaling_active and decision.scaling_active_reason != state.inactive_reason:
        # One Warning per new reason, not one per pass: the condition carries it durably.
        await post_event("Warning", decision.scaling_active_reason, decision.scaling_active_message)
    state.inactive_reason = None if decision.scaling_active else decision.scaling_active_reason
    if note_spec_replicas(state, spec_replicas=spec.replicas, kept=decision.desired_replicas):
        await post_event("Warning", "ScaleOverridden", override_message(state, decision.desired_replicas) or "")
    # Written as the HPA does, only when it changed; status_writer re-reads and recomputes on a 409.
    generation = body["metadata"].get("generation")
    await write_status(api, body, lambda current: status_patch(decision, scrape, state=state, current=current,
                                                               generation=generation, now=now_iso()))
    return decision


_shared: tuple[ScrapeLoop, asyncio.Task[None]] | None = None


async def _serve(loop: ScrapeLoop, own_api: KubeApi | None) -> None:
    try:
        await loop.run()
    finally:
        if own_api is not None:
            await own_api.__aexit__(None, None, None)


async def shared_loop(memo: Mapping[str, Any]) -> ScrapeLoop:
    """The operator's one `ScrapeLoop`, started with the first SttServer and ended after the last.

    It uses the operator's shared client (handlers' startup) when there is one, else its own.
    """
    global _shared
    if _shared is not None and not _shared[0].closed and not _shared[1].done():
        return _shared[0]
    shared = memo.get("api")
    own_api = None if isinstance(shared, KubeApi) else await KubeApi(credentials_from_env()).__aenter__()
    loop = ScrapeLoop(shared if isinstance(shared, KubeApi) else own_api,  # type: ignore[arg-type]
                      autoscale=autoscale_once)
    _shared = (loop, asyncio.create_task(_serve(loop, own_api), name="stt-operator scrape loop"))
    return loop


def plain(value: Any) -> Any:
    """A plain copy of kopf's views (Body, Spec, Status) or of JSON values: it keeps nothing else alive."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def slim_body(body: Mapping[str, Any]) -> dict[str, Any]:
    """What the autoscaler reads of an SttServer: name, versions, spec and status.

    Not its managedFields or kopf's annotations, which make the whole object several times larger:
    the loop keeps one body per SttServer, for as long as the SttServer lives.
    """
    meta = body.get("metadata") or {}
    return {"apiVersion": body.get("apiVersion"), "kind": body.get("kind"),
            "metadata": {key: meta[key] for key in ("name", "namespace", "uid", "resourceVersion", "generation")
                         if key in meta},
            "spec": plain(body.get("spec") or {}), "status": plain(body.get("status") or {})}


async def track(memo: Mapping[str, Any], body: Mapping[str, Any]) -> None:
    """An SttServer's watch event: register it with the shared scrape loop, or give it the latest body."""
    loop = await shared_loop(memo)
    latest = slim_body(body)
    key: Key = (str(latest["metadata"].get("namespace") or "default"), str(latest["metadata"]["name"]))
    entry = loop.entries.get(key)
    if entry is not None:
        entry.body = latest
        return
    state = AutoscalerState(last_scale_time=(latest["status"].get("autoscaling") or {}).get("lastScaleTime"))

    async def post(type_: str, reason: str, message: str) -> None:
        current = loop.entries.get(key)
        if current is not None:
            await post_event(loop.api, current.body, type_=type_, reason=reason, message=message)  # type: ignore[arg-type]

    # The first look comes one scrape interval after the object appears, as the HPA's first sync
    # does: a new SttServer has no pod to scrape yet, and fifty new ones at once then leave the API
    # server to their children.
    interval = (latest["spec"].get("autoscaling") or {}).get("scrapeIntervalSeconds")
    loop.register(latest, state=state, post_event=post,
                  first_delay=float(interval) if isinstance(interval, int | float) else DEFAULT_INTERVAL_SEC)


async def untrack(namespace: str, name: str) -> None:
    """The SttServer is gone: stop its passes."""
    if _shared is not None:
        await _shared[0].unregister((namespace, name))


@kopf.on.event(GROUP, VERSION, PLURAL, id="autoscaler")
async def autoscaler(type: str | None, body: kopf.Body, name: str, namespace: str | None, memo: kopf.Memo,
                     **_: Any) -> None:
    """Every SttServer event (the initial listing too) keeps its entry in the scrape loop current."""
    if namespace is None:
        return
    if type == "DELETED":
        await untrack(namespace, name)
    else:
        await track(memo, body)
