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

