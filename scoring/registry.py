"""Which model the workers score with, and publishing new versions (hot reload).

Resolution order: FRAUD_MODEL_DIR if set; else the published version (Hazelcast map
`fraudModels`, mirrored on disk under FRAUD_STATE_DIR/models so a cluster restart loses
nothing); else the model shipped with the package (`scoring/default_model`).
"""

from __future__ import annotations

import base64
import logging
import re
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import orjson

from scoring.model import (
    METADATA_FILE,
    MODEL_FILE,
    LoadedModel,
    ModelError,
    load_model,
    with_compiled,
)
from service.settings import Settings

log = logging.getLogger(__name__)

CURRENT_KEY = "current"
_VERSION = re.compile(r"[0-9a-f]{12}")
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


def store_on_disk(settings: Settings, version: str, files: dict[str, bytes]) -> Path:
    target = published_dir(settings, version)
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name, data in files.items():
        (tmp / name).write_bytes(data)
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return target


def set_current_on_disk(settings: Settings, version: str) -> None:
    pointer = settings.models_dir / "CURRENT"
    pointer.parent.mkdir(parents=True, exist_ok=True)
    tmp = pointer.with_suffix(".tmp")
    tmp.write_text(version + "\n")
    tmp.replace(pointer)


def publish(settings: Settings, model_dir: Path, client: Any = None) -> str:
    """Validate a model directory, store it on disk and in Hazelcast, make it current."""
    model = load_model(model_dir, compiled=False, probe=True)  # rejects broken / incompatible
    files = {name: (Path(model_dir) / name).read_bytes() for name in (MODEL_FILE, METADATA_FILE)}
    store_on_disk(settings, model.version, files)
    set_current_on_disk(settings, model.version)
    from enrich.connection import connect

    own = client is None
    hz = client or connect(settings, near_cache=False)
    try:
        models: Any = hz.get_map(settings.map_models).blocking()
        models.put(model.version, encode_payload(files))
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
    keeps scoring.

    Compiled scoring: a model whose lleaves object is cached starts compiled; otherwise it
    scores with LightGBM at once while a background thread compiles it (one compiler per
    machine), and the provider switches to the compiled model between batches when it is
    ready and agrees with LightGBM. Which one scores is logged and reported to telemetry.

    Durability: a worker that switches to a published model also records it on its own disk
    (FRAUD_STATE_DIR/models), so a restarted worker starts with it; when the Hazelcast
    cluster restarted and lost the registry, a worker scoring with a published model puts it
    back.
    """

    def __init__(self, settings: Settings, telemetry: Any = None,
                 watch_registry: bool = True, compiled: bool = True,
                 compile_in_background: bool = True,
                 check_interval: float = RELOAD_CHECK_SECONDS) -> None:
        self._settings = settings
        self._telemetry = telemetry
        self._watch = watch_registry and settings.model_dir is None
        self._compiled = compiled
        self._background = compile_in_background
        self._interval = check_interval
        self._lock = threading.Lock()
        self._model: LoadedModel | None = None
        self._published = False  # the current model came from the registry
        self._next_check = 0.0
        self._rejected: set[str] = set()
        self._pending: LoadedModel | None = None  # compiled, waiting to be swapped in

    # -- loading -------------------------------------------------------------------------

    def _load(self, path: Path) -> LoadedModel:
        """Load and check a model; compiled now if cached (or not in background mode),
        otherwise LightGBM now and compiled in the background."""
        # A model from the registry is probed in a child process before this one parses it.
        model = load_model(path, compiled=False, probe=self._model is not None)
        if self._compiled:
            from scoring.compiled import is_cached

            model_file = path / MODEL_FILE
            if not self._background or is_cached(model_file, self._settings.cache_dir):
                model = with_compiled(model, self._settings.cache_dir)
            else:
                log.info("model %s: scoring with LightGBM while lleaves compiles it",
                         model.version)
                # Not a daemon: a process that ends (e.g. `--drain`) waits for the compiler
                # instead of tearing the interpreter down under LLVM (a segfault).
                threading.Thread(target=self._compile, args=(model,), daemon=False,
                                 name=f"compile-{model.version}").start()
        log.info("model %s: scoring with %s", model.version, model.kind)
        self._report(model)
        return model

    def _compile(self, model: LoadedModel) -> None:
        compiled = with_compiled(model, self._settings.cache_dir)
        if compiled.kind != model.kind:
            with self._lock:
                self._pending = compiled

    def _report(self, model: LoadedModel) -> None:
        if self._telemetry is not None:
            self._telemetry.model_loaded(model.version, model.kind)

    # -- the hot path --------------------------------------------------------------------

    def current(self) -> LoadedModel:
        """The model to score the next batch with (called once per batch)."""
        with self._lock:
            if self._model is None:
                path = default_model_dir(self._settings)
                self._published = self._settings.model_dir is None and path != PACKAGED_MODEL
                self._model = self._load(path)
                self._next_check = time.monotonic() + self._interval
            if self._pending is not None:
                pending, self._pending = self._pending, None
                if pending.version == self._model.version:
                    self._model = pending
                    log.info("model %s: now scoring with %s", pending.version, pending.kind)
                    self._report(pending)
            if self._watch and time.monotonic() >= self._next_check:
                self._next_check = time.monotonic() + self._interval
                self._maybe_reload()
            return self._model

    @property
    def rejected(self) -> frozenset[str]:
        """Versions this worker refused (broken or incompatible)."""
        return frozenset(self._rejected)

    def _maybe_reload(self) -> None:
        version: str | None = None
        try:
            from streaming.sinks import shared_client

            models: Any = shared_client(self._settings).get_map(
                self._settings.map_models).blocking()
            version = models.get(CURRENT_KEY)
            if version is None:
                self._restore_registry(models)
                return
            if self._model is None or version == self._model.version \
                    or version in self._rejected:
                return
            payload = models.get(version)
            if payload is None:
                return
            if not _VERSION.fullmatch(str(version)):
                raise ModelError(f"registry names an invalid model version {version!r}")
            files = decode_payload(payload)
            path = store_on_disk(self._settings, version, files)
            try:
                model = self._load(path)
                if model.version != version:
                    raise ModelError(f"registry entry {version} holds model {model.version}")
            except ModelError:
                shutil.rmtree(path, ignore_errors=True)
                raise
            self._model = model
            self._published = True
            set_current_on_disk(self._settings, version)
            log.info("hot reload: now scoring with model %s", version)
        except ModelError as exc:
            self._rejected.add(str(version))
            log.error("model %s rejected, keeping %s: %s", version,
                      self._model.version if self._model else "-", exc)
            if self._telemetry is not None:
                self._telemetry.model_rejected(str(exc))
        except Exception as exc:
            log.warning("model registry check failed: %s", exc)

    def _restore_registry(self, models: Any) -> None:
        """The registry is empty (a restarted Hazelcast cluster): put back the published
        model this worker scores with, if it is one."""
        model = self._model
        if model is None or not self._published or model.path is None:
            return
        files = {name: (model.path / name).read_bytes() for name in (MODEL_FILE, METADATA_FILE)}
        models.put_if_absent(model.version, encode_payload(files))
        if models.put_if_absent(CURRENT_KEY, model.version) is None:
            log.warning("model registry was empty (Hazelcast restarted?): published model "
                        "%s put back", model.version)


def encode_payload(files: dict[str, bytes]) -> str:
    return orjson.dumps({name: base64.b64encode(data).decode()
                         for name, data in files.items()}).decode()


def decode_payload(payload: str) -> dict[str, bytes]:
    """The files of a registry entry; ModelError if the entry is not one."""
    try:
        files = {str(k): base64.b64decode(v, validate=True)
                 for k, v in orjson.loads(payload).items()}
    except Exception as exc:
        raise ModelError(f"registry entry is not a model ({type(exc).__name__})") from exc
    if set(files) != {MODEL_FILE, METADATA_FILE}:
        raise ModelError(f"registry entry holds {sorted(files)}, not a model directory")
    return files
