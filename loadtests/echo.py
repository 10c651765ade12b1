"""A bare aiohttp WebSocket echo server: the ceiling for any aiohttp WebSocket service here.

``python -m loadtests.echo --port P`` serves ``/ws`` (every frame is sent back as it came) and
``/healthz``. Same aiohttp, same settings as the gateway's sockets (no compression), one process.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

from aiohttp import WSMsgType, web


async def echo(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(max_msg_size=64 * 1024, compress=False)
    await ws.prepare(request)
    async for msg in ws:
        if msg.type == WSMsgType.TEXT:
            await ws.send_str(msg.data)
        elif msg.type == WSMsgType.BINARY:
            await ws.send_bytes(msg.data)
        else:
            break
    return ws


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def serve(host: str, port: int) -> None:
    app = web.Application()
    app.router.add_get("/ws", echo)
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    print(f"echo serving on http://{host}:{port}/", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
