"""gRPC core settings that must be in the environment before ``grpc`` is first imported.

gRPC core reads ``GRPC_VERBOSITY`` once, at import. At its default it logs INFO lines to fd 2 that
quote client data (a peer's GOAWAY debug text); the server keeps ERROR and above unless the operator
sets the variable. ``stt_server.cli`` imports this module before anything that imports ``grpc``.
"""

from __future__ import annotations

import os

os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
