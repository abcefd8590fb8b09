"""`spec.server`: typed tuning fields and `extraConfig`, parsed, validated and rendered into config.yaml."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from stt_operator.builders.configmap import render_config, server_config
from stt_operator.spec import SpecError, parse_spec
from stt_operator.spec_server import TYPED_KEYS, ServerTuningSpec, expand_dotted
from stt_server.config import ServerConfig, build_config


def body(server: Any = None, **spec: Any) -> dict[str, Any]:
    spec = {"image": "img:1", **spec}
    if server is not None:
        spec["server"] = server
    return {"metadata": {"name": "s1", "namespace": "ns"}, "spec": spec}


def config_of(server: Any = None, **spec: Any) -> dict[str, Any]:
    rendered: dict[str, Any] = yaml.safe_load(render_config(parse_spec(body(server, **spec))))
    return rendered


def spec_error(server: Any, **spec: Any) -> SpecError:
    with pytest.raises(SpecError) as caught:
        parse_spec(body(server, **spec))
    return caught.value


def leaf_keys(data: dict[str, Any], prefix: str = "") -> set[str]:
    keys: set[str] = set()
    for key, value in data.items():
        keys |= leaf_keys(value, f"{prefix}{key}.") if isinstance(value, dict) and value else {f"{prefix}{key}"}
    return keys


def test_typed_fields_reach_config_yaml_and_the_server_accepts_it() -> None:
    config = config_of({
        "enableGpuMetrics": True, "publicHealth": "minimal",
        "logging": {"level": "DEBUG", "format": "console", "file": "/tmp/stt_service.log",
                    "fileMaxBytes": 4096, "fileBackups": 1},
        "streaming": {"maxBatchSize": 4, "vadThreshold": 0.35, "speechStartMs": 150},
        "decoding": {"cpuThreads": 2, "numWorkers": 3, "beamSize": 5},
    })
    assert config["metrics"] == {"enable_gpu_metrics": True}
    assert config["auth"]["public_health"] == "minimal"
    assert config["logging"] == {"level": "DEBUG", "format": "console", "file": "/tmp/stt_service.log",
                                 "file_max_bytes": 4096, "file_backups": 1}
    assert {k: config["streaming"][k] for k in ("max_batch_size", "vad_threshold", "speech_start_ms")} == \
        {"max_batch_size": 4, "vad_threshold": 0.35, "speech_start_ms": 150}
    assert {k: config["model"][k] for k in ("cpu_threads", "num_workers", "beam_size")} == \
        {"cpu_threads": 2, "num_workers": 3, "beam_size": 5}
    server = build_config(config)
    assert server.logging.file == "/tmp/stt_service.log" and server.streaming.max_batch_size == 4


def test_defaults_are_the_servers_own() -> None:
    """A spec without `server` renders exactly what a bare `stt-server` would use for those keys."""
    config, defaults = config_of(), ServerConfig().model_dump(mode="json")
    for key in ("logging", "metrics"):
        assert config[key] == defaults[key]
    assert config["auth"]["public_health"] == defaults["auth"]["public_health"]
    for key in ("max_batch_size", "vad_threshold", "speech_start_ms"):
        assert config["streaming"][key] == defaults["streaming"][key]
    for key in ("cpu_threads", "num_workers", "beam_size"):
        assert config["model"][key] == defaults["model"][key]


def test_gpu_metrics_follow_the_gpu_request_unless_set() -> None:
    assert config_of(gpu=1, device="cuda")["metrics"]["enable_gpu_metrics"] is True
    assert config_of({"enableGpuMetrics": False}, gpu=1)["metrics"]["enable_gpu_metrics"] is False
    assert config_of()["metrics"]["enable_gpu_metrics"] is False


def test_typed_keys_list_matches_the_renderer() -> None:
    """spec_server.TYPED_KEYS (what extraConfig may not set) is exactly what server_config renders."""
    assert leaf_keys(server_config(parse_spec(body()))) == set(TYPED_KEYS)


@pytest.mark.parametrize(("server", "field", "words"), [
    ({"publicHealth": "none"}, "spec.server.publicHealth", "full, minimal"),
    ({"logging": {"level": "TRACE"}}, "spec.server.logging.level", "DEBUG"),
    ({"logging": {"file": "stt.log"}}, "spec.server.logging.file", "under /tmp/"),
    ({"logging": {"file": "/var/log/stt.log"}}, "spec.server.logging.file", "only writable directory"),
    ({"logging": {"file": "/tmp/../etc/x"}}, "spec.server.logging.file", "under /tmp/"),
    ({"streaming": {"vadThreshold": 1}}, "spec.server.streaming.vadThreshold", "less than 1"),
    ({"streaming": {"maxBatchSize": 0}}, "spec.server.streaming.maxBatchSize", "at least 1"),
    ({"decoding": {"beamSize": 11}}, "spec.server.decoding.beamSize", "at most 10"),
    ({"enableGpuMetrics": "yes"}, "spec.server.enableGpuMetrics", "true or false"),
])
def test_bad_typed_fields_name_the_field(server: dict[str, Any], field: str, words: str) -> None:
    error = spec_error(server)
    assert error.field == field and words in error.message


def test_extra_config_reaches_other_keys_dotted_or_nested() -> None:
    config = config_of({"extraConfig": {"limits.session_ttl_sec": 600, "model": {"language": None},
                                        "server": {"max_message_bytes": 1048576}}})
    assert config["limits"]["session_ttl_sec"] == 600
    assert config["model"]["language"] is None
    assert config["server"]["max_message_bytes"] == 1048576
    assert config["server"]["grpc_port"] == 50051  # the typed keys around it stay
    server = build_config(config)
    assert server.limits.session_ttl_sec == 600 and server.model.language is None


def test_extra_config_changes_roll_the_pods() -> None:
    from stt_operator.builders.configmap import config_hash

    plain, tuned = parse_spec(body()), parse_spec(body({"extraConfig": {"limits.session_ttl_sec": 600}}))
    assert config_hash(plain) != config_hash(tuned)


@pytest.mark.parametrize(("extra", "field", "words"), [
    ({"streaming.bogus": 1}, "spec.server.extraConfig.streaming.bogus", "unknown server config key 'streaming.bogus'"),
    ({"streaming": {"bogus": 1}}, "spec.server.extraConfig.streaming.bogus", "known in streaming: end_silence_ms"),
    ({"bogus": {"a": 1}}, "spec.server.extraConfig.bogus", "known sections: auth"),
    ({"limits.session_ttl_sec": "long"}, "spec.server.extraConfig.limits.session_ttl_sec", "not of type 'number'"),
    ({"limits.session_ttl_sec": 0}, "spec.server.extraConfig.limits.session_ttl_sec", "less than or equal to the"),
    ({"model.language": 3}, "spec.server.extraConfig.model.language", "invalid value"),
    ({"limits.max_sessions": 3}, "spec.server.extraConfig.limits.max_sessions", "typed spec fields"),
    ({"server": {"grpc_port": 1}}, "spec.server.extraConfig.server.grpc_port", "typed spec fields"),
    ({"server.tls": {}}, "spec.server.extraConfig.server.tls", "server.tls.cert_file is set from the typed"),
    ({"auth.control_token": "t"}, "spec.server.extraConfig.auth.control_token", "spec.secrets"),
    ({"limits.session_ttl_sec": 1, "limits": {"session_ttl_sec": 2}},
     "spec.server.extraConfig.limits.session_ttl_sec", "set twice"),
    ({"limits..x": 1}, "spec.server.extraConfig.limits..x", "empty part"),
])
def test_bad_extra_config_names_the_key(extra: dict[str, Any], field: str, words: str) -> None:
    error = spec_error({"extraConfig": extra})
    assert error.field == field
    assert words in error.message


def test_extra_config_must_be_a_mapping() -> None:
    assert spec_error({"extraConfig": ["limits.session_ttl_sec=1"]}).field == "spec.server.extraConfig"


def test_expand_dotted_merges_sections() -> None:
    assert expand_dotted({"a.b": 1, "a": {"c": 2}, "d": {"e.f": 3}}) == {"a": {"b": 1, "c": 2}, "d": {"e": {"f": 3}}}


def test_parsed_section_is_a_typed_record() -> None:
    spec = parse_spec(body({"extraConfig": {"model.language": "de"}}))
    assert isinstance(spec.server, ServerTuningSpec)
    assert spec.server.extra_config == {"model": {"language": "de"}}
    assert parse_spec(body()).server == ServerTuningSpec()
