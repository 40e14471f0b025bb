"""What pylog relies on in aiokafka, checked against aiokafka's own objects (no broker).

pylog sends its own produce requests on aiokafka's client (``shipper/pipeline.py``)
and compresses its batches with aiokafka's encoders at its own LZ4 level
(``shipper/compression.py``); both name the aiokafka version they were written
against. These tests fail when aiokafka changes what they rely on: then re-read
those docstrings and re-check. What needs a broker (several requests in flight on
one connection, the broker's sequence rules) is in
``tests/kafka/test_pipeline_contract.py``.
"""

from __future__ import annotations

import importlib.metadata
import inspect

from aiokafka import codec
from aiokafka import errors as kafka_errors
from aiokafka.client import AIOKafkaClient
from aiokafka.cluster import ClusterMetadata
from aiokafka.protocol.metadata import MetadataResponse_v0
from aiokafka.protocol.produce import ProduceRequest
from aiokafka.protocol.transaction import InitProducerIdRequest
from aiokafka.structs import TopicPartition
from pylog.shipper import compression, pipeline

RECHECK = (
    "re-check pylog/shipper/pipeline.py and compression.py against this aiokafka, "
    "then update their docstrings and AIOKAFKA_VERSIONS"
)


def test_installed_aiokafka_is_a_version_the_modules_name() -> None:
    installed = importlib.metadata.version("aiokafka")
    assert installed in pipeline.AIOKAFKA_VERSIONS, f"aiokafka {installed} is installed: {RECHECK}"
    for module in (pipeline, compression):
        assert f"aiokafka **{installed}**" in (module.__doc__ or ""), (
            f"{module.__name__}'s docstring does not name aiokafka {installed}: {RECHECK}"
        )


def test_lz4_encode_takes_a_level_and_defaults_to_high_compression() -> None:
    """recordbatch passes ``level``; 9 (HC) by default is why compression.py exists."""
    params = inspect.signature(codec.lz4_encode).parameters
    assert list(params)[:2] == ["payload", "level"], f"{params}: {RECHECK}"
    assert params["level"].default == 9, f"aiokafka's LZ4 level is no longer 9: {RECHECK}"


def test_the_requests_pylog_builds_take_what_it_gives() -> None:
    produce = ProduceRequest(
        transactional_id=None, required_acks=-1, timeout=1000, topics=[("t", [(0, b"x")])]
    )
    assert produce.required_acks == -1, RECHECK
    InitProducerIdRequest(transactional_id=None, transaction_timeout_ms=60_000)
    assert list(inspect.signature(AIOKafkaClient.send).parameters)[:3] == [
        "self",
        "node_id",
        "request",
    ], RECHECK


def test_the_errors_pipeline_tells_apart() -> None:
    """The codes the broker answers with, and which aiokafka calls retriable: the
    pipeline sends again what is retriable, and an out-of-order answer only behind
    a failure (it is not retriable by itself)."""
    assert kafka_errors.for_code(45) is kafka_errors.OutOfOrderSequenceNumber, RECHECK
    assert kafka_errors.for_code(46) is kafka_errors.DuplicateSequenceNumber, RECHECK
    assert kafka_errors.for_code(0) is kafka_errors.NoError, RECHECK
    assert not kafka_errors.OutOfOrderSequenceNumber.retriable, RECHECK
    assert not kafka_errors.UnknownProducerId.retriable, RECHECK
    for retriable in (
        kafka_errors.KafkaConnectionError,
        kafka_errors.NodeNotReadyError,
        kafka_errors.RequestTimedOutError,
        kafka_errors.NotLeaderForPartitionError,
        kafka_errors.LeaderNotAvailableError,
        kafka_errors.NotEnoughReplicasError,
    ):
        assert retriable.retriable, f"{retriable.__name__}: {RECHECK}"
    assert kafka_errors.NotLeaderForPartitionError.invalid_metadata, RECHECK
    for rejected in pipeline.REJECTED:
        assert not rejected.retriable, f"{rejected.__name__}: {RECHECK}"


def test_the_leader_of_a_partition_comes_from_the_cluster_metadata() -> None:
    cluster = ClusterMetadata()
    assert cluster.leader_for_partition(TopicPartition("t", 0)) is None, RECHECK
    cluster.update_metadata(
        MetadataResponse_v0(
            brokers=[(3, "localhost", 9092)], topics=[(0, "t", [(0, 0, 3, [3], [3])])]
        )
    )
    assert cluster.leader_for_partition(TopicPartition("t", 0)) == 3, RECHECK
