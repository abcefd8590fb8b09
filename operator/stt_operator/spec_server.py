"""`spec.server`: the server settings a platform team tunes, plus `extraConfig` for every other key.

The typed fields cover what operators of a fleet change (logging, NVML metrics, the health
endpoint's detail, the streaming and decoding knobs). `extraConfig` reaches every other key of the
server's `config.yaml`, as dotted keys (`limits.session_ttl_sec: 600`) or nested sections
(`model: {language: de}`). It is checked against the server's configuration schema, exported from
`stt_server.config` as JSON Schema into `server_config.schema.json` next to this module (the
operator never imports `stt_server`). A key the typed spec already renders (ports, mounts, limits,
...) is refused there too, so each setting has exactly one home. Any violation is a `SpecError`
naming the key, which the reconciler reports as a `Degraded` condition; no pod gets a bad config.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from stt_operator.spec_reader import Reader, SpecError

SCHEMA_RESOURCE: Final = "server_config.schema.json"
LOG_LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMATS: Final = ("json", "console")
PUBLIC_HEALTH: Final = ("full", "minimal")
EXTRA_PATH: Final = "spec.server.extraConfig"

# Every config key builders.configmap.server_config renders from typed spec fields (a test keeps
# this list and the renderer in step). extraConfig may not set these, nor a section holding one.
TYPED_KEYS: Final = frozenset({
    "server.grpc_host", "server.grpc_port", "server.http_host", "server.http_port", "server.rest_host",
    "server.rest_port",
    "server.max_stream_duration_sec", "server.drain_grace_sec", "server.tls.cert_file", "server.tls.key_file",
    "model.name", "model.path", "model.device", "model.compute_type", "model.cpu_threads", "model.num_workers",
    "model.beam_size",
    "streaming.partial_interval_sec", "streaming.end_silence_ms", "streaming.max_utterance_sec",
    "streaming.max_batch_size", "streaming.vad_threshold", "streaming.speech_start_ms",
    "limits.max_sessions", "limits.max_sessions_per_api_key", "limits.requests_per_minute_per_api_key",
    "limits.session_idle_timeout_sec", "limits.max_stream_buffer_bytes", "limits.max_total_buffer_bytes",
    "limits.max_decode_pending",
    "auth.api_keys_file", "auth.public_health",
    "storage.persist_audio", "storage.directory", "storage.max_bytes", "storage.max_files", "storage.max_age_days",
    "logging.format", "logging.level", "logging.file", "logging.file_max_bytes", "logging.file_backups",
    "metrics.enable_gpu_metrics",
})
# Secrets and their files are wired from spec.secrets (mounted Secrets); a literal in the
# ConfigMap would put credentials in plain text.
SECRET_KEYS: Final = frozenset({"auth.api_keys", "auth.control_token", "auth.control_token_file"})


@dataclass(frozen=True)
class ServerLoggingSpec:
    level: str = "INFO"
    format: str = "json"
    file: str | None = None  # also write JSON lines here (rotated); /tmp is the pod's writable emptyDir
    file_max_bytes: int = 50 * 1024 * 1024
    file_backups: int = 3


@dataclass(frozen=True)
class ServerTuningSpec:
    """`spec.server`, defaults equal to the server's own (`stt_server.config`)."""

    enable_gpu_metrics: bool | None = None  # None: on exactly when the pod asks for GPUs
    public_health: str = "full"
    logging: ServerLoggingSpec = ServerLoggingSpec()
    max_batch_size: int = 8
    vad_threshold: float = 0.5
    speech_start_ms: int = 200
    cpu_threads: int = 0  # 0: every core
    num_workers: int = 2
    beam_size: int = 1
    extra_config: Mapping[str, Any] = field(default_factory=dict)  # nested sections, validated


def parse_server(r: Reader) -> ServerTuningSpec:
    """Read `spec.server`; raises SpecError naming the field (or the extraConfig key) at fault."""
    logging, streaming, decoding = r.child("logging"), r.child("streaming"), r.child("decoding")
    d, dl = ServerTuningSpec(), ServerLoggingSpec()
    log_file = logging.optional_string("file")
    # The root filesystem is read-only; /tmp is the pod's writable emptyDir.
    if log_file is not None and (not log_file.startswith("/tmp/") or log_file.endswith("/") or ".." in log_file):
        raise SpecError(f"{logging.path}.file", "must be a file under /tmp/ (the pod's only writable directory; "
                        f"e.g. /tmp/stt_service.log), got {log_file!r}")
    vad = streaming.number("vadThreshold", d.vad_threshold, minimum=0, exclusive_minimum=True)
    if vad >= 1:
        raise SpecError(f"{streaming.path}.vadThreshold", f"must be less than 1, got {vad}")
    return ServerTuningSpec(
        enable_gpu_metrics=r.boolean("enableGpuMetrics", False) if r.has("enableGpuMetrics") else None,
        public_health=r.enum("publicHealth", d.public_health, PUBLIC_HEALTH),
        logging=ServerLoggingSpec(
            level=logging.enum("level", dl.level, LOG_LEVELS), format=logging.enum("format", dl.format, LOG_FORMATS),
            file=log_file, file_max_bytes=logging.integer("fileMaxBytes", dl.file_max_bytes, minimum=1024),
            file_backups=logging.integer("fileBackups", dl.file_backups, minimum=0, maximum=100)),
        max_batch_size=streaming.integer("maxBatchSize", d.max_batch_size, minimum=1, maximum=64),
        vad_threshold=vad,
        speech_start_ms=streaming.integer("speechStartMs", d.speech_start_ms, minimum=0, maximum=10_000),
        cpu_threads=decoding.integer("cpuThreads", d.cpu_threads, minimum=0, maximum=256),
        num_workers=decoding.integer("numWorkers", d.num_workers, minimum=1, maximum=64),
        beam_size=decoding.integer("beamSize", d.beam_size, minimum=1, maximum=10),
        extra_config=check_extra_config(r.mapping("extraConfig")),
    )


