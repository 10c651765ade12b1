"""Ray's own floor: round trips to a no-op async actor from an asyncio driver.

``python -m loadtests.raycall ADDRESS SECONDS`` joins the Ray cluster at ADDRESS (the bench's
own, token from the environment), creates a throw-away actor in a private namespace, measures
one-at-a-time round trips (latency), 64-in-flight round trips (throughput) and the CPU both
processes spend per call when calls come one at a time at a paced `PACED_PER_S` (over their
idle CPU: the cost of a call that nothing batches), with a bid-sized argument, kills the
actor and prints one JSON line. Every ECE bid crosses at least one such round trip
(gateway -> host), so this bounds the naive baseline and explains batching.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time

import psutil

from actors.messages import Acked, PlaceBid
from gateway.cli import prepare_environment

# A bid as the gateway sends it, answered with an ack as the host sends it (the same types).
COMMAND = PlaceBid("a_0123456789abcdef", "u_0123456789abcdef", "int:123456789", 123_400)
ACK = Acked({"seq": 12, "price": 123_400, "leader_id": "u_0123456789abcdef",
             "ends_at": 1_800_000_000_000, "bid_count": 11})


# The paced phase: one call at a time at this rate (about a capacity knee's bids/s).
PACED_PER_S = 100.0


class Noop:
    async def call(self, commands: list[PlaceBid]) -> list[Acked]:
        return [ACK for _ in commands]

    async def pid(self) -> int:
        return os.getpid()


def _cpu_s(procs: list[psutil.Process]) -> float:
    return sum(p.cpu_times().user + p.cpu_times().system for p in procs)


async def paced_cpu(actor, seconds: float) -> dict:
    """CPU seconds per call (caller and actor) at PACED_PER_S, over their idle CPU."""
    procs = [psutil.Process(), psutil.Process(await actor.pid.remote())]
    before = _cpu_s(procs)
    await asyncio.sleep(seconds)
    idle_per_s = (_cpu_s(procs) - before) / seconds
    calls: list[asyncio.Future] = []
    before, started = _cpu_s(procs), time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        calls.append(asyncio.ensure_future(actor.call.remote([COMMAND])))
        # Open loop: the next call leaves on schedule, answered or not.
        await asyncio.sleep(max(0.0, len(calls) / PACED_PER_S - elapsed))
    await asyncio.gather(*calls)
    elapsed = time.perf_counter() - started
    used = _cpu_s(procs) - before - idle_per_s * elapsed
    return {"paced_calls_per_s": round(len(calls) / elapsed, 1),
            "paced_cpu_us_per_call": round(max(used, 0.0) / len(calls) * 1e6, 1)}


async def measure(actor, seconds: float) -> dict:
    await actor.call.remote([COMMAND])
    latencies = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline and len(latencies) < 100_000:
        t = time.perf_counter()
        await actor.call.remote([COMMAND])
        latencies.append(time.perf_counter() - t)
    latencies.sort()
    done = 0
    stop = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < stop and done < 1_000_000:
            await actor.call.remote([COMMAND])
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(64)))
    elapsed = time.perf_counter() - started
    return {
        "serial_calls": len(latencies),
        "serial_p50_ms": round(latencies[len(latencies) // 2] * 1000, 3),
        "serial_p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 3),
        "concurrent_calls_per_s": round(done / elapsed, 1),
        "in_flight": 64,
        **await paced_cpu(actor, seconds),
    }


def main() -> None:
    address, seconds = sys.argv[1], float(sys.argv[2])
    # Ray's environment as ECE's own gateways get it (loopback cluster), set before the import.
    prepare_environment()
    import ray

    ray.init(address=address, namespace=f"bench-raycall-{os.getpid()}", log_to_driver=False,
             configure_logging=False)
    actor = ray.remote(num_cpus=0, max_concurrency=1_000)(Noop).remote()
    try:
        result = asyncio.run(measure(actor, seconds))
    finally:
        ray.kill(actor, no_restart=True)
        ray.shutdown()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
