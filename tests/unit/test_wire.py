"""enrich/wire.py builds the very bytes the Hazelcast client would send, and the same hashes."""

from __future__ import annotations

import orjson
from hazelcast.config import Config
from hazelcast.core import HazelcastJsonValue
from hazelcast.hash import murmur_hash3_x86_32
from hazelcast.serialization.data import Data
from hazelcast.serialization.service import SerializationServiceV1
from hypothesis import given, settings
from hypothesis import strategies as st

from enrich.wire import KeyData, json_value_data, murmur3_hashes, string_key_data

SERIALIZATION = SerializationServiceV1(Config())


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=60), max_size=40))
def test_string_keys_are_serialized_as_the_client_does(keys: list[str]) -> None:
    ours = string_key_data(keys)
    assert len(ours) == len(keys)
    for key, data in zip(keys, ours, strict=True):
        reference = SERIALIZATION.to_data(key)
        assert data.buffer == bytes(reference.buffer)
        assert data.hash_code() == reference.hash_code()
        assert data.get_partition_hash() == reference.get_partition_hash()
        assert hash(data) == hash(reference)
        assert data == reference


@settings(max_examples=100, deadline=None)
@given(st.lists(st.binary(max_size=45), max_size=30))
def test_batch_murmur3_equals_the_clients_murmur3(payloads: list[bytes]) -> None:
    # the client hashes the serialized bytes after the 8-byte header
    expected = [murmur_hash3_x86_32(b"\0" * 8 + p) for p in payloads]
    assert murmur3_hashes(payloads) == expected


def test_typical_transaction_numbers_of_one_length() -> None:
    keys = [f"{i:032x}" for i in range(0, 10**6, 997)]
    assert [d.hash_code() for d in string_key_data(keys)] == \
        [SERIALIZATION.to_data(k).hash_code() for k in keys]


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.text(max_size=12), st.one_of(
    st.text(max_size=30), st.integers(-10**12, 10**12), st.floats(allow_nan=False),
    st.booleans(), st.none()), max_size=12))
def test_json_values_are_serialized_as_the_client_does(record: dict) -> None:
    text = orjson.dumps(record)
    ours = json_value_data(text)
    reference = SERIALIZATION.to_data(HazelcastJsonValue(text.decode()))
    assert ours.buffer == bytes(reference.buffer)
    assert SERIALIZATION.to_object(ours).to_string() == text.decode()


def test_key_data_is_a_data_the_client_passes_through() -> None:
    [key] = string_key_data(["4000111122223333"])
    assert isinstance(key, Data) and isinstance(key, KeyData)
    assert SERIALIZATION.to_data(key) is key
    assert SERIALIZATION.to_object(key) == "4000111122223333"
