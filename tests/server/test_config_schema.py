"""The server config's JSON Schema, committed into the operator package, stays in step with ServerConfig."""

from __future__ import annotations

import json
import pathlib

import jsonschema
from stt_server.config import ServerConfig
from stt_server.config_schema import SCHEMA_FILE, render_schema

REPO = pathlib.Path(__file__).resolve().parents[2]


def test_committed_schema_is_current() -> None:
    committed = (REPO / SCHEMA_FILE).read_text()
    assert committed == render_schema(), (
        f"{SCHEMA_FILE} is stale: stt_server.config changed. Regenerate it with "
        "`python -m stt_server.config_schema` and commit it (the operator validates spec.server.extraConfig with it)")


def test_schema_accepts_the_default_config_and_rejects_unknown_keys() -> None:
    schema = json.loads((REPO / SCHEMA_FILE).read_text())
    validator = jsonschema.Draft202012Validator(schema)
    assert not list(validator.iter_errors(ServerConfig().model_dump(mode="json")))
    errors = list(validator.iter_errors({"streaming": {"max_batch_size": 4, "bogus": 1}}))
    assert [e.validator for e in errors] == ["additionalProperties"] and "bogus" in errors[0].message
    assert list(validator.iter_errors({"limits": {"max_sessions": 0}}))  # ge=1 carried over as minimum


def test_operator_package_ships_the_schema() -> None:
    from stt_operator.spec_server import server_config_schema

    assert server_config_schema() == json.loads(render_schema())
