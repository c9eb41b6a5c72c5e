"""`fraud train` and `fraud evaluate` on small generated data: the model directory, the time
split, reproducibility, the evaluate output (text and --json), warm-up, and the explanation
of one transaction rebuilt from the card's history."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from datagen.generator import GeneratorConfig, write_csv
from features.frame import compute_features
from scoring.evaluate import JSON_KEYS, evaluate
from scoring.explain import explain_transaction, transaction_of
from scoring.model import METADATA_FILE, MODEL_FILE, load_model
from scoring.train import DEFAULT_FEATURES, TrainConfig, read_transactions, time_split
from scoring.train import train_from_csv as train
from service.cli import main

FAST = TrainConfig(num_leaves=15, max_rounds=60, early_stopping_rounds=20)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("data")
    train_csv, test_csv = root / "train.csv", root / "test.csv"
    write_csv(GeneratorConfig(customers=300, days=30, start="2024-01-01", seed=5), train_csv,
              progress=False)
    write_csv(GeneratorConfig(customers=200, days=20, start="2024-02-01", seed=6), test_csv,
              progress=False)
    return train_csv, test_csv


@pytest.fixture(scope="module")
def model_dir(data, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("model") / "m"
    train(data[0], out, FAST, say=lambda _m: None)
    return out


def test_time_split_validates_on_the_latest_part() -> None:
    t = np.arange(0, 1000)
    valid = time_split(t, 0.2)
    assert valid.sum() == 200 and valid[-200:].all() and not valid[:-200].any()
    with pytest.raises(ValueError):
        time_split(t, 1.0)


def test_the_model_directory(model_dir: Path, data) -> None:
    meta = json.loads((model_dir / METADATA_FILE).read_text())
    assert meta["feature_names"] == list(DEFAULT_FEATURES)
    assert "category_code" not in meta["feature_names"]
    assert 0 < meta["threshold"] < 1
    assert meta["threshold_rule"] == "maximum F1 on the validation period"
    td = meta["training_data"]
    assert td["file"] == "train.csv" and len(td["sha256"]) == 64
    assert td["period_start"].startswith("2024-01-01")
    assert td["period_end"].startswith("2024-01-30")
    v = meta["validation"]
    assert v["period_start"] > td["period_start"] and v["period_end"] == td["period_end"]
    assert set(v["metrics"]) == set(JSON_KEYS)
    assert v["metrics"]["roc_auc"] > 0.9
    assert meta["lightgbm"]["rounds"] <= 60
    model = load_model(model_dir, compiled=False)
    assert model.version == meta["version"]


def test_training_is_reproducible(model_dir: Path, data, tmp_path) -> None:
    again = tmp_path / "again"
    train(data[0], again, FAST, say=lambda _m: None)
    for name in (MODEL_FILE, METADATA_FILE):
        assert (again / name).read_bytes() == (model_dir / name).read_bytes(), name


def test_progress_is_reported(data, tmp_path) -> None:
    messages: list[str] = []
    train(data[0], tmp_path / "m", TrainConfig(num_leaves=7, max_rounds=50,
                                               early_stopping_rounds=60, refit=False),
          say=messages.append)
    text = "\n".join(messages)
    assert "features" in text and "rows" in text
    assert "round 50: validation average_precision" in text
    assert "refitting" not in text


def test_evaluate_on_later_data(model_dir: Path, data) -> None:
    result = evaluate(model_dir, data[1], quiet=True)
    n = len(read_transactions(data[1]))
    assert result["n"] == n
    assert result["roc_auc"] > 0.95 and result["average_precision"] > 0.5
    assert 0 < result["precision"] <= 1 and 0 < result["recall"] <= 1
    # Warm-up: the first days are replayed but not counted.
    warm = evaluate(model_dir, data[1], warmup_days=5, quiet=True)
    t = read_transactions(data[1])["unix_time"]
    assert warm["n"] == int((t >= t.min() + 5 * 86_400).sum()) < n
    with pytest.raises(ValueError, match="warm-up"):
        evaluate(model_dir, data[1], warmup_days=25, quiet=True)


def test_evaluate_cli_json_and_text(model_dir: Path, data, capsys) -> None:
    assert main(["evaluate", "--model", str(model_dir), "--data", str(data[1]), "--json"]) == 0
    out = capsys.readouterr().out.strip()
    assert len(out.splitlines()) == 1
    figures = json.loads(out)
    assert tuple(figures) == JSON_KEYS
    assert isinstance(figures["n"], int) and figures["n"] > 1000
    assert all(isinstance(figures[k], float) for k in JSON_KEYS if k != "n")
    assert main(["evaluate", "--model", str(model_dir), "--data", str(data[1])]) == 0
    text = capsys.readouterr().out
    for label in ("ROC-AUC", "average precision", "precision", "recall", "recall at 1 % FPR",
                  "transactions scored"):
        assert label in text


def test_evaluate_a_file_with_one_class_gives_null_ranking_figures(model_dir, data, tmp_path,
                                                                   capsys) -> None:
    df = pd.read_csv(data[1], dtype=str, keep_default_na=False)
    legit = tmp_path / "legit.csv"
    df[df["is_fraud"] == "0"].head(500).rename(columns={"Unnamed: 0": ""}).to_csv(legit,
                                                                                   index=False)
    assert main(["evaluate", "--model", str(model_dir), "--data", str(legit), "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["roc_auc"] is None and figures["n"] == 500


def test_evaluate_rejects_a_broken_model(data, tmp_path, capsys) -> None:
    assert main(["evaluate", "--model", str(tmp_path), "--data", str(data[1])]) == 2
    assert "not a model directory" in capsys.readouterr().err


def test_explaining_a_transaction_from_the_card_history(model_dir: Path, data) -> None:
    df = read_transactions(data[1])
    x, _ = compute_features(df)
    model = load_model(model_dir, compiled=False)
    p = model.predict(x)
    i = int(np.argmax(p))  # the most suspicious transaction of the file
    row = df.iloc[i]
    card = str(row["cc_num"])
    same_card = df[(df["cc_num"].astype(str) == card) & (df.index < i)]
    record = {"transaction_number": row["trans_num"], "credit_card_number": card,
              "timestamp_ms": int(row["unix_time"]) * 1000, "amount": float(row["amt"]),
              "merchant": row["merchant"], "category": row["category"],
              "merchant_lat": float(row["merch_lat"]), "merchant_lon": float(row["merch_long"])}
    history = [transaction_of({
        "transaction_number": r.trans_num, "credit_card_number": card,
        "timestamp_ms": int(r.unix_time) * 1000, "amount": float(r.amt),
        "merchant": r.merchant, "category": r.category, "merchant_lat": float(r.merch_lat),
        "merchant_lon": float(r.merch_long)}) for r in same_card.itertuples()]
    from features.frame import reference_from_frame

    customers, merchants = reference_from_frame(df)
    explanation = explain_transaction(model, transaction_of(record), history,
                                      customers[card], merchants[row["merchant"]])
    assert explanation.probability == pytest.approx(p[i], abs=1e-12)
    top = model.top_contributions(x[i : i + 1])[0]
    assert [(c.feature, c.contribution) for c in explanation.top(3)] == top
    assert len(explanation.contributions) == len(model.feature_names)
    total = explanation.bias + sum(c.contribution for c in explanation.contributions)
    assert 1 / (1 + np.exp(-total)) == pytest.approx(p[i], rel=1e-9)
