"""A container's environment as the kubelet builds it: service variables, `envFrom`, `env`, `$(VAR)`.

Pure functions over the pod object and the ConfigMaps/Secrets it references (already fetched).
`expand` is Kubernetes' `$(VAR)` expansion (k8s.io/kubernetes/third_party/forked/golang/expansion):
`$$` is a literal `$`, `$(NAME)` of a defined variable is its value, an undefined reference stays as
written. `field_value` answers the downward API's `fieldRef` paths, shared with downwardAPI volumes.
"""

from __future__ import annotations

import base64
import math
import re
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

from stt_localfleet.launcherrors import CONFIG_ERROR, LaunchError

# A valid environment variable name (relaxed validation: printable ASCII without '='); others are skipped.
_ENV_NAME: Final = re.compile(r"^[!-<>-~]+$")
_SUFFIXES: Final[dict[str, Decimal]] = {
    "Ki": Decimal(2**10), "Mi": Decimal(2**20), "Gi": Decimal(2**30), "Ti": Decimal(2**40), "Pi": Decimal(2**50),
    "Ei": Decimal(2**60), "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1),
    "k": Decimal(10**3), "M": Decimal(10**6), "G": Decimal(10**9), "T": Decimal(10**12), "P": Decimal(10**15),
    "E": Decimal(10**18)}


@dataclass(frozen=True)
class PodFacts:
    """What the downward API can tell a container beyond the pod object: its IPs and the node's."""

    pod_ip: str
    host_ip: str
    node_allocatable: Mapping[str, str] | None = None  # for resourceFieldRef limits that are unset


def expand(text: str, lookup: Callable[[str], str | None]) -> str:
    """`$(VAR)` expansion exactly as the kubelet does it for env values, command and args."""
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char != "$" or i + 1 >= len(text):
            out.append(char)
            i += 1
            continue
        nxt = text[i + 1]
        if nxt == "$":  # escaped operator
            out.append("$")
            i += 2
        elif nxt == "(":
            close = text.find(")", i + 2)
            if close < 0:  # incomplete reference: kept as written
                out.append("$(")
                i += 2
                continue
            name = text[i + 2:close]
            value = lookup(name)
            out.append(f"$({name})" if value is None else value)
            i = close + 1
        else:
            out.append("$" + nxt)
            i += 2
    return "".join(out)


def expand_all(items: Sequence[str], env: Mapping[str, str]) -> list[str]:
    return [expand(str(item), env.get) for item in items]


def service_env(api_server_url: str) -> dict[str, str]:
    """The `kubernetes` Service's variables, pointing at the API server's address as pods reach it."""
    parsed = urllib.parse.urlsplit(api_server_url)
    host, port = parsed.hostname or "127.0.0.1", str(parsed.port or 443)
    return {
        "KUBERNETES_SERVICE_HOST": host, "KUBERNETES_SERVICE_PORT": port,
        "KUBERNETES_SERVICE_PORT_HTTPS": port, "KUBERNETES_PORT": f"tcp://{host}:{port}",
        f"KUBERNETES_PORT_{port}_TCP": f"tcp://{host}:{port}", f"KUBERNETES_PORT_{port}_TCP_PROTO": "tcp",
        f"KUBERNETES_PORT_{port}_TCP_PORT": port, f"KUBERNETES_PORT_{port}_TCP_ADDR": host,
    }


