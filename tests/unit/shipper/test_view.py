"""A shipping process's view of a log (shipper/view.py) and the async follower over it."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from pylog.config import RotationPolicy
from pylog.shipper.view import LogView
from pylog.store import reader
from pylog.store.logfile import LogFile, LogState
from pylog.store.reader import Position, follow_from_async

from ..store.conftest import make_records

REC = len(make_records(1)[0])


async def never() -> bool:
    return False


async def always() -> bool:
    return True


async def follow(view: LogView) -> list[bytes]:
    got: list[bytes] = []
    batches = follow_from_async(view, Position(0, 0), always, view.next_change, interval=0)
    async for batch, _ in batches:
        got += batch
    return got


def test_the_state_is_the_one_told_not_the_disks(tmp_path: Path) -> None:
    lf = LogFile(tmp_path / "c", RotationPolicy(-1, 1, False))
    recs = make_records(3)
    lf.append(b"".join(recs))

    async def run() -> list[bytes]:
        view = LogView(lf.directory, lf.policy, LogState(0, len(recs[0]), False))
        assert view.state() == LogState(0, len(recs[0]), False)
        view.update(LogState(0, len(recs[0]) + len(recs[1]), True))
        return await follow(view)

    # Only what the messages said is there is read, though the file holds more.
    assert asyncio.run(run()) == recs[:2]
    lf.close()


def test_a_state_never_goes_back(tmp_path: Path) -> None:
    async def run() -> None:
        view = LogView(tmp_path, RotationPolicy(-1, 1, False), LogState(2, 100, False))
        view.update(LogState(2, 50, True))  # an older Ship after a newer Grew
        assert view.state() == LogState(2, 100, True)
        view.update(LogState(2, 100, False))  # its logging started again
        assert view.state() == LogState(2, 100, False)
        view.update(LogState(3, 10, False))
        assert view.state() == LogState(3, 10, False)

    asyncio.run(run())


def test_next_change_wakes_at_an_update_or_wake_and_times_out_otherwise(tmp_path: Path) -> None:
    async def run() -> None:
        view = LogView(tmp_path, RotationPolicy(-1, 1, False), LogState(0, 0, False))
        seen = view.state()
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        assert await view.next_change(seen, 0.2) == seen
        assert time.monotonic() - started >= 0.19
        loop.call_later(0.05, view.update, LogState(0, 10, False))
        started = time.monotonic()
        assert await view.next_change(seen, 5) == LogState(0, 10, False)
        assert time.monotonic() - started < 1
        seen = view.state()
        loop.call_later(0.05, view.wake)
        started = time.monotonic()
        assert await view.next_change(seen, 5) == seen
        assert time.monotonic() - started < 1
        # Already past what was seen: no wait at all.
        assert await view.next_change(LogState(0, 0, False), 5) == seen

    asyncio.run(run())


def test_a_view_behind_a_rotation_reads_the_rotated_file_not_the_new_current(
    tmp_path: Path,
) -> None:
    """The main process rotated before its message said so: json.log is already the next
    generation's file. The view opens generation 0's rotated file instead."""
    policy = RotationPolicy(10 * REC, 5, False)
    lf = LogFile(tmp_path / "c", policy)
    recs = make_records(15)
    lf.append(b"".join(recs[:4]))
    told = lf.state()
    lf.append(b"".join(recs[4:15]))  # rotates once
    assert lf.state().generation == 1

    async def run() -> list[bytes]:
        view = LogView(lf.directory, policy, told)
        seg = view.open_generation(0)
        assert seg is not None and seg.generation == 0 and seg.size == told.size
        seg.close()
        got: list[bytes] = []

        async def tell() -> None:
            await asyncio.sleep(0.05)
            view.update(lf.state())
            lf.close()
            view.update(lf.state())

        telling = asyncio.ensure_future(tell())
        async for batch, _ in follow_from_async(
            view, Position(0, 0), always, view.next_change, interval=0
        ):
            got += batch
        await telling
        return got

    assert asyncio.run(run()) == recs


def test_a_view_whose_generation_is_gone_waits_for_the_next_message(tmp_path: Path) -> None:
    """max-file 1: the rotated file was deleted. Nothing is opened as the old
    generation; the follower waits, and goes on once it is told the new state."""
    policy = RotationPolicy(10 * REC, 1, False)
    lf = LogFile(tmp_path / "c", policy)
    recs = make_records(15)
    lf.append(b"".join(recs[:4]))
    told = lf.state()
    lf.append(b"".join(recs[4:15]))  # generation 0 rotated away and deleted
    current = (lf.directory / "json.log").read_bytes()
    kept = [r for r in recs if r in current]
    assert lf.state().generation == 1 and 0 < len(kept) < 11

    async def run() -> list[tuple[list[bytes], Position]]:
        view = LogView(lf.directory, policy, told)
        assert view.open_generation(0) is None
        got: list[tuple[list[bytes], Position]] = []

        async def tell() -> None:
            await asyncio.sleep(0.3)
            lf.close()
            view.update(lf.state())

        telling = asyncio.ensure_future(tell())
        async for item in follow_from_async(
            view, Position(0, 0), always, view.next_change, interval=0
        ):
            got.append(item)
        await telling
        return got

    got = asyncio.run(run())
    assert [r for b, _ in got for r in b] == kept
    assert got[-1][1] == Position(1, len(current))


def test_the_async_follower_ends_on_a_closed_log_and_asks_its_consumer_when_idle(
    tmp_path: Path,
) -> None:
    lf = LogFile(tmp_path / "c", RotationPolicy(-1, 1, False))
    recs = make_records(3)
    lf.append(b"".join(recs))

    async def run() -> tuple[list[bytes], float]:
        view = LogView(lf.directory, lf.policy, lf.state())
        asked: list[float] = []

        async def alive() -> bool:
            asked.append(time.monotonic())
            return False

        got: list[bytes] = []
        started = time.monotonic()
        async for batch, _ in follow_from_async(view, Position(0, 0), alive, view.next_change):
            got += batch
        assert len(asked) == 1
        return got, asked[0] - started

    got, waited = asyncio.run(run())
    assert got == recs
    # Asked after a quiet FOLLOW_CHECK_INTERVAL, not at once.
    assert waited >= reader.FOLLOW_CHECK_INTERVAL * 0.9
    lf.close()


@pytest.mark.timeout(30)
def test_the_async_follower_holds_a_slow_log_back_like_follow_from(tmp_path: Path) -> None:
    """The same decisions as follow_from (the timing tests in test_reader.py pin them):
    a second small write within FOLLOW_FROM_INTERVAL of a read waits for the interval."""
    lf = LogFile(tmp_path / "c", RotationPolicy(-1, 1, False))
    recs = make_records(2)
    lf.append(recs[0])

    async def run() -> list[tuple[list[bytes], float]]:
        view = LogView(lf.directory, lf.policy, lf.state())
        got: list[tuple[list[bytes], float]] = []
        started = time.monotonic()

        async def write() -> None:
            await asyncio.sleep(0.1)
            lf.append(recs[1])
            view.update(lf.state())
            await asyncio.sleep(0.8)
            lf.close()
            view.update(lf.state())

        writing = asyncio.ensure_future(write())
        async for batch, _ in follow_from_async(view, Position(0, 0), never, view.next_change):
            got.append((batch, time.monotonic() - started))
        await writing
        return got

    got = asyncio.run(run())
    assert [b for b, _ in got] == [recs[:1], recs[1:]]
    assert got[0][1] < 0.1
    assert 0.45 <= got[1][1] < 0.8
