"""The gateway's two ways of sending commands to a host, without Ray: both answer every command
with its own result; `HostClient` coalesces, `DirectHostClient` (the benchmark's baseline)
does not."""

from __future__ import annotations

import asyncio

import pytest

from actors.messages import GetView, Viewed
from gateway.router import DirectHostClient, HostClient


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


@pytest.mark.parametrize(("client", "calls"), [(HostClient, 1), (DirectHostClient, 10)])
@pytest.mark.asyncio
async def test_every_command_gets_its_own_result(client, calls) -> None:
    host = FakeHost()
    sender = client("h", host)  # type: ignore[arg-type]
    results = await asyncio.gather(*(sender.call(GetView(f"a{n}")) for n in range(10)))
    assert [r.auction["auction_id"] for r in results] == [f"a{n}" for n in range(10)]
    # Sent in the same loop tick: one call with all ten, or (the baseline) ten calls.
    assert len(host.calls) == calls



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
