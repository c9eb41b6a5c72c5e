"""The KRaft cluster id the local broker is formatted with."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator

from stack.kafka_broker import new_cluster_id


def test_an_id_that_would_start_with_a_dash_is_drawn_again() -> None:
    draws: Iterator[bytes] = iter([bytes([0xF8]) + bytes(15), bytes([0x70]) + bytes(15)])

    cluster_id = new_cluster_id(lambda: next(draws))

    assert cluster_id == "cAAAAAAAAAAAAAAAAAAAAA"
    assert base64.urlsafe_b64encode(bytes([0xF8]) + bytes(15)).decode().startswith("-")


def test_ids_are_22_url_safe_characters_of_a_uuid_and_never_start_with_a_dash() -> None:
    for _ in range(2000):
        cluster_id = new_cluster_id()
        assert len(cluster_id) == 22
        assert not cluster_id.startswith("-")
        assert uuid.UUID(bytes=base64.urlsafe_b64decode(cluster_id + "=="))
