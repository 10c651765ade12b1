"""Idle sockets for the footprint stage (`kind="idle"` jobs of `loadtests.gen`)."""

from __future__ import annotations

import asyncio
import contextlib
import time

import aiohttp


async def hold_idle(job: dict, index: int, start, results) -> None:
    """Open `count` sockets, report, hold them until `start` (here: the stop signal) is set."""
    base = job["url"].rstrip("/")
    token = job.get("token")
    url = f"{base}/ws" + (f"?token={token}" if token else "")
    gate = asyncio.Semaphore(int(job.get("connect_concurrency", 200)))
    failures = 0
    sockets: list[aiohttp.ClientWebSocketResponse] = []
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def one() -> None:
            nonlocal failures
            async with gate:
                try:
                    sockets.append(await http.ws_connect(url, autoping=True, heartbeat=None))
                except (aiohttp.ClientError, OSError, TimeoutError):
                    failures += 1

        started = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(int(job["count"]))))
        elapsed = time.perf_counter() - started
        results.put(("ready", index, {"connected": len(sockets), "connect_failures": failures,
                                      "connect_s": elapsed}))
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, start.wait, float(job.get("hold_timeout", 120)))
        alive = sum(1 for ws in sockets if not ws.closed)

        async def close(ws: aiohttp.ClientWebSocketResponse) -> None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 2)

        for first in range(0, len(sockets), 500):
            await asyncio.gather(*(close(ws) for ws in sockets[first:first + 500]))
    results.put(("result", index, {"connected": len(sockets), "alive_at_end": alive,
                                   "connect_failures": failures, "connect_s": elapsed}))
