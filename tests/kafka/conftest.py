from .kafka_fixtures import (  # noqa: F401 - fixtures and hooks for pytest
    kafka_broker,
    kafka_broker_factory,
    pytest_collection_modifyitems,
    pytest_configure,
)
