"""The benchmark's joined servers: each joins the head's Ray with an instance of its own, runs
only while the stages that need it run, and is then stopped with its instance's actors
(loadtests.end_instance), so that each stage is measured with no other server idling beside
it. (When every server ran for the whole run, a full run on 2026-12-03 had a load average of
27-37 during the capacity stage, and every step of its sweep missed the latency target.)"""

from __future__ import annotations

import time
from collections.abc import Callable

from loadtests.end_instance import Ender
from testkit.processes import Managed


class Joined:
    """`use(names)` before each stage: the servers it names run (started and ready), every
    other joined server is stopped and its instance ended."""

    def __init__(self, specs: dict[str, dict[str, str]], instance_of: Callable[[str], str],
                 start: Callable[[str, dict[str, str]], Managed], ray_address: str,
                 ray_env: dict[str, str], costs: dict, errors: list[str]) -> None:
        self.specs = specs  # the servers the wanted stages need: name -> environment
        self.instance_of = instance_of
        self.start = start
        self.ray_address = ray_address
        self.ray_env = ray_env
        self.ender: Ender | None = None  # started at the first stop
        self.costs = costs
        self.errors = errors
        self.running: dict[str, Managed] = {}

    def use(self, *names: str) -> list[Managed | None]:
        """The servers `names` (None for one no wanted stage needs), started if not running;
        every other joined server is stopped first."""
        for name in [n for n in self.running if n not in names]:
            self.stop(name)
        started = {}
        for name in names:
            if name in self.specs and name not in self.running:
                started[name] = self.running[name] = self.start(name, self.specs[name])
        for name, srv in started.items():
            self.costs[f"join_gateway_start_s.{name}"] = round(srv.wait_ready(180), 2)
        return [self.running.get(name) for name in names]

    def stop(self, name: str) -> None:
        srv = self.running.pop(name)
        t = time.monotonic()
        try:
            srv.stop(grace=20)
            if self.ender is None:
                self.ender = Ender(self.ray_address, self.ray_env)
            self.costs[f"actors_ended.{name}"] = self.ender.end(self.instance_of(name))
        except Exception as exc:
            self.errors.append(f"stop {name}: {exc!r}")
        self.costs[f"stop_s.{name}"] = round(time.monotonic() - t, 2)

    def stop_all(self) -> None:
        for name in list(self.running):
            self.stop(name)
        if self.ender is not None:
            self.ender.close()
