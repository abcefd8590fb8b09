"""Write a self-signed certificate and key for local TLS tests of the gRPC and HTTP ports.

``python -m stt_server.tools.self_signed_cert --out-dir certs --days 30 [--host localhost]``
writes ``server.crt`` and ``server.key``. Not for production: use a CA-issued certificate there
(and ``check_tls_expiry`` to watch it).
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import sys
from pathlib import Path


def write_self_signed(
    cert_path: Path, key_path: Path, *, days: float = 30.0, host: str = "localhost",
    not_before: dt.datetime | None = None,
) -> None:
    """A self-signed cert for ``host`` (plus 127.0.0.1) valid ``days`` from ``not_before`` (now)."""
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError as exc:
        raise RuntimeError("self_signed_cert needs the 'cryptography' package (pip install cryptography)") from exc
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    start = not_before or dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    alt_names: list[x509.GeneralName] = [x509.DNSName(host), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    key_path.chmod(0o600)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=Path("."))
    parser.add_argument("--days", type=float, default=30.0)
    parser.add_argument("--host", default="localhost")
    args = parser.parse_args(argv)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    cert, key = args.out_dir / "server.crt", args.out_dir / "server.key"
    try:
        write_self_signed(cert, key, days=args.days, host=args.host)
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {cert} and {key}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
