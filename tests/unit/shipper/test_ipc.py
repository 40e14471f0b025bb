"""The messages between the main process and a shipping process (shipper/ipc.py)."""

from __future__ import annotations

import asyncio
import pickle
import socket
import threading

import pytest
from pylog.config import KafkaSettings, Settings
from pylog.shipper import ipc
from pylog.snapshot import ProducerCounters, ShipperCounters
from pylog.store.logfile import LogState
from pylog.store.reader import Position
from pylog.tag import TagTemplate


def _settings() -> Settings:
    return Settings.from_env(
        {
            "KAFKA_BROKERS": "127.0.0.1:9092",
            "KAFKA_TOPIC": 'logs-{{index .ContainerLabels "app"}}',
            "KAFKA_SASL_MECHANISM": "PLAIN",
            "KAFKA_SASL_USERNAME": "u",
            "KAFKA_SASL_PASSWORD": " secret ",
        }
    )


def _messages() -> list[ipc.ToWorker | ipc.FromWorker]:
    state = LogState(3, 1200, False)
    return [
        ipc.Hello(_settings(), 0, 2),
        ipc.Ship("c" * 64, {"ContainerID": "c" * 64, "Config": {}}, state, Position(3, 1200)),
        ipc.Grew({"c" * 64: LogState(4, 0, True)}),
        ipc.Stop(123.5),
        ipc.Progress("c" * 64, Position(2, 10), 3),
        ipc.Finished("c" * 64),
        ipc.Report(
            [ShipperCounters("c", "", "t", ("b:1",), 1, 0, 0, 0, 5, 0)],
            [
                ProducerCounters(
                    "b:1", 1, 2, 3, 3, {"X": 1}, 0, [("0.1", 2), ("+Inf", 3)], 0.5, 0, 0
                )
            ],
            [],
        ),
    ]


def test_every_message_round_trips_through_a_socket() -> None:
    a, b = socket.socketpair()
    with a, b:
        sent = _messages()

        def send_all() -> None:
            for m in sent:
                a.sendall(ipc.encode(m))

        writer = threading.Thread(target=send_all)
        writer.start()
        got = [ipc.read_message(b) for _ in sent]
        writer.join()
        a.shutdown(socket.SHUT_WR)
        assert ipc.read_message(b) is None
    assert got == sent
    hello = got[0]
    assert isinstance(hello, ipc.Hello)
    # The password and the template survive; a template is rebuilt from its text.
    assert hello.settings.kafka.sasl_password == " secret "
    assert isinstance(hello.settings.kafka.topic, TagTemplate)


def test_the_asyncio_reader_reads_the_same_stream() -> None:
    async def run() -> list[object]:
        a, b = socket.socketpair()
        with a:
            reader, writer = await asyncio.open_unix_connection(sock=b)
            for m in _messages():
                a.sendall(ipc.encode(m))
            a.shutdown(socket.SHUT_WR)
            out: list[object] = []
            while (got := await ipc.read_message_async(reader)) is not None:
                out.append(got)
            writer.close()
            await writer.wait_closed()
            return out

    assert asyncio.run(run()) == _messages()


def test_a_foreign_class_is_refused() -> None:
    class_ref = pickle.dumps(threading.Event)  # any class outside pylog and plain types
    with pytest.raises(ipc.MessageError, match="may not hold threading"):
        ipc.decode(class_ref)


def test_a_huge_announced_length_is_refused_before_reading_it() -> None:
    a, b = socket.socketpair()
    with a, b:
        a.sendall((ipc.MAX_MESSAGE + 1).to_bytes(4, "big"))
        with pytest.raises(ipc.MessageError, match="limit"):
            ipc.read_message(b)


def test_a_stream_cut_inside_a_message_is_an_error_not_an_end() -> None:
    a, b = socket.socketpair()
    with a, b:
        a.sendall(ipc.encode(ipc.Stop(1.0))[:-2])
        a.shutdown(socket.SHUT_WR)
        with pytest.raises(ipc.MessageError, match="inside a message"):
            ipc.read_message(b)


def test_kafka_settings_compare_equal_after_the_trip() -> None:
    s = KafkaSettings(brokers=("h:1",), topic=TagTemplate("{{.Name}}"))
    assert pickle.loads(pickle.dumps(s)) == s
