"""ServerConfig: defaults, YAML, environment, flags, and readable rejections."""

from __future__ import annotations

from pathlib import Path

import pytest
from stt_server.config import ConfigError, ServerConfig, build_config, load_config

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "example.yaml"


def test_example_file_equals_defaults() -> None:
    assert load_config(EXAMPLE) == ServerConfig()


def test_defaults_match_the_contract() -> None:
    config = ServerConfig()
    assert config.server.grpc_port == 50051
    assert config.server.max_message_bytes == 4194304
    assert config.limits.max_sessions == 32
    assert config.limits.max_total_buffer_bytes == 67108864
    assert config.model.name == "tiny.en"
    assert config.logging.format == "json"


def test_yaml_then_env_then_flags(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("limits: {max_sessions: 4, max_decode_pending: 3}\nmodel: {device: cpu}\n")
    config = load_config(
        path,
        env={"STT_LIMITS__MAX_SESSIONS": "6", "STT_SERVER__TLS__CERT_FILE": "null", "HOME": "/x"},
        overrides={"model.device": "cuda", "server.grpc_port": None},
    )
    assert config.limits.max_sessions == 6
    assert config.limits.max_decode_pending == 3
    assert config.model.device == "cuda"
    assert config.server.grpc_port == 50051


def test_env_values_parse_as_yaml() -> None:
    config = load_config(env={"STT_AUTH__API_KEYS": "[k1, k2]", "STT_MODEL__LANGUAGE": "null"})
    assert config.auth.api_keys == ("k1", "k2")
    assert config.model.language is None


def test_seed_aliases() -> None:
    config = load_config(
        env={"STT_CONTROL_TOKEN": "tok", "STT_PUBLIC_HEALTH": "minimal", "STT_ENABLE_GPU_METRICS": "1"}
    )
    assert config.auth.control_token == "tok"
    assert config.auth.public_health == "minimal"
    assert config.metrics.enable_gpu_metrics is True


@pytest.mark.parametrize(
    ("data", "key", "fragment"),
    [
        ({"limits": {"max_sessions": 0}}, "limits.max_sessions", "greater than or equal to 1"),
        ({"limits": {"max_session": 3}}, "limits.max_session", "unknown key"),
        ({"limitz": {}}, "limitz", "unknown key"),
        ({"model": {"device": "tpu"}}, "model.device", "'tpu'"),
        ({"server": {"grpc_port": 70000}}, "server.grpc_port", "65535"),
        ({"server": {"tls": {"cert_file": "/c.pem"}}}, "server.tls", "both"),
        ({"logging": {"format": "xml"}}, "logging.format", "'xml'"),
        ({"auth": {"public_health": "none"}}, "auth.public_health", "'none'"),
    ],
)
def test_bad_values_name_the_key(data: dict[str, object], key: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as caught:
        build_config(data)
    assert caught.value.key == key
    assert fragment in caught.value.problem
    assert key in str(caught.value)


def test_bad_env_names_the_key() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(env={"STT_LIMITS__MAX_SESSIONS": "many"})
    assert caught.value.key == "limits.max_sessions"


def test_unreadable_and_non_mapping_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "list.yaml"
    bad.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(bad)


def _keys(model: object, prefix: str = "") -> list[str]:
    from pydantic import BaseModel

    keys = []
    for name in type(model).model_fields:  # type: ignore[attr-defined]
        value = getattr(model, name)
        keys += _keys(value, f"{prefix}{name}.") if isinstance(value, BaseModel) else [f"{prefix}{name}"]
    return keys


def test_docs_list_every_key() -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "config.md").read_text()
    missing = [key for key in _keys(ServerConfig()) if f"| `{key}` |" not in text]
    assert not missing, f"docs/config.md lacks {missing}"


def test_every_bad_key_is_named_in_one_message() -> None:
    """Issue 13: an operator fixing a config should not need one restart per bad key."""
    with pytest.raises(ConfigError) as caught:
        build_config({"limits": {"max_sessions": 0, "bogus": 1}, "server": {"grpc_port": -1}})
    message = str(caught.value)
    for key in ("limits.max_sessions", "limits.bogus", "server.grpc_port"):
        assert key in message
    assert {key for key, _ in caught.value.problems} == {"limits.max_sessions", "limits.bogus", "server.grpc_port"}
    assert caught.value.key in message  # the first problem stays available as before
