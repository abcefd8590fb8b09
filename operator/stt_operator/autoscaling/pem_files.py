"""Inline client certificates and keys as files, because `ssl` and kopf load a key pair only from files.

A kubeconfig's `client-certificate-data`/`client-key-data` and an exec plugin's
`clientCertificateData`/`clientKeyData` go into one private folder (0700) made on first use and
removed at interpreter exit; each file is 0600 and named after a hash of its content, so loading the
same kubeconfig again (after every 401) writes nothing new. CA data needs no file: `ssl` takes it as
`cadata` and kopf as `ca_data`.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import shutil
import tempfile
import threading
from pathlib import Path

_lock = threading.Lock()
_folder: Path | None = None


def private_folder() -> Path:
    """The process's folder for key material (made on first call, removed at exit)."""
    global _folder
    with _lock:
        if _folder is None or not _folder.is_dir():
            _folder = Path(tempfile.mkdtemp(prefix="stt-operator-tls-"))  # mkdtemp: mode 0700
            atexit.register(shutil.rmtree, _folder, ignore_errors=True)
        return _folder


def pem_file(data: bytes, *, suffix: str) -> str:
    """A 0600 file holding `data` in the private folder; the same content always gives the same file."""
    folder = private_folder()
    path = folder / f"{hashlib.sha256(data).hexdigest()[:32]}{suffix}"
    with _lock:
        if not path.exists():
            # Written under a temporary name, then renamed: a reader never sees half a key.
            fd, partial = tempfile.mkstemp(dir=folder, prefix=".partial-")  # mkstemp: mode 0600
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(partial, path)
    return str(path)
