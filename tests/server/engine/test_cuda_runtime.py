"""`device: cuda` without the libraries CTranslate2 needs fails at start naming the missing one;
`device: auto` falls back to the CPU with a WARNING. The loader and the device count are faked."""

from __future__ import annotations

import logging
import os
import pathlib
import subprocess
import sys

import pytest
from stt_server.engine.cuda_runtime import (
    CUDA_LIBRARIES,
    CudaCheck,
    CudaUnavailable,
    check_cuda,
    resolve_device,
)
from stt_server.engine.errors import ModelLoadError
from stt_server.errors import ErrorCode


def loader_without(*missing: str):  # type: ignore[no-untyped-def]
    """A dlopen stand-in that fails, with the loader's own wording, for the named sonames."""
    opened: list[str] = []

    def load(soname: str) -> object:
        opened.append(soname)
        if soname in missing:
            raise OSError(f"{soname}: cannot open shared object file: No such file or directory")
        return object()
    load.opened = opened  # type: ignore[attr-defined]
    return load


def test_missing_cublas_is_named_and_cuda_refuses_to_start() -> None:
    check = check_cuda(load_library=loader_without("libcublas.so.12"), device_count=lambda: 1)
    assert not check.usable
    assert [m.library.soname for m in check.missing] == ["libcublas.so.12"]
    with pytest.raises(CudaUnavailable) as caught:
        resolve_device("cuda", check=lambda: check)
    error = caught.value
    assert isinstance(error, ModelLoadError)  # stt-server's start-up path prints these as one line
    assert error.code is ErrorCode.CUDA_LIBRARY_MISSING
    text = str(error)
    assert text.startswith("ERR1035: model.device is cuda but a CUDA library is missing: ")
    assert "libcublas.so.12 (CUDA 12 cuBLAS) cannot be loaded: cannot open shared object file" in text
    assert "stt-fleet[gpu]" in text and "driver" not in text.split("Fix:")[1]


def test_every_library_is_tried_and_all_missing_ones_are_listed() -> None:
    load = loader_without("libcublas.so.12", "libcudnn.so.9")
    check = check_cuda(load_library=load, device_count=lambda: 1)
    assert load.opened == [lib.soname for lib in CUDA_LIBRARIES]
    assert "libcublas.so.12" in check.problem() and "libcudnn.so.9 (cuDNN 9)" in check.problem()


def test_without_the_driver_the_device_count_is_not_asked() -> None:
    def count() -> int:
        raise AssertionError("CTranslate2 must not be asked without a driver")
    check = check_cuda(load_library=loader_without("libcuda.so.1"), device_count=count)
    assert check.code is ErrorCode.CUDA_LIBRARY_MISSING and "NVIDIA container runtime" in check.problem()


def test_libraries_but_no_device_is_err1036() -> None:
    check = check_cuda(load_library=loader_without(), device_count=lambda: 0)
    with pytest.raises(CudaUnavailable) as caught:
        resolve_device("cuda", check=lambda: check)
    assert caught.value.code is ErrorCode.CUDA_DEVICE_UNAVAILABLE
    assert str(caught.value).startswith("ERR1036: ") and "sees no CUDA device" in str(caught.value)


def test_a_failing_device_count_is_reported_not_raised() -> None:
    def count() -> int:
        raise RuntimeError("CUDA failed with error CUDA driver version is insufficient for CUDA runtime version")
    check = check_cuda(load_library=loader_without(), device_count=count)
    assert check.code is ErrorCode.CUDA_DEVICE_UNAVAILABLE
    assert "driver version is insufficient" in check.problem()
    assert resolve_device("auto", check=lambda: check) == "cpu"


def test_a_wheel_copy_off_the_loader_path_is_pointed_out(tmp_path: pathlib.Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    lib = tmp_path / "nvidia" / "cublas" / "lib"
    lib.mkdir(parents=True)
    (lib / "libcublas.so.12").write_bytes(b"")
    monkeypatch.syspath_prepend(str(tmp_path))
    check = check_cuda(load_library=loader_without("libcublas.so.12"), device_count=lambda: 1)
    assert f"it is at {lib / 'libcublas.so.12'}, which is not on LD_LIBRARY_PATH" in check.problem()


def test_auto_uses_cuda_when_usable_and_falls_back_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    usable = CudaCheck(missing=(), device_count=2)
    assert resolve_device("auto", check=lambda: usable) == "cuda"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]

    broken = check_cuda(load_library=loader_without("libcudnn.so.9"), device_count=lambda: 1)
    with caplog.at_level(logging.WARNING, logger="stt_server.engine.cuda_runtime"):
        assert resolve_device("auto", check=lambda: broken) == "cpu"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "libcudnn.so.9" in warnings[0].getMessage()
    assert "runs on the CPU" in warnings[0].getMessage()


def test_cpu_never_probes_cuda() -> None:
    def check() -> CudaCheck:
        raise AssertionError("device cpu must not probe CUDA")
    assert resolve_device("cpu", check=check) == "cpu"


def test_stt_server_device_cuda_exits_1_with_one_clear_line() -> None:
    """The real start-up path on this machine, which has no NVIDIA driver: exit 1, ERR1035 naming
    libcuda.so.1, and no traceback (a pod would show this as its termination message)."""
    if check_cuda().usable:
        pytest.skip("this machine can use CUDA")
    env = {**os.environ, "STT_LOGGING__FORMAT": "console"}
    result = subprocess.run([sys.executable, "-m", "stt_server.cli", "--device", "cuda", "--grpc-port", "0",
                             "--http-port", "0", "--rest-port", "0"], capture_output=True, text=True, timeout=60, env=env, check=False)
    assert result.returncode == 1
    assert "stt-server: ERR1035: model.device is cuda but a CUDA library is missing" in result.stderr
    assert "libcuda.so.1 (the NVIDIA driver) cannot be loaded" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
