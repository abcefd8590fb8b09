"""The local cluster's certificates and keys, made with `cryptography`, and the kubeconfigs that use them.

One CA signs the API server's serving certificate and a client certificate per identity: the
admin (group `system:masters`), the controller-manager, the scheduler and the node
(`system:node:localfleet` in `system:nodes`, which the Node authorizer and NodeRestriction judge).
A separate key pair signs service-account tokens. Keys are ECDSA P-256: quick to make, and every
component accepts them. An existing folder is reused, so a warm start makes nothing.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY: Final = datetime.timedelta(days=365)
SERVING_NAMES: Final = ("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
                        "kubernetes.default.svc.cluster.local")


@dataclass(frozen=True)
class ClientIdentity:
    file_stem: str
    user: str
    groups: tuple[str, ...] = ()


ADMIN: Final = ClientIdentity("admin", "kubernetes-admin", ("system:masters",))
CONTROLLER_MANAGER: Final = ClientIdentity("controller-manager", "system:kube-controller-manager")
SCHEDULER: Final = ClientIdentity("scheduler", "system:kube-scheduler")


def node_identity(node_name: str) -> ClientIdentity:
    return ClientIdentity("kubelet", f"system:node:{node_name}", ("system:nodes",))


@dataclass(frozen=True)
class Pki:
    """Paths of everything made; all PEM."""

    directory: Path

    @property
    def ca_cert(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.directory / "ca.key"

    @property
    def serving_cert(self) -> Path:
        return self.directory / "apiserver.crt"

    @property
    def serving_key(self) -> Path:
        return self.directory / "apiserver.key"

    @property
    def sa_key(self) -> Path:
        return self.directory / "sa.key"

    @property
    def sa_pub(self) -> Path:
        return self.directory / "sa.pub"

    def client_cert(self, who: ClientIdentity) -> Path:
        return self.directory / f"{who.file_stem}.crt"

    def client_key(self, who: ClientIdentity) -> Path:
        return self.directory / f"{who.file_stem}.key"


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)


def _name(common_name: str, organizations: Sequence[str] = ()) -> x509.Name:
    return x509.Name([*(x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _sign(*, subject: x509.Name, public_key: ec.EllipticCurvePublicKey, issuer: x509.Name,
          issuer_key: ec.EllipticCurvePrivateKey, ca: bool, usages: Sequence[x509.ObjectIdentifier] = (),
          sans: Sequence[x509.GeneralName] = ()) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + VALIDITY)
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=not ca, key_cert_sign=ca,
                                            crl_sign=ca, content_commitment=False, data_encipherment=False,
                                            key_agreement=False, encipher_only=False, decipher_only=False),
                              critical=True))
    if usages:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(usages)), critical=False)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def ensure_pki(directory: Path, *, node_name: str, service_ips: Sequence[str]) -> Pki:
    """Make the CA, serving, client and service-account material under `directory` unless it is there."""
    pki = Pki(directory)
    identities = (ADMIN, CONTROLLER_MANAGER, SCHEDULER, node_identity(node_name))
    wanted = [pki.ca_cert, pki.serving_cert, pki.sa_key, *(pki.client_cert(i) for i in identities)]
    if all(path.exists() for path in wanted):
        return pki
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = _new_key()
    ca_name = _name("stt-localfleet-ca")
    _write_key(pki.ca_key, ca_key)
    pki.ca_cert.write_bytes(_pem(_sign(subject=ca_name, public_key=ca_key.public_key(), issuer=ca_name,
                                       issuer_key=ca_key, ca=True)))
    serving_key = _new_key()
    _write_key(pki.serving_key, serving_key)
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in SERVING_NAMES]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ("127.0.0.1", *service_ips)]
    pki.serving_cert.write_bytes(_pem(_sign(
        subject=_name("kube-apiserver"), public_key=serving_key.public_key(), issuer=ca_name, issuer_key=ca_key,
        ca=False, usages=[ExtendedKeyUsageOID.SERVER_AUTH], sans=sans)))
    for who in identities:
        key = _new_key()
        _write_key(pki.client_key(who), key)
        pki.client_cert(who).write_bytes(_pem(_sign(
            subject=_name(who.user, who.groups), public_key=key.public_key(), issuer=ca_name, issuer_key=ca_key,
            ca=False, usages=[ExtendedKeyUsageOID.CLIENT_AUTH])))
    sa_key = _new_key()
    _write_key(pki.sa_key, sa_key)
    pki.sa_pub.write_bytes(sa_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                            serialization.PublicFormat.SubjectPublicKeyInfo))
    return pki


def write_kubeconfig(path: Path, *, pki: Pki, who: ClientIdentity, server: str, cluster: str = "localfleet") -> Path:
    """A kubeconfig for `who` with the certificates embedded (so it can be copied anywhere)."""
    def b64(file: Path) -> str:
        return base64.b64encode(file.read_bytes()).decode()

    config = {
        "apiVersion": "v1", "kind": "Config", "preferences": {},
        "clusters": [{"name": cluster, "cluster": {"server": server, "certificate-authority-data": b64(pki.ca_cert)}}],
        "users": [{"name": who.user, "user": {"client-certificate-data": b64(pki.client_cert(who)),
                                              "client-key-data": b64(pki.client_key(who))}}],
        "contexts": [{"name": cluster, "context": {"cluster": cluster, "user": who.user}}],
        "current-context": cluster,
    }
    partial = path.with_name(path.name + ".partial")
    partial.write_text(yaml.safe_dump(config, sort_keys=False))
    partial.chmod(0o600)
    partial.replace(path)  # whoever waits for the file never reads half of it
    return path
