"""State keys route each Kafka partition's state to the worker that reads the partition
(streaming/routing.py), checked against bytewax's own routing with several workers."""

from __future__ import annotations

import threading
from typing import Any

import bytewax.operators as op
import pytest
from bytewax.dataflow import Dataflow
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from bytewax.testing import TestingSink, cluster_main

from streaming.routing import partition_rank, rust_default_hash, state_key, worker_of_key


class _OneItem(StatefulSourcePartition[tuple[int, int], None]):
    """Emits (partition, id of the thread that read it) once."""

    def __init__(self, partition: int) -> None:
        self._partition = partition
        self._done = False

    def next_batch(self) -> list[tuple[int, int]]:
        if self._done:
            raise StopIteration()
        self._done = True
        return [(self._partition, threading.get_ident())]

    def snapshot(self) -> None:
        return None


class _Partitions(FixedPartitionedSource[tuple[int, int], None]):
    """Named like bytewax's Kafka source partitions: "{partition}-{topic}"."""

    def __init__(self, partitions: int) -> None:
        self._partitions = partitions

    def list_parts(self) -> list[str]:
        return [f"{p}-transactions" for p in range(self._partitions)]

    def build_part(self, step_id: str, for_part: str, resume_state: None) -> _OneItem:
        return _OneItem(int(for_part.split("-")[0]))


def _route(partitions: int, workers: int, key: Any) -> list[tuple[str, tuple[int, int, int]]]:
    """(key, (partition, reading thread, state thread)) of every partition."""
    out: list[Any] = []
    flow = Dataflow("routing")
    read = op.input("in", flow, _Partitions(partitions))
    keyed = op.map("key", read, lambda item: (key(item[0]), item))

    def remember(state: None, item: tuple[int, int]) -> tuple[None, tuple[int, int, int]]:
        return None, (item[0], item[1], threading.get_ident())

    op.output("out", op.stateful_map("state", keyed, remember), TestingSink(out))
    cluster_main(flow, [], 0, worker_count_per_proc=workers)
    return out


@pytest.mark.parametrize(("partitions", "workers"), [(10, 2), (10, 3), (10, 4), (12, 5)])
def test_state_stays_on_the_worker_that_reads_the_partition(partitions: int,
                                                            workers: int) -> None:
    routed = _route(partitions, workers, lambda p: state_key(p, partitions))
    assert len(routed) == partitions
    assert [(p, reader) for _, (p, reader, _) in routed] == [
        (p, owner) for _, (p, _, owner) in routed]  # no item changed worker
    assert len({reader for _, (_, reader, _) in routed}) == workers  # and all of them work


def test_plain_partition_numbers_would_cross_workers_and_the_hash_is_bytewax_s() -> None:
    workers = 3
    routed = _route(10, workers, str)
    assert sum(reader != owner for _, (_, reader, owner) in routed) > 0
    # keys that rust_default_hash puts on the same worker share a thread, and only those
    predicted: dict[int, set[int]] = {}
    for key, (_, _, owner) in routed:
        predicted.setdefault(owner, set()).add(worker_of_key(key, workers))
    assert all(len(w) == 1 for w in predicted.values())
    assert len(set().union(*predicted.values())) == len(predicted)


def test_keys_are_stable_readable_and_independent_of_the_worker_count() -> None:
    keys = [state_key(p, 10) for p in range(10)]
    assert len(set(keys)) == 10
    assert all(k == str(p) or k.startswith(f"{p}.") for p, k in enumerate(keys))
    assert keys == [state_key(p, 10) for p in range(10)]
    for workers in range(1, 11):
        assert [worker_of_key(k, workers) for k in keys] == [p % workers for p in range(10)]
    assert [partition_rank(p, 12) for p in (0, 1, 10, 11, 2, 9)] == [0, 1, 2, 3, 4, 11]
    assert rust_default_hash("") != rust_default_hash("0")
