"""mongoeco's MongoDB wire-protocol server as a process of its own:
`python -m testkit.mongo_wire --port N` serves an in-memory MongoDB on 127.0.0.1:N and prints
`MONGODB_URI=mongodb://...` once it listens; SIGTERM or SIGINT stops it.

The multi-node tests use it as the cluster's shared store, so that killing a node never kills
the store (tests/mongo_server.py runs the same server on a thread of the test process).
"""

from __future__ import annotations

import argparse
import asyncio
import signal


async def serve(port: int) -> None:
    from mongoeco.engines.memory import MemoryEngine
    from mongoeco.wire import AsyncMongoEcoProxyServer

    server = AsyncMongoEcoProxyServer(engine=MemoryEngine(), host="127.0.0.1", port=port)
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"MONGODB_URI={server.address.uri}", flush=True)
    try:
        await stop.wait()
    finally:
        await server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    asyncio.run(serve(parser.parse_args().port))


if __name__ == "__main__":
    main()
