"""Regenerate the committed gRPC stubs in ``stt_server/proto_gen`` from ``proto/``.

Run ``python -m stt_server.proto_build`` (or ``make proto``) after editing the ``.proto`` file.
The stubs are committed so that installing the server needs no protoc; a test regenerates them into a
temporary directory and fails when the committed ones are stale.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path
from typing import Final

REPO_ROOT: Final = Path(__file__).resolve().parents[2]
PROTO_ROOT: Final = REPO_ROOT / "proto"
PROTO_FILE: Final = "sttfleet/v1/stt.proto"
DEFAULT_OUT: Final = Path(__file__).resolve().parent / "proto_gen"
GENERATED: Final = ("stt_pb2.py", "stt_pb2.pyi", "stt_pb2_grpc.py")
_INIT_TEXT: Final = '"""Generated gRPC stubs for sttfleet.v1 (do not edit; run python -m stt_server.proto_build)."""\n'

# protoc writes ``from sttfleet.v1 import stt_pb2``, an absolute import of a package that does not
# exist once the stubs live inside stt_server; a relative import keeps them a plain subpackage.
_ABSOLUTE_IMPORT: Final = re.compile(r"^from sttfleet\.v1 import (stt_pb2\w*)", re.MULTILINE)


def generate(out_dir: Path) -> list[Path]:
    """Run protoc into ``out_dir`` (created if needed) and return the generated files."""
    from grpc_tools import protoc  # dev-only dependency: imported lazily

    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        import grpc_tools

        include = Path(grpc_tools.__file__).parent / "_proto"
        args = [
            "protoc",
            f"-I{PROTO_ROOT}",
            f"-I{include}",
            f"--python_out={tmp}",
            f"--pyi_out={tmp}",
            f"--grpc_python_out={tmp}",
            str(PROTO_ROOT / PROTO_FILE),
        ]
        if protoc.main(args) != 0:
            raise RuntimeError(f"protoc failed on {PROTO_FILE}")
        written = []
        for name in GENERATED:
            text = (Path(tmp) / "sttfleet" / "v1" / name).read_text()
            target = out_dir / name
            target.write_text(_ABSOLUTE_IMPORT.sub(r"from . import \1", text))
            written.append(target)
    init = out_dir / "__init__.py"
    init.write_text(_INIT_TEXT)
    written.append(init)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Regenerate stt_server/proto_gen from proto/")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory")
    args = parser.parse_args(argv)
    for path in generate(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
