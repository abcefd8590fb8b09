"""The ConfigMap holding the server's `config.yaml`, and the hash that rolls pods when it changes."""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Mapping
from typing import Any, Final

import yaml

from stt_operator.builders.labels import API_KEYS_DIR, CAPTURE_DIR, MODEL_DIR, TLS_DIR, metadata
from stt_operator.spec import SttServerSpec


def server_config(spec: SttServerSpec) -> dict[str, Any]:
    """The server configuration (contracts.md keys) this spec asks for: the typed fields, then
    `spec.server.extraConfig` (parse_spec made sure the two never set the same key)."""
    limits, storage, tuning = spec.limits, spec.storage, spec.server
    tls = ({"cert_file": f"{TLS_DIR}/tls.crt", "key_file": f"{TLS_DIR}/tls.key"}
           if spec.secrets.tls_secret_name else {"cert_file": None, "key_file": None})
    model_path = None
    if spec.model.has_cache:
        model_path = f"{MODEL_DIR}/{spec.model.path.strip('/')}" if spec.model.path else MODEL_DIR
    api_keys = spec.secrets.api_keys
    gpu_metrics = tuning.enable_gpu_metrics if tuning.enable_gpu_metrics is not None else spec.gpu > 0
    typed = {
        "server": {"grpc_host": "0.0.0.0", "grpc_port": spec.service.grpc_port,
                   "http_host": "0.0.0.0", "http_port": spec.service.http_port,
                   "rest_host": "0.0.0.0", "rest_port": spec.service.rest_port,
                   "max_stream_duration_sec": limits.max_stream_duration_seconds,
                   "drain_grace_sec": spec.drain_grace_seconds, "tls": tls},
        "model": {"name": spec.model.name, "path": model_path, "device": spec.device,
                  "compute_type": spec.compute_type, "cpu_threads": tuning.cpu_threads,
                  "num_workers": tuning.num_workers, "beam_size": tuning.beam_size},
        "streaming": {"partial_interval_sec": limits.partial_interval_seconds,
                      "end_silence_ms": limits.end_silence_ms,
                      "max_utterance_sec": limits.max_utterance_seconds,
                      "max_batch_size": tuning.max_batch_size, "vad_threshold": tuning.vad_threshold,
                      "speech_start_ms": tuning.speech_start_ms},
        "limits": {"max_sessions": limits.max_sessions,
                   "max_sessions_per_api_key": limits.max_sessions_per_api_key,
                   "requests_per_minute_per_api_key": limits.requests_per_minute_per_api_key,
                   "session_idle_timeout_sec": limits.session_idle_timeout_seconds,
                   "max_stream_buffer_bytes": limits.max_stream_buffer_bytes,
                   "max_total_buffer_bytes": limits.max_total_buffer_bytes,
                   "max_decode_pending": limits.max_decode_pending},
        "auth": {"api_keys_file": f"{API_KEYS_DIR}/{api_keys.key}" if api_keys else None,
                 "public_health": tuning.public_health},
        "storage": {"persist_audio": storage.persist_audio, "directory": CAPTURE_DIR,
                    "max_bytes": storage.max_bytes, "max_files": storage.max_files,
                    "max_age_days": storage.max_age_days},
        "logging": {"format": tuning.logging.format, "level": tuning.logging.level, "file": tuning.logging.file,
                    "file_max_bytes": tuning.logging.file_max_bytes,
                    "file_backups": tuning.logging.file_backups},
        "metrics": {"enable_gpu_metrics": gpu_metrics},
    }
    return _merged(typed, spec.server.extra_config)


def _merged(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        current = out.get(key)
        out[key] = (_merged(current, value) if isinstance(current, dict) and isinstance(value, Mapping)
                    else copy.deepcopy(value))
    return out


# libyaml's emitter (PyYAML's wheels carry it) renders the same text ten times faster than the pure
# Python one; every pass renders the config twice (the ConfigMap and the pod template's hash).
_DUMPER: Final = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def render_config(spec: SttServerSpec) -> str:
    """`config.yaml` text, deterministic (sorted keys) so its hash only moves when content does."""
    return yaml.dump(server_config(spec), Dumper=_DUMPER, sort_keys=True, default_flow_style=False)


def config_hash(spec: SttServerSpec) -> str:
    """A short digest of `config.yaml`; on the pod template it rolls pods on a config change."""
    return hashlib.sha256(render_config(spec).encode()).hexdigest()[:16]


def build_configmap(spec: SttServerSpec) -> dict[str, Any]:
    """The ConfigMap `<name>` with key `config.yaml`."""
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata(spec),
            "data": {"config.yaml": render_config(spec)}}
