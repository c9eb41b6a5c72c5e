"""Which model the workers score with, and publishing new versions (hot reload).

Resolution order: FRAUD_MODEL_DIR if set; else the published version (Hazelcast map
`fraudModels`, mirrored on disk under FRAUD_STATE_DIR/models so a cluster restart loses
nothing); else the model shipped with the package (`scoring/default_model`).
"""

from __future__ import annotations

import base64
import logging
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import orjson

from scoring.model import METADATA_FILE, MODEL_FILE, LoadedModel, ModelError, load_model
from service.settings import Settings

log = logging.getLogger(__name__)

CURRENT_KEY = "current"
RELOAD_CHECK_SECONDS = 5.0
PACKAGED_MODEL = Path(__file__).resolve().parent / "default_model"


def published_dir(settings: Settings, version: str) -> Path:
    return settings.models_dir / version


def current_on_disk(settings: Settings) -> Path | None:
    pointer = settings.models_dir / "CURRENT"
    if pointer.exists():
        path = published_dir(settings, pointer.read_text().strip())
        if (path / MODEL_FILE).exists():
            return path
    return None


def default_model_dir(settings: Settings) -> Path:
    if settings.model_dir is not None:
        return settings.model_dir
    on_disk = current_on_disk(settings)
    if on_disk is not None:
        return on_disk
    if (PACKAGED_MODEL / MODEL_FILE).exists():
        return PACKAGED_MODEL
    raise ModelError("no model: set FRAUD_MODEL_DIR, run `fraud model publish DIR`, or train "
                     "the default model with `fraud train`")


def _store_on_disk(settings: Settings, version: str, files: dict[str, bytes]) -> Path:
    target = published_dir(settings, version)
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name, data in files.items():
        (tmp / name).write_bytes(data)
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return target


def _set_current_on_disk(settings: Settings, version: str) -> None:
    pointer = settings.models_dir / "CURRENT"
    pointer.parent.mkdir(parents=True, exist_ok=True)
    tmp = pointer.with_suffix(".tmp")
    tmp.write_text(version + "\n")
    tmp.replace(pointer)


def publish(settings: Settings, model_dir: Path, client: Any = None) -> str:
    """Validate a model directory, store it on disk and in Hazelcast, make it current."""
    model = load_model(model_dir, compiled=False)  # rejects broken / incompatible models
    files = {name: (Path(model_dir) / name).read_bytes() for name in (MODEL_FILE, METADATA_FILE)}
    _store_on_disk(settings, model.version, files)
    _set_current_on_disk(settings, model.version)
    from enrich.connection import connect

    own = client is None
    hz = client or connect(settings, near_cache=False)
    try:
        models: Any = hz.get_map(settings.map_models).blocking()
        payload = {name: base64.b64encode(data).decode() for name, data in files.items()}
        models.put(model.version, orjson.dumps(payload).decode())
        models.put(CURRENT_KEY, model.version)
    finally:
        if own:
            hz.shutdown()
    return model.version


def publish_command(settings: Settings, model_dir: Path) -> int:
    version = publish(settings, model_dir)
    print(f"published model {version}: running workers switch to it within "
          f"{RELOAD_CHECK_SECONDS:.0f} s")
    return 0


class ModelProvider:
    """The worker's current model: loaded once per process, swapped between batches when a
    new version is published. A broken or incompatible new model is rejected and the old one
    keeps scoring."""

    _lock = threading.Lock()

    def __init__(self, settings: Settings, telemetry: Any = None,
                 watch_registry: bool = True) -> None:
        self._settings = settings
        self._telemetry = telemetry
        self._watch = watch_registry and settings.model_dir is None
        self._model: LoadedModel | None = None
        self._next_check = 0.0
        self._rejected: set[str] = set()

    def _load(self, path: Path) -> LoadedModel:
        model = load_model(path, compiled=True, cache_dir=self._settings.cache_dir)
        if self._telemetry is not None:
            self._telemetry.model_loaded(model.version, model.kind)
        return model

    def current(self) -> LoadedModel:
        with self._lock:
            if self._model is None:
                self._model = self._load(default_model_dir(self._settings))
                self._next_check = time.monotonic() + RELOAD_CHECK_SECONDS
            elif self._watch and time.monotonic() >= self._next_check:
                self._next_check = time.monotonic() + RELOAD_CHECK_SECONDS
                self._maybe_reload()
            return self._model

    def _maybe_reload(self) -> None:
        try:
            from streaming.sinks import shared_client

            models: Any = shared_client(self._settings).get_map(
                self._settings.map_models).blocking()
            version = models.get(CURRENT_KEY)
            if not version or self._model is None or version == self._model.version \
                    or version in self._rejected:
                return
            payload = models.get(version)
            if payload is None:
                return
            files = {k: base64.b64decode(v) for k, v in orjson.loads(payload).items()}
            path = _store_on_disk(self._settings, version, files)
            self._model = self._load(path)
            log.info("hot reload: now scoring with model %s", version)
        except ModelError as exc:
            self._rejected.add(str(version))
            log.error("model %s rejected, keeping %s: %s", version,
                      self._model.version if self._model else "-", exc)
            if self._telemetry is not None:
                self._telemetry.model_rejected(str(exc))
        except Exception as exc:
            log.warning("model registry check failed: %s", exc)
