"""The host's direct channel (actors.direct) on a real Unix socket, without Ray: calls are
matched to their answers whatever order they finish in, a failure is the caller's alone, a
lost connection fails what was in flight and everything after it, and a hostile peer on the
socket (a huge length, garbage) loses only its own connection."""

from __future__ import annotations

import asyncio
import os
import stat
import sys
from pathlib import Path

import pytest

from actors.direct import (
    MAX_FRAME,
    ChannelLost,
    DirectClient,
    DirectServer,
    RemoteFailed,
    socket_dir,
)


class Target:
    """The host's side: `submit` answers after the delay it is given; `submit_offers` fails."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple]] = []
        self.release = asyncio.Event()

    async def submit(self, delay: float, value: int) -> int:
        self.calls.append(("submit", (delay, value)))
        await asyncio.sleep(delay)
        return value * 10

    async def submit_read(self, value: int) -> int:
        await self.release.wait()
        return value

    async def submit_offers(self, commands: list) -> list:
        raise KeyError("no such thread")

    async def stats(self) -> dict:  # a method the channel must not serve
        return {"secret": True}


@pytest.fixture
async def served():
    target = Target()
    server = DirectServer(target)
    path = await server.start()
    client = await DirectClient.connect(path)
    yield target, server, client
    client.close()
    await server.close()


async def test_answers_are_matched_to_their_calls_whatever_order_they_finish_in(served):
    _, _, client = served
    # The first call finishes last.
    delays = [0.2, 0.0, 0.1, 0.05, 0.0]
    got = await asyncio.wait_for(asyncio.gather(
        *(client.call("submit", d, n) for n, d in enumerate(delays))), 10)
    assert got == [0, 10, 20, 30, 40]


async def test_a_slow_call_holds_up_no_other(served):
    target, _, client = served
    slow = asyncio.ensure_future(client.call("submit_read", 7))
    assert await asyncio.wait_for(client.call("submit", 0.0, 1), 10) == 10
    assert not slow.done()
    target.release.set()
    assert await asyncio.wait_for(slow, 10) == 7


async def test_a_failing_call_is_its_callers_alone(served):
    _, _, client = served
    with pytest.raises(RemoteFailed, match="KeyError"):
        await asyncio.wait_for(client.call("submit_offers", []), 10)
    # A method the channel does not serve is refused, not run.
    with pytest.raises(RemoteFailed, match="not served"):
        await asyncio.wait_for(client.call("stats"), 10)
    assert await asyncio.wait_for(client.call("submit", 0.0, 3), 10) == 30


HOST_PROCESS = """
import asyncio, sys
from actors.direct import DirectServer

class Hangs:
    async def submit_read(self, value):
        await asyncio.Event().wait()

async def main():
    server = DirectServer(Hangs())
    print(await server.start(), flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


async def test_a_killed_host_fails_the_calls_in_flight_and_every_later_one():
    host = await asyncio.create_subprocess_exec(
        sys.executable, "-c", HOST_PROCESS, stdout=asyncio.subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[2])
    try:
        assert host.stdout is not None
        path = (await asyncio.wait_for(host.stdout.readline(), 60)).decode().strip()
        client = await DirectClient.connect(path)
        pending = asyncio.ensure_future(client.call("submit_read", 1))
        await asyncio.sleep(0.05)
        assert not pending.done()
        host.kill()  # SIGKILL: every socket of the process closed by the kernel
        with pytest.raises(ChannelLost):
            await asyncio.wait_for(pending, 10)
        assert client.closed
        with pytest.raises(ChannelLost):
            await client.call("submit_read", 2)
        # Once the process is gone its socket is left behind and refuses: the gateway
        # falls back to Ray.
        await host.wait()
        with pytest.raises(ConnectionRefusedError):
            await DirectClient.connect(path)
    finally:
        if host.returncode is None:
            host.kill()
        await host.wait()


async def test_a_dead_hosts_socket_refuses_and_a_missing_one_is_not_found(served):
    _, server, _ = served
    path = server.path
    assert path is not None
    await server.close()
    with pytest.raises(FileNotFoundError):
        await DirectClient.connect(path)
    with pytest.raises(FileNotFoundError):
        await DirectClient.connect(str(socket_dir() / "host-1-nothere.sock"))


@pytest.mark.parametrize("garbage", [
    (MAX_FRAME + 1).to_bytes(4, "big"),  # a length past the bound
    (5).to_bytes(4, "big") + b"\x80\x05junk",  # not a pickle
    (2**32 - 1).to_bytes(4, "big") + b"x" * 100,
])
async def test_a_hostile_peer_loses_its_own_connection_only(served, garbage):
    _, server, client = served
    reader, writer = await asyncio.open_unix_connection(server.path)
    writer.write(garbage)
    await writer.drain()
    # The server closes that connection without answering...
    assert await asyncio.wait_for(reader.read(), 10) == b""
    writer.close()
    # ...and still serves the others.
    assert await asyncio.wait_for(client.call("submit", 0.0, 4), 10) == 40


async def test_the_socket_is_private_and_dead_hosts_sockets_are_swept():
    directory = socket_dir()
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    # A socket left by a host process that is gone (pid far past pid_max): swept at the
    # next start.
    stale = directory / "host-999999999-0000000000000000.sock"
    stale.touch()
    server = DirectServer(Target())
    path = Path(await server.start())
    try:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert str(os.getpid()) in path.name
        assert not stale.exists()
    finally:
        await server.close()
    assert not path.exists()
