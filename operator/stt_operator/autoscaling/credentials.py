"""Where the operator's Kubernetes credentials come from: one source for kopf's login and `KubeApi`.

The `kubernetes` package's config loaders read them into a `kubernetes.client.Configuration`:
kubeconfig files (tokens, token files, client certificates, exec plugins such as EKS's, GKE's or
an OIDC helper, auth providers) and the in-cluster service account. Its refresh hook re-reads a
projected token the kubelet rotated (at most a minute old) and re-runs an exec plugin whose
credential expired. Key material given inline in a kubeconfig goes to temp files the package
manages: one file per distinct content (a reload does not add files), removed at interpreter exit.

Order, as before: `KUBECONFIG`, else the in-cluster service account (the server from
`KUBERNETES_SERVICE_HOST`/`PORT`, as client-go does), else `~/.kube/config`.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes.config.incluster_config import InClusterConfigLoader

SERVICE_ACCOUNT_DIR: Final = Path("/var/run/secrets/kubernetes.io/serviceaccount")
AUTH_KEY: Final = "BearerToken"  # where both loaders put the Authorization value (with its scheme)


@dataclass(frozen=True)
class Credentials:
    """One API server and how to authenticate to it.

    `authorization()` is the current `Authorization` header value (re-read from a rotated token
    file or a re-run exec plugin when `configuration` is set); `reload` loads everything afresh,
    which `KubeApi` does once after a 401.
    """

    server: str
    token: str | None = None  # a fixed bearer token, for credentials made by hand
    ssl_context: ssl.SSLContext | bool | None = None  # False: skip verification
    configuration: k8s_client.Configuration | None = field(default=None, compare=False, repr=False)
    reload: Callable[[], Credentials] | None = field(default=None, compare=False, repr=False)
    default_namespace: str | None = None

    def authorization(self) -> str | None:
        if self.configuration is not None:
            value = self.configuration.get_api_key_with_prefix(AUTH_KEY)
            return _normal_scheme(value.strip()) if value else None
        return f"Bearer {self.token}" if self.token else None


def _normal_scheme(value: str) -> str:
    """The in-cluster loader writes `bearer <token>`; the kubeconfig loader `Bearer <token>`."""
    scheme, _, rest = value.partition(" ")
    return f"Bearer {rest.strip()}" if scheme.lower() == "bearer" else value


def ssl_context_of(configuration: k8s_client.Configuration) -> ssl.SSLContext | bool | None:
    """An SSL context with the configuration's CA, verification flag and client certificate."""
    if not str(configuration.host).startswith("https"):
        return None
    context = ssl.create_default_context(cafile=configuration.ssl_ca_cert or None)
    if not configuration.verify_ssl:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if configuration.cert_file and configuration.key_file:
        context.load_cert_chain(configuration.cert_file, configuration.key_file)
    return context


def _credentials(configuration: k8s_client.Configuration, *, reload: Callable[[], Credentials],
                 default_namespace: str | None) -> Credentials:
    return Credentials(server=str(configuration.host).rstrip("/"), ssl_context=ssl_context_of(configuration),
                       configuration=configuration, reload=reload, default_namespace=default_namespace)


def credentials_from_kubeconfig(path: Path | str | None = None, *, context: str | None = None) -> Credentials:
    """The current (or named) context of a kubeconfig; `None` means `KUBECONFIG` or `~/.kube/config`."""
    configuration = k8s_client.Configuration()
    # Resolved now: the package reads KUBECONFIG once, at import. Several files (a:b) are merged.
    config_file = str(path) if path is not None else os.environ.get("KUBECONFIG") or "~/.kube/config"
    # persist_config=False: never write refreshed tokens back into the user's file.
    k8s_config.load_kube_config(config_file=config_file, context=context, client_configuration=configuration,
                                persist_config=False)
    _, active = k8s_config.list_kube_config_contexts(config_file=config_file)
    namespace = ((active or {}).get("context") or {}).get("namespace") if context is None else None
    return _credentials(configuration, reload=lambda: credentials_from_kubeconfig(path, context=context),
                        default_namespace=namespace)


def in_cluster_server(*, environ: Mapping[str, str] | None = None,
                      service_account_dir: Path | None = None) -> str | None:
    """`https://host:port` the kubelet names in a pod's environment; None outside a pod or with KUBECONFIG."""
    env = os.environ if environ is None else environ
    sa = SERVICE_ACCOUNT_DIR if service_account_dir is None else service_account_dir
    host = env.get("KUBERNETES_SERVICE_HOST")
    if not host or env.get("KUBECONFIG") or not (sa / "token").exists():
        return None
    port = env.get("KUBERNETES_SERVICE_PORT", "443")
    return f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"


def credentials_in_cluster(*, environ: Mapping[str, str] | None = None,
                           service_account_dir: Path | None = None) -> Credentials:
    """The pod's service account: the projected token (re-read once it is a minute old) and CA."""
    env = dict(os.environ if environ is None else environ)
    env.setdefault("KUBERNETES_SERVICE_PORT", "443")
    sa = SERVICE_ACCOUNT_DIR if service_account_dir is None else service_account_dir
    configuration = k8s_client.Configuration()
    InClusterConfigLoader(token_filename=str(sa / "token"), cert_filename=str(sa / "ca.crt"),
                          environ=env).load_and_set(configuration)
    namespace_file = sa / "namespace"
    return _credentials(
        configuration, reload=lambda: credentials_in_cluster(environ=environ, service_account_dir=service_account_dir),
        default_namespace=namespace_file.read_text().strip() if namespace_file.exists() else None)


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
