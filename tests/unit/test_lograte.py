"""The rate limit on pylog's own log, driven by an injected clock."""

import io
import logging
from collections.abc import Callable, Iterator

import pytest
from pylog.lograte import MAX_KEYS, RateLimitFilter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Rig:
    """A logger writing through a handler with the filter, lines captured."""

    def __init__(self, name: str, **kw: object) -> None:
        self.clock = Clock()
        self.out = io.StringIO()
        self.handler = logging.StreamHandler(self.out)
        self.handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        self.scheduled: list[tuple[float, Callable[[], None]]] = []
        self.filter = RateLimitFilter(
            self.handler.handle,
            clock=self.clock,
            schedule=lambda delay, cb: self.scheduled.append((delay, cb)),
            **kw,  # type: ignore[arg-type]
        )
        self.handler.addFilter(self.filter)
        self.log = logging.getLogger(name)
        self.log.propagate = False
        self.log.setLevel(logging.DEBUG)
        self.log.addHandler(self.handler)

    def lines(self) -> list[str]:
        return self.out.getvalue().splitlines()

    def close(self) -> None:
        self.log.removeHandler(self.handler)


@pytest.fixture
def rig(request: pytest.FixtureRequest) -> Iterator[Rig]:
    r = Rig(f"lograte.{request.node.name}", burst=3, window=60.0)
    yield r
    r.close()


def test_a_burst_then_one_summary_when_the_window_ends(rig: Rig) -> None:
    for i in range(10):
        rig.log.warning("broker %s down (attempt %d)", "b1", i)
        rig.clock.now += 1
    want = [f"WARNING {rig.log.name}: broker b1 down (attempt {i})" for i in range(3)]
    assert rig.lines() == want
    # One timer, for the end of the window (60 s after its first record).
    assert [d for d, _ in rig.scheduled] == [pytest.approx(60 - 3)]
    rig.clock.now = 1000 + 59.9
    rig.scheduled[0][1]()
    assert len(rig.lines()) == 3  # not yet
    rig.clock.now = 1000 + 60
    rig.scheduled[0][1]()
    assert rig.lines()[3:] == [
        f"WARNING {rig.log.name}: 7 similar messages suppressed in 60 s, "
        "the last: broker b1 down (attempt 9)"
    ]
    rig.scheduled[0][1]()  # nothing left to report
    assert len(rig.lines()) == 4


def test_keys_are_logger_and_template_not_the_arguments(rig: Rig) -> None:
    for i in range(5):
        rig.log.info("container %s: logging started", f"c{i}")
        rig.log.info("container %s: logging stopped", f"c{i}")
    other = logging.getLogger(rig.log.name + ".other")
    other.info("container %s: logging started", "x")  # another logger: its own key
    text = rig.out.getvalue()
    assert text.count("logging started") == 4 and text.count("logging stopped") == 3
    assert "suppressed" not in text


def test_a_quiet_key_gets_its_burst_back_and_the_summary_comes_first(rig: Rig) -> None:
    for _ in range(5):
        rig.log.error("unable to connect")
    rig.clock.now += 61  # no timer fired (say it was late): the next record flushes
    rig.log.error("unable to connect")
    assert rig.lines()[3:] == [
        f"ERROR {rig.log.name}: 2 similar messages suppressed in 61 s, the last: unable to connect",
        f"ERROR {rig.log.name}: unable to connect",
    ]


def test_any_record_flushes_ended_windows_of_other_keys(rig: Rig) -> None:
    for _ in range(4):
        rig.log.warning("flap")
    rig.clock.now += 60
    rig.log.info("something else")
    assert rig.lines()[3:] == [
        f"WARNING {rig.log.name}: 1 similar messages suppressed in 60 s, the last: flap",
        f"INFO {rig.log.name}: something else",
    ]


def test_the_summary_has_the_highest_level_suppressed(rig: Rig) -> None:
    for level in (logging.INFO, logging.INFO, logging.INFO, logging.INFO, logging.ERROR):
        rig.log.log(level, "state %s", "x")
    rig.clock.now += 60
    rig.filter.flush()
    assert rig.lines()[-1].startswith(f"ERROR {rig.log.name}: 2 similar messages suppressed")


def test_the_flood_is_bounded(rig: Rig) -> None:
    """200 containers starting and a broker flapping for 10 minutes, one record a second:
    at most burst + 1 lines per template per window."""
    for minute in range(10):
        for second in range(60):
            rig.clock.now = 1000 + minute * 60 + second
            rig.log.warning("Unable connect to node with id %s", 1)
            if minute == 0 and second == 0:
                for i in range(200):
                    rig.log.info("container %s: logging started", i)
        rig.filter.flush()
    rig.clock.now += 60
    rig.filter.flush()
    lines = rig.lines()
    assert sum("Unable connect" in line and "suppressed" not in line for line in lines) == 30
    assert sum("suppressed" in line for line in lines) == 11  # 10 windows + the starts
    assert sum("logging started" in line for line in lines) == 4  # 3 + the summary
    assert any("197 similar messages suppressed" in line for line in lines)


def test_templates_built_at_run_time_share_one_key_beyond_the_cap(rig: Rig) -> None:
    for i in range(MAX_KEYS + 50):
        rig.log.debug(f"preformatted {i}")  # as third-party code may do
    assert len(rig.lines()) == MAX_KEYS + 3
    assert len(rig.filter._windows) == MAX_KEYS + 1
