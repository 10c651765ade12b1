"""Ray's own floor: round trips to a no-op async actor from an asyncio driver.

``python -m loadtests.raycall ADDRESS SECONDS`` joins the Ray cluster at ADDRESS (the bench's
own, token from the environment), creates a throw-away actor in a private namespace, measures
one-at-a-time round trips (latency) and 64-in-flight round trips (throughput) with a bid-sized
argument, kills the actor and prints one JSON line. Every ECE bid crosses at least one such
round trip (gateway -> host), so this bounds the naive baseline and explains batching.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time

# Like ECE's own private cluster (gateway.cli.prepare_environment): a loopback-only,
# single-node Ray. Ray reads this when imported.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

import ray

COMMAND = {"op": "bid", "auction_id": "a_0123456789abcdef", "bidder_id": "u_0123456789abcdef",
           "req_id": "int:123456789", "amount": 123_400, "max_amount": None}


@ray.remote(num_cpus=0, max_concurrency=1_000)
class Noop:
    async def call(self, commands: list[dict]) -> list[dict]:
        return [{"ok": True} for _ in commands]


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
    }


def main() -> None:
    address, seconds = sys.argv[1], float(sys.argv[2])
    ray.init(address=address, namespace=f"bench-raycall-{os.getpid()}", log_to_driver=False,
             configure_logging=False)
    actor = Noop.remote()
    try:
        result = asyncio.run(measure(actor, seconds))
    finally:
        ray.kill(actor, no_restart=True)
        ray.shutdown()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
