"""Shared fixtures: synthesized speech (``tests/audio_fixtures.py``) and one loaded Whisper backend.

Putting this file at ``tests/`` also puts ``tests/`` on ``sys.path``, so test modules anywhere can
``import audio_fixtures``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import audio_fixtures
import pytest
from monitoring_stack import processes  # noqa: F401 - the fixture, for every test


@pytest.fixture(scope="session")
def whisper_backend() -> Iterator[Any]:
    """The bundled tiny.en, loaded once per test session (CPU int8 here)."""
    from stt_server.config import ServerConfig
    from stt_server.engine.backend import WhisperBackend

    backend = WhisperBackend(ServerConfig().model)
    backend.load()
    yield backend


@pytest.fixture(scope="session")
def two_sentences() -> tuple[str, str]:
    return audio_fixtures.SENTENCES[0], audio_fixtures.SENTENCES[1]


@pytest.fixture(scope="session")
def local_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One real control plane (etcd, kube-apiserver, controller-manager, scheduler) plus the process
    kubelet for the whole session, with the API server's audit log on. Tests take a namespace each.

    Skipped, with the reason, when the Go-built binaries are missing and STT_REQUIRE_CLUSTER is not
    set; `make test` builds them first and sets it, so there a missing binary fails instead.
    """
    import os

    from local_cluster import start_cluster, stop_cluster
    from stt_localfleet import binaries

    missing = binaries.missing()
    if missing:
        reason = (f"{', '.join(b.name for b in missing)} not built in {binaries.bin_dir()}: "
                  "run `stt-localfleet build` (make test does)")
        if os.environ.get("STT_REQUIRE_CLUSTER"):
            pytest.fail(reason)
        pytest.skip(reason)
    cluster = start_cluster(tmp_path_factory.mktemp("localfleet"))
    try:
        yield cluster
    finally:
        stop_cluster(cluster)


@pytest.fixture
def namespace(local_cluster: Any, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace in the session cluster, deleted (in the background) after the test."""
    name = local_cluster.new_namespace(request.node.name.replace("_", "-").lower()[:30].strip("-"))
    try:
        yield name
    finally:
        local_cluster.delete_namespace(name)


@pytest.fixture(scope="session")
def sttserver_crd(local_cluster: Any) -> None:
    """The SttServer CRD applied to the session cluster (server-side) and Established."""
    from local_cluster import REPO

    local_cluster.kubectl("apply", "--server-side", "-f", str(REPO / "crds" / "sttservers.sttfleet.io.yaml"))
    local_cluster.kubectl("wait", "--for=condition=Established", "crd/sttservers.sttfleet.io", "--timeout=60s")
