"""The compiled TreeSHAP (scoring/treeshap.py) gives LightGBM's `pred_contrib` values."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pytest

from scoring.model import load_model
from scoring.treeshap import TreeShap, UnsupportedModel, flatten


def _rows(booster: lgb.Booster, n: int, seed: int) -> np.ndarray:
    """Random rows plus the edge cases: NaN, zero, +-1e-36 and values exactly at split
    thresholds."""
    rng = np.random.default_rng(seed)
    features = booster.num_feature()
    x = rng.normal(0, 50, size=(n, features))
    x[rng.random(x.shape) < 0.15] = np.nan
    x[rng.random(x.shape) < 0.05] = 0.0
    x[rng.random(x.shape) < 0.02] = 1e-36
    model = booster.dump_model()
    thresholds: list[tuple[int, float]] = []

    def walk(node: dict) -> None:
        if "split_index" in node:
            thresholds.append((node["split_feature"], node["threshold"]))
            walk(node["left_child"])
            walk(node["right_child"])

    for tree in model["tree_info"]:
        walk(tree["tree_structure"])
    for i in range(n):
        for feature, threshold in (thresholds[j] for j in
                                   rng.integers(0, len(thresholds), size=3)):
            x[i, feature] = threshold
    return x


def _flow_rows(model, n: int, seed: int) -> np.ndarray:
    """`_rows` as the flow's feature matrix (every FEATURE_NAMES column)."""
    from features.vector import FEATURE_NAMES

    x = np.zeros((n, len(FEATURE_NAMES)))
    x[:, [FEATURE_NAMES.index(name) for name in model.feature_names]] = _rows(model.booster, n,
                                                                              seed)
    return x


@pytest.mark.parametrize("table_slots", [0, 4, 64])  # none, some, all leaves precomputed
def test_equals_lightgbm_on_the_trained_model(trained_model, table_slots: int) -> None:
    model = load_model(trained_model, compiled=False)
    explainer = TreeShap(model.booster, max_table_slots=table_slots, max_table_bytes=1 << 30)
    x = _rows(model.booster, 300, seed=1)
    expected = model.booster.predict(x, pred_contrib=True, num_threads=1)
    got = explainer.contributions(x)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-10)
    # contributions plus the expected value sum to the raw score
    np.testing.assert_allclose(got.sum(axis=1), model.booster.predict(x, raw_score=True),
                               rtol=0, atol=1e-10)
    assert explainer.contributions(x[:0]).shape == (0, x.shape[1] + 1)


def test_every_loaded_model_explains_with_it(trained_model) -> None:
    """Compiled scoring or not (a live flow starts with LightGBM, a replay compiles first):
    the same explainer, so both write the same explanations."""
    fast = load_model(trained_model, compiled=True)
    plain = load_model(trained_model, compiled=False)
    assert fast._explainer is not None and plain._explainer is not None
    x = _flow_rows(plain, 50, seed=2)
    assert fast.top_contributions(x) == plain.top_contributions(x)
    reference = plain.contributions_lightgbm(x)[:, :-1]
    for row, top in zip(reference, plain.top_contributions(x), strict=True):
        names = [plain.feature_names[j] for j in np.argsort(-row)[:3]]
        assert [name for name, _ in top] == names
        np.testing.assert_allclose([v for _, v in top], np.sort(row)[::-1][:3], atol=1e-10)


def test_a_model_it_cannot_explain_is_explained_by_lightgbm(trained_model, monkeypatch,
                                                           caplog) -> None:
    import scoring.treeshap

    def unsupported(_booster):
        raise UnsupportedModel("only numerical splits")

    monkeypatch.setattr(scoring.treeshap, "TreeShap", unsupported)
    model = load_model(trained_model, compiled=False)
    assert model._explainer is None
    assert "explaining with LightGBM" in caplog.text
    x = _flow_rows(model, 5, seed=3)
    np.testing.assert_array_equal(model.contributions(x), model.contributions_lightgbm(x))


def test_other_model_kinds_are_left_to_lightgbm() -> None:
    with pytest.raises(UnsupportedModel):
        flatten({"num_tree_per_iteration": 3, "max_feature_idx": 1, "tree_info": []})
    categorical = {"num_tree_per_iteration": 1, "max_feature_idx": 0, "tree_info": [
        {"tree_structure": {"split_index": 0, "split_feature": 0, "threshold": "1||2",
                            "decision_type": "==", "internal_count": 2,
                            "left_child": {"leaf_index": 0, "leaf_value": 1.0, "leaf_count": 1},
                            "right_child": {"leaf_index": 1, "leaf_value": 2.0,
                                            "leaf_count": 1}}}]}
    with pytest.raises(UnsupportedModel):
        flatten(categorical)
