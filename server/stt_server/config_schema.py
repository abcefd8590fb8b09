"""The server configuration as JSON Schema, exported from ``ServerConfig`` for the operator.

The operator checks ``SttServer.spec.server.extraConfig`` against this schema, but it must not import
``stt_server`` (its image has no speech stack), so the schema is committed as a file inside the
operator package. Regenerate it after changing ``stt_server.config``::

    python -m stt_server.config_schema

A test (tests/server/test_config_schema.py) fails while the committed file is stale.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Final

from stt_server.config import ServerConfig

# Relative to the repository root; the operator loads it with importlib.resources.
SCHEMA_FILE: Final = Path("operator/stt_operator/server_config.schema.json")
GENERATED_BY: Final = "generated from stt_server.config.ServerConfig by `python -m stt_server.config_schema`; do not edit"


def config_json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of the configuration file: every section, key, type and bound."""
    schema = ServerConfig.model_json_schema(mode="validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$comment": GENERATED_BY, **schema}


def render_schema() -> str:
    """The committed file's exact text (sorted keys, so a diff shows only real changes)."""
    return json.dumps(config_json_schema(), indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stt_server.config_schema",
                                     description="Write the server configuration's JSON schema.")
    parser.add_argument("target", nargs="?", type=Path, default=SCHEMA_FILE,
                        help=f"where to write it (default: {SCHEMA_FILE})")
    target = parser.parse_args(argv).target
    target.write_text(render_schema())
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
