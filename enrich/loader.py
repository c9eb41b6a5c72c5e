"""`fraud load`: customers and merchants from a CSV into the Hazelcast reference maps.

Idempotent (keyed by card number / merchant name). Unusable rows are reported with their line
number and reason and do not stop the load.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from features.reference import Customer, Merchant, age_group, age_years, reference_from_row
from service.settings import Settings

log = logging.getLogger(__name__)

PUT_BATCH = 1000
MAX_REPORTED_REJECTS = 20


@dataclass
class ReferenceData:
    customers: dict[str, Customer] = field(default_factory=dict)
    merchants: dict[str, Merchant] = field(default_factory=dict)
    rows: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)
    rejected_count: int = 0


@dataclass
class LoadReport:
    customers: int
    merchants: int
    rows: int
    rejected_count: int
    rejected: list[tuple[int, str]]
    elapsed: float

    def summary(self) -> str:
        line = (f"loaded {self.customers} customers and {self.merchants} merchants from "
                f"{self.rows} rows in {self.elapsed:.1f} s; rejected {self.rejected_count} rows")
        for number, reason in self.rejected[:MAX_REPORTED_REJECTS]:
            line += f"\n  line {number}: {reason}"
        if self.rejected_count > MAX_REPORTED_REJECTS:
            line += f"\n  ... and {self.rejected_count - MAX_REPORTED_REJECTS} more"
        return line


def collect_reference_data(rows: Iterable[tuple[int, dict[str, str]]],
                           progress: bool = False) -> ReferenceData:
    """Customers (first row of each card) and merchants (first row of each name)."""
    data = ReferenceData()
    began = time.monotonic()
    for number, row in rows:
        data.rows += 1
        try:
            customer, merchant = reference_from_row(row)
        except ValueError as exc:
            data.rejected_count += 1
            if len(data.rejected) < 1000:
                data.rejected.append((number, str(exc)))
            continue
        data.customers.setdefault(customer.cc_num, customer)
        data.merchants.setdefault(merchant.name, merchant)
        if progress and data.rows % 200_000 == 0:
            rate = data.rows / max(time.monotonic() - began, 1e-9)
            sys.stderr.write(f"load: {data.rows:,} rows read ({rate:,.0f} rows/s)\r")
    if progress and data.rows >= 200_000:
        sys.stderr.write("\n")
    return data


def customer_value(customer: Customer, now: int | None = None) -> dict[str, Any]:
    """The customers map value: the customer's record plus the age group as of the load."""
    record = customer.to_record()
    when = now if now is not None else int(datetime.now(UTC).timestamp())
    try:
        record["age_group"] = age_group(age_years(customer.dob, when))
    except ValueError:
        record["age_group"] = None
    return record


def _batches(items: Iterable[tuple[str, Any]], size: int) -> Iterator[dict[str, Any]]:
    batch: dict[str, Any] = {}
    for key, value in items:
        batch[key] = value
        if len(batch) >= size:
            yield batch
            batch = {}
    if batch:
        yield batch


def write_reference_data(settings: Settings, data: ReferenceData) -> None:
    from hazelcast.core import HazelcastJsonValue

    from enrich.connection import connect
    from enrich.sql_mappings import create_all_mappings

    client = connect(settings, near_cache=False)
    try:
        create_all_mappings(settings, client)
        customers: Any = client.get_map(settings.map_customers).blocking()
        merchants: Any = client.get_map(settings.map_merchants).blocking()
        now = int(time.time())
        for batch in _batches(
            ((k, HazelcastJsonValue(orjson.dumps(customer_value(c, now)).decode()))
             for k, c in data.customers.items()), PUT_BATCH):
            customers.put_all(batch)
        for batch in _batches(
            ((k, HazelcastJsonValue(orjson.dumps(m.to_record()).decode()))
             for k, m in data.merchants.items()), PUT_BATCH):
            merchants.put_all(batch)
    finally:
        client.shutdown()


def load_reference_data(settings: Settings, path: Path, progress: bool = True) -> LoadReport:
    from datagen.csv_rows import iter_rows

    began = time.monotonic()
    data = collect_reference_data(iter_rows(path, strict=False), progress=progress)
    write_reference_data(settings, data)
    return LoadReport(len(data.customers), len(data.merchants), data.rows,
                      data.rejected_count, data.rejected, time.monotonic() - began)
