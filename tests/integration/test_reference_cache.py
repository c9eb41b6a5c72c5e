"""The dataflow's reference cache (enrich/lookups.py) on the real Hazelcast: one read per
unknown key until it is added, and change events keep cached records correct."""

from __future__ import annotations

import time

import orjson
import pytest

pytestmark = pytest.mark.integration


def _wait_for(condition, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def test_unknown_then_added_then_removed(isolated):
    from hazelcast.core import HazelcastJsonValue

    from enrich.connection import connect
    from enrich.lookups import HazelcastReference
    from features.reference import Customer

    record = {"cc_num": "4999000011112222", "first": "Ann", "last": "Lee", "gender": "F",
              "street": "1 Main St", "city": "Reno", "state": "NV", "zip": "89501",
              "lat": 39.5, "long": -119.8, "city_pop": 250_000, "job": "Nurse",
              "dob": "1980-02-29"}
    client = connect(isolated, near_cache=False)
    writer = connect(isolated, near_cache=False)
    try:
        reference = HazelcastReference(isolated, client)
        customers = writer.get_map(isolated.map_customers).blocking()
        card = record["cc_num"]
        assert reference.customers([card]) == {}
        assert reference.customers([card]) == {}  # cached as absent: no second read
        assert reference.near_cache_stats()["customers"] == (1, 1)

        customers.put(card, HazelcastJsonValue(orjson.dumps(record).decode()))
        assert _wait_for(lambda: card in reference.customers([card]))
        assert reference.customers([card])[card] == Customer.from_record(record)

        customers.remove(card)
        assert _wait_for(lambda: reference.customers([card]) == {})
    finally:
        writer.shutdown()
        client.shutdown()
