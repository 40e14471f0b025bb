"""Memory is given back once pylog is quiet after a burst, once per burst."""

from pylog.memtrim import IdleTrim, malloc_trim


class Work:
    def __init__(self) -> None:
        self.count = 0
        self.trims = 0

    def trim(self) -> None:
        self.trims += 1


def test_trims_once_after_a_quiet_stretch_and_again_only_after_new_activity() -> None:
    work = Work()
    t = IdleTrim(lambda: work.count, work.trim, quiet=5.0)
    t.tick(0.0)
    for now in range(1, 20):  # busy: never trimmed
        work.count += 100
        assert not t.tick(float(now))
    assert not t.tick(23.0)  # quiet for 4 s
    assert t.tick(24.0)  # quiet for 5 s: trimmed
    assert [t.tick(float(now)) for now in range(25, 100)] == [False] * 75  # once
    work.count += 1
    assert not t.tick(100.0)
    assert t.tick(105.0)
    assert work.trims == 2


def test_malloc_trim_runs_here() -> None:
    assert malloc_trim()  # glibc: the test machine and the plugin's Debian rootfs
