"""The predictionResult value: the old system's field names plus what is new here."""

from __future__ import annotations

from typing import Any

from features.derived import derive
from features.messages import Transaction
from features.reference import Customer, Merchant
from features.trailing import TrailingFeatures

TOP_K = 3


def prediction_record(txn: Transaction, trailing: TrailingFeatures, customer: Customer | None,
                      merchant: Merchant | None, probability: float, threshold: float,
                      inference_time_ns: int, model_version: str,
                      contributions: list[tuple[str, float]] | None = None) -> dict[str, Any]:
    """One predictionResult value (JSON-ready, json-flat mapping)."""
    derived = derive(txn, customer)
    record: dict[str, Any] = {
        "transaction_number": txn.trans_num,
        "transaction_date": derived.transaction_date,
        "timestamp_ms": derived.timestamp_ms,
        "amount": txn.amt,
        "merchant": txn.merchant,
        "category": txn.category,
        "merchant_lat": txn.merch_lat,
        "merchant_lon": txn.merch_long,
        "credit_card_number": txn.cc_num,
        "customer_name": None,
        "customer_city": None,
        "customer_state": None,
        "customer_age_group": derived.customer_age_group,
        "customer_gender": None,
        "customer_lat": None,
        "customer_lon": None,
        "distance_from_home": derived.distance_from_home,
        "transactions_last_24_hours": trailing.transactions_last_24_hours,
        "transactions_last_week": trailing.transactions_last_week,
        "amount_spent_last_24_hours": trailing.amount_spent_last_24_hours,
        "fraud_probability": float(probability),
        "fraud_model_prediction": 1 if probability >= threshold else 0,
        "inference_time_ns": int(inference_time_ns),
        "model_version": model_version,
        "customer_known": customer is not None,
        "merchant_known": merchant is not None,
    }
    if customer is not None:
        record.update(
            customer_name=customer.name,
            customer_city=customer.city,
            customer_state=customer.state,
            customer_gender=customer.gender,
            customer_lat=customer.lat,
            customer_lon=customer.long,
        )
    if contributions:
        for i, (name, value) in enumerate(contributions[:TOP_K], start=1):
            record[f"top_feature_{i}"] = name
            record[f"top_contribution_{i}"] = round(float(value), 6)
    return record
