"""`python -m loadtests.end_instance ADDRESS`: joins the Ray cluster at ADDRESS once, then for
each instance name read from stdin kills every actor of that ECE instance (its hosts,
directory, analytics and portfolio actors) and answers one line, `ended NAME N` (N actors).

The benchmark's joined servers each run an instance of their own in the head's Ray; their
actors are detached, so they outlive the gateway. Once a server's stages are done it is
stopped and its instance ended with this, so that no idle instance takes CPU from the stages
after it (loadtests.joined)."""

from __future__ import annotations

import os
import subprocess
import sys

from testkit.processes import ROOT

JOIN_DEADLINE_S = 60.0
# What starts this tool's answers on stdout, where Ray also writes (its raylet's warnings).
REPLY = "end_instance:"


def main(argv: list[str] | None = None) -> int:
    [address] = argv if argv is not None else sys.argv[1:]
    from gateway.cli import prepare_environment

    os.environ["ECE_RAY_ADDRESS"] = address
    prepare_environment()
    import ray

    from actors.config import ClusterConfig
    from actors.singletons import ece_actors
    from gateway.status import join_cluster

    join_cluster(address, JOIN_DEADLINE_S)
    print(f"{REPLY} joined", flush=True)
    for line in sys.stdin:
        config = ClusterConfig(store_url="unused", instance=line.strip())
        found = ece_actors(config)
        for placed in found:
            try:
                ray.kill(ray.get_actor(placed.name, namespace=config.namespace),
                         no_restart=True)
            except ValueError:  # gone meanwhile
                continue
        print(f"{REPLY} ended {config.instance} {len(found)}", flush=True)
    return 0


class Ender:
    """The bench's side: one `end_instance` process for the run, asked instance by instance."""

    def __init__(self, address: str, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "loadtests.end_instance", address], cwd=ROOT,
            env={**os.environ, **env}, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            text=True)
        self._expect(f"{REPLY} joined")

    def end(self, instance: str) -> int:
        """Kill the instance's actors; how many there were."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(instance + "\n")
        self.proc.stdin.flush()
        return int(self._expect(f"{REPLY} ended {instance} ").split()[-1])

    def _expect(self, prefix: str) -> str:
        """The next answer (Ray's lines on the same stdout are skipped); it must start with
        `prefix`."""
        assert self.proc.stdout is not None
        while line := self.proc.stdout.readline():
            if line.startswith(REPLY):
                if not line.startswith(prefix):
                    raise RuntimeError(f"end_instance answered {line!r}, not {prefix!r}")
                return line
        raise RuntimeError(f"end_instance ended (exit {self.proc.poll()})")

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


if __name__ == "__main__":
    raise SystemExit(main())
