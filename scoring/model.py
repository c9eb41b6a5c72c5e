"""A trained model as the dataflow uses it: LightGBM booster, feature list, threshold.

A model directory holds `model.txt` (LightGBM text format) and `metadata.json`
(version, ordered feature names, decision threshold and the rule that chose it, training data
hash and period, validation metrics).

The flow computes every feature of `features.vector.FEATURE_NAMES`; a model uses an ordered
subset of them (its `feature_names`), picked from the flow's matrix at scoring time. A model
that needs a feature the flow does not compute is rejected at load time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np

from features.vector import FEATURE_NAMES

log = logging.getLogger(__name__)

MODEL_FILE = "model.txt"
METADATA_FILE = "metadata.json"


class ModelError(ValueError):
    """A model directory that cannot be used (missing, broken, or needs other features)."""


@dataclass
class LoadedModel:
    """A model ready to score rows of the flow's feature matrix (`FEATURE_NAMES` columns)."""

    version: str
    feature_names: tuple[str, ...]
    threshold: float
    booster: lgb.Booster
    metadata: dict[str, Any] = field(default_factory=dict)
    kind: str = "lightgbm"
    path: Path | None = None
    _compiled: Any = None
    _columns: np.ndarray | None = None
    _explainer: Any = None  # scoring.treeshap.TreeShap, or None: LightGBM's pred_contrib

    def __post_init__(self) -> None:
        columns = [FEATURE_NAMES.index(name) for name in self.feature_names]
        if columns != list(range(len(FEATURE_NAMES))):
            self._columns = np.asarray(columns, dtype=np.intp)

    def inputs(self, x: np.ndarray) -> np.ndarray:
        """The model's own input columns of a flow feature matrix."""
        if x.ndim != 2 or x.shape[1] != len(FEATURE_NAMES):
            raise ValueError(f"expected a matrix of {len(FEATURE_NAMES)} flow features, "
                             f"got shape {x.shape}")
        return x if self._columns is None else x[:, self._columns]

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Fraud probabilities of the rows of a flow feature matrix."""
        if len(x) == 0:
            return np.zeros(0)
        inputs = self.inputs(x)
        if self._compiled is not None:
            return np.asarray(self._compiled.predict(inputs, n_jobs=1), dtype=np.float64)
        return self.predict_lightgbm(x)

    def predict_lightgbm(self, x: np.ndarray) -> np.ndarray:
        """The same probabilities with LightGBM itself (the reference for compiled scoring)."""
        if len(x) == 0:
            return np.zeros(0)
        return np.asarray(self.booster.predict(self.inputs(x), num_threads=1),
                          dtype=np.float64)

    def contributions(self, x: np.ndarray) -> np.ndarray:
        """SHAP-style contributions (log-odds) per model feature (`feature_names` order);
        the last column is the bias. LightGBM's `pred_contrib` values, computed by the
        compiled TreeSHAP (scoring/treeshap.py, ~3x faster) when the model has one. Still
        ~1,000x slower than `predict`: only flagged transactions are explained."""
        if self._explainer is not None:
            return np.asarray(self._explainer.contributions(self.inputs(x)))
        return self.contributions_lightgbm(x)

    def contributions_lightgbm(self, x: np.ndarray) -> np.ndarray:
        """The same contributions with LightGBM itself (the reference)."""
        return np.asarray(self.booster.predict(self.inputs(x), pred_contrib=True,
                                               num_threads=1))

    def top_contributions(self, x: np.ndarray, k: int = 3) -> list[list[tuple[str, float]]]:
        """The k features pushing each row's score up the most (largest contributions)."""
        if len(x) == 0:
            return []
        contrib = self.contributions(x)[:, :-1]
        order = np.argsort(-contrib, axis=1)[:, :k]
        names = self.feature_names
        return [[(names[j], float(row[j])) for j in idx] for row, idx in zip(contrib, order,
                                                                             strict=True)]


def compute_version(model_text: bytes, feature_names: Sequence[str], threshold: float) -> str:
    """Content hash of what decides a prediction (the trees, the inputs, the threshold): the
    same model always has the same version, and any change gives a new one."""
    digest = hashlib.sha256(model_text)
    digest.update(b"\0" + json.dumps({"feature_names": list(feature_names),
                                       "threshold": float(threshold)},
                                      sort_keys=True).encode())
    return digest.hexdigest()[:12]


def model_version(model_dir: Path) -> str:
    """The version of a model directory (see `compute_version`)."""
    metadata = read_metadata(Path(model_dir))
    return compute_version((Path(model_dir) / MODEL_FILE).read_bytes(),
                           metadata.get("feature_names") or [],
                           float(metadata.get("threshold", 0.0)))


def read_metadata(model_dir: Path) -> dict[str, Any]:
    path = model_dir / METADATA_FILE
    if not path.exists():
        raise ModelError(f"{model_dir} is not a model directory: {METADATA_FILE} is missing")
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ModelError(f"{path} is not valid JSON: {exc}") from exc
    return data


_PROBE = ("import sys, lightgbm; "
          "print(lightgbm.Booster(model_file=sys.argv[1]).num_feature())")


