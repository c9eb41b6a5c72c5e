"""Hazelcast client construction: one place for members, cluster name and near caches."""

from __future__ import annotations

import logging
from typing import Any

import hazelcast

from service.settings import Settings

log = logging.getLogger(__name__)


def near_cache_config(settings: Settings) -> dict[str, dict[str, Any]]:
    """Near caches for the reference maps: reads are local after the first miss, and a
    `fraud load` while the dataflow runs invalidates them (invalidate-on-change)."""
    cache = {
        "invalidate_on_change": True,
        "in_memory_format": hazelcast.config.InMemoryFormat.OBJECT,
        "eviction_policy": hazelcast.config.EvictionPolicy.LRU,
        "eviction_max_size": settings.near_cache_max_size,
    }
    return {settings.map_customers: dict(cache), settings.map_merchants: dict(cache)}


def connect(settings: Settings, timeout: float = 30.0, near_cache: bool = True,
            **extra: Any) -> hazelcast.HazelcastClient:
    """A connected client; raises ``IllegalStateError`` when no member answers in ``timeout``."""
    options: dict[str, Any] = {
        "cluster_name": settings.hazelcast_cluster_name,
        "cluster_members": settings.hazelcast_members_list,
        "cluster_connect_timeout": timeout,
        "statistics_enabled": False,
    }
    if near_cache:
        options["near_caches"] = near_cache_config(settings)
    options.update(extra)
    return hazelcast.HazelcastClient(**options)


def cluster_size(settings: Settings, timeout: float = 5.0) -> int:
    client = connect(settings, timeout=timeout, near_cache=False)
    try:
        return len(client.cluster_service.get_members())
    finally:
        client.shutdown()
