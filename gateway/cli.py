"""`ece serve`: the composition root. Starts (or joins) Ray, the actors and the gateway.
`ece seed` and `ece rebuild analytics|portfolio` are the operator's long commands
(gateway.maintenance).

Ray reads some settings from the environment when it is imported, so `main` sets them first
and everything that imports Ray (the actors, the gateway app) is imported after, inside the
functions that need it. Importing this module changes nothing and does not import Ray.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import signal
import sys
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import uvloop

from gateway import status as ops
from gateway.config import Settings

log = logging.getLogger("ece")


def workers_at_normal_priority() -> dict[str, str]:
    """The environment of a Ray node whose workers run at nice 0, not Ray's default 15.

    The auction hosts are Ray workers and the bid path: at nice 15 they lost every contended
    CPU to the gateway and Ray's own daemons (nice 0), and a bid waited behind them. In one
    A/B of the capacity stage the knee went from 276 to 1,139 bids/s with this alone
    (docs/performance/history.md, "Four fixes"). The projection actors lower themselves to 19
    (`actors.analytics.actor.lower_priority`). A node started with `ray start` needs it in
    that command's environment (cluster.yaml, testkit.cluster)."""
    return {"RAY_worker_niceness": "0"}


def prepare_environment(env: MutableMapping[str, str] = os.environ,
                        home: Path | None = None) -> None:
    """What Ray must find in the environment when it is imported (never overriding it)."""
    address = env.get("ECE_RAY_ADDRESS", "")
    if not address or address.startswith(("127.", "localhost")):
        # A private single-node Ray (tests, `make run`, gateways joining it) stays on
        # loopback; joining a real cluster leaves it alone.
        env.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        for name, value in workers_at_normal_priority().items():
            env.setdefault(name, value)
    if address and ((home or Path.home()) / ".ray" / "auth_token").exists():
        # A local Ray started by `ray.init()` requires its token; a joining driver must send it.
        env.setdefault("RAY_AUTH_MODE", "token")


def several_nodes_here() -> dict[str, str]:
    """Ray's environment for several nodes on this one machine, each on its own loopback
    address (the multi-node tests, testkit.cluster): the multi-node mode a private Ray
    (prepare_environment) turns off."""
    return {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "1"}


def init_ray(settings: Settings) -> None:
    import ray

    if ray.is_initialized():
        return
    common: dict[str, Any] = {"namespace": "ece", "log_to_driver": False,
                              "configure_logging": False}
    if settings.ray_address:
        if settings.ray_node_ip:  # this machine's node, not the head's (testkit.cluster)
            common["_node_ip_address"] = settings.ray_node_ip
        ray.init(address=settings.ray_address, **common)
    else:
        # A private single-node cluster; only loopback, as these machines require.
        ray.init(
            num_cpus=settings.ray_cpus,
            include_dashboard=False,
            **common,
        )


async def serve(settings: Settings, index: int = 0) -> int:
    """Serve until SIGTERM/SIGINT. `index` > 0: one of the processes the first one started
    (gateway.processes). Returns the exit code: 1 when a gateway process ended on its own."""
    import ray
    from aiohttp import web

    from actors.directory import get_or_create_directory
    from gateway.app import build_app
    from gateway.limits import process_share
    from gateway.processes import SERVING, Children, lifeline
    from gateway.state import GATEWAY

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    init_ray(settings)
    gc.freeze()  # start-up objects (Ray, aiohttp, modules) never need scanning again
    gc.set_threshold(50_000, 20, 50)
    directory = get_or_create_directory(settings.cluster())
    await directory.ready.remote()  # hosts recovered, overdue auctions closing
    if settings.analytics:
        from actors.analytics.actor import get_or_create_analytics
        from actors.portfolio.actor import get_or_create_portfolios

        await get_or_create_analytics(settings.cluster()).ready.remote()
        for portfolio in (get_or_create_portfolios(settings.cluster())
                          if settings.portfolios else []):
            await portfolio.ready.remote()
    app = build_app(process_share(settings))  # this process's share of the limits
    runner = web.AppRunner(app, shutdown_timeout=10.0, access_log=None)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    children = Children()
    if index:
        lifeline(loop, stop.set)  # the first process gone: shut down
    elif settings.gateways > 1:
        try:  # the others first: when the port answers, every process serves
            await children.start(settings.gateways - 1,
                                 ray.get_runtime_context().gcs_address, stop.set)
        except RuntimeError as exc:
            log.error("%s; stopping", exc)
            await children.wait()
            await runner.cleanup()
            return 1
    site = web.TCPSite(runner, settings.host, settings.port, reuse_port=settings.gateways > 1)
    await site.start()
    url = f"http://{settings.host}:{settings.port}/"
    if index:
        print(f"{SERVING} {index + 1} of {settings.gateways} (pid {os.getpid()}) is serving "
              f"on {url}", flush=True)
    else:
        print(f"ECE is serving on {url}", flush=True)
        context = ray.get_runtime_context()
        print(f"ECE_RAY_ADDRESS={context.gcs_address} (node {context.get_node_id()})",
              flush=True)
    demo = None
    if settings.seed and not index:
        from gateway.seed import run_demo

        demo = asyncio.create_task(run_demo(url, settings, app[GATEWAY]))
    await stop.wait()
    print("ECE shutting down", flush=True)
    children.terminate()  # they drain their sockets meanwhile
    if demo is not None:
        demo.cancel()
    gateway = app[GATEWAY]
    # Let commands already sent to hosts finish: their writes are flushed and answered.
    for _ in range(100):
        if gateway.router.inflight() == 0:
            break
        await asyncio.sleep(0.05)
    await runner.cleanup()  # closes sockets with 1001 (going away)
    await children.wait()
    return 1 if children.failed else 0


