"""Exec credential plugins: a small script written here prints an ExecCredential and counts its runs.
It runs once per load, again only once its credential expired, with the kubeconfig's args and env;
failures say which plugin of which user failed, with the kubeconfig's installHint."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from stt_operator.autoscaling.credentials import CredentialsError, credentials_from_kubeconfig
from stt_operator.autoscaling.exec_plugin import ExecToken, exec_config, run_plugin
from stt_operator.autoscaling.kubeconfig import select

PLUGIN = """\
import json, os, sys
runs = os.environ["PLUGIN_RUNS"]
with open(runs, "a") as log:
    log.write(" ".join(sys.argv[1:]) + "\\n")
count = len(open(runs).read().splitlines())
with open(runs + ".info", "w") as info:
    info.write(os.environ.get("KUBERNETES_EXEC_INFO", ""))
status = {"token": f"token-{count}"}
if os.environ.get("PLUGIN_EXPIRY"):
    status["expirationTimestamp"] = os.environ["PLUGIN_EXPIRY"]
print(json.dumps({"apiVersion": os.environ["PLUGIN_API"], "kind": "ExecCredential", "status": status}))
"""


def plugin_kubeconfig(tmp_path: Path, *, expiry: str | None = None, api: str = "client.authentication.k8s.io/v1",
                      printed_api: str | None = None, extra: dict[str, Any] | None = None,
                      command: str | None = None) -> tuple[Path, Path]:
    script = tmp_path / "plugin.py"
    script.write_text(PLUGIN)
    runs = tmp_path / "runs"
    env = [{"name": "PLUGIN_RUNS", "value": str(runs)}, {"name": "PLUGIN_API", "value": printed_api or api}]
    if expiry:
        env.append({"name": "PLUGIN_EXPIRY", "value": expiry})
    config = {
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "k", "cluster": {"server": "http://127.0.0.1:1", "extensions": [
            {"name": "client.authentication.k8s.io/exec", "extension": {"audience": "stt"}}]}}],
        "users": [{"name": "plugin-user", "user": {"exec": {
            "apiVersion": api, "command": command or sys.executable, "args": [str(script), "--region", "eu"],
            "env": env, "interactiveMode": "Never", "installHint": "install it with: pip install plugin",
            **(extra or {})}}}],
        "contexts": [{"name": "c", "context": {"cluster": "k", "user": "plugin-user"}}],
    }
    path = tmp_path / "kubeconfig"
    path.write_text(json.dumps(config))
    return path, runs


def run_count(runs: Path) -> int:
    return len(runs.read_text().splitlines())


@pytest.mark.parametrize("api", ["client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1"])
def test_the_plugin_runs_once_per_load_with_its_args_and_env(tmp_path: Path, api: str) -> None:
    path, runs = plugin_kubeconfig(tmp_path, api=api)
    credentials = credentials_from_kubeconfig(path)
    assert credentials.authorization() == "Bearer token-1"
    assert credentials.authorization() == "Bearer token-1"  # no expiry: no re-run
    assert runs.read_text() == "--region eu\n"
    info = json.loads(Path(f"{runs}.info").read_text())
    assert info["apiVersion"] == api and info["spec"]["interactive"] is False and "cluster" not in info["spec"]
    # A reload (KubeApi's answer to a 401) runs it again.
    assert credentials.reload is not None and credentials.reload().authorization() == "Bearer token-2"


def test_an_expired_credential_makes_the_next_call_run_the_plugin_again(tmp_path: Path) -> None:
    path, runs = plugin_kubeconfig(tmp_path, expiry="2000-01-01T00:00:00Z")
    credentials = credentials_from_kubeconfig(path)
    assert run_count(runs) == 1
    assert credentials.authorization() == "Bearer token-2"
    assert credentials.authorization() == "Bearer token-3"
    assert run_count(runs) == 3


def test_the_plugin_is_re_run_only_once_the_expiry_has_passed(tmp_path: Path) -> None:
    path, runs = plugin_kubeconfig(tmp_path, expiry="2030-06-01T12:00:00Z")
    selection = select([path])
    config = exec_config(selection.user, cluster=selection.cluster)
    first = run_plugin(config)
    assert first.expiration == datetime(2030, 6, 1, 12, tzinfo=UTC)
    now = datetime(2030, 6, 1, 11, 59, 59, tzinfo=UTC)
    token = ExecToken(config, first, now=lambda: now)
    assert token() == "Bearer token-1" and run_count(runs) == 1
    now = datetime(2030, 6, 1, 12, 0, 1, tzinfo=UTC)
    assert token() == "Bearer token-2" and run_count(runs) == 2


def test_provide_cluster_info_hands_the_plugin_the_cluster(tmp_path: Path) -> None:
    path, runs = plugin_kubeconfig(tmp_path, extra={"provideClusterInfo": True})
    credentials_from_kubeconfig(path)
    cluster = json.loads(Path(f"{runs}.info").read_text())["spec"]["cluster"]
    assert cluster == {"server": "http://127.0.0.1:1", "config": {"audience": "stt"}}


def test_a_missing_plugin_names_the_user_and_gives_the_install_hint(tmp_path: Path) -> None:
    path, _ = plugin_kubeconfig(tmp_path, command="no-such-auth-plugin")
    with pytest.raises(CredentialsError) as caught:
        credentials_from_kubeconfig(path)
    message = str(caught.value)
    assert "no-such-auth-plugin" in message and "'plugin-user'" in message
    assert "install it with: pip install plugin" in message


def test_a_relative_command_is_resolved_against_the_kubeconfig_folder(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "bin").mkdir()
    wrapper = tmp_path / "bin" / "auth"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    wrapper.chmod(0o755)
    path, _ = plugin_kubeconfig(tmp_path, command="./bin/auth")
    monkeypatch.chdir("/")
    assert credentials_from_kubeconfig(path).authorization() == "Bearer token-1"


def test_a_failing_plugin_reports_its_stderr(tmp_path: Path) -> None:
    path, _ = plugin_kubeconfig(tmp_path)
    (tmp_path / "plugin.py").write_text("import sys\nsys.exit('login expired: run aws sso login')\n")
    with pytest.raises(CredentialsError, match="exited with status 1: login expired: run aws sso login"):
        credentials_from_kubeconfig(path)


def test_an_answer_of_another_api_version_is_refused(tmp_path: Path) -> None:
    path, _ = plugin_kubeconfig(tmp_path, printed_api="client.authentication.k8s.io/v1beta1")
    with pytest.raises(CredentialsError, match="not an ExecCredential of client.authentication.k8s.io/v1"):
        credentials_from_kubeconfig(path)


def test_a_plugin_that_needs_a_terminal_is_refused_before_it_runs(tmp_path: Path) -> None:
    path, runs = plugin_kubeconfig(tmp_path, extra={"interactiveMode": "Always"})
    with pytest.raises(CredentialsError, match="needs a terminal"):
        credentials_from_kubeconfig(path)
    assert not runs.exists()
