"""The openAPIV3Schema of SttServer: spec (with defaults, ranges, CEL rules) and status.

Defaults here match `stt_operator.spec_sections` (a test checks that a defaulted object parses to
the same spec as the bare one). CEL rules repeat what `parse_spec` checks, so admission rejects
what the operator would refuse anyway.

The API server checks every `default` against the CEL rules of its level, on the raw value before
nested defaults fill in: a level defaulting to `{}` would fail a rule that reads `self.grpcPort`
("no such key") and the whole CRD would be refused. Rules on such levels therefore read a field only
behind `has()`; real objects are defaulted before validation, so the guard changes nothing for them.
"""

from __future__ import annotations

from typing import Any, Final

from stt_operator.spec import NAME_LENGTH_MESSAGE, NAME_MAX_LENGTH, NAME_PATTERN, NAME_PATTERN_MESSAGE
from stt_operator.spec_alerting import DURATION_PATTERN


def obj(properties: dict[str, Any], *, required: list[str] | None = None, description: str = "",
        rules: list[tuple[str, str]] | None = None, default: Any = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if description:
        schema["description"] = description
    if required:
        schema["required"] = required
    if rules:
        schema["x-kubernetes-validations"] = validations(rules)
    if default is not None:
        schema["default"] = default
    return schema


def validations(rules: list[tuple[str, str]]) -> list[dict[str, str]]:
    return [{"rule": rule, "message": message} for rule, message in rules]


def string(description: str = "", *, enum: list[str] | None = None, default: str | None = None,
           min_length: int | None = None, pattern: str | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    for key, value in (("description", description or None), ("enum", enum), ("default", default),
                       ("minLength", min_length), ("pattern", pattern)):
        if value is not None:
            schema[key] = value
    return schema


def integer(description: str = "", *, minimum: int | None = None, maximum: int | None = None,
            default: int | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "integer"}
    for key, value in (("description", description or None), ("minimum", minimum), ("maximum", maximum),
                       ("default", default)):
        if value is not None:
            schema[key] = value
    return schema


def number(description: str = "", *, minimum: float | None = None, maximum: float | None = None,
           default: float | None = None, exclusive_minimum: bool = False) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "number"}
    for key, value in (("description", description or None), ("minimum", minimum), ("maximum", maximum),
                       ("default", default)):
        if value is not None:
            schema[key] = value
    if exclusive_minimum:
        schema["exclusiveMinimum"] = True
    return schema


def boolean(description: str = "", *, default: bool | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "boolean"}
    if description:
        schema["description"] = description
    if default is not None:
        schema["default"] = default
    return schema


def string_map(description: str = "") -> dict[str, Any]:
    return {"type": "object", "description": description, "additionalProperties": {"type": "string"}}


# Label keys at admission, as stt_operator.label_syntax checks them (lengths approximate: a prefix of
# 63-character DNS labels, a name of at most 63); values by pattern, which costs no CEL at all.
LABEL_KEY_RULE: Final = (r"self.all(k, k.size() <= 317 && k.matches('^([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"
                         r"(\\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$'))")
LABEL_VALUE_PATTERN: Final = "^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$"


def label_map(description: str = "") -> dict[str, Any]:
    """Labels that go onto a child verbatim: key and value syntax checked at admission."""
    return {"type": "object", "description": description, "maxProperties": 64,
            "additionalProperties": {"type": "string", "maxLength": 63, "pattern": LABEL_VALUE_PATTERN},
            "x-kubernetes-validations": [{
                "rule": LABEL_KEY_RULE,
                "message": "label keys are [prefix/]name: prefix a DNS subdomain, name at most 63 characters of "
                           "letters, digits, '-', '_' and '.', starting and ending with a letter or digit"}]}


def free_object(description: str) -> dict[str, Any]:
    return {"type": "object", "description": description, "x-kubernetes-preserve-unknown-fields": True}


def secret_key(description: str) -> dict[str, Any]:
    return obj({"name": string("Secret name", min_length=1), "key": string("key in the Secret", min_length=1)},
               required=["name", "key"], description=description)


def _percent(description: str, default: float) -> dict[str, Any]:
    return number(description, minimum=0, maximum=100, default=default, exclusive_minimum=True)


def _seconds(description: str, default: float) -> dict[str, Any]:
    return number(description, minimum=0, default=default, exclusive_minimum=True)


def _scaling_rules(description: str) -> dict[str, Any]:
    policy = obj({"type": string("Pods or Percent", enum=["Pods", "Percent"]),
                  "value": integer("pods, or percent of current replicas", minimum=1),
                  "periodSeconds": integer("window the policy holds for", minimum=1, maximum=1800)},
                 required=["type", "value", "periodSeconds"])
    return obj({
        "stabilizationWindowSeconds": integer("look-back window for recommendations", minimum=0, maximum=3600),
        "selectPolicy": string("which policy wins", enum=["Max", "Min", "Disabled"]),
        "policies": {"type": "array", "items": policy, "maxItems": 10},
    }, description=description)


def _model() -> dict[str, Any]:
    cache = obj({
        "pvc": obj({"claimName": string(min_length=1)}, required=["claimName"]),
        "hostPath": obj({"path": string(min_length=1, pattern="^/")}, required=["path"]),
    }, description="read-only volume holding CTranslate2 model directories",
        rules=[("!(has(self.pvc) && has(self.hostPath))", "set either pvc or hostPath, not both")])
    return obj({"name": string("model name; tiny.en is bundled in the image", default="tiny.en", min_length=1),
                "cache": cache,
                "path": string("model directory inside the cache volume")},
               default={}, rules=[("!has(self.name) || self.name == 'tiny.en' || has(self.cache)",
                                   "a model other than the bundled tiny.en needs a cache volume")])


def _service() -> dict[str, Any]:
    port = {"minimum": 1, "maximum": 65535}
    node_port = {"minimum": 30000, "maximum": 32767}
    return obj({
        "type": string(enum=["ClusterIP", "NodePort"], default="ClusterIP"),
        "grpcPort": integer("gRPC port (service and container)", default=50051, **port),
        "httpPort": integer("HTTP control plane port", default=8000, **port),
        "nodePort": integer("fixed node port for gRPC (NodePort only)", **node_port),
        "httpNodePort": integer("fixed node port for HTTP (NodePort only)", **node_port),
        "restPort": integer("OpenAI-compatible REST API port (service and container); 0 turns the API off",
                            default=8080, minimum=0, maximum=65535),
        "restNodePort": integer("fixed node port for the REST API (NodePort only)", **node_port),
    }, default={}, rules=[
        ("(has(self.type) && self.type == 'NodePort') || (!has(self.nodePort) && !has(self.httpNodePort))",
         "nodePort and httpNodePort are only allowed with type NodePort"),
        ("(has(self.type) && self.type == 'NodePort') || !has(self.restNodePort)",
         "restNodePort is only allowed with type NodePort"),
        (("!has(self.restPort) || ((!has(self.grpcPort) || self.restPort != self.grpcPort) && "
          "(!has(self.httpPort) || self.restPort != self.httpPort))"),
         "restPort must differ from grpcPort and httpPort"),
        (("!has(self.restNodePort) || ((!has(self.nodePort) || self.restNodePort != self.nodePort) && "
          "(!has(self.httpNodePort) || self.restNodePort != self.httpNodePort))"),
         "restNodePort must differ from nodePort and httpNodePort"),
        ("!has(self.restNodePort) || !has(self.restPort) || self.restPort != 0",
         "restNodePort needs the REST API on (restPort other than 0)"),
        ("!has(self.grpcPort) || !has(self.httpPort) || self.grpcPort != self.httpPort",
         "grpcPort and httpPort must differ"),
        ("!has(self.nodePort) || !has(self.httpNodePort) || self.nodePort != self.httpNodePort",
         "nodePort and httpNodePort must differ"),
    ])


def _limits() -> dict[str, Any]:
    return obj({
        "maxSessions": integer("open sessions per pod (ERR1011 beyond)", minimum=1, default=32),
        "maxSessionsPerApiKey": integer(minimum=1, default=16),
        "requestsPerMinutePerApiKey": integer(minimum=1, default=600),
        "maxStreamBufferBytes": integer(minimum=32000, default=1920000),
        "maxTotalBufferBytes": integer(minimum=32000, default=67108864),
        "maxDecodePending": integer("decode queue cap per pod", minimum=1, default=16),
        "sessionIdleTimeoutSeconds": _seconds("close idle sessions after", 30),
        "maxStreamDurationSeconds": _seconds("audio seconds per stream", 3600),
        "partialIntervalSeconds": number(minimum=0, maximum=10, default=0.5, exclusive_minimum=True),
        "endSilenceMs": integer("silence that ends an utterance", minimum=50, default=500),
        "maxUtteranceSeconds": number(minimum=1, maximum=30, default=15, exclusive_minimum=True),
    }, default={}, description="server limits, rendered into config.yaml")


def _monitoring() -> dict[str, Any]:
    thresholds = obj({
        "createSessionP99Seconds": _seconds("CreateSession P99 SLO", 0.3),
        "firstPartialP99Seconds": _seconds("speech start -> first partial P99 SLO", 2.5),
        "finalP99Seconds": _seconds("utterance end -> final P99 SLO", 5.0),
        "errorRatePercent": _percent("gRPC server error rate SLO", 0.5),
        "orphanRatePercent": _percent("orphaned / (orphaned + cancelled) decodes", 5),
        "partialDropRatePercent": _percent("dropped partials per decode", 5),
        "bufferUsagePercent": _percent("global buffer use", 90),
        "sessionChurnPer5m": integer("sessions created per 5 minutes", minimum=1, default=200),
        "decodeQueueSaturationPercent": _percent("decode_pending / cap", 90),
        "decodeP99Seconds": _seconds("decode total time P99 (stt_decode_phase_seconds)", 2.0),
        "availabilityPercent": _percent("calls without a server fault over 1h", 99),
        "memoryUsagePercent": _percent("resident memory / container memory limit", 80),
        "certExpiryDays": number("alert when the TLS certificate expires within this many days", minimum=0,
                                 default=14, exclusive_minimum=True),
    }, default={})
    return obj({
        "serviceMonitor": obj({"enabled": boolean(default=True),
                               "interval": string(default="30s", pattern="^[0-9]+[smh]$"),
                               "labels": label_map("extra labels so a Prometheus selects it")}, default={}),
        "prometheusRule": obj({"enabled": boolean(default=True),
                               "labels": label_map("extra labels so a Prometheus selects it"),
                               "runbookBaseURL": string("alerts link <runbookBaseURL>#<alert name>"),
                               "thresholds": thresholds}, default={}),
        "grafanaDashboard": obj({
            "enabled": boolean(default=False),
            "labels": label_map("extra labels on the ConfigMap (grafana_dashboard: \"1\" is always set)"),
            "folder": string("Grafana folder, as the grafana_folder annotation the sidecar's folderAnnotation reads"),
        }, default={}, description="a ConfigMap with this SttServer's dashboard for Grafana's sidecar"),
        "alertmanagerConfig": _alertmanager_config(),
    }, default={})


def _alertmanager_config() -> dict[str, Any]:
    def webhook(description: str) -> dict[str, Any]:
        return obj({
            "webhookURL": string("http(s) URL Alertmanager posts these alerts to", pattern="^https?://[^\\s]+$"),
            "webhookURLSecret": secret_key("a Secret key holding the URL (a pager integration URL carries its key)"),
        }, description=description, rules=[("!(has(self.webhookURL) && has(self.webhookURLSecret))",
                                             "set webhookURL or webhookURLSecret, not both")])

    return obj({
        "enabled": boolean("render an AlertmanagerConfig routing this SttServer's alerts", default=False),
        "labels": label_map("extra labels so an Alertmanager's alertmanagerConfigSelector selects it"),
        "critical": webhook("where critical alerts go (pages)"),
        "warning": webhook("where warning alerts go (tickets); muted while a critical alert fires"),
        "repeatInterval": string("resend a still-firing alert after this long", default="4h",
                                 pattern=DURATION_PATTERN),
    }, description="an AlertmanagerConfig (prometheus-operator) for this SttServer's alerts")


def _autoscaling() -> dict[str, Any]:
    return obj({
        "enabled": boolean(default=False),
        "minReplicas": integer(minimum=1, default=1),
        "maxReplicas": integer(minimum=1, maximum=1000, default=4),
        "targetDecodePendingPerReplica": number("queued+running decodes per pod", minimum=0, default=4,
                                                exclusive_minimum=True),
        "targetActiveSessionsPerReplica": number("open sessions per pod (optional second metric)", minimum=0,
                                                 exclusive_minimum=True),
        "scrapeIntervalSeconds": number("seconds between scrapes", minimum=1, maximum=600, default=15),
        "behavior": obj({"scaleUp": _scaling_rules("as the HPA's behavior.scaleUp"),
                         "scaleDown": _scaling_rules("as the HPA's behavior.scaleDown")}),
    }, default={}, rules=[("!has(self.minReplicas) || !has(self.maxReplicas) || self.minReplicas <= self.maxReplicas",
                           "minReplicas must be <= maxReplicas")])


def _policy_label_selector(description: str, *, default: dict[str, Any] | None = None) -> dict[str, Any]:
    expression = obj({
        "key": string(min_length=1),
        "operator": string(enum=["In", "NotIn", "Exists", "DoesNotExist"]),
        "values": {"type": "array", "items": {"type": "string"}},
    }, required=["key", "operator"])
    return obj({"matchLabels": string_map(), "matchExpressions": {"type": "array", "items": expression}},
               description=description, default=default)


def _policy_peers(description: str) -> dict[str, Any]:
    """NetworkPolicyPeers as Kubernetes writes them; parse_spec checks the rules of a peer."""
    peer = obj({
        "namespaceSelector": _policy_label_selector("namespaces whose pods may connect ({} is all)"),
        "podSelector": _policy_label_selector("pods (in the selected namespaces, else this one) that may connect"),
        "ipBlock": obj({"cidr": string("e.g. 10.0.0.0/8", min_length=1),
                        "except": {"type": "array", "items": {"type": "string"}}}, required=["cidr"]),
    })
    return {"type": "array", "description": description, "items": peer}


def _network_policy() -> dict[str, Any]:
    return obj({
        "enabled": boolean("render a NetworkPolicy for the server pods", default=False),
        "grpcFrom": {**_policy_peers("who may reach the gRPC port; leave out to admit every client"),
                     "minItems": 1},
        "httpFrom": _policy_peers("more peers for the HTTP port, besides the operator and Prometheus"),
        "restFrom": {**_policy_peers("who may reach the REST API port; leave out to admit every client"),
                     "minItems": 1},
        "operatorNamespace": string("namespace of the operator (default: the one it runs in)", min_length=1,
                                    pattern="^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"),
        "prometheusNamespaceSelector": _policy_label_selector(
            "namespaces of the Prometheus that scrapes /metrics",
            default={"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}),
    }, description="ingress NetworkPolicy: clients -> gRPC and REST, operator and Prometheus -> HTTP")


def _server() -> dict[str, Any]:
    """`spec.server` (stt_operator.spec_server): tuning the server; extraConfig reaches every other key."""
    vad = number("speech probability that counts as voice", minimum=0, maximum=1, default=0.5,
                 exclusive_minimum=True)
    vad["exclusiveMaximum"] = True
    return obj({
        "enableGpuMetrics": boolean("NVML figures in /system and the VRAM gauge (default: on when gpu > 0)"),
        "publicHealth": string("detail of unauthenticated /health/*", enum=["full", "minimal"], default="full"),
        "logging": obj({
            "level": string(enum=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], default="INFO"),
            "format": string(enum=["json", "console"], default="json"),
            "file": string("also write JSON lines to this file under /tmp/ (the pod's writable emptyDir)",
                           pattern="^/tmp/[^/].*[^/]$"),
            "fileMaxBytes": integer("rotate the file at this size", minimum=1024, default=52428800),
            "fileBackups": integer("rotated files kept", minimum=0, maximum=100, default=3),
        }, default={}),
        "streaming": obj({
            "maxBatchSize": integer("utterances decoded in one model call", minimum=1, maximum=64, default=8),
            "vadThreshold": vad,
            "speechStartMs": integer("voice needed before an utterance starts", minimum=0, maximum=10000,
                                     default=200),
        }, default={}, description="endpointing and batching (partials and end silence: spec.limits)"),
        "decoding": obj({
            "cpuThreads": integer("CTranslate2 threads per worker, 0 = every core", minimum=0, maximum=256, default=0),
            "numWorkers": integer("concurrent model calls", minimum=1, maximum=64, default=2),
            "beamSize": integer("1 = greedy", minimum=1, maximum=10, default=1),
        }, default={}),
        "extraConfig": free_object("any other server config key, dotted (limits.session_ttl_sec: 600) or as "
                                   "nested sections; checked against the server's config schema"),
    }, default={}, description="server settings rendered into config.yaml (docs/operator.md)")


def name_rules() -> list[dict[str, str]]:
    """Root-level rules on `metadata.name` (CEL may read it only at the root): children are named after it."""
    return validations([
        (f"size(self.metadata.name) <= {NAME_MAX_LENGTH}", f"metadata.name {NAME_LENGTH_MESSAGE}"),
        (f"self.metadata.name.matches('{NAME_PATTERN}')", f"metadata.name {NAME_PATTERN_MESSAGE}"),
    ])


def spec_schema() -> dict[str, Any]:
    """`.spec`: only `image` is required.

    `spec` has no default and `device` and `gpu` do, so its rules always see both fields.
    """
    return obj({
        "image": string("stt-server image", min_length=1),
        "imagePullPolicy": string(enum=["Always", "IfNotPresent", "Never"], default="IfNotPresent"),
        "imagePullSecrets": {"type": "array", "items": obj({"name": string(min_length=1)}, required=["name"])},
        "model": _model(),
        "device": string(enum=["auto", "cpu", "cuda"], default="auto"),
        "computeType": string(enum=["auto", "int8", "int8_float16", "float16", "float32"], default="auto"),
        "gpu": integer("nvidia.com/gpu per pod", minimum=0, maximum=16, default=0),
        "resources": obj({"requests": string_map("cpu / memory"), "limits": string_map("cpu / memory")}),
        "nodeSelector": label_map(),
        "tolerations": {"type": "array", "items": free_object("a core/v1 Toleration")},
        "affinity": free_object("a core/v1 Affinity"),
        "runtimeClassName": string(),
        "service": _service(),
        "limits": _limits(),
        "secrets": obj({"apiKeys": secret_key("file of API keys, one per line"),
                        "controlToken": secret_key("bearer token of the HTTP control plane"),
                        "tls": obj({"secretName": string("a kubernetes.io/tls Secret", min_length=1)},
                                   required=["secretName"])}),
        "storage": obj({
            "persistAudio": boolean(default=False),
            "volume": obj({"pvc": obj({"claimName": string(min_length=1)}, required=["claimName"]),
                           "emptyDir": obj({})}, rules=[("!(has(self.pvc) && has(self.emptyDir))",
                                                         "set either pvc or emptyDir")]),
            "maxBytes": integer(minimum=0), "maxFiles": integer(minimum=0), "maxAgeDays": number(minimum=0),
        }),
        "monitoring": _monitoring(),
        "drain": obj({"gracePeriodSeconds": integer("stream drain time before exit", minimum=0, maximum=3600,
                                                    default=30)}, default={}),
        "replicas": integer("pods when autoscaling is off", minimum=0, maximum=1000, default=1),
        "autoscaling": _autoscaling(),
        "networkPolicy": _network_policy(),
        "server": _server(),
    }, required=["image"], rules=[
        ("!(self.device == 'cpu' && self.gpu > 0)", "device cpu cannot use GPUs"),
        ("self.device != 'cuda' || self.gpu >= 1", "device cuda needs gpu >= 1"),
    ])


def status_schema() -> dict[str, Any]:
    """`.status`, written by the operator and its autoscaler (unknown fields kept for newer writers)."""
    condition = obj({
        "type": string(), "status": string(enum=["True", "False", "Unknown"]), "reason": string(),
        "message": string(), "lastTransitionTime": string(), "observedGeneration": integer(),
    }, required=["type", "status"])
    endpoint = obj({"name": string(), "type": string(), "address": string(), "nodePort": integer()})
    metric = obj({"name": string(), "target": number(), "averageValue": number(),
                  "recommendedReplicas": integer(), "error": string()})
    autoscaling = obj({
        "lastScaleTime": string(), "currentReplicas": integer(), "desiredReplicas": integer(),
        "reason": string(), "currentMetrics": {"type": "array", "items": metric},
        "unhealthyPods": {"type": "array", "items": obj({"name": string(), "reason": string()})},
    })
    schema = obj({
        "observedGeneration": integer(), "replicas": integer(), "readyReplicas": integer(),
        "updatedReplicas": integer(), "desiredReplicas": integer(),
        "replicaSummary": string("ready/desired"), "selector": string("label selector of the pods"),
        "model": string(), "monitoring": string(),
        "endpoints": {"type": "array", "items": endpoint},
        "conditions": {"type": "array", "items": condition, "x-kubernetes-list-type": "map",
                       "x-kubernetes-list-map-keys": ["type"]},
        "autoscaling": autoscaling,
    })
    schema["x-kubernetes-preserve-unknown-fields"] = True
    return schema
