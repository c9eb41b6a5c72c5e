"""Kafka's default partitioning of keyed messages, in pure Python.

`murmur2` is a port of the Java client's `org.apache.kafka.common.utils.Utils.murmur2` (32-bit
signed result, seed 0x9747b28c). `kafka_partition` is what the Java producer's default
partitioner and librdkafka's `murmur2_random` partitioner pick for a non-null key, so the
training path can group a CSV by partition exactly as the dataflow sees it.
"""

from __future__ import annotations

__all__ = ["kafka_partition", "murmur2"]

_SEED = 0x9747B28C
_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 of `data`, as a signed 32-bit integer (Java `int` semantics)."""
    length = len(data)
    h = (_SEED ^ length) & _MASK
    tail = length & ~3
    for i in range(0, tail, 4):
        k = data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24)
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    rest = length & 3
    if rest == 3:
        h ^= data[tail + 2] << 16
    if rest >= 2:
        h ^= data[tail + 1] << 8
    if rest >= 1:
        h ^= data[tail]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h - 0x100000000 if h & 0x80000000 else h


def kafka_partition(key: bytes, partitions: int) -> int:
    """The partition a message with non-null `key` goes to: `(murmur2(key) & 0x7fffffff) % n`."""
    if partitions <= 0:
        raise ValueError(f"partitions must be positive, got {partitions}")
    return (murmur2(key) & 0x7FFFFFFF) % partitions
