"""Where the operator's Kubernetes credentials come from: one source for kopf's login and `KubeApi`.

Read without the `kubernetes` package (it and what it drags in cost ~25 MB of RSS, and kopf imports
it whenever it is installed). Supported, as kubectl reads them:

- kubeconfig files (`kubeconfig.py`): `KUBECONFIG` lists merged (first file wins per name),
  current-context or a named one and its namespace, `~` and paths relative to the file's folder;
- clusters: `server`, `certificate-authority(-data)`, `insecure-skip-tls-verify`, `tls-server-name`;
- users: `token`, `tokenFile` (re-read once a minute old), `client-certificate(-data)` and
  `client-key(-data)`, `exec` plugins (`exec_plugin.py`: v1 and v1beta1, re-run once the credential
  expired), or none (anonymous);
- the in-cluster service account: the server from `KUBERNETES_SERVICE_HOST`/`PORT` (as client-go
  does), its CA, and its projected token re-read once a minute old.

Refused with an error naming the entry: `auth-provider` and username/password users (use an exec
plugin), impersonation (`as`, `as-groups`, ...), and a cluster's `proxy-url`. Inline client keys go to
private 0600 files (`pem_files.py`); inline CA data is loaded without a file.

Order, as before: `KUBECONFIG`, else the in-cluster service account, else `~/.kube/config`.
"""

from __future__ import annotations

import base64
import binascii
import os
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path
from typing import Final

from stt_operator.autoscaling.exec_plugin import ExecToken, exec_config, run_plugin
from stt_operator.autoscaling.kubeconfig import (
    DEFAULT_KUBECONFIG,
    CredentialsError,
    Entry,
    Selection,
    kubeconfig_paths,
    select,
)
from stt_operator.autoscaling.pem_files import pem_file

__all__ = ["SERVICE_ACCOUNT_DIR", "Credentials", "CredentialsError", "TlsMaterial", "TokenFile",
           "credentials_from_env", "credentials_from_kubeconfig", "credentials_in_cluster",
           "in_cluster_server", "own_namespace", "ssl_context_of"]

SERVICE_ACCOUNT_DIR: Final = Path("/var/run/secrets/kubernetes.io/serviceaccount")
TOKEN_FILE_MAX_AGE_SEC: Final = 60.0  # as client-go and the kubelet's rotation expect
UNSUPPORTED_USER_KEYS: Final = {
    "auth-provider": "auth-provider (deprecated gcp/azure/oidc) is not supported: use an exec plugin "
                     "(gke-gcloud-auth-plugin, kubelogin, kubectl oidc-login)",
    "username": "username/password is not supported: use a token, a client certificate or an exec plugin",
    "password": "username/password is not supported: use a token, a client certificate or an exec plugin",
    "as": "impersonation is not supported", "as-uid": "impersonation is not supported",
    "as-groups": "impersonation is not supported", "as-user-extra": "impersonation is not supported",
}


@dataclass(frozen=True)
class TlsMaterial:
    """How to trust the API server and prove who we are to it; paths are files, `ca_data` is PEM."""

    ca_path: str | None = None
    ca_data: bytes | None = None
    cert_path: str | None = None
    key_path: str | None = None
    insecure: bool = False
    server_name: str | None = None  # the name to verify instead of the server URL's host


@dataclass(frozen=True)
class Credentials:
    """One API server and how to authenticate to it.

    `authorization()` is the current `Authorization` header value (re-read from a rotated token file
    or a re-run exec plugin when `authorizer` is set); `reload` loads everything afresh, which
    `KubeApi` does once after a 401.
    """

    server: str
    _: KW_ONLY
    token: str | None = None  # a fixed bearer token, for credentials made by hand
    ssl_context: ssl.SSLContext | bool | None = None  # None: aiohttp's default; False: skip verification
    tls: TlsMaterial = TlsMaterial()
    authorizer: Callable[[], str | None] | None = field(default=None, compare=False, repr=False)
    reload: Callable[[], Credentials] | None = field(default=None, compare=False, repr=False)
    default_namespace: str | None = None

    def authorization(self) -> str | None:
        if self.authorizer is not None:
            return self.authorizer()
        return f"Bearer {self.token}" if self.token else None