def expand_dotted(data: Mapping[str, Any], *, path: str = EXTRA_PATH, prefix: str = "") -> dict[str, Any]:
    """`{"a.b": 1, "c": {"d": 2}}` -> `{"a": {"b": 1}, "c": {"d": 2}}`; a key given twice is an error."""
    out: dict[str, Any] = {}
    for raw_key, value in data.items():
        parts = str(raw_key).split(".")
        if any(not part for part in parts):
            raise SpecError(f"{path}.{prefix}{raw_key}", "is not a config key (empty part between dots)")
        node = out
        for index, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise SpecError(f"{path}.{prefix}{'.'.join(parts[:index + 1])}", "is set twice")
            node = child
        dotted = f"{prefix}{raw_key}"
        leaf = parts[-1]
        if isinstance(value, Mapping):
            nested = expand_dotted(value, path=path, prefix=f"{dotted}.")
            existing = node.setdefault(leaf, {})
            if not isinstance(existing, dict):
                raise SpecError(f"{path}.{dotted}", "is set twice")
            for key, sub in nested.items():
                if key in existing:
                    raise SpecError(f"{path}.{dotted}.{key}", "is set twice")
                existing[key] = sub
        else:
            if leaf in node:
                raise SpecError(f"{path}.{dotted}", "is set twice")
            node[leaf] = value
    return out


def _leaf_keys(data: Mapping[str, Any], prefix: str = "") -> list[str]:
    keys: list[str] = []
    for key, value in data.items():
        keys.extend(_leaf_keys(value, f"{prefix}{key}.") if isinstance(value, Mapping) and value
                    else [f"{prefix}{key}"])
    return keys


@functools.lru_cache(maxsize=1)
def server_config_schema() -> dict[str, Any]:
    """The committed JSON Schema of the server's configuration (see stt_server.config_schema)."""
    text = importlib.resources.files("stt_operator").joinpath(SCHEMA_RESOURCE).read_text()
    schema: dict[str, Any] = json.loads(text)
    return schema


def check_extra_config(raw: Mapping[str, Any]) -> dict[str, Any]:
    """`extraConfig` as nested sections, valid against the server schema and free of typed keys."""
    if not raw:
        return {}
    extra = expand_dotted(raw)
    _check_schema(extra)
    for key in sorted(_leaf_keys(extra)):
        if key in SECRET_KEYS:
            raise SpecError(f"{EXTRA_PATH}.{key}", "holds a credential: give it through spec.secrets instead")
        clash = next((t for t in sorted(TYPED_KEYS) if t == key or t.startswith(f"{key}.")
                      or key.startswith(f"{t}.")), None)
        if clash is not None:
            raise SpecError(f"{EXTRA_PATH}.{key}", f"{clash} is set from the typed spec fields; set it there "
                            "(docs/operator.md lists which field renders which key)")
    return extra


@functools.lru_cache(maxsize=1)
def _validator() -> Any:
    import jsonschema  # only the operator extra carries it; imported on first use so builders stay light

    return jsonschema.Draft202012Validator(server_config_schema())


def _check_schema(extra: Mapping[str, Any]) -> None:
    errors = sorted(_validator().iter_errors(dict(extra)), key=lambda e: [str(p) for p in e.absolute_path])
    if not errors:
        return
    error = errors[0]
    at = [str(p) for p in error.absolute_path]
    if error.validator == "additionalProperties" and isinstance(error.instance, Mapping):
        known = sorted((error.schema.get("properties") or {}) if isinstance(error.schema, Mapping) else ())
        unknown = sorted(set(error.instance) - set(known))
        dotted = ".".join([*at, unknown[0]])
        where = f"in {'.'.join(at)}" if at else "sections"
        raise SpecError(f"{EXTRA_PATH}.{dotted}",
                        f"unknown server config key {dotted!r} (known {where}: {', '.join(known)})")
    dotted = ".".join(at) or "<root>"
    message = error.message if len(error.message) <= 200 else error.message[:200] + "..."
    raise SpecError(f"{EXTRA_PATH}.{dotted}", f"invalid value for server config key {dotted!r}: {message}")
