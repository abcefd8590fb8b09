"""Fail when a certificate is near expiry: ``python -m stt_server.tools.check_tls_expiry CERT --warn-days 14``.

Exit 0: valid for more than ``--warn-days``; 1: expires within ``--warn-days`` or already expired
(or not yet valid); 2: the file cannot be read as a PEM certificate.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class CertStatus:
    subject: str
    not_before: dt.datetime
    not_after: dt.datetime

    def days_left(self, now: dt.datetime) -> float:
        return (self.not_after - now).total_seconds() / 86400.0


def read_certificate(path: Path) -> CertStatus:
    """Validity window of the first certificate in a PEM file; ``ValueError`` when unreadable."""
    try:
        from cryptography import x509
    except ImportError as exc:
        raise ValueError("check_tls_expiry needs the 'cryptography' package (pip install cryptography)") from exc
    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from exc
    except ValueError as exc:
        raise ValueError(f"{path} is not a PEM certificate: {exc}") from exc
    return CertStatus(cert.subject.rfc4514_string(), cert.not_valid_before_utc, cert.not_valid_after_utc)


def verdict(status: CertStatus, *, warn_days: float, now: dt.datetime) -> tuple[int, str]:
    """Exit code and a one-line message for ``status`` at ``now``."""
    left = status.days_left(now)
    until = status.not_after.isoformat()
    if now < status.not_before:
        return 1, f"NOT YET VALID: {status.subject} valid from {status.not_before.isoformat()}"
    if left <= 0:
        return 1, f"EXPIRED: {status.subject} expired {-left:.1f} days ago ({until})"
    if left <= warn_days:
        return 1, f"EXPIRING: {status.subject} expires in {left:.1f} days ({until}), warn at {warn_days:g}"
    return 0, f"OK: {status.subject} valid for {left:.1f} more days ({until})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Fail when a TLS certificate is near expiry.")
    parser.add_argument("cert", type=Path, help="PEM certificate file")
    parser.add_argument("--warn-days", type=float, default=14.0)
    args = parser.parse_args(argv)
    try:
        status = read_certificate(args.cert)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    code, message = verdict(status, warn_days=args.warn_days, now=dt.datetime.now(dt.UTC))
    print(message)
    return code


if __name__ == "__main__":
    sys.exit(main())
