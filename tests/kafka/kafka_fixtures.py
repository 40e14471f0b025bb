"""pytest plugin: a real Kafka broker for tests (see broker.py).

tests/kafka/conftest.py re-exports this module. Other test trees can load it
with ``pytest_plugins = ["tests.kafka.kafka_fixtures"]`` in the *root* conftest.

Fixtures:
  kafka_broker          session-scoped, started KafkaBroker (closed at the end).
                        A test that stops it must start() it again in a
                        finally (start() is a no-op when running).
  kafka_broker_factory  function-scoped: make(**KafkaBroker kwargs) -> started
                        broker, closed at test end.

Environment: PYLOG_KAFKA_PARTITIONS (num.partitions of the session broker,
default 1). Tests using these fixtures get the ``kafka`` marker.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kafka.broker import KafkaBroker

KAFKA_FIXTURES = {"kafka_broker", "kafka_broker_factory"}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "kafka: needs a real Kafka broker (Java + jars from Maven Central)"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Tests using the broker fixtures get the marker, so -m "not kafka" skips them.
    for item in items:
        if KAFKA_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.kafka)


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[KafkaBroker]:
    broker = KafkaBroker(num_partitions=int(os.environ.get("PYLOG_KAFKA_PARTITIONS", "1")))
    try:
        broker.start()
        yield broker
    finally:
        broker.close()


@pytest.fixture
def kafka_broker_factory() -> Iterator[Callable[..., KafkaBroker]]:
    made: list[KafkaBroker] = []

    def make(**kwargs: Any) -> KafkaBroker:
        broker = KafkaBroker(**kwargs)
        made.append(broker)
        broker.start()
        return broker

    yield make
    for broker in made:
        broker.close()
