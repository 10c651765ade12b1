"""The gateway's two ways of sending commands to a host, without Ray: both answer every command
with its own result; `HostClient` coalesces, `UnbatchedHostClient` (the benchmark's baseline)
does not."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from ray.exceptions import RayActorError

from actors.direct import DirectServer, socket_dir
from actors.messages import FeedPage, GetView, Viewed
from gateway.router import HostClient, UnbatchedHostClient, host_clients
from testkit.client import wait_for


class FakeHost:
    """`handle.submit.remote(commands)` as Ray offers it: an awaitable of one result each."""

    def __init__(self) -> None:
        self.calls: list[list[GetView]] = []

    @property
    def submit(self) -> FakeHost:
        return self

    def remote(self, commands: list[GetView]):
        self.calls.append(commands)
        return self._answer(commands)

    async def _answer(self, commands: list[GetView]) -> list[Viewed]:
        await asyncio.sleep(0.01)  # a round trip: the rest of the tick's commands queue up
        return [Viewed({"auction_id": c.auction_id}) for c in commands]


@pytest.mark.parametrize(("client", "calls"), [(HostClient, 1), (UnbatchedHostClient, 10)])
@pytest.mark.asyncio
async def test_every_command_gets_its_own_result(client, calls) -> None:
    host = FakeHost()
    sender = client("h", host)  # type: ignore[arg-type]
    results = await asyncio.gather(*(sender.call(GetView(f"a{n}")) for n in range(10)))
    assert [r.auction["auction_id"] for r in results] == [f"a{n}" for n in range(10)]
    # Sent in the same loop tick: one call with all ten, or (the baseline) ten calls.
    assert len(host.calls) == calls



class GatedHost(FakeHost):
    """Answers a call only once the test opens the gate."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()

    async def _answer(self, commands: list[GetView]) -> list[Viewed]:
        await self.gate.wait()
        return [Viewed({"auction_id": c.auction_id}) for c in commands]


@pytest.mark.asyncio
async def test_commands_arriving_while_a_call_is_out_leave_together_after_it() -> None:
    """One call in flight per host: what arrives meanwhile, in many ticks, waits and leaves
    as one batch (with two in flight the first of them left alone, a commit of its own)."""
    host = GatedHost()
    sender = HostClient("h", host)  # type: ignore[arg-type]
    first = sender.call(GetView("a0"))
    while not host.calls:
        await asyncio.sleep(0)
    rest = []
    for n in range(1, 6):
        rest.append(sender.call(GetView(f"a{n}")))
        await asyncio.sleep(0)  # each in a tick of its own
    assert len(host.calls) == 1
    host.gate.set()
    await asyncio.gather(first, *rest)
    assert [[c.auction_id for c in call] for call in host.calls] == [
        ["a0"], ["a1", "a2", "a3", "a4", "a5"]]


class SilentHost(FakeHost):
    """A host Ray restarted elsewhere whose call neither returns nor fails (seen after a
    node loss)."""

    async def _answer(self, commands: list[GetView]) -> list[Viewed]:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


@pytest.mark.asyncio
async def test_a_call_that_never_returns_is_answered_unavailable(monkeypatch) -> None:
    monkeypatch.setattr("gateway.router.HOST_CALL_TIMEOUT_S", 0.2)
    sender = HostClient("h", SilentHost())  # type: ignore[arg-type]
    result = await asyncio.wait_for(sender.call(GetView("a1")), timeout=5)
    assert result.code == "UNAVAILABLE"  # type: ignore[union-attr]
    # The call's slot is free again: the next command goes out in a call of its own.
    second = await asyncio.wait_for(sender.call(GetView("a2")), timeout=5)
    assert second.code == "UNAVAILABLE"  # type: ignore[union-attr]


class Link:
    """The hub's side of batches that carry feed events (`router.FeedLink`), recorded."""

    def __init__(self) -> None:
        self.landed_pages: list[FeedPage] = []
        self.failures = 0

    def ask(self, host: str) -> tuple[str, str, int]:
        return ("reader", "epoch", 7)

    def landed(self, host: str, page: FeedPage) -> None:
        self.landed_pages.append(page)

    def failed(self, host: str) -> None:
        self.failures += 1


