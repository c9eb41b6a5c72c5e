"""Compiled scoring with lleaves (LLVM), cached by the model's hash.

The first start with a new model compiles it (seconds for the demo model, a minute or more
for large ones); later starts, and the other processes of a local cluster, load the cached
object file. The cache file is written under a temporary name and renamed into place, so a
process never loads a half-written one. Callers (`scoring.model.load_model`) check the
compiled model against LightGBM and fall back to LightGBM when lleaves is missing or fails.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# LLVM (through llvmlite) is not safe to drive from two threads at once: lleaves compiles in a
# background thread while the flow may build scoring/treeshap.py's kernel. One at a time.
LLVM_LOCK = threading.Lock()


def cache_path(model_file: Path, cache_dir: Path | None = None) -> Path:
    """Where the compiled object of ``model_file`` is cached (keyed by its content hash and
    the lleaves version)."""
    import lleaves  # optional dependency (extra "compiled")

    digest = hashlib.sha256(Path(model_file).read_bytes())
    digest.update(getattr(lleaves, "__version__", "?").encode())
    root = cache_dir or Path(tempfile.gettempdir()) / "fraud-compiled-models"
    return root / f"lleaves-{digest.hexdigest()[:16]}.o"


def compile_model(model_file: Path, cache_dir: Path | None = None) -> Any:
    """An lleaves model of ``model_file``, compiled once and cached."""
    import lleaves  # optional dependency (extra "compiled")

    cache = cache_path(model_file, cache_dir)
    cache.parent.mkdir(parents=True, exist_ok=True)
    model = lleaves.Model(model_file=str(model_file))
    # One compiler per machine: the processes of a local cluster wait for the first one.
    with open(cache.with_name(cache.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if cache.exists():
            log.info("compiled model loaded from cache %s", cache)
            with LLVM_LOCK:
                model.compile(cache=str(cache))
            return model
        log.info("compiling %s with lleaves (cached as %s)", model_file, cache)
        fd, tmp = tempfile.mkstemp(prefix=cache.name + ".", suffix=".tmp", dir=cache.parent)
        os.close(fd)
        os.unlink(tmp)  # lleaves writes the cache only when the file does not exist
        try:
            with LLVM_LOCK:
                model.compile(cache=tmp)
            os.replace(tmp, cache)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return model


def is_cached(model_file: Path, cache_dir: Path | None = None) -> bool:
    """Whether a compiled object of ``model_file`` is in the cache (False without lleaves)."""
    try:
        return cache_path(model_file, cache_dir).exists()
    except ImportError:
        return False
