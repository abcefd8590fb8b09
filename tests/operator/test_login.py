"""kopf's login: in a pod, the server from KUBERNETES_SERVICE_HOST/PORT with the projected token (re-read on
every call, so a rotated token is picked up); with KUBECONFIG, the kubeconfig. Same source as KubeApi."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kopf
import pytest
from serving_certs import issue
from stt_operator import login
from stt_operator.autoscaling import credentials


@pytest.fixture
def pod(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    sa = tmp_path / "serviceaccount"
    sa.mkdir()
    (sa / "token").write_text("first\n")
    (sa / "ca.crt").write_text(issue(dns_names=["kubernetes.default.svc"]).ca_pem)
    (sa / "namespace").write_text("stt-system")
    monkeypatch.setattr(credentials, "SERVICE_ACCOUNT_DIR", sa)
    monkeypatch.delenv("POD_NAMESPACE", raising=False)
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.244.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "36443")
    return sa


def call() -> Any:
    handler: Any = login.login  # kopf types the decorated handler as its full activity signature
    return handler(settings=kopf.OperatorSettings(), logger=None, memo=None)


def test_in_a_pod_kopf_dials_the_server_the_kubelet_names_with_the_current_token(pod: Path) -> None:
    info = call()
    assert info.server == "https://10.244.0.1:36443" and info.scheme == "Bearer" and info.token == "first"
    assert info.ca_path == str(pod / "ca.crt") and info.default_namespace == "stt-system"
    (pod / "token").write_text("rotated\n")  # the kubelet rewrites the projected token
    assert call().token == "rotated"


def test_an_ipv6_service_host_is_bracketed(pod: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "fd00::1")
    assert call().server == "https://[fd00::1]:36443"


def test_kubeconfig_wins_over_the_pod_environment(pod: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "kubeconfig"
    config.write_text("apiVersion: v1\nkind: Config\ncurrent-context: c\n"
                      "clusters: [{name: k, cluster: {server: 'https://127.0.0.1:6443'}}]\n"
                      "users: [{name: u, user: {token: abc}}]\ncontexts: [{name: c, context: {cluster: k, user: u}}]\n")
    monkeypatch.setenv("KUBECONFIG", str(config))
    assert call().server == "https://127.0.0.1:6443"


def test_a_tls_server_name_kopf_cannot_honour_is_a_login_error(pod: Path, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """kopf verifies the URL's host and has no setting for another name: a clear error, not a TLS failure."""
    config = tmp_path / "kubeconfig"
    config.write_text("apiVersion: v1\nkind: Config\ncurrent-context: c\n"
                      "clusters: [{name: k, cluster: {server: 'https://127.0.0.1:6443', tls-server-name: api.internal}}]\n"
                      "users: [{name: u, user: {token: abc}}]\ncontexts: [{name: c, context: {cluster: k, user: u}}]\n")
    monkeypatch.setenv("KUBECONFIG", str(config))
    with pytest.raises(kopf.LoginError, match="tls-server-name 'api.internal'"):
        call()