class ReadingHost(FakeHost):
    """`submit_read`: the answers and the reader's page, in one reply; `dies` the call fails."""

    def __init__(self, dies: bool = False) -> None:
        super().__init__()
        self.dies = dies
        self.asked: list[tuple] = []

    @property
    def submit_read(self) -> SimpleNamespace:
        return SimpleNamespace(remote=self._read)

    async def _read(self, commands: list[GetView], *ask):
        self.asked.append(ask)
        if self.dies:
            raise RayActorError()
        answers = await self._answer(commands)
        return answers, FeedPage("epoch", 9, False, [{"auction_id": "a0", "seq": 3}])


@pytest.mark.parametrize("client", [HostClient, UnbatchedHostClient])
@pytest.mark.asyncio
async def test_a_batch_carries_the_feed_cursor_and_its_reply_brings_the_page(client) -> None:
    host, link = ReadingHost(), Link()
    sender = client("h", host)  # type: ignore[arg-type]
    sender.feeds = link
    results = await asyncio.gather(*(sender.call(GetView(f"a{n}")) for n in range(3)))
    assert [r.auction["auction_id"] for r in results] == ["a0", "a1", "a2"]
    assert host.asked and all(ask == ("reader", "epoch", 7) for ask in host.asked)
    assert [p.cursor for p in link.landed_pages] == [9] * len(host.asked)
    assert link.failures == 0


@pytest.mark.asyncio
async def test_a_batch_whose_reply_never_came_tells_the_feed() -> None:
    link = Link()
    sender = HostClient("h", ReadingHost(dies=True))  # type: ignore[arg-type]
    sender.feeds = link
    result = await asyncio.wait_for(sender.call(GetView("a1")), timeout=5)
    assert result.code == "UNAVAILABLE"  # type: ignore[union-attr]
    assert link.failures == 1 and link.landed_pages == []


class ChannelHost(FakeHost):
    """A host with a direct channel (actors.direct) on a real Unix socket, and Ray's `submit`
    beside it (recorded in `calls`): `endpoint.remote()` gives `path`, or `elsewhere` (a
    path no socket has, as for a host on another machine), or None when it cannot
    `listen`."""

    def __init__(self, elsewhere: bool = False, listens: bool = True) -> None:
        super().__init__()
        self.served: list[list[GetView]] = []  # the batches that came by the channel
        self.elsewhere = elsewhere
        self.listens = listens  # False: the host could not listen (endpoint gives None)
        self.endpoints = 0
        self.hang = False  # calls by the channel never answer
        self.server: DirectServer | None = None

    async def start(self) -> None:
        self.server = DirectServer(SimpleNamespace(submit=self._served))
        await self.server.start()

    async def _served(self, commands: list[GetView]) -> list[Viewed]:
        self.served.append(commands)
        if self.hang:
            await asyncio.Event().wait()
        return await self._answer(commands)

    @property
    def endpoint(self) -> SimpleNamespace:
        return SimpleNamespace(remote=self._endpoint)

    async def _endpoint(self) -> str | None:
        self.endpoints += 1
        if not self.listens:
            return None
        assert self.server is not None and self.server.path is not None
        return str(socket_dir() / "host-1-elsewhere.sock") if self.elsewhere else self.server.path


@pytest.mark.parametrize("client", [HostClient, UnbatchedHostClient])
@pytest.mark.asyncio
async def test_a_host_on_this_machine_is_called_over_its_channel_not_ray(client) -> None:
    host = ChannelHost()
    await host.start()
    try:
        sender = client("h", host, direct=True)  # type: ignore[arg-type]
        results = await asyncio.gather(*(sender.call(GetView(f"a{n}")) for n in range(4)))
        assert [r.auction["auction_id"] for r in results] == ["a0", "a1", "a2", "a3"]
        assert host.calls == []  # nothing by Ray
        assert sorted(c.auction_id for batch in host.served for c in batch) == [
            "a0", "a1", "a2", "a3"]
        assert host.endpoints == 1  # one connection, kept
    finally:
        assert host.server is not None
        await host.server.close()


