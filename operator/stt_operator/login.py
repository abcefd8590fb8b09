"""kopf's login from the operator's one credentials source (`autoscaling.credentials`).

kopf's built-in service-account login always dials `https://kubernetes.default.svc` on port 443
and its kubeconfig login knows no exec plugins. Ours loads the credentials as `KubeApi` does (in a
pod, the server the kubelet names in `KUBERNETES_SERVICE_HOST`/`PORT` and the projected token;
elsewhere the kubeconfig, exec plugins included) and hands kopf the same server, CA, client
certificate and Authorization value. kopf calls this again on a 401, which loads everything afresh,
so a rotated token is re-read and an exec plugin re-run.
"""

from __future__ import annotations

from typing import Any

import kopf

from stt_operator.autoscaling.credentials import Credentials, credentials_from_env


def connection_info(credentials: Credentials, *, trust_env: bool = False) -> kopf.ConnectionInfo:
    """kopf's view of `credentials`: the same server, TLS material and Authorization header."""
    tls = credentials.tls
    if tls.server_name:
        # kopf verifies the URL's host and has no setting for another name: say so rather than fail TLS.
        raise kopf.LoginError(f"the kubeconfig's tls-server-name {tls.server_name!r} is not supported by kopf; "
                              "use a server URL whose host the certificate names")
    scheme, token = None, None
    authorization = credentials.authorization()
    if authorization:
        scheme, _, token = authorization.partition(" ")
    return kopf.ConnectionInfo(
        server=credentials.server,
        ca_path=tls.ca_path,
        ca_data=tls.ca_data,
        insecure=tls.insecure or credentials.ssl_context is False,
        scheme=scheme or None,
        token=token or None,
        certificate_path=tls.cert_path,
        private_key_path=tls.key_path,
        default_namespace=credentials.default_namespace,
        trust_env=trust_env,
    )


@kopf.on.login()
def login(*, settings: kopf.OperatorSettings, **_: Any) -> kopf.ConnectionInfo:
    return connection_info(credentials_from_env(), trust_env=settings.networking.trust_env)
