"""Client-supplied text made safe to echo: printable ASCII, one line, bounded length.

A language code, a session id, an HTTP header or gRPC core's copy of a peer's GOAWAY debug data can
be any size and hold any bytes. Status messages and log lines quote them only through ``clip_echo``,
so a 10 KB value or a terminal escape cannot flood or forge either.
"""

from __future__ import annotations

from typing import Final

MAX_ECHO_CHARS: Final = 64


def clip_echo(value: str, *, limit: int = MAX_ECHO_CHARS) -> str:
    """``value`` escaped to printable ASCII and cut to ``limit`` characters (with a note of the rest)."""
    text = value.encode("ascii", "backslashreplace").decode("ascii")
    text = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}...(+{len(text) - limit} chars)"
