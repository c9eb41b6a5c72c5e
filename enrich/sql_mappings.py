"""SQL mappings (json-flat) of the service's maps, created on start-up and by `stack up`.

The predictionResult columns keep the old system's field names and types so analysts' SQL
runs unchanged; the mappings are recreated whenever the service starts, since a Hazelcast
Community cluster that restarted has lost them.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from service.settings import Settings

if TYPE_CHECKING:
    import hazelcast

log = logging.getLogger(__name__)

PREDICTION_COLUMNS: tuple[tuple[str, str], ...] = (
    ("transaction_number", "VARCHAR"),
    ("transaction_date", "VARCHAR"),
    ("timestamp_ms", "BIGINT"),
    ("amount", "DOUBLE"),
    ("merchant", "VARCHAR"),
    ("category", "VARCHAR"),
    ("merchant_lat", "DOUBLE"),
    ("merchant_lon", "DOUBLE"),
    ("credit_card_number", "VARCHAR"),
    ("customer_name", "VARCHAR"),
    ("customer_city", "VARCHAR"),
    ("customer_state", "VARCHAR"),
    ("customer_age_group", "VARCHAR"),
    ("customer_gender", "VARCHAR"),
    ("customer_lat", "DOUBLE"),
    ("customer_lon", "DOUBLE"),
    ("distance_from_home", "DOUBLE"),
    ("transactions_last_24_hours", "BIGINT"),
    ("transactions_last_week", "BIGINT"),
    ("amount_spent_last_24_hours", "DOUBLE"),
    ("fraud_probability", "DOUBLE"),
    ("fraud_model_prediction", "INT"),
    ("inference_time_ns", "BIGINT"),
    ("model_version", "VARCHAR"),
    ("customer_known", "BOOLEAN"),
    ("merchant_known", "BOOLEAN"),
    ("top_feature_1", "VARCHAR"),
    ("top_contribution_1", "DOUBLE"),
    ("top_feature_2", "VARCHAR"),
    ("top_contribution_2", "DOUBLE"),
    ("top_feature_3", "VARCHAR"),
    ("top_contribution_3", "DOUBLE"),
)

CUSTOMER_COLUMNS: tuple[tuple[str, str], ...] = (
    ("cc_num", "VARCHAR"),
    ("first", "VARCHAR"),
    ("last", "VARCHAR"),
    ("gender", "VARCHAR"),
    ("street", "VARCHAR"),
    ("city", "VARCHAR"),
    ("state", "VARCHAR"),
    ("zip", "VARCHAR"),
    ("lat", "DOUBLE"),
    ("long", "DOUBLE"),
    ("city_pop", "BIGINT"),
    ("job", "VARCHAR"),
    ("dob", "VARCHAR"),
    ("setting", "VARCHAR"),
    ("age_group", "VARCHAR"),
)

MERCHANT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("name", "VARCHAR"),
    ("category", "VARCHAR"),
)


def mapping_ddl(map_name: str, columns: tuple[tuple[str, str], ...]) -> str:
    cols = ",\n    ".join(f'"{name}" {sql_type}' for name, sql_type in columns)
    return (
        f'CREATE OR REPLACE MAPPING "{map_name}" (\n    __key VARCHAR,\n    {cols}\n)\n'
        "TYPE IMap\nOPTIONS ('keyFormat' = 'varchar', 'valueFormat' = 'json-flat')"
    )


def all_mapping_ddl(settings: Settings) -> list[str]:
    return [
        mapping_ddl(settings.map_predictions, PREDICTION_COLUMNS),
        mapping_ddl(settings.map_customers, CUSTOMER_COLUMNS),
        mapping_ddl(settings.map_merchants, MERCHANT_COLUMNS),
    ]


def create_all_mappings(settings: Settings,
                        client: hazelcast.HazelcastClient | None = None) -> None:
    """(Re)create the mappings; idempotent."""
    from enrich.connection import connect

    own = client is None
    hz = client or connect(settings, near_cache=False)
    try:
        for ddl in all_mapping_ddl(settings):
            hz.sql.execute(ddl).result()
    finally:
        if own:
            hz.shutdown()
