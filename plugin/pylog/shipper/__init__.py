"""Shipping container logs from the local store to Kafka.

Modules, one job each:

``errors``         the error hierarchy
``schema``         the record value (schema v1) and headers
``assemble``       stored records -> whole lines (chunks joined, multiline merged)
``routing``        brokers, topic and key of a container, and their precedence
``producer``       settings; the asyncio loop thread; one producer per cluster
``batching``       per-partition batches shared by all containers: works around two
                   aiokafka behaviours, named there and pinned by contract tests
``compression``    LZ4 at the fast level for aiokafka's batches (pinned likewise)
``producer_stats`` a producer's counters for ``/metrics``
``position``       the acknowledged position on the host mount
``backoff``        the wait between retries (capped, doubling, with jitter)
``backlog``        when a stopped container's unshippable backlog is given up
``shipper``        one container's shipping thread
``manager``        what the service calls: attach, resume backlogs, shutdown
"""

from .errors import (
    DeliveryError,
    PositionError,
    ProducerUnavailable,
    RoutingError,
    ShipperError,
)
from .manager import SHIPPING_RESERVE, ShipperManager
from .routing import Route

__all__ = [
    "SHIPPING_RESERVE",
    "DeliveryError",
    "PositionError",
    "ProducerUnavailable",
    "Route",
    "RoutingError",
    "ShipperError",
    "ShipperManager",
]
