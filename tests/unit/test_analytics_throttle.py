"""actors.analytics.throttle: while the CPUs are contended (PSI: some task waited for one) a
catch-up keeps to its budget of one CPU, pausing after each page for as long as the page's
CPU allows, at most MAX_PAUSE_S, and ending a pause at the first quiet span; a machine that
is not contended costs it no pause. What is read: a container's cgroup rather than the
machine; without PSI the others' CPU (guest time once, no steal, our own process out)."""

from __future__ import annotations

import asyncio
from collections import namedtuple
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.analytics.throttle import (
    BUDGET,
    BUSY_SHARE,
    MAX_PAUSE_S,
    PRESSURE_BUSY,
    SAMPLE_S,
    Throttle,
    cpu_source,
    machine_cpu,
    own_cgroup,
    pressure_source,
    stalled_seconds,
)

# psutil.cpu_times() on Linux: guest and guest_nice are already inside user and nice.
Times = namedtuple("Times", "user nice system idle iowait irq softirq steal guest guest_nice")


def test_guest_time_is_counted_once_and_steal_not_at_all() -> None:
    times = Times(user=10.0, nice=2.0, system=3.0, idle=100.0, iowait=5.0, irq=1.0,
                  softirq=1.0, steal=7.0, guest=4.0, guest_nice=1.0)
    assert machine_cpu(lambda: times) == 17.0  # user + nice + system + irq + softirq
    # What the first version counted: everything but idle and iowait (29: guest twice, steal).
    assert sum(times) - times.idle - times.iowait == 29.0


def fake_proc(tmp_path: Path, cgroup: str, *, typed: bool = True,
              cpu_max: str | None = "150000 100000") -> Path:
    """/proc/self with one cgroup2 mount at <tmp>/cg holding usage_usec 2.5 s."""
    mount = tmp_path / "cg"
    mount.mkdir(parents=True)
    (mount / "cpu.stat").write_text("usage_usec 2500000\nuser_usec 2000000\n"
                                    "system_usec 500000\n")
    if typed:
        (mount / "cgroup.type").write_text("domain\n")
    if cpu_max is not None:
        (mount / "cpu.max").write_text(cpu_max + "\n")
    proc = tmp_path / "proc"
    proc.mkdir()
    (proc / "cgroup").write_text(f"{cgroup}\n")
    (proc / "mountinfo").write_text(
        "25 30 0:22 / /sys rw,relatime shared:7 - sysfs sysfs rw\n"
        f"31 25 0:26 / {mount} rw,nosuid shared:9 - cgroup2 cgroup2 rw,nsdelegate\n")
    return proc


def test_a_containers_cgroup_is_read_with_its_quota(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path, "0::/")
    assert own_cgroup(proc) == tmp_path / "cg"
    used, cpus = cpu_source(proc)
    assert used() == 2.5 and cpus == 1.5


def test_no_quota_leaves_the_machines_cpus(tmp_path: Path) -> None:
    import psutil  # type: ignore[import-untyped]

    used, cpus = cpu_source(fake_proc(tmp_path, "0::/", cpu_max="max 100000"))
    assert used() == 2.5 and cpus == psutil.cpu_count()


def test_the_root_cgroup_or_a_session_scope_means_the_machine(tmp_path: Path) -> None:
    assert own_cgroup(fake_proc(tmp_path / "a", "0::/", typed=False)) is None  # the root
    assert own_cgroup(fake_proc(tmp_path / "z", "0::/")) == tmp_path / "z" / "cg"
    scope = "0::/user.slice/user-1000.slice/session-3.scope"
    assert own_cgroup(fake_proc(tmp_path / "b", scope)) is None
    assert own_cgroup(fake_proc(tmp_path / "c", "4:memory:/x")) is None  # cgroup v1 only
    assert own_cgroup(tmp_path / "nowhere") is None
    assert cpu_source(tmp_path / "nowhere")[0] is machine_cpu


PSI = ("some avg10=1.00 avg60=21.50 avg300=29.27 total=7779589418\n"
       "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n")


def test_pressure_is_the_containers_else_the_machines(tmp_path: Path) -> None:
    machine = tmp_path / "pressure"
    machine.write_text(PSI)
    assert stalled_seconds(machine) == pytest.approx(7779.589418)
    outside = pressure_source(tmp_path / "nowhere", machine)  # not in a container
    assert outside is not None and outside() == pytest.approx(7779.589418)
    proc = fake_proc(tmp_path / "c", "0::/")
    (tmp_path / "c" / "cg" / "cpu.pressure").write_text(PSI.replace("7779589418", "2500000"))
    inside = pressure_source(proc, machine)
    assert inside is not None and inside() == 2.5


def test_no_pressure_information_means_none(tmp_path: Path) -> None:
    assert pressure_source(tmp_path / "nowhere", tmp_path / "absent") is None
    odd = tmp_path / "odd"
    odd.write_text("full avg10=0.00 total=5\n")  # no "some" line
    assert pressure_source(tmp_path / "nowhere", odd) is None
    assert pressure_source(tmp_path / "nowhere", tmp_path) is None  # unreadable (a directory)


