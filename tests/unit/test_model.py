"""The model directory: loading and checks, compiled scoring against LightGBM, versions."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest

from features.frame import compute_features
from features.vector import FEATURE_NAMES
from scoring.model import (
    METADATA_FILE,
    MODEL_FILE,
    ModelError,
    compute_version,
    load_model,
    model_version,
    probe_model_file,
)
from scoring.registry import PACKAGED_MODEL
from scoring.train import read_transactions


@pytest.fixture(scope="module")
def rows(small_csv: Path) -> np.ndarray:
    """Real feature rows (generated data through the serving feature code), plus rows with
    odd values: missing, zero, negative, huge."""
    x, _ = compute_features(read_transactions(small_csv))
    rng = np.random.default_rng(1)
    odd = rng.lognormal(mean=2.0, sigma=3.0, size=(2000, len(FEATURE_NAMES)))
    odd[rng.random(odd.shape) < 0.2] = np.nan
    odd[rng.random(odd.shape) < 0.1] = 0.0
    odd[rng.random(odd.shape) < 0.05] *= -1
    return np.vstack([x, odd])


@pytest.fixture(scope="module")
def compiled_default(tmp_path_factory: pytest.TempPathFactory):
    pytest.importorskip("lleaves")
    cache = tmp_path_factory.mktemp("compiled")
    model = load_model(PACKAGED_MODEL, compiled=True, cache_dir=cache)
    assert model.kind == "lleaves"
    return model, cache


def test_the_shipped_model_loads_and_is_small() -> None:
    model = load_model(PACKAGED_MODEL, compiled=False)
    assert model.kind == "lightgbm"
    assert set(model.feature_names) <= set(FEATURE_NAMES)
    assert 0 < model.threshold < 1
    assert model.version == model_version(PACKAGED_MODEL)
    meta = model.metadata
    assert meta["threshold_rule"] and meta["training_data"]["sha256"]
    assert meta["validation"]["metrics"]["roc_auc"] > 0.95
    assert (PACKAGED_MODEL / MODEL_FILE).stat().st_size < 2_000_000


def test_compiled_scores_equal_lightgbm_on_the_shipped_model(compiled_default, rows) -> None:
    model, _cache = compiled_default
    compiled = model.predict(rows)
    reference = model.predict_lightgbm(rows)
    assert len(compiled) == len(rows) > 10_000
    assert np.max(np.abs(compiled - reference)) < 1e-9
    # One row at a time (the latency path) as well.
    for i in range(0, len(rows), 997):
        assert abs(model.predict(rows[i : i + 1])[0] - reference[i]) < 1e-9


def test_compiled_model_is_cached_by_hash(compiled_default) -> None:
    _model, cache = compiled_default
    objects = list(cache.glob("lleaves-*.o"))
    assert len(objects) == 1
    stamp = objects[0].stat().st_mtime_ns
    again = load_model(PACKAGED_MODEL, compiled=True, cache_dir=cache)
    assert again.kind == "lleaves"
    assert objects[0].stat().st_mtime_ns == stamp  # loaded, not recompiled
    assert list(cache.glob("*.tmp")) == []


def test_fallback_to_lightgbm_when_the_compiled_model_cannot_be_built(tmp_path, rows) -> None:
    pytest.importorskip("lleaves")
    cache = tmp_path / "cache"
    cache.write_text("not a directory")  # the compiler cannot write its cache here
    model = load_model(PACKAGED_MODEL, compiled=True, cache_dir=cache)
    assert model.kind == "lightgbm"
    np.testing.assert_array_equal(model.predict(rows[:100]), model.predict_lightgbm(rows[:100]))


# ---- rejected directories ----------------------------------------------------------------------


def copy_model(tmp_path: Path) -> Path:
    target = tmp_path / "model"
    shutil.copytree(PACKAGED_MODEL, target)
    return target


def edit_metadata(path: Path, **changes) -> None:
    meta = json.loads((path / METADATA_FILE).read_text())
    meta.update(changes)
    for key, value in changes.items():
        if value is None:
            del meta[key]
    (path / METADATA_FILE).write_text(json.dumps(meta))


def test_missing_files_are_rejected(tmp_path) -> None:
    with pytest.raises(ModelError, match="not a model directory"):
        load_model(tmp_path, compiled=False)
    path = copy_model(tmp_path)
    (path / MODEL_FILE).unlink()
    with pytest.raises(ModelError, match=r"has no model\.txt"):
        load_model(path, compiled=False)


def test_broken_files_are_rejected(tmp_path) -> None:
    path = copy_model(tmp_path)
    (path / METADATA_FILE).write_text("{not json")
    with pytest.raises(ModelError, match="not valid JSON"):
        load_model(path, compiled=False)
    path = copy_model(tmp_path / "b")
    (path / MODEL_FILE).write_text("tree\nthis is not a LightGBM model\n")
    with pytest.raises(ModelError):
        load_model(path, compiled=False)
    path = copy_model(tmp_path / "c")
    text = (path / MODEL_FILE).read_bytes()
    (path / MODEL_FILE).write_bytes(text[: len(text) // 2])  # truncated
    with pytest.raises(ModelError, match="not a complete LightGBM text model"):
        load_model(path, compiled=False)


def test_a_model_that_crashes_lightgbm_is_rejected_by_the_probe(tmp_path) -> None:
    # A tree cut short but the file "complete": LightGBM's parser crashes the process
    # (SIGSEGV) on this one, so it must only ever be parsed in a child process.
    path = copy_model(tmp_path)
    text = (path / MODEL_FILE).read_bytes()
    (path / MODEL_FILE).write_bytes(text[: len(text) // 2] + b"\nend of trees\n")
    with pytest.raises(ModelError, match="is not a LightGBM model"):
        probe_model_file(path / MODEL_FILE)
    with pytest.raises(ModelError, match="is not a LightGBM model"):
        load_model(path, compiled=False, probe=True)
    probe_model_file(PACKAGED_MODEL / MODEL_FILE)  # a good one passes


def test_a_model_needing_features_the_flow_does_not_compute_is_rejected(tmp_path) -> None:
    path = copy_model(tmp_path)
    meta = json.loads((path / METADATA_FILE).read_text())
    names = meta["feature_names"]
    names[0] = "amount_spent_last_year"
    edit_metadata(path, feature_names=names, version=None)
    with pytest.raises(ModelError, match=r"does not compute.*amount_spent_last_year"):
        load_model(path, compiled=False)


def test_metadata_and_model_must_agree(tmp_path) -> None:
    path = copy_model(tmp_path)
    names = json.loads((path / METADATA_FILE).read_text())["feature_names"]
    edit_metadata(path, feature_names=list(reversed(names)), version=None)
    with pytest.raises(ModelError, match="not the features its metadata lists"):
        load_model(path, compiled=False)
    path = copy_model(tmp_path / "b")
    edit_metadata(path, feature_names=names[:-1], version=None)
    with pytest.raises(ModelError, match="inputs, metadata lists"):
        load_model(path, compiled=False)
    path = copy_model(tmp_path / "c")
    edit_metadata(path, threshold=0.9)  # the recorded version no longer matches
    with pytest.raises(ModelError, match="do not belong together"):
        load_model(path, compiled=False)
    for bad in (None, 0.0, 1.0, "high"):
        path = copy_model(tmp_path / f"t{bad}")
        edit_metadata(path, threshold=bad, version=None)
        if bad is None:
            meta = json.loads((path / METADATA_FILE).read_text())
            assert "threshold" not in meta
        with pytest.raises(ModelError, match="threshold"):
            load_model(path, compiled=False)


def test_version_is_a_content_hash_of_trees_inputs_and_threshold(tmp_path) -> None:
    text = (PACKAGED_MODEL / MODEL_FILE).read_bytes()
    meta = json.loads((PACKAGED_MODEL / METADATA_FILE).read_text())
    names, threshold = meta["feature_names"], meta["threshold"]
    v = compute_version(text, names, threshold)
    assert v == meta["version"] and len(v) == 12
    assert compute_version(text, names, threshold + 0.01) != v
    assert compute_version(text + b"\n", names, threshold) != v
    assert compute_version(text, list(reversed(names)), threshold) != v
    path = copy_model(tmp_path)
    edit_metadata(path, threshold=0.5, version=None)  # a re-thresholded model: a new version
    assert load_model(path, compiled=False).version == compute_version(text, names, 0.5)


def test_a_model_on_a_subset_of_the_features_scores_the_flow_matrix(tmp_path, rows) -> None:
    names = ["amt", "hour_of_day", "transactions_last_24_hours", "category_share_30_days"]
    cols = [FEATURE_NAMES.index(n) for n in names]
    rng = np.random.default_rng(0)
    y = (rng.random(len(rows)) < 0.1).astype(int)
    booster = lgb.train({"objective": "binary", "num_leaves": 4, "verbose": -1,
                         "num_threads": 1, "deterministic": True, "seed": 1},
                        lgb.Dataset(rows[:, cols], y, feature_name=names), 5)
    path = tmp_path / "subset"
    path.mkdir()
    booster.save_model(str(path / MODEL_FILE))
    (path / METADATA_FILE).write_text(json.dumps({"feature_names": names, "threshold": 0.5}))
    model = load_model(path, compiled=False)
    np.testing.assert_array_equal(model.predict(rows),
                                  booster.predict(rows[:, cols], num_threads=1))
    top = model.top_contributions(rows[:3], k=2)
    assert [len(t) for t in top] == [2, 2, 2]
    assert all(name in names for t in top for name, _ in t)
    with pytest.raises(ValueError, match="flow features"):
        model.predict(rows[:, :5])
