"""The shipper's one error hierarchy.

Nothing here ever reaches a container: shipping problems are logged, counted
and retried. Messages never carry secrets (SASL passwords, key material).
"""

from __future__ import annotations


class ShipperError(Exception):
    """Base of every error raised by :mod:`pylog.shipper`."""


class RoutingError(ShipperError):
    """A container's topic or key could not be worked out (bad ``pylog.topic`` label)."""


class ProducerUnavailable(ShipperError):
    """The cluster's producer could not be started (broker unreachable, auth refused)."""


class DeliveryError(ShipperError):
    """Records were not acknowledged by the broker; the shipper rewinds and retries."""

    def __init__(self, message: str, generation: int = -1) -> None:
        super().__init__(message)
        self.generation = generation
        """The producer generation that failed (-1: none was involved)."""


class PositionError(ShipperError):
    """The acknowledged position could not be stored on the host mount."""
