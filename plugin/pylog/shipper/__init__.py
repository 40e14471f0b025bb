"""Shipping container logs from the local store to Kafka.

Who owns what. In the main process (the gunicorn worker that stores the logs):

* :class:`~.manager.ShipperManager` owns the table of shipped logs (the
  ``LogFile`` of each, the acknowledged and read generations last reported,
  the lines rotation deleted unread) and the last Report of each process; the
  rotation hooks (``hold``, ``on_discard``, ``on_change``) run on FIFO reader
  threads and only read or mark that table.
* :class:`~.supervisor.Supervisor` owns the shipping processes and their
  sockets: one feeder thread writes every message, one receiver thread per
  process reads them. Nothing else touches a socket, so a FIFO reader never
  waits on a shipping process.

In a shipping process (:mod:`.worker`):

* Processes: one or more shipping processes, each started by the main process
  with one end of a socket pair; containers are spread over them. A process
  reads the store's files and writes only ``kafka.position`` files; it never
  writes a log.
* Threads: none besides the main thread. Everything runs on one asyncio loop;
  the only blocking calls on it are reads of log files (a batch of about 1 MiB
  at a time) and the atomic writes of positions.
* Tasks, and the state each owns:
  - the message reader: nothing of its own; it applies Ship and Grew to the
    worker's registry and the views, and starts the stop;
  - one :class:`~.task.ShippingTask` per container ID (never two): its
    :class:`~.view.LogView` (state set by messages only), its read position,
    its acknowledged position and ``kafka.position``, its sends in flight
    (a :class:`~.producer.SendGroup`), its counters;
  - one :class:`~.producer.ClusterProducer` per cluster configuration, shared
    by the tasks shipping there, with its own tasks (a pump per partition, a
    watchdog) and counters; each pump owns its partition's batches, those
    being filled and those sent, through its
    :class:`~.pipeline.PartitionSender` (the producer ID's sequence numbers of
    the partition, its requests in flight, each a task of its own, and the
    batches to send again); the worker's registry holds the producers;
  - the reporter: sends the counters every ``REPORT_INTERVAL`` and trims idle
    memory.
* The :class:`~.worker.Worker` owns the registries (tasks, producers, lines
  abandoned per container); only the loop touches them, so nothing is locked.

Modules, one job each:

``errors``         the error hierarchy
``schema``         the record value (schema v1) and headers
``assemble``       stored records -> whole lines (chunks joined, multiline merged)
``routing``        brokers, topic and key of a container, and their precedence
``producer``       producer settings; one producer per cluster configuration
``batching``       per-partition batches shared by all containers, and their pumps
``recordbatch``    one Kafka record batch, built by pylog
``pipeline``       a partition's batches as pylog's own produce requests on aiokafka's
                   client: with idempotence numbered by pylog, up to five in flight,
                   in order (aiokafka's sender keeps one per broker)
``compression``    the LZ4 level of pylog's batches (and why)
``producer_stats`` a producer's counters for ``/metrics``
``position``       the acknowledged position on the host mount
``backoff``        the wait between retries (capped, doubling, with jitter)
``backlog``        when a stopped container's unshippable backlog is given up
``ipc``            the messages between the main process and a shipping process
``view``           a shipping process's view of one container's log
``task``           one container's shipping, as an asyncio task
``report``         the counters a shipping process reports
``worker``         the shipping process
``supervisor``     (main process) starts, feeds, restarts and stops the shipping processes
``manager``        (main process) what the service calls: attach, resume backlogs, the
                   rotation hooks, the processes' reports, shutdown
"""

from .errors import (
    DeliveryError,
    PositionError,
    ProducerUnavailable,
    RoutingError,
    ShipperError,
)
from .routing import Route

__all__ = [
    "DeliveryError",
    "PositionError",
    "ProducerUnavailable",
    "Route",
    "RoutingError",
    "ShipperError",
]
