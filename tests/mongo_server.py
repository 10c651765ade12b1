"""mongoeco's MongoDB wire-protocol server, run in-process for tests (no MongoDB can be installed
here); the code under test reaches it with the real PyMongo driver over TCP."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading

MONGO_URI_ENV = "ECE_TEST_MONGODB_URI"


class MongoecoServer:
    """mongoeco's wire server on its own thread and event loop.

    It must not share the tests' loop: the driver blocks on socket replies that only this
    loop can produce, and a dedicated thread also mirrors a separate server process.
    """

    def __init__(self) -> None:
        self._ready: concurrent.futures.Future[str] = concurrent.futures.Future()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="mongoeco-wire", daemon=True)

    def start(self) -> str:
        self._thread.start()
        return self._ready.result(timeout=30)

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=30)

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:
            if not self._ready.done():
                self._ready.set_exception(exc)

    async def _serve(self) -> None:
        from mongoeco.engines.memory import MemoryEngine
        from mongoeco.wire import AsyncMongoEcoProxyServer

        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        server = AsyncMongoEcoProxyServer(engine=MemoryEngine(), host="127.0.0.1", port=0)
        await server.start()
        try:
            self._ready.set_result(server.address.uri)
            await self._stop.wait()
        finally:
            await server.close()