def _process_problems(settings: Settings) -> list[str]:
    """Why ECE_GATEWAYS processes cannot serve with these settings (empty: they can)."""
    from gateway.limits import share_problems

    if settings.gateways == 1:
        return []
    port = ["ECE_PORT=0 with ECE_GATEWAYS > 1: the processes must share a port"
            ] if settings.port == 0 else []
    return port + share_problems(settings)


def _settings() -> Settings | None:
    try:
        return Settings.from_env()
    except ValueError as exc:
        print(f"ece: bad setting: {exc}", file=sys.stderr)
        return None


def _maintenance(args: argparse.Namespace) -> int:
    from gateway import maintenance

    settings = _settings()
    if settings is None:
        return 2
    logging.basicConfig(level=logging.WARNING)
    if args.command == "seed":
        sales = settings.seed_sales if args.sales is None else max(0, args.sales)
        return maintenance.run(maintenance.seed(settings, sales))
    if args.what == "portfolio":
        return maintenance.run(maintenance.rebuild_portfolio(settings, args.resume))
    return maintenance.run(maintenance.rebuild(settings, args.resume))


def main(argv: list[str] | None = None) -> int:
    prepare_environment()
    parser = argparse.ArgumentParser(prog="ece", description="Elite Card Exchange server")
    sub = parser.add_subparsers(dest="command", required=True)
    serve_cmd = sub.add_parser("serve", help="run the gateway (and a local Ray unless "
                               "ECE_RAY_ADDRESS); ECE_GATEWAYS processes on one port")
    # Internal: one of the processes `ece serve` starts with ECE_GATEWAYS > 1.
    serve_cmd.add_argument("--gateway-process", type=int, default=0, help=argparse.SUPPRESS)
    verify = sub.add_parser("verify-provenance",
                            help="check a token's provenance chain: hashes, signatures, owners")
    verify.add_argument("token_id")
    verify.add_argument("--url", default="http://127.0.0.1:8080",
                        help="the exchange to read the chain from")
    verify.add_argument("--public-key", help="the exchange's public key (base64) you trust; "
                        "default: the one the exchange publishes at /api/tokens/key")
    seed = sub.add_parser("seed", help="add the demo catalog and simulated market history")
    seed.add_argument("--sales", type=int, default=None,
                      help="simulated sales to add (default ECE_SEED_SALES)")
    rebuild = sub.add_parser("rebuild", help="recompute projections from the facts")
    rebuild.add_argument("what", choices=["analytics", "portfolio"])
    rebuild.add_argument("--resume", action="store_true",
                         help="continue an interrupted rebuild instead of starting over")
    status = sub.add_parser("status", help="the cluster's nodes, hosts, projection lag and "
                            "store health; exit 1 when unhealthy, 2 when unreachable")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.add_argument("--max-lag", type=ops.seconds, default=ops.Limits.max_lag_s,
                        help="seconds a projection may be behind (default %(default)s)")
    status.add_argument("--sample", type=ops.seconds, default=1.0,
                        help="seconds between the two samples of the hosts' rates")
    status.add_argument("--join-timeout", type=ops.seconds, default=ops.JOIN_DEADLINE_S,
                        help="seconds to wait for the Ray cluster before exit 2 "
                        "(default %(default)s)")
    drain = sub.add_parser("drain", help="move every auction host off a node (it can leave "
                           "then); exit 1 when refused or a move failed, 2 when unreachable")
    drain.add_argument("node_id", help="the Ray node id, or a unique prefix of it "
                       "(as `ece status` prints)")
    rebalance = sub.add_parser("rebalance", help="move auction hosts to even out live "
                               "auctions over the nodes (e.g. onto a node that joined)")
    for moves in (drain, rebalance):
        moves.add_argument("--json", action="store_true", help="machine-readable output")
        moves.add_argument("--timeout", type=ops.seconds, default=600.0,
                           help="seconds to wait for the moves (default %(default)s)")
        moves.add_argument("--join-timeout", type=ops.seconds, default=ops.JOIN_DEADLINE_S,
                           help="seconds to wait for the Ray cluster before exit 2 "
                           "(default %(default)s)")
    args = parser.parse_args(argv)
    if args.command in ("drain", "rebalance"):
        from gateway import moves as move_ops

        settings = _settings()
        if settings is None:
            return 2
        return move_ops.run(settings, args.command, getattr(args, "node_id", None),
                            args.json, args.timeout, args.join_timeout)
    if args.command == "status":
        settings = _settings()
        if settings is None:
            return 2
        return ops.run(settings, args.json, ops.Limits(max_lag_s=args.max_lag), args.sample,
                       args.join_timeout)
    if args.command in ("seed", "rebuild"):
        return _maintenance(args)
    if args.command == "verify-provenance":
        from gateway.verify import verify_token

        return verify_token(args.url, args.token_id, args.public_key)
    if args.command == "serve":
        settings = _settings()
        if settings is None:
            return 2
        problems = _process_problems(settings)
        if problems:
            print(f"ece: bad setting: {'; '.join(problems)}", file=sys.stderr)
            return 2
        logging.basicConfig(
            level=settings.log_level,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
        try:
            # uvloop: the gateway is an I/O loop first; it makes sockets and frames cheaper.
            return asyncio.run(serve(settings, args.gateway_process),
                               loop_factory=uvloop.new_event_loop)
        finally:
            import ray

            if ray.is_initialized():
                ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
