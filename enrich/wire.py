"""Hazelcast's serialized form of string keys and JSON values, built a batch at a time.

The Python client serializes every key and value through generic Python code and computes
each key's partition hash (murmur3 over the serialized bytes) in pure Python: about 15 us
per entry, more than everything else the dataflow does for a transaction. This module builds
the very same bytes (``Data``: partition hash 0, big-endian type id, big-endian byte length,
UTF-8 bytes) directly, and computes the murmur3 hashes of a whole batch with numpy. The
client's ``put_all`` accepts ``Data`` as is, so what reaches the cluster is byte for byte what
``map.put_all({key: HazelcastJsonValue(json)})`` would send; tests compare both.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

import numpy as np
from hazelcast.serialization.data import Data

__all__ = ["KeyData", "json_value_data", "murmur3_hashes", "string_key_data"]

_STRING_TYPE = -11  # hazelcast.serialization.serialization_const.CONSTANT_TYPE_STRING
_JSON_TYPE = -130  # JAVASCRIPT_JSON_SERIALIZATION_TYPE
_STRING_HEADER = struct.pack(">ii", 0, _STRING_TYPE)
_JSON_HEADER = struct.pack(">ii", 0, _JSON_TYPE)
_BE_INT = struct.Struct(">i")

_SEED = np.uint32(0x01000193)
_C1 = np.uint32(0xCC9E2D51)
_C2 = np.uint32(0x1B873593)
_M5 = np.uint32(5)
_N1 = np.uint32(0xE6546B64)
_F1 = np.uint32(0x85EBCA6B)
_F2 = np.uint32(0xC2B2AE35)


class KeyData(Data):
    """A serialized key that carries its murmur3 hash, so neither the client's partition
    lookup nor ``dict`` hashing runs the pure-Python murmur3 again."""

    __slots__ = ("_hash",)

    def __init__(self, buf: bytes, hash_code: int) -> None:
        self.buffer = buf
        self._hash = hash_code

    def hash_code(self) -> int:
        return self._hash

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Data) and self.buffer == other.buffer


def _rotl(x: np.ndarray, r: int) -> np.ndarray:
    return (x << np.uint32(r)) | (x >> np.uint32(32 - r))


def _murmur_same_length(rows: np.ndarray) -> np.ndarray:
    """murmur3_x86_32 (Hazelcast's seed) of each row of a (n, length) uint8 array."""
    n, length = rows.shape
    nblocks = length // 4
    h = np.full(n, _SEED, dtype=np.uint32)
    if nblocks:
        blocks = np.ascontiguousarray(rows[:, : nblocks * 4]).view("<u4")
        for j in range(nblocks):
            k = blocks[:, j] * _C1
            k = _rotl(k, 15) * _C2
            h ^= k
            h = _rotl(h, 13) * _M5 + _N1
    tail = length & 3
    if tail:
        base = nblocks * 4
        k = np.zeros(n, dtype=np.uint32)
        if tail >= 3:
            k ^= rows[:, base + 2].astype(np.uint32) << np.uint32(16)
        if tail >= 2:
            k ^= rows[:, base + 1].astype(np.uint32) << np.uint32(8)
        k ^= rows[:, base].astype(np.uint32)
        k = _rotl(k * _C1, 15) * _C2
        h ^= k
    h ^= np.uint32(length)
    h ^= h >> np.uint32(16)
    h *= _F1
    h ^= h >> np.uint32(13)
    h *= _F2
    h ^= h >> np.uint32(16)
    return h.view(np.int32)


def murmur3_hashes(payloads: Sequence[bytes]) -> list[int]:
    """Hazelcast's partition hash (signed murmur3_x86_32, seed 0x01000193) of each payload
    (the serialized bytes after the 8-byte header), computed per group of equal length."""
    by_length: dict[int, list[int]] = {}
    for i, p in enumerate(payloads):
        by_length.setdefault(len(p), []).append(i)
    out = [0] * len(payloads)
    for length, index in by_length.items():
        if length == 0:
            for i in index:
                out[i] = _empty_hash()
            continue
        if len(index) == len(payloads):
            joined = b"".join(payloads)
        else:
            joined = b"".join([payloads[i] for i in index])
        rows = np.frombuffer(joined, dtype=np.uint8).reshape(len(index), length)
        for i, h in zip(index, _murmur_same_length(rows).tolist(), strict=True):
            out[i] = h
    return out


def _empty_hash() -> int:
    return int(_murmur_same_length(np.zeros((1, 0), dtype=np.uint8))[0])


def string_key_data(keys: Sequence[str]) -> list[KeyData]:
    """Serialized string keys (as ``SerializationService.to_data(str)`` makes them)."""
    pack = _BE_INT.pack
    payloads = [pack(len(raw)) + raw for raw in [key.encode("utf-8") for key in keys]]
    hashes = murmur3_hashes(payloads)
    header = _STRING_HEADER
    return list(map(KeyData, [header + p for p in payloads], hashes))


def json_value_data(text: bytes) -> Data:
    """A serialized ``HazelcastJsonValue`` from UTF-8 JSON bytes (e.g. ``orjson.dumps``)."""
    return Data(_JSON_HEADER + _BE_INT.pack(len(text)) + text)