class Machine:
    """A fake clock and counters. Each step (a page folded, or a sleep) takes the next of
    `stalls` (the share of the step during which some task waited for a CPU) and of `loads`
    (the others' share of `cpus`), the last of each repeating. Our process uses `own` CPUs
    while it folds a page and none while it sleeps."""

    def __init__(self, stalls: list[float], loads: list[float] | None = None,
                 cpus: float = 2.0, own: float = 1.0) -> None:
        self.stalls, self.loads = list(stalls), list(loads or [0.0])
        self.cpus, self.own = cpus, own
        self.now = self.stalled = self.used = self.mine = 0.0
        self.sleeps: list[float] = []

    @staticmethod
    def _next(values: list[float]) -> float:
        return values.pop(0) if len(values) > 1 else values[0]

    def _step(self, seconds: float, own: float) -> None:
        stall, load = self._next(self.stalls), self._next(self.loads)
        self.now += seconds
        self.stalled += stall * seconds
        self.used += (load * self.cpus + own) * seconds
        self.mine += own * seconds

    def page(self, seconds: float) -> None:
        self._step(seconds, self.own)

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self._step(seconds, 0.0)

    def throttle(self, *, pressure: bool = True) -> Throttle:
        return Throttle(stalled=(lambda: self.stalled) if pressure else None,
                        source=(lambda: self.used, self.cpus), mine=lambda: self.mine,
                        clock=lambda: self.now, sleep=self.sleep)


def test_an_uncontended_machine_costs_a_catch_up_no_pause() -> None:
    machine = Machine([PRESSURE_BUSY * 0.9])  # someone waits now and then, briefly
    throttle = machine.throttle()
    for _ in range(5):
        machine.page(0.5)
        asyncio.run(throttle.wait())
    assert machine.sleeps == [] and throttle.paused_s == 0.0


def test_while_contended_a_catch_up_keeps_to_its_budget() -> None:
    machine = Machine([0.4])  # a saturated bid path: some task waits 40% of the time
    throttle = machine.throttle()
    for _ in range(4):
        machine.page(0.5)
        asyncio.run(throttle.wait())
    # Each page of 0.5 CPU-seconds is followed by 0.5 * (1 / BUDGET - 1) seconds of pause.
    assert throttle.paused_s == pytest.approx(4 * 0.5 * (1 / BUDGET - 1))
    assert machine.mine / machine.now == pytest.approx(BUDGET)


def test_contention_the_catch_up_causes_itself_is_seen() -> None:
    # The bid path wants 1.45 of 2 CPUs; while a page holds one it gets 1.0 and its tasks
    # wait. Judged by the others' CPU share (0.5, under BUSY_SHARE) the machine looked free
    # and the page went on (what the first throttle did); judged by the waits it is not.
    assert BUSY_SHARE > 0.5
    blind = Machine([0.45], loads=[0.5])
    blind.page(0.5)
    asyncio.run(blind.throttle(pressure=False).wait())
    assert blind.sleeps == []
    machine = Machine([0.45], loads=[0.5])
    throttle = machine.throttle()
    machine.page(0.5)
    asyncio.run(throttle.wait())
    assert throttle.paused_s == pytest.approx(0.5 * (1 / BUDGET - 1))


def test_the_pause_ends_at_the_first_quiet_span() -> None:
    machine = Machine([0.5, 0.5, 0.5, 0.0])  # the page, two contended samples, then quiet
    throttle = machine.throttle()
    machine.page(0.5)
    asyncio.run(throttle.wait())
    assert machine.sleeps == [SAMPLE_S, SAMPLE_S, SAMPLE_S]
    assert not throttle.busy() and throttle.contention == 0.0


def test_a_page_never_pauses_longer_than_max_pause_s() -> None:
    machine = Machine([1.0])
    throttle = machine.throttle()
    machine.page(60.0)  # a page that cost a minute of CPU
    asyncio.run(throttle.wait())
    assert throttle.paused_s == pytest.approx(MAX_PAUSE_S)


def test_without_pressure_information_the_others_cpu_share_is_judged() -> None:
    calm = Machine([0.0], loads=[0.5])  # others at half the CPUs, our page on top: not busy
    throttle = calm.throttle(pressure=False)
    calm.page(0.5)
    asyncio.run(throttle.wait())
    assert calm.sleeps == [] and throttle.contention == pytest.approx(0.5)
    busy = Machine([0.0], loads=[0.9, 0.9, 0.2])
    throttle = busy.throttle(pressure=False)
    busy.page(0.5)
    asyncio.run(throttle.wait())
    assert busy.sleeps == [SAMPLE_S, SAMPLE_S] and not throttle.busy()


@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=60),
       st.lists(st.floats(0.0, 5.0), min_size=1, max_size=6), st.floats(0.1, 2.0))
def test_pauses_are_bounded_by_the_budget_and_end_at_the_first_quiet_span(
        stalls: list[float], pages: list[float], own: float) -> None:
    machine = Machine(stalls, own=own)
    throttle = machine.throttle()
    for page_s in pages:
        machine.page(page_s)
        start, paused = machine.now, throttle.paused_s
        asyncio.run(throttle.wait())
        pause = machine.now - start
        assert throttle.paused_s - paused == pytest.approx(pause)
        owed = min(MAX_PAUSE_S, page_s * own * (1 / BUDGET - 1))
        assert pause <= owed + 1e-9
        if 1e-9 < pause < owed - 1e-9:  # ended early: the last span judged was quiet
            assert not throttle.contended
        if pause == 0.0 and owed > 1e-6:  # no pause at all: the page's span was not contended
            assert not throttle.contended
