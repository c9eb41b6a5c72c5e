"""Reference-data lookups per batch: Hazelcast (near cache, `get_all`) or in memory (replay)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any, Protocol

from features.reference import Customer, Merchant
from service.settings import Settings

log = logging.getLogger(__name__)


class ReferenceLookup(Protocol):
    def customers(self, cards: Iterable[str]) -> dict[str, Customer]: ...

    def merchants(self, names: Iterable[str]) -> dict[str, Merchant]: ...


class InMemoryReference:
    """Reference data held in dicts (replay: taken from the CSV itself)."""

    def __init__(self, customers: dict[str, Customer], merchants: dict[str, Merchant]) -> None:
        self._customers = customers
        self._merchants = merchants

    def customers(self, cards: Iterable[str]) -> dict[str, Customer]:
        return {c: self._customers[c] for c in cards if c in self._customers}

    def merchants(self, names: Iterable[str]) -> dict[str, Merchant]:
        return {n: self._merchants[n] for n in names if n in self._merchants}


class _ParsedCache:
    """Parsed objects by the exact JSON text Hazelcast returned: a changed entry (after a
    reload) has new text and is parsed again; an unchanged one costs a dict lookup."""

    def __init__(self, parse: Any, max_size: int) -> None:
        self._parse = parse
        self._max = max_size
        self._items: dict[str, tuple[str, Any]] = {}

    def get(self, key: str, text: str) -> Any:
        hit = self._items.get(key)
        if hit is not None and hit[0] == text:
            return hit[1]
        value = self._parse(text)
        if len(self._items) >= self._max:
            self._items.clear()
        self._items[key] = (text, value)
        return value


def _customer_from_json(text: str) -> Customer:
    import orjson

    return Customer.from_record(orjson.loads(text))


def _merchant_from_json(text: str) -> Merchant:
    import orjson

    return Merchant.from_record(orjson.loads(text))


class HazelcastReference:
    """`customers` / `merchants` through the client's near cache, looked up per batch.

    The Python client's `get_all` reads its near cache but never fills it; `get` does both.
    So a batch issues one asynchronous `get` per distinct key: hits complete at once from the
    near cache, misses go to the cluster together and fill it.
    """

    def __init__(self, settings: Settings, client: Any) -> None:
        self._customers = client.get_map(settings.map_customers)
        self._merchants = client.get_map(settings.map_merchants)
        self._parsed_customers = _ParsedCache(_customer_from_json, settings.near_cache_max_size)
        self._parsed_merchants = _ParsedCache(_merchant_from_json, settings.near_cache_max_size)

    @staticmethod
    def _lookup(proxy: Any, keys: Iterable[str], parsed: _ParsedCache) -> dict[str, Any]:
        pending = [(key, proxy.get(key)) for key in keys]
        found = {}
        for key, future in pending:
            value = future.result()
            if value is not None:
                found[key] = parsed.get(key, value.to_string())
        return found

    def customers(self, cards: Iterable[str]) -> dict[str, Customer]:
        return self._lookup(self._customers, cards, self._parsed_customers)

    def merchants(self, names: Iterable[str]) -> dict[str, Merchant]:
        return self._lookup(self._merchants, names, self._parsed_merchants)

    def near_cache_stats(self) -> dict[str, tuple[int, int]]:
        """(hits, misses) so far per map, from the client's near caches."""
        stats = {}
        for name, proxy in (("customers", self._customers), ("merchants", self._merchants)):
            cache = getattr(proxy, "_near_cache", None)
            if cache is not None:
                s = cache.get_statistics()
                stats[name] = (int(s.get("hits", 0)), int(s.get("misses", 0)))
        return stats

    def map_sizes(self) -> dict[str, int]:
        return {"customers": self._customers.size().result(),
                "merchants": self._merchants.size().result()}
