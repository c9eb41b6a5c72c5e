"""`fraud explain TRANS_NUM`: why did the model score a stored prediction the way it did?

Contributions are LightGBM's `pred_contrib` (SHAP values, in log-odds: positive pushes towards
fraud; they sum with the bias to the raw score). Computing them is ~100x slower than
predicting, so the dataflow computes them only for flagged transactions and stores the top 3
in the prediction (`top_feature_1`, `top_contribution_1`, ...).

For any stored prediction, flagged or not, this command recomputes the whole explanation:

1. the prediction is read from `predictionResult` by its key (the transaction number);
2. the card's trailing features are rebuilt point in time from the card's other predictions
   stored in `predictionResult` in the 30 days before it (event time strictly earlier; they
   carry the event time, amount and category the features need), replayed in event-time
   order through the serving feature code, with the customer and merchant reference data
   from Hazelcast;
3. the model of the version the prediction records is looked up (the packaged model, the
   published versions on disk, the registry in Hazelcast) and scores the rebuilt row;
4. the recomputed probability is compared with the stored one: equal (within 1e-6) means the
   explanation is that of the stored score. It differs when the card's history in the map is
   incomplete (the map is bounded and evicts; another transaction had the same second), or
   when the reference data changed since; the command then says so.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from features.messages import Transaction, mask_card
from features.reference import Customer, Merchant
from features.trailing import DAY, PartitionFeatureState
from features.vector import feature_matrix, feature_row
from scoring.model import MODEL_FILE, LoadedModel, ModelError, load_model, model_version
from service.settings import Settings

TOLERANCE = 1e-6
HISTORY_SECONDS = 30 * DAY


@dataclass
class Contribution:
    feature: str
    value: float
    contribution: float


@dataclass
class Explanation:
    probability: float
    bias: float
    contributions: list[Contribution]
    """Every model feature, largest contribution (towards fraud) first."""

    def top(self, k: int = 3) -> list[Contribution]:
        return self.contributions[:k]


def transaction_of(record: dict[str, Any]) -> Transaction:
    """The transaction a predictionResult record describes."""
    return Transaction(
        trans_num=str(record["transaction_number"]),
        cc_num=str(record["credit_card_number"]),
        unix_time=int(record["timestamp_ms"]) // 1000,
        amt=float(record["amount"]),
        merchant=str(record.get("merchant") or ""),
        category=str(record.get("category") or ""),
        merch_lat=float(record["merchant_lat"]),
        merch_long=float(record["merchant_lon"]),
    )


def explain_transaction(model: LoadedModel, target: Transaction, history: list[Transaction],
                        customer: Customer | None, merchant: Merchant | None) -> Explanation:
    """Rebuild the target's features from the card's earlier transactions (any order: they
    are replayed in event-time order) and explain the model's score of it."""
    state = PartitionFeatureState(allowed_lateness=HISTORY_SECONDS)
    for t in sorted(history, key=lambda h: (h.unix_time, h.trans_num)):
        if t.unix_time < target.unix_time and t.cc_num == target.cc_num:
            state.update(t.cc_num, t.unix_time, t.amt, t.category)
    trailing = state.update(target.cc_num, target.unix_time, target.amt, target.category)
    x = feature_matrix([feature_row(target, trailing, customer, merchant)])
    probability = float(model.predict_lightgbm(x)[0])
    contrib = model.contributions(x)[0]
    values = model.inputs(x)[0]
    items = [Contribution(name, float(values[i]), float(contrib[i]))
             for i, name in enumerate(model.feature_names)]
    items.sort(key=lambda c: -c.contribution)
    return Explanation(probability, float(contrib[-1]), items)


# ---- servers -------------------------------------------------------------------------------


def find_model(settings: Settings, version: str, client: Any = None) -> Path | None:
    """The directory of the model of ``version``: the packaged model, a published version on
    disk, or the registry in Hazelcast (stored on disk on the way); None if unknown."""
    from scoring.registry import PACKAGED_MODEL, decode_payload, store_on_disk

    candidates = [settings.model_dir, PACKAGED_MODEL, settings.models_dir / version]
    for path in candidates:
        if path is not None and (path / MODEL_FILE).exists():
            try:
                if model_version(path) == version:
                    return path
            except (ModelError, OSError, ValueError):
                continue
    if client is not None:
        payload = client.get_map(settings.map_models).blocking().get(version)
        if payload is not None:
            return store_on_disk(settings, version, decode_payload(payload))
    return None


def stored_prediction(client: Any, settings: Settings, trans_num: str) -> dict[str, Any] | None:
    value = client.get_map(settings.map_predictions).blocking().get(trans_num)
    if value is None:
        return None
    text = value.to_string() if hasattr(value, "to_string") else str(value)
    record: dict[str, Any] = json.loads(text)
    return record


