"""Reference-data lookups per batch: Hazelcast (in-process cache of parsed records, kept
correct by change events; `get_all` for misses) or in memory (replay)."""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from enrich.wire import string_key_data
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


_ABSENT = object()


class ReferenceCache:
    """Parsed reference records of one map, kept in the process and looked up per batch.

    What a near cache does, one level up: the cached value is the parsed object (no
    deserialization, no JSON parsing, no client call on a hit), kept correct by an entry
    listener (any change, removal, eviction or clear of a key drops it; the next batch that
    needs it reads it again) and dropped whole when the client loses its connection (events
    may have been missed). Keys the map does not have are cached too (as absent): an unknown
    card costs one read, not one per transaction, until it is added.

    Misses of a batch are read with ONE ``get_all``. A value read while a change event
    arrived is used for that batch but not cached (it may predate the change).
    At ``max_size`` entries the oldest quarter is dropped (insertion order).
    """

    def __init__(self, proxy: Any, parse: Callable[[str], Any], max_size: int) -> None:
        self._proxy = proxy
        self._parse = parse
        self._max = max(1, max_size)
        self._items: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._changes = 0
        self.hits = 0
        self.misses = 0
        proxy.add_entry_listener(
            include_value=False, added_func=self._changed, removed_func=self._changed,
            updated_func=self._changed, evicted_func=self._changed,
            expired_func=self._changed, merged_func=self._changed,
            loaded_func=self._changed, evict_all_func=self._all_changed,
            clear_all_func=self._all_changed).result()

    def _changed(self, event: Any) -> None:
        with self._lock:
            self._changes += 1
            self._items.pop(event.key, None)

    def _all_changed(self, _event: Any = None) -> None:
        with self._lock:
            self._changes += 1
            self._items.clear()

    def invalidate_all(self) -> None:
        self._all_changed()

    def preload(self) -> int:
        """Read the whole map into the cache when it fits (at most ``max_size`` records), so
        that the first transaction of every card is served from memory too (Hazelcast's Java
        near cache has a preloader for the same reason). Returns how many were cached; 0 when
        the map is larger, or when it changed meanwhile (lookups then read as usual)."""
        size = self._proxy.size().result()
        if size == 0 or size > self._max:
            return 0
        changes = self._changes
        entries = self._proxy.entry_set().result()
        parsed = {key: self._parse(value.to_string()) for key, value in entries
                  if value is not None}
        with self._lock:
            if self._changes != changes:
                return 0
            for key, value in parsed.items():
                self._items.setdefault(key, value)
        return len(parsed)

    def lookup(self, keys: Iterable[str]) -> dict[str, Any]:
        items = self._items
        found: dict[str, Any] = {}
        missing: list[str] = []
        looked_up = 0
        for key in keys:
            looked_up += 1
            value = items.get(key, _ABSENT)
            if value is _ABSENT:
                missing.append(key)
            elif value is not None:
                found[key] = value
        self.misses += len(missing)
        self.hits += looked_up - len(missing)
        if not missing:
            return found
        changes = self._changes
        values = self._proxy.get_all(string_key_data(missing)).result()
        parsed = {key: self._parse(v.to_string()) for key, v in values.items() if v is not None}
        found.update(parsed)
        with self._lock:
            if self._changes == changes:
                if len(items) + len(missing) > self._max:
                    self._shrink(len(missing))
                for key in missing:
                    items[key] = parsed.get(key)
        return found

    def _shrink(self, room: int) -> None:
        items = self._items
        drop = max(len(items) // 4, len(items) + room - self._max)
        for key in list(itertools.islice(items, drop)):
            del items[key]

    def __len__(self) -> int:
        return len(self._items)


def _customer_from_json(text: str) -> Customer:
    import orjson

    return Customer.from_record(orjson.loads(text))


def _merchant_from_json(text: str) -> Merchant:
    import orjson

    return Merchant.from_record(orjson.loads(text))


class HazelcastReference:
    """`customers` / `merchants` from Hazelcast through a :class:`ReferenceCache` each: a
    batch costs one dict lookup per distinct key, plus one ``get_all`` for the keys not
    cached yet. ``preload``: start with the whole maps cached when they fit."""

    def __init__(self, settings: Settings, client: Any, preload: bool = False,
                 retry: bool = True, on_retry: Callable[[], None] | None = None) -> None:
        self._retry = retry
        self._on_retry = on_retry
        self._customers_map = client.get_map(settings.map_customers)
        self._merchants_map = client.get_map(settings.map_merchants)
        self._customers = ReferenceCache(self._customers_map, _customer_from_json,
                                         settings.near_cache_max_size)
        self._merchants = ReferenceCache(self._merchants_map, _merchant_from_json,
                                         settings.near_cache_max_size)
        client.lifecycle_service.add_listener(self._lifecycle)
        if preload:
            began = time.monotonic()
            counts = (self._customers.preload(), self._merchants.preload())
            log.info("reference cache preloaded with %d customers and %d merchants in %.1f s",
                     *counts, time.monotonic() - began)

    def _lifecycle(self, state: str) -> None:
        # Change events may have been lost while disconnected: read everything again.
        if state in ("DISCONNECTED", "CONNECTED"):
            self._customers.invalidate_all()
            self._merchants.invalidate_all()

    def _held(self, cache: ReferenceCache, keys: Iterable[str], what: str) -> dict[str, Any]:
        """The lookup, retried with backoff while the cluster is unreachable: the flow holds
        (a lookup that raised would crash the worker)."""
        wanted = list(keys)
        if not self._retry:
            return cache.lookup(wanted)
        from enrich.retry import retry_with_backoff

        found, _failures = retry_with_backoff(lambda: cache.lookup(wanted),
                                              f"looking up {len(wanted)} {what}",
                                              self._on_retry)
        return found

    def customers(self, cards: Iterable[str]) -> dict[str, Customer]:
        return self._held(self._customers, cards, "customers")

    def merchants(self, names: Iterable[str]) -> dict[str, Merchant]:
        return self._held(self._merchants, names, "merchants")

    def near_cache_stats(self) -> dict[str, tuple[int, int]]:
        """(hits, misses) so far per map: lookups served in process / read from the cluster."""
        return {"customers": (self._customers.hits, self._customers.misses),
                "merchants": (self._merchants.hits, self._merchants.misses)}

    def map_sizes(self) -> dict[str, int]:
        return {"customers": self._customers_map.size().result(),
                "merchants": self._merchants_map.size().result()}
