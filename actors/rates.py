"""Recent commands/s of each host, for placement by load (actors.placement.placement_load).

The directory samples the counter each host keeps of the commands submitted to it (`stats`,
the same one `ece status` rates) every SAMPLE_S, and a host's rate is the counter's rise
over the last window of at least MIN_WINDOW_S. Sampled by the directory rather than pushed
by the hosts: the directory already asks every host where it runs, a restarted directory
has rates again after two samples without any host knowing it restarted, and a host that
does not answer simply has no rate (it counts as idle) instead of a stale one.
"""

from __future__ import annotations

from collections.abc import Collection

# How often the directory samples the hosts' counters.
SAMPLE_S = 5.0
# The shortest window a rate is measured over: a sample taken sooner (an on-demand refresh
# for `ece drain` or `nodes`) leaves the window and the rate as they are.
MIN_WINDOW_S = 2.0


class CommandRates:
    """commands/s per host, from successive (counter, time) samples."""

    def __init__(self, min_window_s: float = MIN_WINDOW_S) -> None:
        self.min_window_s = min_window_s
        self.per_s: dict[str, float] = {}  # host -> commands/s over its last window
        self._since: dict[str, tuple[int, float]] = {}  # host -> (counter, time) window start

    def sample(self, host: str, commands: int, at: float) -> None:
        """The host's counter read `commands` at time `at` (seconds, monotonic)."""
        start = self._since.get(host)
        if start is None or commands < start[0]:
            # First sample, or the counter went back (the host restarted, e.g. moved): a new
            # window, and no rate until it is measured.
            self._since[host] = (commands, at)
            self.per_s.pop(host, None)
            return
        count, then = start
        if at - then < self.min_window_s:
            return
        self.per_s[host] = (commands - count) / (at - then)
        self._since[host] = (commands, at)

    def forget(self, host: str) -> None:
        """No answer from the host (dead, stuck, moving): no rate until sampled again."""
        self._since.pop(host, None)
        self.per_s.pop(host, None)

    def keep(self, hosts: Collection[str]) -> None:
        """Forget every host not in `hosts` (retired)."""
        for host in self._since.keys() - set(hosts):
            self.forget(host)
        for host in self.per_s.keys() - set(hosts):
            self.per_s.pop(host, None)
