"""What a shipping process reports (:class:`~.ipc.Report`): its tasks' and producers' counters.

Plain data (:mod:`pylog.snapshot`) built from the process's own state, on its
loop: the main process renders /metrics and /status from the copy it gets,
adding what only it knows (the lines rotation deleted unread).
"""

from __future__ import annotations

import time

from ..snapshot import ProducerCounters, ShipperCounters
from .position import backlog
from .producer import ClusterProducer
from .task import ShippingTask


def shipper_counters(task: ShippingTask, name: str) -> ShipperCounters:
    st = task.stats
    backlog_bytes, backlog_files = backlog(task.acked, task.view.state())
    return ShipperCounters(
        container_id=task.container_id,
        stored_name=name,
        topic=task.route.topic,
        brokers=tuple(task.route.brokers),
        lines_acked=st.lines_acked,
        lines_rejected=st.lines_rejected,
        lines_lost_rotation=0,  # counted by the main process, which deletes the files
        retries=st.retries,
        backlog_bytes=backlog_bytes,
        backlog_files=backlog_files,
        lines_sent=st.lines_sent,
        log_name=task.log_name,
    )


def producer_counters(producer: ClusterProducer) -> ProducerCounters:
    st = producer.stats
    buckets, total = st.latency.snapshot()
    waiting, age = st.in_flight(time.monotonic())  # the loop's clock
    return ProducerCounters(
        brokers=producer.describe(),
        starts=producer.generation,
        batches_sent=st.batches_sent,
        records_sent=st.records_sent,
        records_acked=st.records_acked,
        errors=dict(st.errors),
        retries=st.retries,
        latency_buckets=buckets,
        latency_sum=total,
        batches_in_flight=waiting,
        oldest_in_flight=age,
    )