def decoded_data(kind: str, obj: Mapping[str, Any]) -> dict[str, bytes]:
    """A ConfigMap's (`data`, `binaryData`) or Secret's (`data`, `stringData`) content as bytes."""
    if kind == "secret":
        out = {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
        out.update({k: str(v).encode() for k, v in (obj.get("stringData") or {}).items()})
        return out
    data = {k: str(v).encode() for k, v in (obj.get("data") or {}).items()}
    data.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
    return data


def source_data(kind: str, name: str, store: Mapping[str, Mapping[str, Any] | None]) -> dict[str, bytes] | None:
    """The data of ConfigMap/Secret `name`, None when it does not exist (the caller knows if optional)."""
    obj = store.get(name)
    return None if obj is None else decoded_data(kind, obj)


def _selected(expression: str, meta_map: Mapping[str, str]) -> str:
    key = expression[expression.index("[") + 1:-1].strip("'\"")
    return str(meta_map.get(key, ""))


def field_value(pod: Mapping[str, Any], path: str, facts: PodFacts) -> str:
    """The value of a downward-API `fieldRef.fieldPath` (labels/annotations as `k="v"` lines)."""
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    simple = {
        "metadata.name": meta.get("name", ""), "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""), "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.podIP": facts.pod_ip, "status.podIPs": facts.pod_ip,
        "status.hostIP": facts.host_ip, "status.hostIPs": facts.host_ip,
    }
    if path in simple:
        return str(simple[path])
    for field in ("labels", "annotations"):
        values = meta.get(field) or {}
        if path == f"metadata.{field}":
            return "\n".join(f'{k}="{_escaped(v)}"' for k, v in sorted(values.items()))
        if path.startswith(f"metadata.{field}["):
            return _selected(path, values)
    raise LaunchError(CONFIG_ERROR, f"unsupported fieldPath {path!r}")


def _escaped(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def quantity(text: str | float) -> Decimal:
    """A Kubernetes quantity (`100m`, `1Gi`, `2`, `1e3`) as a number."""
    raw = str(text).strip()
    match = re.fullmatch(r"([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?", raw)
    if not match:
        raise LaunchError(CONFIG_ERROR, f"invalid quantity {raw!r}")
    return Decimal(match.group(1)) * _SUFFIXES[match.group(2) or ""]


def resource_value(container: Mapping[str, Any], ref: Mapping[str, Any], facts: PodFacts) -> str:
    """A `resourceFieldRef` (limits/requests of cpu, memory, ephemeral-storage), rounded up as Kubernetes does."""
    resource = str(ref.get("resource", ""))
    kind, _, name = resource.partition(".")
    resources = container.get("resources") or {}
    value = (resources.get(kind) or {}).get(name)
    if value is None and kind == "requests":
        value = (resources.get("limits") or {}).get(name)  # requests default to limits
    if value is None:
        value = (facts.node_allocatable or {}).get(name, "0")  # an unset limit is the node's allocatable
    divisor = quantity(ref.get("divisor") or "1")
    return str(math.ceil(quantity(value) / (divisor or 1)))


def resolve_env(
    pod: Mapping[str, Any],
    container: Mapping[str, Any],
    *,
    base: Mapping[str, str],
    configmaps: Mapping[str, Mapping[str, Any] | None],
    secrets: Mapping[str, Mapping[str, Any] | None],
    facts: PodFacts,
) -> dict[str, str]:
    """The container's environment: `base` (image + service variables), then `envFrom`, then `env`.

    Raises LaunchError(CreateContainerConfigError) for a missing non-optional source or key, as the
    kubelet does; the pod then waits with that reason until the object appears.
    """
    env = dict(base)
    for source in container.get("envFrom") or ():
        prefix = str(source.get("prefix", ""))
        for key, kind, store in (("configMapRef", "configmap", configmaps), ("secretRef", "secret", secrets)):
            if key not in source:
                continue
            ref = source[key]
            data = source_data(kind, ref["name"], store)
            if data is None:
                if ref.get("optional"):
                    continue
                raise LaunchError(CONFIG_ERROR, f'{kind} "{ref["name"]}" not found')
            env.update({prefix + k: v.decode() for k, v in data.items() if _ENV_NAME.match(prefix + k)})
    for item in container.get("env") or ():
        name, value_from = str(item["name"]), item.get("valueFrom")
        if value_from is None:
            # Only variables defined before this one (and the base) are visible to its expansion.
            env[name] = expand(str(item.get("value", "")), env.get)
            continue
        value = _value_from(pod, container, value_from, configmaps=configmaps, secrets=secrets, facts=facts)
        if value is not None:
            env[name] = value
    return env


def _value_from(pod: Mapping[str, Any], container: Mapping[str, Any], value_from: Mapping[str, Any], *,
                configmaps: Mapping[str, Mapping[str, Any] | None],
                secrets: Mapping[str, Mapping[str, Any] | None], facts: PodFacts) -> str | None:
    for key, kind, store in (("configMapKeyRef", "configmap", configmaps), ("secretKeyRef", "secret", secrets)):
        if key not in value_from:
            continue
        ref = value_from[key]
        data = source_data(kind, ref["name"], store)
        if data is None or ref["key"] not in data:
            if ref.get("optional"):
                return None
            if data is None:
                raise LaunchError(CONFIG_ERROR, f'{kind} "{ref["name"]}" not found')
            raise LaunchError(CONFIG_ERROR, f'couldn\'t find key {ref["key"]} in {kind} '
                                                            f'{(pod.get("metadata") or {}).get("namespace")}/{ref["name"]}')
        return data[ref["key"]].decode()
    if "fieldRef" in value_from:
        return field_value(pod, str(value_from["fieldRef"]["fieldPath"]), facts)
    if "resourceFieldRef" in value_from:
        return resource_value(container, value_from["resourceFieldRef"], facts)
    raise LaunchError(CONFIG_ERROR, f"unsupported valueFrom {sorted(value_from)}")


def referenced_sources(pod: Mapping[str, Any]) -> tuple[set[str], set[str]]:
    """Names of the ConfigMaps and Secrets the pod's env, envFrom and volumes reference."""
    spec = pod.get("spec") or {}
    configmaps: set[str] = set()
    secrets: set[str] = set()
    for container in [*(spec.get("initContainers") or ()), *(spec.get("containers") or ())]:
        for source in container.get("envFrom") or ():
            if "configMapRef" in source:
                configmaps.add(source["configMapRef"]["name"])
            if "secretRef" in source:
                secrets.add(source["secretRef"]["name"])
        for item in container.get("env") or ():
            value_from = item.get("valueFrom") or {}
            if "configMapKeyRef" in value_from:
                configmaps.add(value_from["configMapKeyRef"]["name"])
            if "secretKeyRef" in value_from:
                secrets.add(value_from["secretKeyRef"]["name"])
    for volume in spec.get("volumes") or ():
        if "configMap" in volume:
            configmaps.add(volume["configMap"]["name"])
        if "secret" in volume:
            secrets.add(volume["secret"]["secretName"])
        for source in (volume.get("projected") or {}).get("sources") or ():
            if "configMap" in source:
                configmaps.add(source["configMap"]["name"])
            if "secret" in source:
                secrets.add(source["secret"]["name"])
    return configmaps, secrets
