"""How offer commands travel between Ray actors when a host sends them itself: a second-chance
offer made by an auction's settlement, and invalidations for offers another host serves."""

from __future__ import annotations

import ray

from actors.config import ClusterConfig
from actors.messages import OfferCommand, OfferReply, Refused, refused
from market.errors import OVERLOADED


async def make_offer(config: ClusterConfig, command: OfferCommand) -> OfferReply:
    """Create an offer the way the gateway does: its thread placed by the directory."""
    directory = ray.get_actor(config.directory_name(), namespace=config.namespace)
    host = await directory.place.remote(command.thread_id)
    if host is None:
        return refused(OVERLOADED, "no host capacity")
    handle = ray.get_actor(host, namespace=config.namespace)
    replies: list[OfferReply] = await handle.submit_offers.remote([command])
    if isinstance(replies[0], Refused):  # nothing was made: the thread is not placed
        await directory.release.remote(command.thread_id, host)
    return replies[0]


async def send_offers(config: ClusterConfig, host: str, commands: list[OfferCommand]) -> None:
    """Deliver offer commands (invalidations) to the desk of another host; if that host is
    gone, to wherever the directory says each offer's thread lives now."""
    try:
        handle = ray.get_actor(host, namespace=config.namespace)
    except ValueError:
        directory = ray.get_actor(config.directory_name(), namespace=config.namespace)
        for command in commands:
            name = await directory.locate.remote(command.thread_id)
            if name is not None:
                desk = ray.get_actor(name, namespace=config.namespace)
                await desk.submit_offers.remote([command])
        return
    await handle.submit_offers.remote(commands)
