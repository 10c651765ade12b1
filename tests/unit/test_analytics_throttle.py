"""actors.analytics.actor.Throttle: what counts as others' CPU (guest time once, no steal, our
own process out; a container's cgroup rather than the machine), and a catch-up page never
waits longer than MAX_PAUSE_S, nor at all on a machine that is not busy."""

from __future__ import annotations

import asyncio
from collections import namedtuple
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.analytics.actor import (
    BUSY_SHARE,
    MAX_PAUSE_S,
    SAMPLE_S,
    Throttle,
    cpu_source,
    machine_cpu,
    own_cgroup,
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


class Machine:
    """A fake clock and CPU counters: `loads` (others' share of `cpus` per time step, then the
    last one forever) while our own process uses `own` CPUs."""

    def __init__(self, loads: list[float], cpus: float = 2.0, own: float = 0.0) -> None:
        self.loads, self.cpus, self.own = list(loads), cpus, own
        self.now = self.used = self.mine = 0.0
        self.sleeps: list[float] = []

    def run(self, seconds: float) -> None:
        load = self.loads.pop(0) if len(self.loads) > 1 else self.loads[0]
        self.now += seconds
        self.used += (load * self.cpus + self.own) * seconds
        self.mine += self.own * seconds

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.run(seconds)

    def throttle(self) -> Throttle:
        return Throttle(source=(lambda: self.used, self.cpus), mine=lambda: self.mine,
                        clock=lambda: self.now, sleep=self.sleep)


def test_a_busy_machine_pauses_a_page_max_pause_s_at_most() -> None:
    machine = Machine([1.0])  # others keep every CPU busy, always
    throttle = machine.throttle()
    for page in range(3):
        machine.run(0.5)  # a page folded
        asyncio.run(throttle.wait())
        assert machine.now == (page + 1) * (0.5 + MAX_PAUSE_S)
    assert throttle.paused_s == 3 * MAX_PAUSE_S  # (the fake clock's seconds)
    assert MAX_PAUSE_S <= 2.0  # a page never waits longer than this


def test_a_machine_that_is_not_busy_costs_no_pause() -> None:
    # One busy process outside ECE on 2 CPUs (0.5), our own page using a third: no wait.
    machine = Machine([0.5], own=1.0)
    throttle = machine.throttle()
    for _ in range(5):
        machine.run(0.5)
        asyncio.run(throttle.wait())
    assert machine.sleeps == [] and throttle.paused_s == 0.0
    assert throttle.others == pytest.approx(0.5)  # our own CPU is not the others'


def test_the_wait_ends_when_the_others_calm_down() -> None:
    machine = Machine([0.9, 0.9, 0.9, 0.2])
    throttle = machine.throttle()
    machine.run(0.5)  # the page: others at 0.9
    asyncio.run(throttle.wait())
    assert machine.sleeps == [SAMPLE_S, SAMPLE_S, SAMPLE_S]  # 0.9, 0.9, then 0.2: go
    assert throttle.others == pytest.approx(0.2)


@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=40),
       st.floats(0.0, 3.0), st.floats(0.0, 2.0))
def test_every_pause_is_bounded_and_ends_at_the_first_quiet_span(
        loads: list[float], page_s: float, own: float) -> None:
    machine = Machine(loads, own=own)
    throttle = machine.throttle()
    machine.run(page_s)
    start = machine.now
    asyncio.run(throttle.wait())
    assert machine.now - start <= MAX_PAUSE_S + 1e-9
    assert throttle.paused_s == machine.now - start
    if machine.now - start < MAX_PAUSE_S - 1e-9:  # ended early: the last judgement was quiet
        assert throttle.others <= BUSY_SHARE + 1e-9