def probe_model_file(model_file: Path, timeout: float = 300.0) -> None:
    """Parse a model file with LightGBM in a child process first: LightGBM's parser aborts
    or crashes the whole process on some malformed files (a tree cut short, for instance),
    which would kill a worker that was scoring fine with its previous model."""
    try:
        done = subprocess.run([sys.executable, "-c", _PROBE, str(model_file)],
                              capture_output=True, text=True, errors="replace",
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise ModelError(f"{model_file}: LightGBM did not load it in {timeout:.0f} s") from exc
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        why = lines[-1][:200] if lines else ""
        if done.returncode < 0:
            why = f"LightGBM crashed parsing it (signal {-done.returncode}) {why}"
        raise ModelError(f"{model_file} is not a LightGBM model: {why}")


def load_model(model_dir: Path, compiled: bool = True, cache_dir: Path | None = None,
               probe: bool = False) -> LoadedModel:
    """Load and check a model directory; optionally use a compiled model (see
    :mod:`scoring.compiled`), falling back to LightGBM. ``probe`` parses the model file in a
    child process first (see `probe_model_file`): for models from elsewhere (publish, hot
    reload), where a malformed file must not take the process down."""
    model_dir = Path(model_dir)
    metadata = read_metadata(model_dir)
    model_file = model_dir / MODEL_FILE
    if not model_file.exists():
        raise ModelError(f"{model_dir} has no {MODEL_FILE}")
    text = model_file.read_bytes()
    if not text.startswith(b"tree\n") or b"\nend of trees\n" not in text:
        raise ModelError(f"{model_file} is not a complete LightGBM text model")
    names = metadata.get("feature_names")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise ModelError(f"{model_dir}/{METADATA_FILE} has no list of feature names")
    names = tuple(names)
    unknown = [n for n in names if n not in FEATURE_NAMES]
    if unknown:
        raise ModelError(f"model needs features the flow does not compute: {unknown}")
    if len(set(names)) != len(names):
        raise ModelError("model's feature list names a feature twice")
    if probe:
        probe_model_file(model_file)
    try:
        booster = lgb.Booster(model_file=str(model_file))
    except (lgb.basic.LightGBMError, ValueError, OSError) as exc:
        raise ModelError(f"{model_file} is not a LightGBM model: {exc}") from exc
    if booster.num_feature() != len(names):
        raise ModelError(f"model has {booster.num_feature()} inputs, metadata lists {len(names)}")
    if tuple(booster.feature_name()) != names:
        raise ModelError("model's inputs are not the features its metadata lists, in order")
    try:
        threshold = float(metadata["threshold"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"{model_dir}/{METADATA_FILE} has no decision threshold") from exc
    if not 0.0 < threshold < 1.0:
        raise ModelError(f"decision threshold {threshold} is not inside (0, 1)")
    version = compute_version(text, names, threshold)
    if metadata.get("version") not in (None, version):
        raise ModelError(f"{MODEL_FILE} and {METADATA_FILE} do not belong together: the "
                         f"metadata says version {metadata['version']}, the content is {version}")
    model = with_explainer(LoadedModel(version, names, threshold, booster, metadata,
                                       path=model_dir))
    if compiled:
        model = with_compiled(model, cache_dir)
    log.info("model %s loaded: scoring with %s (threshold %.4f)", version, model.kind, threshold)
    return model


def with_compiled(model: LoadedModel, cache_dir: Path | None = None) -> LoadedModel:
    """The model scoring with lleaves (compiled once, cached by the model's hash) when that
    can be built and agrees with LightGBM; otherwise the model itself (LightGBM), logged."""
    if model.path is None:
        return model
    try:
        from scoring.compiled import compile_model

        compiled = replace(model, kind="lleaves",
                           _compiled=compile_model(model.path / MODEL_FILE, cache_dir))
        check_compiled(compiled)
        return compiled
    except Exception as exc:
        log.warning("compiled model unavailable (%s: %s); scoring with LightGBM",
                    type(exc).__name__, exc)
        return model


def with_explainer(model: LoadedModel) -> LoadedModel:
    """The model explaining with the compiled TreeSHAP when it supports the model and gives
    LightGBM's values; otherwise with LightGBM's `pred_contrib` (logged). Done on every load,
    compiled scoring or not, so that a live flow and a replay explain alike."""
    try:
        from scoring.treeshap import TreeShap

        explained = replace(model, _explainer=TreeShap(model.booster))
        check_explainer(explained)
        return explained
    except Exception as exc:
        log.warning("compiled explanations unavailable (%s: %s); explaining with LightGBM",
                    type(exc).__name__, exc)
        return model


def _synthetic_rows(rows: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    x = rng.lognormal(mean=2.0, sigma=2.0, size=(rows, len(FEATURE_NAMES)))
    x[rng.random(x.shape) < 0.1] = np.nan
    x[rng.random(x.shape) < 0.1] = 0.0
    return x


def check_explainer(model: LoadedModel, rows: int = 64, tolerance: float = 1e-9) -> None:
    """Compare the explainer with LightGBM's `pred_contrib` on synthetic rows; raise
    ModelError when they differ by more than ``tolerance``."""
    x = _synthetic_rows(rows)
    diff = float(np.max(np.abs(model.contributions(x) - model.contributions_lightgbm(x))))
    if not diff < tolerance:
        raise ModelError(f"compiled explanations differ from LightGBM by {diff:.3g}")


def check_compiled(model: LoadedModel, rows: int = 256, tolerance: float = 1e-9) -> None:
    """Compare the compiled model with LightGBM on synthetic rows (missing values included);
    raise ModelError when they differ by more than ``tolerance``."""
    x = _synthetic_rows(rows)
    diff = float(np.max(np.abs(model.predict(x) - model.predict_lightgbm(x))))
    if not diff < tolerance:
        raise ModelError(f"compiled model differs from LightGBM by {diff:.3g}")
