"""``ServerConfig``: the server's whole configuration, validated once at start-up.

Sources, later ones winning: defaults, one YAML file (``--config``), ``STT_<SECTION>__<KEY>``
environment variables (values parsed as YAML scalars, so ``null``, ``8`` and ``[a, b]`` work), the
seed's aliases (``STT_CONTROL_TOKEN``, ``STT_PUBLIC_HEALTH``, ``STT_ENABLE_GPU_METRICS``), then
command-line flags. Unknown keys are rejected; a bad value raises ``ConfigError`` naming the key and
the problem, so start-up stops with a message a person can act on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

ENV_PREFIX: Final = "STT_"
# Seed 000/002 spell these without a section; they map onto the sectioned keys.
ENV_ALIASES: Final[dict[str, str]] = {
    "STT_CONTROL_TOKEN": "auth.control_token",
    "STT_PUBLIC_HEALTH": "auth.public_health",
    "STT_ENABLE_GPU_METRICS": "metrics.enable_gpu_metrics",
}


class ConfigError(ValueError):
    """A configuration problem: ``key`` is dotted (``limits.max_sessions``), ``problem`` readable.

    ``problems`` lists every ``(key, problem)`` found (``key``/``problem`` are the first), so one
    message names all the bad keys instead of one per restart.
    """

    def __init__(self, key: str, problem: str, *, more: Sequence[tuple[str, str]] = ()) -> None:
        self.key = key
        self.problem = problem
        self.problems: tuple[tuple[str, str], ...] = ((key, problem), *more)
        super().__init__("invalid configuration: " + "; ".join(f"{k}: {p}" for k, p in self.problems))


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TlsSettings(_Section):
    cert_file: Path | None = None
    key_file: Path | None = None

    @model_validator(mode="after")
    def _both_or_neither(self) -> TlsSettings:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("set both cert_file and key_file, or neither")
        return self

    @property
    def enabled(self) -> bool:
        return self.cert_file is not None


class ServerSettings(_Section):
    grpc_host: str = "0.0.0.0"
    grpc_port: int = Field(default=50051, ge=0, le=65535)
    http_host: str = "0.0.0.0"
    http_port: int = Field(default=8000, ge=0, le=65535)
    # OpenAI-compatible REST API (docs/rest-api.md); 0 turns it off. It binds on rest_host.
    rest_host: str = "0.0.0.0"
    rest_port: int = Field(default=8080, ge=0, le=65535)
    rest_max_upload_bytes: int = Field(default=25 * 1024 * 1024, ge=1024, le=1024 * 1024 * 1024)
    max_message_bytes: int = Field(default=4 * 1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    max_stream_duration_sec: float = Field(default=3600.0, gt=0)
    drain_grace_sec: float = Field(default=30.0, ge=0)
    # hand freed heap memory back to the OS this often (glibc malloc_trim, stt_server/memory_trim.py); 0 = never
    malloc_trim_interval_sec: float = Field(default=60.0, ge=0)
    tls: TlsSettings = TlsSettings()


class ModelSettings(_Section):
    name: str = Field(default="tiny.en", min_length=1)
    path: Path | None = None
    device: Literal["auto", "cpu", "cuda"] = "auto"
    compute_type: str = Field(default="auto", min_length=1)
    cpu_threads: int = Field(default=0, ge=0)
    num_workers: int = Field(default=2, ge=1)
    beam_size: int = Field(default=1, ge=1, le=10)
    language: str | None = "en"


class StreamingSettings(_Section):
    partial_interval_sec: float = Field(default=0.5, gt=0, le=10)
    vad_threshold: float = Field(default=0.5, gt=0, lt=1)
    speech_start_ms: int = Field(default=200, ge=0)
    end_silence_ms: int = Field(default=500, ge=50)
    max_utterance_sec: float = Field(default=15.0, gt=1, le=30)
    max_batch_size: int = Field(default=8, ge=1)


class LimitsSettings(_Section):
    max_sessions: int = Field(default=32, ge=1)
    max_sessions_per_api_key: int = Field(default=16, ge=1)
    requests_per_minute_per_api_key: int = Field(default=600, ge=1)
    session_idle_timeout_sec: float = Field(default=30.0, gt=0)
    session_ttl_sec: float = Field(default=300.0, gt=0)
    max_stream_buffer_bytes: int = Field(default=1_920_000, ge=32_000)
    max_total_buffer_bytes: int = Field(default=64 * 1024 * 1024, ge=32_000)
    max_decode_pending: int = Field(default=16, ge=1)
    # Unary Recognize (docs/config.md): the upload, the audio it may hold, and what all calls in
    # progress may hold together (a call's peak memory is about 5-7x its upload, docs/engine.md).
    max_recognize_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    max_recognize_duration_sec: float = Field(default=1800.0, gt=0)
    max_recognize_inflight_bytes: int = Field(default=128 * 1024 * 1024, ge=1024)


class AuthSettings(_Section):
    api_keys: tuple[str, ...] = ()
    api_keys_file: Path | None = None
    control_token: str | None = None
    control_token_file: Path | None = None
    public_health: Literal["full", "minimal"] = "full"


class StorageSettings(_Section):
    persist_audio: bool = False
    directory: Path = Path("./captures")
    # null or negative: no limit (seed 000)
    max_bytes: int | None = None
    max_files: int | None = None
    max_age_days: float | None = None


class LoggingSettings(_Section):
    format: Literal["json", "console"] = "json"
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    # Also write JSON lines to this file (seed 001's stt_service.log), rotated by size.
    file: str | None = None
    file_max_bytes: int = Field(default=50 * 1024 * 1024, ge=1024)
    file_backups: int = Field(default=3, ge=0)


class MetricsSettings(_Section):
    enable_gpu_metrics: bool = False


class ServerConfig(_Section):
    """The validated configuration; see ``docs/config.md`` for every key."""

    server: ServerSettings = ServerSettings()
    model: ModelSettings = ModelSettings()
    streaming: StreamingSettings = StreamingSettings()
    limits: LimitsSettings = LimitsSettings()
    auth: AuthSettings = AuthSettings()
    storage: StorageSettings = StorageSettings()
    logging: LoggingSettings = LoggingSettings()
    metrics: MetricsSettings = MetricsSettings()


def _set_dotted(target: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = target
    for index, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(".".join(parts[: index + 1]), "is a value, not a section")
        node = child
    node[parts[-1]] = value


def _parse_env_value(key: str, raw: str) -> Any:
    try:
        return yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(key, f"cannot parse environment value {raw!r}: {exc}") from exc


def env_overrides(env: Mapping[str, str]) -> dict[str, Any]:
    """``STT_<SECTION>__<KEY>`` (and the seed aliases) as a dotted-key mapping."""
    overrides: dict[str, Any] = {}
    for name, raw in env.items():
        if name in ENV_ALIASES:
            overrides[ENV_ALIASES[name]] = _parse_env_value(ENV_ALIASES[name], raw)
        elif name.startswith(ENV_PREFIX) and "__" in name:
            dotted = ".".join(part.lower() for part in name[len(ENV_PREFIX):].split("__"))
            overrides[dotted] = _parse_env_value(dotted, raw)
    return overrides


def _problem(error: Mapping[str, Any]) -> tuple[str, str]:
    key = ".".join(str(part) for part in error["loc"]) or "<root>"
    message = str(error["msg"])
    if error["type"] == "extra_forbidden":
        message = "unknown key"
    elif "input" in error and not isinstance(error["input"], dict):
        message = f"{message} (got {error['input']!r})"
    return key, message.removeprefix("Value error, ")


def build_config(data: Mapping[str, Any]) -> ServerConfig:
    """Validate a nested mapping; raise ``ConfigError`` naming every bad key."""
    try:
        return ServerConfig.model_validate(dict(data))
    except ValidationError as exc:
        problems = [_problem(error) for error in exc.errors()]
        raise ConfigError(*problems[0], more=problems[1:]) from exc


def load_config(
    path: Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> ServerConfig:
    """YAML file (optional), then ``env`` overrides, then dotted ``overrides`` (command-line flags)."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(Path(path).read_text())
        except OSError as exc:
            raise ConfigError("--config", f"cannot read {path}: {exc.strerror}") from exc
        except yaml.YAMLError as exc:
            raise ConfigError("--config", f"{path} is not valid YAML: {exc}") from exc
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError("--config", f"{path} must hold a mapping of sections")
        data = loaded or {}
    for dotted, value in env_overrides(env or {}).items():
        _set_dotted(data, dotted, value)
    for dotted, value in (overrides or {}).items():
        if value is not None:
            _set_dotted(data, dotted, value)
    return build_config(data)
