"""Credentials against a real TLS server on 127.0.0.1 that requires a client certificate: inline and
file CA and key material, tls-server-name, insecure-skip-tls-verify, an exec plugin's client
certificate; the token file re-read once a minute old; inline keys in private files gone at exit."""

from __future__ import annotations

import base64
import datetime
import json
import ssl
import stat
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from serving_certs import ServingCert, issue
from stt_operator.autoscaling.credentials import TokenFile, credentials_from_kubeconfig
from stt_operator.autoscaling.kubeapi import KubeApi
from stt_operator.login import connection_info


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def client_identity(common_name: str) -> tuple[str, str, str]:
    """A CA and a client certificate (clientAuth) from it: (ca_pem, cert_pem, key_pem)."""
    now = datetime.datetime.now(tz=datetime.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "client-ca")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    return (ca.public_bytes(serialization.Encoding.PEM).decode(),
            cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem)


class TlsServer:
    """An HTTPS server that requires a client certificate and answers who called and with what token."""

    def __init__(self, serving: ServingCert, client_ca: str, folder: Path) -> None:
        (folder / "srv.crt").write_text(serving.cert_pem)
        (folder / "srv.key").write_text(serving.key_pem)
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cadata=client_ca)
        self.context.verify_mode = ssl.CERT_REQUIRED
        self.context.load_cert_chain(folder / "srv.crt", folder / "srv.key")
        self.url = ""

    async def whoami(self, request: web.Request) -> web.Response:
        peer = request.transport.get_extra_info("peercert") if request.transport else None
        subject = dict(item[0] for item in (peer or {}).get("subject", ()))
        return web.json_response({"cn": subject.get("commonName"), "auth": request.headers.get("Authorization")})


@pytest.fixture
async def tls_server(tmp_path: Path) -> AsyncIterator[tuple[TlsServer, ServingCert, tuple[str, str, str]]]:
    serving = issue(dns_names=["api.internal"], ips=["127.0.0.1"])
    client = client_identity("alice")
    server = TlsServer(serving, client[0], tmp_path)
    app = web.Application()
    app.router.add_get("/whoami", server.whoami)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server.context)
    await site.start()
    port = runner.addresses[0][1]
    server.url = f"https://127.0.0.1:{port}"
    try:
        yield server, serving, client
    finally:
        await runner.cleanup()


def kubeconfig(path: Path, *, cluster: dict[str, Any], user: dict[str, Any]) -> Path:
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "k", "cluster": cluster}], "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}]}))
    return path


async def whoami(path: Path) -> dict[str, Any]:
    async with KubeApi(credentials_from_kubeconfig(path)) as api:
        return await api.get("/whoami")


async def test_inline_ca_and_client_certificate(tls_server: Any, tmp_path: Path) -> None:
    server, serving, (_, cert, key) = tls_server
    path = kubeconfig(tmp_path / "config",
                      cluster={"server": server.url, "certificate-authority-data": b64(serving.ca_pem)},
                      user={"client-certificate-data": b64(cert), "client-key-data": b64(key), "token": "t0"})
    assert await whoami(path) == {"cn": "alice", "auth": "Bearer t0"}
    credentials = credentials_from_kubeconfig(path)
    assert credentials.tls.ca_path is None and credentials.tls.ca_data == serving.ca_pem.encode()
    key_file = Path(str(credentials.tls.key_path))
    assert key_file.read_text() == key and stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_file.parent.stat().st_mode) == 0o700
    # kopf gets the same material: the CA as data, the key pair as the private files.
    info = connection_info(credentials)
    assert info.ca_data == serving.ca_pem.encode() and info.ca_path is None
    assert (info.certificate_path, info.private_key_path) == (credentials.tls.cert_path, str(key_file))


