"""A trained model as the dataflow uses it: LightGBM booster, feature list, threshold.

A model directory holds `model.txt` (LightGBM text format) and `metadata.json`
(version, ordered feature names, decision threshold and the rule that chose it, training data
hash and period, validation metrics).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
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
    version: str
    feature_names: tuple[str, ...]
    threshold: float
    booster: lgb.Booster
    metadata: dict[str, Any] = field(default_factory=dict)
    kind: str = "lightgbm"
    _compiled: Any = None
    _explainer: Any = None  # scoring.treeshap.TreeShap when available

    def predict(self, x: np.ndarray) -> np.ndarray:
        if len(x) == 0:
            return np.zeros(0)
        if self._compiled is not None:
            return np.asarray(self._compiled.predict(x, n_jobs=1), dtype=np.float64)
        return np.asarray(self.booster.predict(x, num_threads=1), dtype=np.float64)

    def contributions(self, x: np.ndarray) -> np.ndarray:
        """SHAP-style contributions (log-odds) per feature; last column is the bias.
        LightGBM's `pred_contrib`, computed by the compiled TreeSHAP when available (same
        values, see scoring/treeshap.py)."""
        if self._explainer is not None:
            return np.asarray(self._explainer.contributions(x))
        return np.asarray(self.booster.predict(x, pred_contrib=True, num_threads=1))

    def top_contributions(self, x: np.ndarray, k: int = 3) -> list[list[tuple[str, float]]]:
        if len(x) == 0:
            return []
        contrib = self.contributions(x)[:, :-1]
        order = np.argsort(-contrib, axis=1)[:, :k]
        names = self.feature_names
        return [[(names[j], float(row[j])) for j in idx] for row, idx in zip(contrib, order,
                                                                             strict=True)]


def model_version(model_dir: Path) -> str:
    """Content hash of the model file: the same model always has the same version."""
    return hashlib.sha256((model_dir / MODEL_FILE).read_bytes()).hexdigest()[:12]


def read_metadata(model_dir: Path) -> dict[str, Any]:
    path = model_dir / METADATA_FILE
    if not path.exists():
        raise ModelError(f"{model_dir} is not a model directory: {METADATA_FILE} is missing")
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ModelError(f"{path} is not valid JSON: {exc}") from exc
    return data


def load_model(model_dir: Path, compiled: bool = True,
               cache_dir: Path | None = None) -> LoadedModel:
    """Load and check a model directory; optionally use a compiled model (see
    :mod:`scoring.compiled`), falling back to LightGBM."""
    model_dir = Path(model_dir)
    metadata = read_metadata(model_dir)
    model_file = model_dir / MODEL_FILE
    if not model_file.exists():
        raise ModelError(f"{model_dir} has no {MODEL_FILE}")
    names = tuple(metadata.get("feature_names", ()))
    unknown = [n for n in names if n not in FEATURE_NAMES]
    if unknown:
        raise ModelError(f"model needs features the flow does not compute: {unknown}")
    if names != FEATURE_NAMES:
        raise ModelError("model's feature list differs from the flow's feature vector; "
                         "retrain it with this version of `fraud train`")
    try:
        booster = lgb.Booster(model_file=str(model_file))
    except lgb.basic.LightGBMError as exc:
        raise ModelError(f"{model_file} is not a LightGBM model: {exc}") from exc
    if booster.num_feature() != len(names):
        raise ModelError(f"model has {booster.num_feature()} inputs, metadata lists {len(names)}")
    threshold = float(metadata.get("threshold", 0.5))
    version = str(metadata.get("version") or model_version(model_dir))
    model = LoadedModel(version, names, threshold, booster, metadata)
    if compiled:
        try:
            from scoring.compiled import compile_model

            model._compiled = compile_model(model_file, cache_dir)
            model.kind = "lleaves"
        except Exception as exc:
            log.warning("compiled model unavailable (%s); scoring with LightGBM", exc)
        try:
            from scoring.treeshap import TreeShap

            model._explainer = TreeShap(booster)
        except Exception as exc:
            log.warning("compiled explanations unavailable (%s); explaining with LightGBM",
                        exc)
    log.info("model %s loaded (%s, threshold %.4f)", version, model.kind, threshold)
    return model