def card_history(client: Any, settings: Settings, card: str, until_ms: int
                 ) -> list[Transaction]:
    """The card's stored predictions in the 30 days before ``until_ms`` (event time)."""
    from enrich.sql_mappings import create_all_mappings

    create_all_mappings(settings, client)
    # The bounds are integers written into the query (the client would send a Python int
    # parameter as a 32-bit INTEGER); the card number is a parameter.
    since_ms = int(until_ms) - HISTORY_SECONDS * 1000
    query = (f'SELECT transaction_number, credit_card_number, timestamp_ms, amount, merchant, '
             f'category, merchant_lat, merchant_lon FROM "{settings.map_predictions}" '
             f"WHERE credit_card_number = ? AND timestamp_ms > {since_ms} "
             f"AND timestamp_ms < {int(until_ms)}")
    rows = []
    with client.sql.execute(query, card).result() as result:
        for row in result:
            rows.append(transaction_of({name: row.get_object(name) for name in (
                "transaction_number", "credit_card_number", "timestamp_ms", "amount",
                "merchant", "category", "merchant_lat", "merchant_lon")}))
    return rows


def explain_stored(settings: Settings, trans_num: str) -> dict[str, Any]:
    """The stored prediction and its recomputed explanation (see the module's docstring)."""
    from enrich.connection import connect
    from enrich.lookups import HazelcastReference

    client = connect(settings, near_cache=False)
    try:
        record = stored_prediction(client, settings, trans_num)
        if record is None:
            raise LookupError(f"no stored prediction for transaction {trans_num} in "
                              f"{settings.map_predictions}")
        target = transaction_of(record)
        version = str(record.get("model_version") or "")
        path = find_model(settings, version, client) if version else None
        result: dict[str, Any] = {"record": record, "model_found": path is not None}
        if path is None:
            return result
        model = load_model(path, compiled=False)
        reference = HazelcastReference(settings, client)
        customer = reference.customers([target.cc_num]).get(target.cc_num)
        merchant = reference.merchants([target.merchant]).get(target.merchant)
        history = card_history(client, settings, target.cc_num, int(record["timestamp_ms"]))
        explanation = explain_transaction(model, target, history, customer, merchant)
        result.update(explanation=explanation, history=len(history),
                      reproduced=abs(explanation.probability
                                     - float(record["fraud_probability"])) <= TOLERANCE)
        return result
    finally:
        client.shutdown()


def _stored_top(record: dict[str, Any]) -> list[tuple[str, float]]:
    top = []
    for i in range(1, 4):
        name = record.get(f"top_feature_{i}")
        if name:
            top.append((str(name), float(record[f"top_contribution_{i}"])))
    return top


def _number(value: float) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "missing"
    return f"{value:,.4f}".rstrip("0").rstrip(".") if isinstance(value, float) else str(value)


def render(trans_num: str, result: dict[str, Any], show: int = 10) -> str:
    record = result["record"]
    lines = [
        f"transaction {trans_num}: {record.get('transaction_date')} UTC, amount "
        f"{record.get('amount')}, {record.get('category')} at {record.get('merchant')}, card "
        f"{mask_card(str(record.get('credit_card_number', '')))}",
        f"stored score {float(record['fraud_probability']):.6f} -> "
        f"{'FLAGGED' if record.get('fraud_model_prediction') == 1 else 'not flagged'} "
        f"(model {record.get('model_version')})",
    ]
    stored = _stored_top(record)
    if stored:
        lines.append("top contributions stored when it was scored (log-odds):")
        lines += [f"  {name:40s} {value:+.4f}" for name, value in stored]
    if not result["model_found"]:
        lines.append(f"model {record.get('model_version')} is not available here (not packaged, "
                     "not on disk, not in the registry): cannot recompute")
        return "\n".join(lines)
    explanation: Explanation = result["explanation"]
    if result["reproduced"]:
        verdict = "reproduces the stored score"
    else:
        verdict = ("does NOT reproduce the stored score (the card's history in "
                   "predictionResult is incomplete, or the reference data changed)")
    lines.append(f"recomputed from {result['history']} earlier transactions of the card: score "
                 f"{explanation.probability:.6f}, {verdict}")
    lines.append(f"feature contributions (log-odds, bias {explanation.bias:+.4f}; positive "
                 f"pushes towards fraud):")
    lines.append(f"  {'feature':40s} {'value':>14s} {'contribution':>12s}")
    for c in explanation.contributions[:show]:
        lines.append(f"  {c.feature:40s} {_number(c.value):>14s} {c.contribution:+12.4f}")
    return "\n".join(lines)


def as_json(trans_num: str, result: dict[str, Any]) -> str:
    record = dict(result["record"])
    record["credit_card_number"] = mask_card(str(record.get("credit_card_number", "")))
    out: dict[str, Any] = {"transaction_number": trans_num, "record": record,
                           "stored_top": _stored_top(result["record"]),
                           "model_found": result["model_found"]}
    if result["model_found"]:
        explanation: Explanation = result["explanation"]
        out.update(
            recomputed_probability=explanation.probability,
            reproduced=result["reproduced"],
            history=result["history"],
            bias=explanation.bias,
            contributions=[{"feature": c.feature,
                            "value": None if math.isnan(c.value) else c.value,
                            "contribution": c.contribution} for c in explanation.contributions],
        )
    return json.dumps(out)


def explain_command(settings: Settings, trans_num: str, as_json_output: bool = False) -> int:
    try:
        result = explain_stored(settings, trans_num)
    except LookupError as exc:
        print(f"fraud explain: {exc}", file=sys.stderr)
        return 1
    print(as_json(trans_num, result) if as_json_output else render(trans_num, result))
    return 0 if result["model_found"] else 1