class TokenFile:
    """`Bearer <token>` from a file the kubelet (or a sidecar) rewrites; re-read once a minute old."""

    def __init__(self, path: str | Path, *, max_age_sec: float = TOKEN_FILE_MAX_AGE_SEC,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.path = Path(path)
        self._max_age = max_age_sec
        self._clock = clock
        self._lock = threading.Lock()
        self._token, self._read_at = self._read(), clock()

    def _read(self) -> str:
        try:
            token = self.path.read_text().strip()
        except OSError as exc:
            raise CredentialsError(f"token file {self.path}: {exc}") from exc
        if not token:
            raise CredentialsError(f"token file {self.path} is empty")
        return token

    def __call__(self) -> str:
        with self._lock:
            if self._clock() - self._read_at >= self._max_age:
                self._token, self._read_at = self._read(), self._clock()
            return f"Bearer {self._token}"


def ssl_context_of(tls: TlsMaterial) -> ssl.SSLContext:
    """An SSL context with the CA (file or data; else the system's), verification flag and client cert."""
    if tls.insecure:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        context = ssl.create_default_context(cafile=tls.ca_path,
                                             cadata=tls.ca_data.decode("ascii") if tls.ca_data else None)
    if tls.cert_path and tls.key_path:
        context.load_cert_chain(tls.cert_path, tls.key_path)
    return context


def _inline(entry: Entry, key: str) -> bytes | None:
    value = entry.body.get(key)
    if not value:
        return None
    try:
        return base64.b64decode(str(value), validate=True)
    except binascii.Error as exc:
        raise CredentialsError(f"kubeconfig entry {entry.name!r}: {key} is not base64") from exc


def _tls_of(selection: Selection) -> TlsMaterial:
    cluster, user = selection.cluster, selection.user
    cert_data, key_data = _inline(user, "client-certificate-data"), _inline(user, "client-key-data")
    return TlsMaterial(
        ca_path=cluster.path("certificate-authority") if not cluster.body.get("certificate-authority-data") else None,
        ca_data=_inline(cluster, "certificate-authority-data"),
        cert_path=pem_file(cert_data, suffix=".crt") if cert_data else user.path("client-certificate"),
        key_path=pem_file(key_data, suffix=".key") if key_data else user.path("client-key"),
        insecure=bool(cluster.body.get("insecure-skip-tls-verify")),
        server_name=cluster.body.get("tls-server-name") or None)


def _from_selection(selection: Selection, *, reload: Callable[[], Credentials]) -> Credentials:
    cluster, user = selection.cluster, selection.user
    server = str(cluster.body.get("server") or "").rstrip("/")
    if not server:
        raise CredentialsError(f"kubeconfig cluster {cluster.name!r} has no server")
    if cluster.body.get("proxy-url"):
        raise CredentialsError(f"kubeconfig cluster {cluster.name!r}: proxy-url is not supported")
    for key, why in UNSUPPORTED_USER_KEYS.items():
        if user.body.get(key):
            raise CredentialsError(f"kubeconfig user {user.name!r}: {why}")
    tls = _tls_of(selection)
    authorizer: Callable[[], str | None] | None = None
    if user.body.get("exec"):
        config = exec_config(user, cluster=cluster)
        first = run_plugin(config)
        if first.client_certificate_data and first.client_key_data:
            tls = TlsMaterial(ca_path=tls.ca_path, ca_data=tls.ca_data, insecure=tls.insecure,
                              server_name=tls.server_name,
                              cert_path=pem_file(first.client_certificate_data.encode(), suffix=".crt"),
                              key_path=pem_file(first.client_key_data.encode(), suffix=".key"))
        authorizer = ExecToken(config, first)
    elif user.body.get("tokenFile"):
        authorizer = TokenFile(str(user.path("tokenFile")))
    token = str(user.body["token"]) if user.body.get("token") and authorizer is None else None
    return Credentials(server=server, token=token, tls=tls,
                       ssl_context=ssl_context_of(tls) if server.startswith("https") else None,
                       authorizer=authorizer, reload=reload, default_namespace=selection.namespace)


def credentials_from_kubeconfig(path: Path | str | None = None, *, context: str | None = None) -> Credentials:
    """The current (or named) context of a kubeconfig; `None` means `KUBECONFIG` or `~/.kube/config`.

    `path` may list several files (`a:b`), merged as kubectl merges `KUBECONFIG`."""
    spec = str(path) if path is not None else os.environ.get("KUBECONFIG") or DEFAULT_KUBECONFIG
    return _from_selection(select(kubeconfig_paths(spec), context=context),
                           reload=lambda: credentials_from_kubeconfig(path, context=context))


def in_cluster_server(*, environ: Mapping[str, str] | None = None,
                      service_account_dir: Path | None = None) -> str | None:
    """`https://host:port` the kubelet names in a pod's environment; None outside a pod or with KUBECONFIG."""
    env = os.environ if environ is None else environ
    sa = SERVICE_ACCOUNT_DIR if service_account_dir is None else service_account_dir
    host = env.get("KUBERNETES_SERVICE_HOST")
    if not host or env.get("KUBECONFIG") or not (sa / "token").exists():
        return None
    return _service_url(host, env.get("KUBERNETES_SERVICE_PORT"))


def _service_url(host: str, port: str | None) -> str:
    port = port or "443"
    return f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"


def credentials_in_cluster(*, environ: Mapping[str, str] | None = None,
                           service_account_dir: Path | None = None) -> Credentials:
    """The pod's service account: the projected token (re-read once it is a minute old) and CA."""
    env = os.environ if environ is None else environ
    sa = SERVICE_ACCOUNT_DIR if service_account_dir is None else service_account_dir
    host = env.get("KUBERNETES_SERVICE_HOST")
    if not host:
        raise CredentialsError("not in a pod: KUBERNETES_SERVICE_HOST is not set")
    server = _service_url(host, env.get("KUBERNETES_SERVICE_PORT"))
    ca = sa / "ca.crt"
    if not ca.is_file():
        raise CredentialsError(f"service account CA {ca} does not exist")
    tls = TlsMaterial(ca_path=str(ca))
    namespace_file = sa / "namespace"
    return Credentials(
        server=server, tls=tls, ssl_context=ssl_context_of(tls), authorizer=TokenFile(sa / "token"),
        reload=lambda: credentials_in_cluster(environ=environ, service_account_dir=service_account_dir),
        default_namespace=namespace_file.read_text().strip() or None if namespace_file.exists() else None)


def credentials_from_env() -> Credentials:
    """KUBECONFIG, the in-cluster service account, or ~/.kube/config."""
    if not os.environ.get("KUBECONFIG") and in_cluster_server() is not None:
        return credentials_in_cluster(service_account_dir=SERVICE_ACCOUNT_DIR)
    return credentials_from_kubeconfig()


def own_namespace() -> str | None:
    """The namespace the operator runs in: `POD_NAMESPACE` (the chart sets it), else the service
    account's namespace file; None outside a pod."""
    if os.environ.get("POD_NAMESPACE"):
        return os.environ["POD_NAMESPACE"]
    namespace_file = SERVICE_ACCOUNT_DIR / "namespace"
    return namespace_file.read_text().strip() or None if namespace_file.exists() else None
