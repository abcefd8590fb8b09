"""Check that a control plane does not leak: ``python -m stt_server.tools.security_smoke_check URL``.

Every protected endpoint (``/metrics``, ``/metrics.json``, ``/system``, ``/info``) must refuse a
request without a token (401/403). ``/health`` must either refuse too or, when minimal public
health is on, answer with nothing but ``{"status": ...}``. With ``--token`` the check also confirms
that the token opens each endpoint. Exit 0: no hole; 1: at least one hole; 2: could not connect.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import dataclass
from typing import Final

import aiohttp

from stt_server.tools.http_fetch import Fetched, client_session, fetch

PROTECTED: Final = ("/metrics", "/metrics.json", "/system", "/info")
REFUSED: Final = (401, 403)


@dataclass(frozen=True)
class Finding:
    path: str
    ok: bool
    detail: str


def judge_protected(path: str, got: Fetched) -> Finding:
    """A protected endpoint asked without a token: refused is right, anything else is a hole."""
    if got.status in REFUSED:
        return Finding(path, True, f"refused without token (HTTP {got.status})")
    return Finding(path, False, f"HOLE: answered HTTP {got.status} without a token")


def judge_health(got: Fetched) -> Finding:
    """``/health`` without a token: refused, or a minimal body holding only ``status``."""
    if got.status in REFUSED:
        return Finding("/health", True, f"refused without token (HTTP {got.status})")
    if isinstance(got.body, dict) and set(got.body) == {"status"}:
        return Finding("/health", True, f"minimal public health only (HTTP {got.status})")
    return Finding("/health", False, f"HOLE: detailed health without a token (HTTP {got.status})")


async def run_checks(base_url: str, *, token: str | None = None, insecure: bool = False) -> list[Finding]:
    """Every finding for ``base_url``; raises ``aiohttp.ClientError`` when the server is unreachable."""
    base = base_url.rstrip("/")
    findings = []
    async with client_session(insecure=insecure) as session:
        for path in PROTECTED:
            findings.append(judge_protected(path, await fetch(session, base + path)))
        findings.append(judge_health(await fetch(session, base + "/health")))
        if token:
            for path in (*PROTECTED, "/health"):
                got = await fetch(session, base + path, token=token)
                ok = got.status in (200, 503) if path == "/health" else got.status == 200
                findings.append(Finding(path, ok, f"with token: HTTP {got.status}"))
    return findings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Verify the control plane refuses requests without a token.")
    parser.add_argument("base_url", help="e.g. http://127.0.0.1:8000")
    parser.add_argument("--token", help="also check that this token opens every endpoint")
    parser.add_argument("--insecure", action="store_true", help="skip TLS certificate verification")
    args = parser.parse_args(argv)
    try:
        findings = asyncio.run(run_checks(args.base_url, token=args.token, insecure=args.insecure))
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        print(f"error: cannot reach {args.base_url}: {exc}", file=sys.stderr)
        return 2
    for finding in findings:
        print(f"{'ok  ' if finding.ok else 'FAIL'} {finding.path}: {finding.detail}")
    holes = [f for f in findings if not f.ok]
    print(f"{len(holes)} hole(s) found" if holes else "no holes found")
    return 1 if holes else 0


if __name__ == "__main__":
    sys.exit(main())
