from pylog.pressure import FULL_READ, HOLD, REST_MAX, IngestPressure


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_full_reads_make_shippers_rest_for_a_while() -> None:
    clock = Clock()
    p = IngestPressure(clock)
    slept: list[float] = []
    p.yield_to_ingest(0.01, slept.append)
    assert slept == [] and not p.active()
    p.note_read(FULL_READ - 1)
    assert not p.active()
    p.note_read(FULL_READ)
    assert p.active()
    p.yield_to_ingest(0.01, slept.append)
    p.yield_to_ingest(10.0, slept.append)
    assert slept == [0.03, REST_MAX]
    assert p.rests == 2
    clock.now += HOLD + 0.001
    assert not p.active()
    p.yield_to_ingest(0.01, slept.append)
    assert len(slept) == 2
