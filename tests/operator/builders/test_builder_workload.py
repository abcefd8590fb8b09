"""ConfigMap and Deployment builders, compared as plain dicts."""

from __future__ import annotations

import yaml
from builder_specs import make, sample
from stt_operator.builders import build_configmap, build_deployment
from stt_operator.builders.configmap import config_hash
from stt_server.config import build_config


def container(deployment: dict) -> dict:
    return deployment["spec"]["template"]["spec"]["containers"][0]


def test_configmap_renders_the_server_config_keys() -> None:
    spec = make(limits={"maxSessions": 7, "maxDecodePending": 3, "endSilenceMs": 700,
                        "sessionIdleTimeoutSeconds": 12, "maxStreamDurationSeconds": 600},
                service={"grpcPort": 6000, "httpPort": 6001}, drain={"gracePeriodSeconds": 45})
    config = yaml.safe_load(build_configmap(spec)["data"]["config.yaml"])
    assert config["limits"]["max_sessions"] == 7 and config["limits"]["max_decode_pending"] == 3
    assert config["limits"]["session_idle_timeout_sec"] == 12
    assert config["streaming"]["end_silence_ms"] == 700
    assert config["server"] == {"grpc_host": "0.0.0.0", "grpc_port": 6000, "http_host": "0.0.0.0",
                                "http_port": 6001, "rest_host": "0.0.0.0", "rest_port": 8080,
                                "max_stream_duration_sec": 600, "drain_grace_sec": 45,
                                "tls": {"cert_file": None, "key_file": None}}
    assert config["model"] == {"name": "tiny.en", "path": None, "device": "auto", "compute_type": "auto",
                               "cpu_threads": 0, "num_workers": 2, "beam_size": 1}
    build_config(config)  # the server itself accepts it


def test_gpu_sample_config_points_at_mounted_model_secrets_and_tls() -> None:
    config = yaml.safe_load(build_configmap(sample("gpu-production.yaml"))["data"]["config.yaml"])
    assert config["model"] == {"name": "large-v3", "path": "/models/faster-whisper-large-v3", "device": "cuda",
                               "compute_type": "float16", "cpu_threads": 0, "num_workers": 2, "beam_size": 1}
    assert config["metrics"] == {"enable_gpu_metrics": True}  # spec.server leaves it unset; the pod has a GPU
    assert config["auth"]["api_keys_file"] == "/etc/stt-secrets/api-keys/keys.txt"
    assert config["server"]["tls"] == {"cert_file": "/etc/stt-secrets/tls/tls.crt",
                                       "key_file": "/etc/stt-secrets/tls/tls.key"}
    build_config(config)


def test_config_change_changes_the_pod_template_hash() -> None:
    a, b = make(), make(limits={"maxSessions": 8})
    assert config_hash(a) == config_hash(make())
    assert config_hash(a) != config_hash(b)
    annotations = build_deployment(b)["spec"]["template"]["metadata"]["annotations"]
    assert annotations == {"sttfleet.io/config-hash": config_hash(b)}
    # Not a config change: image and replicas roll (or not) on their own.
    assert config_hash(make(image="img:2", replicas=3)) == config_hash(a)


def test_minimal_deployment_key_fields() -> None:
    deployment = build_deployment(make())
    spec = deployment["spec"]
    assert spec["replicas"] == 1
    assert spec["selector"] == {"matchLabels": {"app.kubernetes.io/name": "stt-server",
                                                "app.kubernetes.io/instance": "s1"}}
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}
    c = container(deployment)
    assert c["command"] == ["stt-server", "--config", "/etc/stt/config.yaml"]
    assert c["ports"] == [{"name": "grpc", "containerPort": 50051, "protocol": "TCP"},
                          {"name": "http", "containerPort": 8000, "protocol": "TCP"},
                          {"name": "rest", "containerPort": 8080, "protocol": "TCP"}]
    # probes stay on the control plane: the REST port answers only API calls
    assert c["readinessProbe"]["httpGet"] == {"path": "/health/ready", "port": "http"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/health/live", "port": "http"}
    startup = c["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 300  # room for a big model
    assert c["lifecycle"]["preStop"] == {"exec": {"command": ["sleep", "5"]}}
    assert "nvidia.com/gpu" not in (c["resources"].get("limits") or {})
    assert {"name": "config", "mountPath": "/etc/stt", "readOnly": True} in c["volumeMounts"]
    assert not any(e["name"] == "STT_CONTROL_TOKEN" for e in c["env"])


def test_grace_period_covers_the_drain() -> None:
    pod = build_deployment(make(drain={"gracePeriodSeconds": 40}))["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == 40 + 5 + 15  # drain + preStop sleep + margin


def test_restricted_pod_security() -> None:
    deployment = build_deployment(make())
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = container(deployment)["securityContext"]
    assert sc == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True,
                  "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}
    assert {"name": "tmp", "emptyDir": {}} in pod["volumes"]
    assert {"name": "tmp", "mountPath": "/tmp"} in container(deployment)["volumeMounts"]


def test_gpu_deployment() -> None:
    deployment = build_deployment(sample("gpu-production.yaml"), replicas=2)
    pod = deployment["spec"]["template"]["spec"]
    c = container(deployment)
    assert deployment["spec"]["replicas"] == 2
    assert c["resources"] == {"requests": {"cpu": "2", "memory": "8Gi"},
                              "limits": {"memory": "16Gi", "nvidia.com/gpu": "1"}}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    assert {"key": "dedicated", "operator": "Equal", "value": "speech", "effect": "NoSchedule"} in pod["tolerations"]
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert pod["runtimeClassName"] == "nvidia" and pod["imagePullSecrets"] == [{"name": "ghcr-pull"}]
    assert "podAntiAffinity" in pod["affinity"]
    assert {"name": "model-cache", "persistentVolumeClaim": {"claimName": "whisper-models", "readOnly": True}} \
        in pod["volumes"]
    assert {"name": "model-cache", "mountPath": "/models", "readOnly": True} in c["volumeMounts"]
    assert {"name": "STT_CONTROL_TOKEN", "valueFrom": {"secretKeyRef": {"name": "stt-control", "key": "token"}}} \
        in c["env"]
    assert {"name": "api-keys", "mountPath": "/etc/stt-secrets/api-keys", "readOnly": True} in c["volumeMounts"]
    assert {"name": "tls", "mountPath": "/etc/stt-secrets/tls", "readOnly": True} in c["volumeMounts"]
    assert pod["terminationGracePeriodSeconds"] == 60 + 20
    assert c["readinessProbe"]["httpGet"] == {"path": "/health/ready", "port": "http", "scheme": "HTTPS"}


def test_host_path_cache_and_capture_storage() -> None:
    spec = make(model={"name": "base.en", "cache": {"hostPath": {"path": "/srv/models"}}},
                storage={"persistAudio": True, "volume": {"pvc": {"claimName": "captures"}}, "maxFiles": 100})
    pod = build_deployment(spec)["spec"]["template"]["spec"]
    assert {"name": "model-cache", "hostPath": {"path": "/srv/models", "type": "Directory"}} in pod["volumes"]
    assert {"name": "captures", "persistentVolumeClaim": {"claimName": "captures"}} in pod["volumes"]
    config = yaml.safe_load(build_configmap(spec)["data"]["config.yaml"])
    assert config["storage"]["persist_audio"] is True and config["storage"]["max_files"] == 100
    assert config["model"]["path"] == "/models"
