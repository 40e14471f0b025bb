"""ProducerStats: per-batch counting of sends, outcomes, latency and the in-flight gauge."""

import asyncio

import pytest
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    NotLeaderForPartitionError,
    RecordListTooLargeError,
)
from pylog.config import KafkaSettings
from pylog.shipper.errors import ProducerUnavailable
from pylog.shipper.producer_stats import (
    LATENCY_BUCKETS,
    LatencyHistogram,
    ProducerStats,
    error_kind,
)


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (ProducerUnavailable("x"), "unavailable"),
        (MessageSizeTooLargeError(), "rejected"),
        (RecordListTooLargeError(), "rejected"),  # a batch above the topic's segment.bytes
        (KafkaTimeoutError(), "timeout"),
        (TimeoutError(), "timeout"),
        (KafkaConnectionError(), "connection"),
        (NotLeaderForPartitionError(), "broker"),
        (asyncio.CancelledError(), "cancelled"),
        (ValueError(), "other"),
    ],
)
def test_error_kinds(exc: BaseException, kind: str) -> None:
    assert error_kind(exc) == kind


def test_histogram_is_cumulative_and_weighted() -> None:
    h = LatencyHistogram(bounds=(0.1, 1.0))
    h.observe(0.05, 3)
    h.observe(0.1, 1)  # on a bound: counted in that bucket (le)
    h.observe(0.5, 2)
    h.observe(7.0, 1)
    buckets, total = h.snapshot()
    assert buckets == [("0.1", 4), ("1.0", 6), ("+Inf", 7)]
    assert total == pytest.approx(0.15 + 0.1 + 1.0 + 7.0)


def test_watch_counts_each_batch_once_with_its_outcome() -> None:
    stats = ProducerStats()
    seen: list[BaseException | None] = []

    async def run() -> None:
        loop = asyncio.get_running_loop()
        ok, bad, gone = loop.create_future(), loop.create_future(), loop.create_future()
        t0 = loop.time()
        stats.watch(ok, 10, t0 - 0.2, seen.append)
        stats.watch(bad, 5, t0, seen.append)
        stats.watch(gone, 7, t0, seen.append)
        n, oldest = stats.in_flight(t0)
        assert n == 3 and oldest == pytest.approx(0.2)
        ok.set_result(None)
        bad.set_exception(KafkaTimeoutError())
        gone.cancel()
        await asyncio.sleep(0)  # done callbacks run
        await asyncio.sleep(0)

    asyncio.run(run())
    assert (stats.batches_sent, stats.records_sent) == (3, 22)
    assert stats.records_acked == 10
    assert stats.errors["timeout"] == 1 and stats.errors["cancelled"] == 1
    assert sum(stats.errors.values()) == 2
    buckets, total = stats.latency.snapshot()
    assert buckets[-1] == ("+Inf", 10)  # the histogram counts acknowledged records
    assert total >= 10 * 0.2
    assert stats.in_flight(0.0) == (0, 0.0)
    assert len(seen) == 2 and seen[0] is None and isinstance(seen[1], KafkaTimeoutError)


def test_latency_buckets_reach_the_request_timeout() -> None:
    """A batch can be acknowledged up to the request timeout: the last bucket is there."""
    assert LATENCY_BUCKETS[-1] == KafkaSettings().request_timeout_ms / 1000
