"""check_tls_expiry against freshly generated certificates."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from stt_server.tools import check_tls_expiry
from stt_server.tools.self_signed_cert import write_self_signed


def _cert(tmp_path: Path, *, days: float, started_days_ago: float = 0.0) -> Path:
    cert = tmp_path / "server.crt"
    start = dt.datetime.now(dt.UTC) - dt.timedelta(days=started_days_ago)
    write_self_signed(cert, tmp_path / "server.key", days=days, not_before=start)
    return cert


def test_fresh_cert_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cert = _cert(tmp_path, days=90)
    assert check_tls_expiry.main([str(cert), "--warn-days", "14"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("OK: CN=localhost valid for ")
    assert 89.9 <= float(out.split("valid for ")[1].split()[0]) <= 90.0


def test_cert_near_expiry_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cert = _cert(tmp_path, days=10)
    assert check_tls_expiry.main([str(cert), "--warn-days", "14"]) == 1
    assert "EXPIRING" in capsys.readouterr().out
    assert check_tls_expiry.main([str(cert), "--warn-days", "5"]) == 0


def test_expired_cert_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cert = _cert(tmp_path, days=3, started_days_ago=5)
    assert check_tls_expiry.main([str(cert), "--warn-days", "0"]) == 1
    assert "EXPIRED" in capsys.readouterr().out


def test_unreadable_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bogus = tmp_path / "bogus.pem"
    bogus.write_text("not a certificate")
    assert check_tls_expiry.main([str(bogus)]) == 2
    assert check_tls_expiry.main([str(tmp_path / "missing.pem")]) == 2
    assert "cannot read" in capsys.readouterr().err
