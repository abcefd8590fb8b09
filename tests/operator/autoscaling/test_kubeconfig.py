"""Kubeconfig files read as kubectl reads them: merged KUBECONFIG lists, relative paths, `~`, and the
user kinds the operator refuses with a message that says what to use instead."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from stt_operator.autoscaling.credentials import CredentialsError, credentials_from_kubeconfig
from stt_operator.autoscaling.kubeconfig import kubeconfig_paths, select


def write_config(path: Path, *, current: str | None = None, clusters: dict[str, dict[str, Any]] | None = None,
                 users: dict[str, dict[str, Any]] | None = None,
                 contexts: dict[str, dict[str, Any]] | None = None) -> Path:
    config: dict[str, Any] = {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": n, "cluster": c} for n, c in (clusters or {}).items()],
        "users": [{"name": n, "user": u} for n, u in (users or {}).items()],
        "contexts": [{"name": n, "context": c} for n, c in (contexts or {}).items()],
    }
    if current:
        config["current-context"] = current
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config))
    return path


def test_a_kubeconfig_list_is_merged_first_file_wins_per_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = write_config(tmp_path / "a" / "config", current="one",
                         clusters={"k": {"server": "http://127.0.0.1:1001"}},
                         contexts={"one": {"cluster": "k", "user": "u", "namespace": "from-a"}})
    second = write_config(tmp_path / "b" / "config", current="two",
                          clusters={"k": {"server": "http://127.0.0.1:2002"}, "k2": {"server": "http://127.0.0.1:3003"}},
                          users={"u": {"token": "from-b"}},
                          contexts={"one": {"cluster": "k2", "user": "u"}, "two": {"cluster": "k2", "user": "u"}})
    # A file in the list that does not exist is skipped, as kubectl skips it.
    monkeypatch.setenv("KUBECONFIG", os.pathsep.join([str(first), str(tmp_path / "missing"), str(second)]))
    credentials = credentials_from_kubeconfig()
    # current-context and context "one" come from the first file, cluster "k" too; user "u" only from the second.
    assert credentials.server == "http://127.0.0.1:1001" and credentials.default_namespace == "from-a"
    assert credentials.authorization() == "Bearer from-b"
    other = credentials_from_kubeconfig(context="two")
    assert other.server == "http://127.0.0.1:3003" and other.default_namespace is None
    # The reload reads the same list again.
    assert other.reload is not None and other.reload().server == "http://127.0.0.1:3003"


def test_relative_paths_are_resolved_against_the_file_that_names_them(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "conf"
    (folder / "secrets").mkdir(parents=True)
    (folder / "secrets" / "token").write_text("from-file\n")
    write_config(folder / "config", current="c",
                 clusters={"k": {"server": "http://127.0.0.1:1", "certificate-authority": "secrets/ca.crt"}},
                 users={"u": {"tokenFile": "secrets/token", "client-certificate": "../tls/client.crt",
                              "client-key": "/abs/client.key"}},
                 contexts={"c": {"cluster": "k", "user": "u"}})
    monkeypatch.chdir(tmp_path)  # a different working directory: paths still follow the file
    credentials = credentials_from_kubeconfig(Path("conf/config"))
    assert credentials.authorization() == "Bearer from-file"
    assert credentials.tls.ca_path == str(folder / "secrets" / "ca.crt")
    assert credentials.tls.cert_path == str(folder / "../tls/client.crt")
    assert credentials.tls.key_path == "/abs/client.key"
    assert select([folder / "config"]).cluster.folder == folder


def test_a_tilde_is_expanded_in_the_list_and_in_file_references(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "token").write_text("tilde")
    write_config(tmp_path / ".kube" / "other", current="c", clusters={"k": {"server": "http://127.0.0.1:1"}},
                 users={"u": {"tokenFile": "~/token"}}, contexts={"c": {"cluster": "k", "user": "u"}})
    assert kubeconfig_paths(f"~/.kube/other{os.pathsep}{os.pathsep}/x") == [tmp_path / ".kube" / "other", Path("/x")]
    monkeypatch.setenv("KUBECONFIG", "~/.kube/other")
    assert credentials_from_kubeconfig().authorization() == "Bearer tilde"


@pytest.mark.parametrize(("user", "says"), [
    ({"auth-provider": {"name": "oidc", "config": {"id-token": "x"}}}, "auth-provider"),
    ({"username": "admin", "password": "secret"}, "username/password"),
])
def test_deprecated_user_kinds_are_refused_naming_the_entry(tmp_path: Path, user: dict[str, Any], says: str) -> None:
    path = write_config(tmp_path / "config", current="c", clusters={"k": {"server": "https://127.0.0.1:1"}},
                        users={"legacy-user": user}, contexts={"c": {"cluster": "k", "user": "legacy-user"}})
    with pytest.raises(CredentialsError) as caught:
        credentials_from_kubeconfig(path)
    message = str(caught.value)
    assert "'legacy-user'" in message and says in message and "exec plugin" in message


@pytest.mark.parametrize(("contexts", "current", "says"), [
    ({"c": {"cluster": "k", "user": "u"}}, None, "no current-context"),
    ({"c": {"cluster": "k", "user": "u"}}, "other", "no context named 'other'"),
    ({"c": {"cluster": "nope", "user": "u"}}, "c", "cluster 'nope'"),
    ({"c": {"cluster": "k", "user": "nobody"}}, "c", "user 'nobody'"),
])
def test_a_broken_kubeconfig_says_what_is_missing(tmp_path: Path, contexts: dict[str, dict[str, Any]],
                                                   current: str | None, says: str) -> None:
    path = write_config(tmp_path / "config", current=current, clusters={"k": {"server": "https://127.0.0.1:1"}},
                        users={"u": {"token": "t"}}, contexts=contexts)
    with pytest.raises(CredentialsError, match=says):
        credentials_from_kubeconfig(path)


def test_no_kubeconfig_at_all_is_an_error_naming_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(CredentialsError, match="no kubeconfig found at .*missing"):
        credentials_from_kubeconfig(tmp_path / "missing")


def test_a_context_without_a_user_is_anonymous(tmp_path: Path) -> None:
    path = write_config(tmp_path / "config", current="c", clusters={"k": {"server": "http://127.0.0.1:1/"}},
                        contexts={"c": {"cluster": "k"}})
    credentials = credentials_from_kubeconfig(path)
    assert credentials.server == "http://127.0.0.1:1" and credentials.authorization() is None
    assert credentials.ssl_context is None  # plain http: no TLS context
