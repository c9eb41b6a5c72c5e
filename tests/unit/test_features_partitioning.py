"""Kafka's murmur2 and default partitioner, against published vectors."""

from __future__ import annotations

import pytest

from features.partitioning import kafka_partition, murmur2

# Apache Kafka, clients/src/test/java/org/apache/kafka/common/utils/UtilsTest.java (testMurmur2)
KAFKA_UTILS_TEST = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}

# librdkafka, src/rdmurmur2.c unit test (unsigned there; here as Java's signed int)
LIBRDKAFKA = {
    b"kafka": 0xD067CF64,
    b"giberish123456789": 0x8F552B0C,
    b"1234": 0x9FC97B14,
    b"234": 0xE7C009CA,
    b"34": 0x873930DA,
    b"4": 0x5A4B5CA1,
    b"PreAmbleWillBeRemoved,ThePrePartThatIs": 0x78424F1C,
    b"reAmbleWillBeRemoved,ThePrePartThatIs": 0x4A62B377,
    b"eAmbleWillBeRemoved,ThePrePartThatIs": 0xE0E4E09E,
    b"AmbleWillBeRemoved,ThePrePartThatIs": 0x62B8B43F,
    b"": 0x106E08D9,
}


@pytest.mark.parametrize(("data", "expected"), sorted(KAFKA_UTILS_TEST.items()))
def test_murmur2_matches_kafka_utils_test(data: bytes, expected: int) -> None:
    assert murmur2(data) == expected


@pytest.mark.parametrize(("data", "unsigned"), sorted(LIBRDKAFKA.items()))
def test_murmur2_matches_librdkafka(data: bytes, unsigned: int) -> None:
    signed = unsigned - (1 << 32) if unsigned >= 1 << 31 else unsigned
    assert murmur2(data) == signed


def test_murmur2_is_a_signed_32_bit_int() -> None:
    for i in range(2000):
        h = murmur2(str(i).encode())
        assert -(1 << 31) <= h < (1 << 31)


def test_kafka_partition_masks_the_sign_bit() -> None:
    # murmur2("foobar") is negative: the partitioner clears the sign bit, it does not abs().
    assert kafka_partition(b"foobar", 50) == ((-790332482) & 0x7FFFFFFF) % 50 == 16
    assert kafka_partition(b"abc", 10) == 479470107 % 10


def test_kafka_partition_is_in_range_and_spreads_card_numbers() -> None:
    counts = [0] * 10
    for i in range(10_000):
        p = kafka_partition(str(4_000_000_000_000_000 + 7919 * i).encode(), 10)
        assert 0 <= p < 10
        counts[p] += 1
    assert min(counts) > 800


def test_kafka_partition_rejects_no_partitions() -> None:
    with pytest.raises(ValueError):
        kafka_partition(b"x", 0)