async def test_file_material_relative_to_the_kubeconfig(tls_server: Any, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    server, serving, (_, cert, key) = tls_server
    (tmp_path / "pki").mkdir()
    for name, text in (("ca.crt", serving.ca_pem), ("client.crt", cert), ("client.key", key)):
        (tmp_path / "pki" / name).write_text(text)
    path = kubeconfig(tmp_path / "config", cluster={"server": server.url, "certificate-authority": "pki/ca.crt"},
                      user={"client-certificate": "pki/client.crt", "client-key": "pki/client.key"})
    monkeypatch.chdir("/")
    assert (await whoami(path))["cn"] == "alice"


async def test_a_wrong_ca_is_refused_and_insecure_skip_tls_verify_skips_the_check(tls_server: Any, tmp_path: Path) -> None:
    server, _, (_, cert, key) = tls_server
    user = {"client-certificate-data": b64(cert), "client-key-data": b64(key)}
    other_ca = issue(dns_names=["elsewhere"]).ca_pem
    wrong = kubeconfig(tmp_path / "wrong", cluster={"server": server.url, "certificate-authority-data": b64(other_ca)},
                       user=user)
    with pytest.raises(aiohttp.ClientConnectorCertificateError):
        await whoami(wrong)
    insecure = kubeconfig(tmp_path / "insecure", cluster={"server": server.url, "insecure-skip-tls-verify": True},
                          user=user)
    assert (await whoami(insecure))["cn"] == "alice"
    assert connection_info(credentials_from_kubeconfig(insecure)).insecure is True


async def test_tls_server_name_is_the_name_verified(tls_server: Any, tmp_path: Path) -> None:
    server, serving, (_, cert, key) = tls_server
    user = {"client-certificate-data": b64(cert), "client-key-data": b64(key)}
    by_name = server.url.replace("127.0.0.1", "localhost")  # the certificate names neither localhost...
    cluster = {"server": by_name, "certificate-authority-data": b64(serving.ca_pem)}
    with pytest.raises(aiohttp.ClientConnectorCertificateError):
        await whoami(kubeconfig(tmp_path / "plain", cluster=cluster, user=user))
    # ...but it names api.internal, which tls-server-name makes the name to check.
    named = kubeconfig(tmp_path / "named", cluster={**cluster, "tls-server-name": "api.internal"}, user=user)
    assert (await whoami(named))["cn"] == "alice"


async def test_an_exec_plugin_may_answer_with_a_client_certificate(tls_server: Any, tmp_path: Path) -> None:
    server, serving, (_, cert, key) = tls_server
    credential = {"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential",
                  "status": {"clientCertificateData": cert, "clientKeyData": key}}
    (tmp_path / "credential.json").write_text(json.dumps(credential))
    user = {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": "cat",
                     "args": [str(tmp_path / "credential.json")], "interactiveMode": "Never"}}
    path = kubeconfig(tmp_path / "config", cluster={"server": server.url,
                                                    "certificate-authority-data": b64(serving.ca_pem)}, user=user)
    assert await whoami(path) == {"cn": "alice", "auth": None}


def test_a_token_file_is_re_read_once_it_is_a_minute_old(tmp_path: Path) -> None:
    token_path = tmp_path / "token"
    token_path.write_text("first\n")
    now = 1000.0
    token = TokenFile(token_path, clock=lambda: now)
    token_path.write_text("rotated\n")
    now += 59
    assert token() == "Bearer first"
    now += 1
    assert token() == "Bearer rotated"


def test_inline_key_files_are_removed_at_exit(tmp_path: Path) -> None:
    _, cert, key = client_identity("bob")
    path = kubeconfig(tmp_path / "config", cluster={"server": "http://127.0.0.1:1"},
                      user={"client-certificate-data": b64(cert), "client-key-data": b64(key)})
    script = ("import sys\nfrom stt_operator.autoscaling.credentials import credentials_from_kubeconfig\n"
              "c = credentials_from_kubeconfig(sys.argv[1]); c.reload(); print(c.tls.key_path)\n")
    done = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=60,
                          check=True)
    key_file = Path(done.stdout.strip())
    assert key_file.name.endswith(".key") and key_file.parent.name.startswith("stt-operator-tls-")
    assert not key_file.parent.exists()
