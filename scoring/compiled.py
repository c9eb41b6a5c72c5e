"""Compiled scoring with lleaves (LLVM), cached by the model's hash.

The first start with a new model compiles it (seconds to a minute); later starts load the
cached object file. Callers fall back to LightGBM when lleaves is missing or fails.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def compile_model(model_file: Path, cache_dir: Path | None = None) -> Any:
    import lleaves  # optional dependency (extra "compiled")

    digest = hashlib.sha256(Path(model_file).read_bytes()).hexdigest()[:16]
    root = cache_dir or Path(tempfile.gettempdir()) / "fraud-compiled-models"
    root.mkdir(parents=True, exist_ok=True)
    cache = root / f"lleaves-{digest}.o"
    model = lleaves.Model(model_file=str(model_file))
    if cache.exists():
        log.info("compiled model loaded from cache %s", cache)
    else:
        log.info("compiling model %s with lleaves (cached as %s)", digest, cache)
    model.compile(cache=str(cache))
    return model
