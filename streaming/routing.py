"""State keys that keep each Kafka partition's work on the worker that reads the partition.

The per-card feature state is keyed by Kafka partition (`trailing_features`), and bytewax
0.21.1 decides where a keyed item goes by two rules that do not know about each other:

- the partitions of a source are assigned round-robin over the workers, in the sorted order
  of the partitions' names (every worker lists every Kafka partition, so partition name of
  rank r goes to worker r mod W);
- a stateful step sends key k to worker ``hash(k) mod W``, where ``hash`` is Rust's
  ``DefaultHasher`` (SipHash-1-3 with zero keys over the key's UTF-8 bytes and 0xff).

With the plain partition numbers "0".."9" as keys, 2 workers held 8 and 2 partitions' state:
most batches were pickled over to the other process and one process did 80 % of the work
(`fraud bench`: 2 processes no faster than 1). So the key of partition p is the first of
"p", "p.1", "p.2", ... whose hash is congruent to p's rank modulo 2520, the least common
multiple of 1..10: for every worker count up to 10 it lands on the worker that reads p. The
key does not depend on the worker count, so a restart with another count still finds (and
bytewax moves) its state. With more than 10 workers keys are still correct, only not local.
"""

from __future__ import annotations

from functools import cache

__all__ = ["LOCAL_UP_TO_WORKERS", "partition_rank", "rust_default_hash", "state_key",
           "worker_of_key"]

LOCAL_UP_TO_WORKERS = 10
_MODULUS = 2520  # lcm(1..LOCAL_UP_TO_WORKERS)
_MASK = (1 << 64) - 1


def _rotl(x: int, b: int) -> int:
    return ((x << b) | (x >> (64 - b))) & _MASK


def _sip_round(v0: int, v1: int, v2: int, v3: int) -> tuple[int, int, int, int]:
    v0 = (v0 + v1) & _MASK
    v1 = _rotl(v1, 13) ^ v0
    v0 = _rotl(v0, 32)
    v2 = (v2 + v3) & _MASK
    v3 = _rotl(v3, 16) ^ v2
    v0 = (v0 + v3) & _MASK
    v3 = _rotl(v3, 21) ^ v0
    v2 = (v2 + v1) & _MASK
    v1 = _rotl(v1, 17) ^ v2
    v2 = _rotl(v2, 32)
    return v0, v1, v2, v3


def _siphash13(data: bytes, k0: int = 0, k1: int = 0) -> int:
    """SipHash-1-3 (one compression round, three finalization rounds), 64-bit output."""
    v0 = k0 ^ 0x736F6D6570736575
    v1 = k1 ^ 0x646F72616E646F6D
    v2 = k0 ^ 0x6C7967656E657261
    v3 = k1 ^ 0x7465646279746573
    length = len(data)
    whole = length - length % 8
    for i in range(0, whole, 8):
        m = int.from_bytes(data[i:i + 8], "little")
        v3 ^= m
        v0, v1, v2, v3 = _sip_round(v0, v1, v2, v3)
        v0 ^= m
    m = int.from_bytes(data[whole:], "little") | ((length & 0xFF) << 56)
    v3 ^= m
    v0, v1, v2, v3 = _sip_round(v0, v1, v2, v3)
    v0 ^= m
    v2 ^= 0xFF
    for _ in range(3):
        v0, v1, v2, v3 = _sip_round(v0, v1, v2, v3)
    return v0 ^ v1 ^ v2 ^ v3


def rust_default_hash(key: str) -> int:
    """What ``std::hash::DefaultHasher`` gives for a Rust ``String`` (``write_str``: the
    bytes, then 0xff)."""
    return _siphash13(key.encode() + b"\xff")


def worker_of_key(key: str, workers: int) -> int:
    """The worker a bytewax 0.21.1 stateful step sends ``key`` to."""
    return rust_default_hash(key) % workers


def partition_rank(partition: int, partitions: int) -> int:
    """Position of the partition's source name ("{p}-{topic}") among all the topic's
    partitions in sorted order (what bytewax assigns round-robin): 10 sorts before 2."""
    names = sorted(f"{p}-" for p in range(partitions))
    return names.index(f"{partition}-")


@cache
def state_key(partition: int, partitions: int) -> str:
    """The feature-state key of a Kafka partition (see the module docstring)."""
    target = partition_rank(partition, partitions) % _MODULUS
    candidate = str(partition)
    suffix = 0
    while rust_default_hash(candidate) % _MODULUS != target:
        suffix += 1
        candidate = f"{partition}.{suffix}"
    return candidate
