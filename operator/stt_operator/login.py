"""kopf's login: in a pod, the API server the kubelet names; elsewhere, the kubeconfig.

kopf's built-in service-account login always dials `https://kubernetes.default.svc` on port 443,
whatever the pod is told. Every kubelet tells a pod where its API server is in
`KUBERNETES_SERVICE_HOST` and `KUBERNETES_SERVICE_PORT`, which is what client-go, the kubernetes
package and our own client (`autoscaling.kubeapi.credentials_from_env`) use; so kopf uses them too,
and needs no cluster DNS. kopf calls this again on a 401, so a rotated projected token is re-read.
"""

from __future__ import annotations

from typing import Any

import kopf

from stt_operator.autoscaling.kubeapi import SERVICE_ACCOUNT_DIR, in_cluster_server


@kopf.on.login()
def login(*, settings: kopf.OperatorSettings, **kwargs: Any) -> kopf.ConnectionInfo | None:
    server = in_cluster_server()
    if server is None:
        return kopf.login_with_kubeconfig(settings=settings, **kwargs)
    namespace_file = SERVICE_ACCOUNT_DIR / "namespace"
    ca_file = SERVICE_ACCOUNT_DIR / "ca.crt"
    return kopf.ConnectionInfo(
        server=server,
        ca_path=str(ca_file) if ca_file.exists() else None,
        token=(SERVICE_ACCOUNT_DIR / "token").read_text().strip() or None,
        scheme="Bearer",
        default_namespace=namespace_file.read_text().strip() if namespace_file.exists() else None,
        trust_env=settings.networking.trust_env,
    )
