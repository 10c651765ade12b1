"""Placement decisions as pure functions of the directory's view: which host a new auction
goes to (`choose_host`), which node a new host goes to (`choose_node`), and where hosts move
when a node drains (`drain_moves`) or the nodes are evened out (`rebalance_moves`)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping


def choose_host(
    load: Mapping[str, int],
    capacity: int,
    next_index: int,
    max_hosts: int,
    host_name: Callable[[int], str],
    started: Collection[str] = (),
) -> str | None:
    """The host for one more auction: the fullest host with room, to pack memory.

    `load` counts live auctions per host (a host may stay there at 0); `started` names hosts
    running without placed auctions (e.g. started to settle finished ones) — not candidates,
    but they count toward `max_hosts`. Ties go to the greatest name. With no room anywhere, a
    new host `host_name(next_index)`, or None when that would exceed `max_hosts`.
    """
    candidates = [(count, name) for name, count in load.items() if count < capacity]
    if candidates:
        return max(candidates)[1]
    if len(load.keys() | set(started)) >= max_hosts:
        return None
    return host_name(next_index)


# ---- nodes: where a host actor runs (a shared store only; the embedded one pins all) --------

Move = tuple[str, str]  # (host name, node it goes to)

# The weight of commands in a node's load: one command/s (a bid, or any command a host
# takes) counts as this many live auctions. From the capacity model (docs/operations.md, a
# 2-core 24 GB node): its memory holds ~120,000 live auctions and its CPU answers ~6,000
# commands/s, so one command/s takes as large a share of a node as ~20 live auctions.
BID_WEIGHT = 20


def placement_load(auctions: int, commands_per_s: float) -> int:
    """The load of a host or a node: its live auctions plus its recent commands/s times
    BID_WEIGHT, in whole auctions (rounded: sums of loads stay exact).

    Non-decreasing in both and strictly increasing in `auctions`, so more of both is more
    load; with equal commands/s, loads are in the order of auctions."""
    return auctions + round(BID_WEIGHT * max(commands_per_s, 0.0))


def choose_node(auctions: Mapping[str, int], hosts: Mapping[str, int],
                draining: Collection[str] = (),
                commands: Mapping[str, float] | None = None) -> str | None:
    """The node for a new host: the alive, not draining node with the least
    `placement_load`, then the fewest live auctions, then the fewest hosts, then the smallest
    id (deterministic). `auctions` names every alive node (0 when empty); `hosts` counts the
    hosts on each and `commands` their recent commands/s (missing: 0). With equal commands/s
    everywhere, this is the fewest auctions, then hosts, then the smallest id. None when no
    node qualifies."""
    rates = commands or {}
    candidates = [(placement_load(count, rates.get(node, 0.0)), count, hosts.get(node, 0),
                   node)
                  for node, count in auctions.items() if node not in draining]
    return min(candidates)[3] if candidates else None


def drain_moves(leaving: Mapping[str, int], nodes: Mapping[str, int],
                draining: Collection[str] = ()) -> list[Move]:
    """Where each host of a leaving node goes: the largest host first, each to the node that
    is least loaded at that moment (greedy longest-processing-time). `leaving` is the load of
    each host to move and `nodes` that of every alive node, in one unit: the directory
    passes `placement_load`, so a drain spreads hosts as new hosts are placed. Empty when no
    node can take them (every other node is draining)."""
    load = {node: size for node, size in nodes.items() if node not in draining}
    if not load:
        return []
    moves: list[Move] = []
    for size, host in sorted(((c, h) for h, c in leaving.items()), reverse=True):
        target = min(load, key=lambda node: (load[node], node))
        moves.append((host, target))
        load[target] += size
    return moves


def rebalance_moves(placed: Mapping[str, Mapping[str, int]],
                    draining: Collection[str] = ()) -> list[Move]:
    """Host moves that even out live auctions over the nodes that are not draining.

    Live auctions, not `placement_load`: a drain or a new host picks among places it must
    choose anyway, but a rebalance move is made for the load alone and costs each auction
    of its host about a second of unavailability; commands/s are a sample of a few seconds
    that changes as auctions near their end, and a plan by them would chase rates that are
    gone once it has run (the next rebalance moving the hosts back).

    `placed`: node -> host -> live auctions (every alive node, empty ones too). Repeatedly
    moves, from the most to the least loaded node, the host whose size is closest to half
    their difference, while that strictly lowers the larger of the two; each move lowers the
    sum of squared node loads, so this ends. At the end no single host move narrows the gap
    between the most and the least loaded node.
    """
    nodes = {node: dict(hosts) for node, hosts in placed.items() if node not in draining}
    moved: dict[str, str] = {}  # host -> its node at the end (a host may move twice)
    while len(nodes) > 1:
        load = {node: sum(hosts.values()) for node, hosts in nodes.items()}
        src = max(nodes, key=lambda node: (load[node], node))
        dst = min(nodes, key=lambda node: (load[node], node))
        gap = load[src] - load[dst]
        # Moving a host of size s leaves max(load[src] - s, load[dst] + s): lower only if
        # 0 < s < gap.
        fits = [(abs(2 * size - gap), host) for host, size in nodes[src].items()
                if 0 < size < gap]
        if not fits:
            break
        host = min(fits)[1]
        nodes[dst][host] = nodes[src].pop(host)
        moved[host] = dst
    was = {host: node for node, hosts in placed.items() for host in hosts}
    return [(host, node) for host, node in moved.items() if was[host] != node]