@pytest.mark.parametrize("host", [ChannelHost(elsewhere=True), ChannelHost(listens=False)],
                         ids=["on another machine", "without a socket"])
@pytest.mark.asyncio
async def test_a_host_on_another_machine_or_without_a_socket_is_called_by_ray(host) -> None:
    await host.start()
    try:
        sender = HostClient("h", host, direct=True)  # type: ignore[arg-type]
        for n in range(3):
            result = await asyncio.wait_for(sender.call(GetView(f"a{n}")), 5)
            assert result.auction["auction_id"] == f"a{n}"  # type: ignore[union-attr]
        assert len(host.calls) == 3 and host.served == []
        # The host is not asked for its socket again on every batch.
        assert host.endpoints == 1
    finally:
        assert host.server is not None
        await host.server.close()


@pytest.mark.asyncio
async def test_a_channel_lost_mid_call_answers_unavailable_and_the_next_batch_reconnects(
) -> None:
    host = ChannelHost()
    await host.start()
    sender = HostClient("h", host, direct=True)  # type: ignore[arg-type]
    assert (await asyncio.wait_for(sender.call(GetView("a1")), 5)).auction  # type: ignore[union-attr]
    # A call in flight when the host dies (its connection reset)...
    host.hang = True
    pending = sender.call(GetView("a2"))
    while not host.served or host.served[-1][0].auction_id != "a2":
        await asyncio.sleep(0.01)
    assert sender._channel is not None and host.server is not None
    await host.server.close()
    sender._channel._writer.transport.abort()
    assert (await asyncio.wait_for(pending, 5)).code == "UNAVAILABLE"  # type: ignore[union-attr]
    # ...and Ray restarts it, listening on a new socket: the next batch finds it.
    host.hang = False
    await host.start()
    try:
        again = await asyncio.wait_for(sender.call(GetView("a3")), 5)
        assert again.auction["auction_id"] == "a3"  # type: ignore[union-attr]
        assert host.endpoints == 2 and host.calls == []
    finally:
        await host.server.close()


@pytest.mark.asyncio
async def test_a_client_the_router_drops_closes_its_channel_once_its_calls_are_answered(
) -> None:
    host = ChannelHost()
    await host.start()
    try:
        cache = host_clients(size=1)
        first = HostClient("h1", host, direct=True)  # type: ignore[arg-type]
        cache.put("h1", first)
        assert (await asyncio.wait_for(first.call(GetView("a1")), 5)).auction  # type: ignore[union-attr]
        channel = first._channel
        assert channel is not None
        pending = first.call(GetView("a2"))  # given to the client, not sent yet
        cache.put("h2", HostClient("h2", host, direct=True))  # type: ignore[arg-type]
        assert first.retired and not channel.closed  # kept open for the call
        answer = await asyncio.wait_for(pending, 5)
        assert answer.auction["auction_id"] == "a2"  # type: ignore[union-attr]
        # Its call's task ends (after the answer): then the channel closes.
        await wait_for(lambda: channel.closed, timeout=5, interval=0.01,
                       message="the dropped client's channel to close")
        assert first._channel is None
        # Idle when dropped: closed at once.
        second = cache.get("h2")
        assert second is not None
        assert (await asyncio.wait_for(second.call(GetView("a3")), 5)).auction  # type: ignore[union-attr]
        kept = second._channel
        assert kept is not None and not kept.closed
        await wait_for(lambda: not second._tasks, timeout=5, interval=0.01,
                       message="the call's task to end")
        cache.put("h3", HostClient("h3", host, direct=True))  # type: ignore[arg-type]
        assert second.retired and kept.closed and second._channel is None
    finally:
        assert host.server is not None
        await host.server.close()
