"""Summarise py-spy "raw" (collapsed stack) profiles: where the busy samples go.

    python -m loadtests.bench --only e2e --profile /tmp/prof      # records the profiles
    python -m loadtests.profile_top /tmp/prof/e2e-saturated-gateway.txt [--top 30]

Samples whose innermost frame is a wait (epoll, a lock or condition, an idle pool thread) are
dropped first, so the percentages are shares of the time the process was doing something.
Frames are grouped by function (file:line dropped) and by package (gateway/, ray, aiohttp ...).
"""

from __future__ import annotations

import argparse
import collections
import re
from pathlib import Path

IDLE_LEAVES = ("EpollSelector.select", "Condition.wait", "Event.wait", "_worker (concurrent",
               "listen_error_messages", "Worker.main_loop", "select (selectors",
               "Queue.get (queue", "PythonGCThread.run", "SimpleQueue.get")
_LINE = re.compile(r"\s*\(([^()]*?):\d+\)$")


def frame_name(frame: str) -> tuple[str, str]:
    """('Function.name (file)', package) without the line number."""
    match = _LINE.search(frame)
    path = match.group(1) if match else ""
    name = _LINE.sub("", frame).strip() or "<native>"
    top = path.split("/")[0] if "/" in path else path
    package = {"gateway": "gateway", "actors": "actors", "market": "market",
               "storage": "storage", "ray": "ray", "aiohttp": "aiohttp",
               "asyncio": "asyncio", "json": "json", "prometheus_client": "prometheus",
               "msgpack": "msgpack", "concurrent": "threads", "threading.py": "threads",
               "sqlite3": "storage"}.get(top, top or "<native>")
    return f"{name} ({path})" if path else name, package


def load(path: Path) -> list[tuple[list[str], int]]:
    stacks = []
    for line in path.read_text().splitlines():
        line = line.rstrip()
        if not line:
            continue
        stack, _, count = line.rpartition(" ")
        if count.isdigit():
            stacks.append((stack.split(";"), int(count)))
    return stacks


def summarise(path: Path, top: int) -> str:
    stacks = load(path)
    total = sum(n for _, n in stacks)
    busy = [(frames, n) for frames, n in stacks
            if not any(frames[-1].startswith(leaf) for leaf in IDLE_LEAVES)]
    busy_total = sum(n for _, n in busy) or 1
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    packages: collections.Counter[str] = collections.Counter()
    for frames, n in busy:
        names = [frame_name(f) for f in frames]
        own[names[-1][0]] += n
        packages[names[-1][1]] += n
        for name in {name for name, _ in names}:
            inclusive[name] += n
    lines = [f"== {path.name}: {total} samples, {busy_total} busy "
             f"({100 * busy_total / max(1, total):.0f}%)",
             "-- busy samples by package of the innermost frame"]
    lines += [f"{100 * n / busy_total:6.1f}%  {name}" for name, n in packages.most_common(12)]
    lines.append("-- innermost frame (self)")
    lines += [f"{100 * n / busy_total:6.1f}%  {name[:110]}" for name, n in own.most_common(top)]
    lines.append("-- inclusive (the function and what it calls)")
    lines += [f"{100 * n / busy_total:6.1f}%  {name[:110]}"
              for name, n in inclusive.most_common(top * 2)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    for path in args.files:
        print(summarise(path, args.top))
        print()


if __name__ == "__main__":
    main()
