"""Can CTranslate2 run on CUDA in this process, and if not, which library is missing?

CTranslate2's PyPI wheels are built with CUDA but load the rest at run time: the driver
(`libcuda.so.1`, which the NVIDIA container runtime injects) and CUDA 12 cuBLAS (`libcublas.so.12`,
`libcublasLt.so.12`); faster-whisper documents cuDNN 9 (`libcudnn.so.9`) as well. Without one of
them the model loads and the first decode dies with a bare loader error, or the pod crash-loops. So
before loading the model the server opens each library the way CTranslate2 will (by soname, through
the dynamic loader's search path) and asks CTranslate2 how many CUDA devices it sees.

`device: cuda` turns a failed check into `CudaUnavailable` (ERR1035 for a missing library, ERR1036
for no visible device), which `stt-server` prints as one line before exiting 1. `device: auto`
falls back to the CPU with a WARNING naming the same reason.
"""

from __future__ import annotations

import ctypes
import importlib.util
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from stt_server.engine.errors import ModelLoadError
from stt_server.errors import CATALOGUE, ErrorCode

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CudaLibrary:
    soname: str
    what: str
    wheel: str | None  # the pip package (in the `gpu` extra) that ships it, None for the driver


CUDA_LIBRARIES: Final = (
    CudaLibrary("libcuda.so.1", "the NVIDIA driver", None),
    CudaLibrary("libcublasLt.so.12", "CUDA 12 cuBLASLt", "nvidia.cublas"),
    CudaLibrary("libcublas.so.12", "CUDA 12 cuBLAS", "nvidia.cublas"),
    CudaLibrary("libcudnn.so.9", "cuDNN 9", "nvidia.cudnn"),
)
DRIVER_HINT: Final = ("run the pod on a GPU node through the NVIDIA container runtime (it injects the driver; "
                      "CUDA 12 needs driver >= 525.60.13) and request nvidia.com/gpu")
WHEEL_HINT: Final = ("use the stt-server -cuda image, or pip install 'stt-fleet[gpu]' and put its nvidia/cublas/lib "
                     "and nvidia/cudnn/lib directories on LD_LIBRARY_PATH")


@dataclass(frozen=True)
class MissingLibrary:
    library: CudaLibrary
    reason: str  # the loader's own words
    found_at: Path | None = None  # the wheel's copy, when one exists but the loader's path misses it

    def describe(self) -> str:
        text = f"{self.library.soname} ({self.library.what}) cannot be loaded: {self.reason}"
        if self.found_at is not None:
            text += f"; it is at {self.found_at}, which is not on LD_LIBRARY_PATH"
        return text


@dataclass(frozen=True)
class CudaCheck:
    """What the check found: the libraries that would not load, and the visible device count."""

    missing: tuple[MissingLibrary, ...]
    device_count: int
    device_error: str | None = None  # CTranslate2's own words when counting devices failed

    @property
    def usable(self) -> bool:
        return not self.missing and self.device_count > 0

    @property
    def code(self) -> ErrorCode:
        return ErrorCode.CUDA_LIBRARY_MISSING if self.missing else ErrorCode.CUDA_DEVICE_UNAVAILABLE

    def problem(self) -> str:
        """One sentence a person can act on (empty when usable)."""
        if self.missing:
            hints = [hint for hint, wanted in ((DRIVER_HINT, any(m.library.wheel is None for m in self.missing)),
                                               (WHEEL_HINT, any(m.library.wheel for m in self.missing))) if wanted]
            return f"{'; '.join(m.describe() for m in self.missing)}. Fix: {'; and '.join(hints)}"
        if self.device_count <= 0:
            said = f" ({self.device_error})" if self.device_error else ""
            return (f"CTranslate2 sees no CUDA device{said} (CUDA_VISIBLE_DEVICES, the nvidia.com/gpu request, or a "
                    f"driver too old for CUDA 12). Fix: {DRIVER_HINT}")
        return ""


class CudaUnavailable(ModelLoadError):
    """`model.device: cuda` on a machine where CTranslate2 cannot use CUDA."""

    def __init__(self, check: CudaCheck) -> None:
        self.check = check
        self.code = check.code
        template = CATALOGUE[check.code].template
        super().__init__(f"{check.code.value}: {template.format(problem=check.problem())}")


def _dlopen(soname: str) -> object:
    return ctypes.CDLL(soname)


def _ctranslate2_device_count() -> int:
    import ctranslate2

    return int(ctranslate2.get_cuda_device_count())


def _wheel_copy(library: CudaLibrary) -> Path | None:
    if library.wheel is None:
        return None
    try:
        spec = importlib.util.find_spec(library.wheel)
    except (ImportError, ValueError):
        return None
    for folder in (spec.submodule_search_locations or ()) if spec else ():
        candidate = Path(folder) / "lib" / library.soname
        if candidate.exists():
            return candidate
    return None


def check_cuda(*, load_library: Callable[[str], object] = _dlopen,
               device_count: Callable[[], int] = _ctranslate2_device_count) -> CudaCheck:
    """Open every CUDA library CTranslate2 needs and count devices; `load_library` and `device_count`
    are the seams tests fake (a missing library is a loader `OSError`)."""
    missing = []
    for library in CUDA_LIBRARIES:
        try:
            load_library(library.soname)
        except OSError as exc:
            reason = str(exc).removeprefix(f"{library.soname}: ") or "not found"
            missing.append(MissingLibrary(library, reason, _wheel_copy(library)))
    if any(m.library.wheel is None for m in missing):
        return CudaCheck(missing=tuple(missing), device_count=0)
    try:
        count = device_count()
    except (RuntimeError, OSError) as exc:  # e.g. "CUDA driver version is insufficient for CUDA runtime version"
        return CudaCheck(missing=tuple(missing), device_count=0, device_error=str(exc))
    return CudaCheck(missing=tuple(missing), device_count=count)


def resolve_device(device: str, *, check: Callable[[], CudaCheck] = check_cuda) -> str:
    """`cpu` or `cuda` for `model.device`: `cuda` must be usable (else `CudaUnavailable`); `auto`
    takes CUDA when usable and otherwise the CPU, with a WARNING saying why."""
    if device == "cpu":
        return "cpu"
    result = check()
    if result.usable:
        return "cuda"
    if device == "cuda":
        raise CudaUnavailable(result)
    log.warning("model.device is auto and CUDA is not usable, so the model runs on the CPU: %s",
                result.problem(), extra={"device": "cpu", "cuda_problem": result.code.value,
                                         "ld_library_path": os.environ.get("LD_LIBRARY_PATH", "")})
    return "cpu"
