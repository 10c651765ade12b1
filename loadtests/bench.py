"""ECE performance benchmark: `python -m loadtests.bench [--quick] [--out PATH]`.

One run measures, on this machine:

1. the limits: a bare aiohttp WebSocket echo server driven by the same generator, and the
   `market/` rules engine alone (in-process, no I/O);
2. end to end: K English auctions x B bidders x W watchers; saturating bids/s (closed loop),
   bid->ack and bid->event latency, then the same latencies at half that rate (open loop);
3. the baseline (ECE_BATCHING=0: the gateway sends one Ray call per bid; nothing else
   changes) on the same workload;
4. fan-out: one auction, many watchers, event deliveries/s; and the hot auction
   (loadtests/stages_hot.py): one auction, 200 bidders, its serial limit in bids/s;
5. footprint: gateway RSS per idle WebSocket; host memory per live auction at the default
   hosting (ECE_AUCTIONS_PER_ACTOR=500) and at one auction per actor;
6. durability cost: the SQLite file store against the in-memory store (ECE_STORE=memory:NAME);
7. close lag: N auctions closing in the same second on one host, how late each close is
   durable and published (the host core in-process on a SQLite file, no Ray, no gateway);
8. trade offers: accepted swaps per second end to end, and accept->settled latency;
9. analytics (loadtests/stages_analytics.py): projection ingest, index rebuild, the card
   history route at a fixed rate, and the bid path with the projections busy vs off;
10. portfolios (loadtests/stages_portfolio.py): GET /api/portfolio at a fixed rate (1,000
   holdings, 10,000 users, 1,000,000 sales stored), and the bid path with the portfolio
   actors busy vs off (ECE_PORTFOLIOS); and (loadtests/stages_portfolio_push.py) a sale
   settled -> each holder's `portfolio` event, 10,000 users holding the card;
11. processes (loadtests/stages_processes.py): capacity with 1 and 2 gateway processes
   (ECE_GATEWAYS, reuse_port) and 1, 2 and 4 auction host actors;
12. fan-out across gateways (loadtests/stages_fanout_gateways.py): events delivered to the
   gateways over events their sockets needed, three gateways of one instance;
13. node loss (loadtests/stages_cluster.py, full runs only): a three-node Ray cluster of its
   own, a worker node SIGKILLed under bidding, time to serve its auctions again.

Servers run as subprocesses (own sessions, stopped by pid/pgid). The first one starts Ray; the
others join it (ECE_RAY_ADDRESS) under their own ECE_INSTANCE, each with its own data dir.
Results: a table on stdout and JSON in loadtests/results/latest.json (quick.json with --quick).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import psutil

from loadtests import gen, report
from loadtests.footprint import auctions_stage, idle_stage
from loadtests.joined import Joined
from loadtests.params import Params
from loadtests.servers import ANOMALIES, start_server
from loadtests.stages_analytics import ANALYTICS_STAGES, add_to_report, index_stage, ingest_stage
from loadtests.stages_analytics_server import bidpath_stage, history_stage
from loadtests.stages_capacity import add_to_report as add_capacity_report
from loadtests.stages_capacity import capacity_stage
from loadtests.stages_cluster import FIGURES as NODE_LOSS_FIGURES
from loadtests.stages_cluster import STAGE as NODE_LOSS_STAGE
from loadtests.stages_cluster import node_loss_stage
from loadtests.stages_fanout_gateways import FIGURES as FANOUT_GATEWAYS_FIGURES
from loadtests.stages_fanout_gateways import STAGE as FANOUT_GATEWAYS_STAGE
from loadtests.stages_fanout_gateways import fanout_gateways_stage
from loadtests.stages_hot import FIGURES as HOT_FIGURES
from loadtests.stages_hot import STAGE as HOT_STAGE
from loadtests.stages_hot import hot_auction_stage
from loadtests.stages_local import close_lag_stage, echo_limit, rules_engine
from loadtests.stages_offers import offers_stage
from loadtests.stages_portfolio import PORTFOLIO_STAGES, add_portfolio_report
from loadtests.stages_portfolio import bidpath_stage as portfolio_bidpath_stage
from loadtests.stages_portfolio import read_stage as portfolio_read_stage
from loadtests.stages_portfolio_push import STAGE as PUSH_STAGE
from loadtests.stages_portfolio_push import add_push_report, push_stage
from loadtests.stages_processes import SERVERS as PROCESS_SERVERS
from loadtests.stages_processes import STAGE as PROCESSES_STAGE
from loadtests.stages_processes import add_processes_report, processes_stage, server_specs
from loadtests.stages_server import e2e_stage, fanout_stage, ray_calls
from storage.sqlite_schema import FILE_SUFFIXES
from testkit.processes import ROOT, Managed, ray_address_of

# The rest of the harness: params.py (the sizes), servers.py (starting the servers, the set-up
# client), workload.py (accounts, auctions and generator jobs), and the stages: stages_local.py
# (no ECE server), stages_server.py (against ECE servers), footprint.py (memory).
RESULTS = ROOT / "loadtests" / "results"
# Stages the report knows, plus those that only add a figure of their own.
STAGES = (*report.STAGES, "close_lag", *ANALYTICS_STAGES, PUSH_STAGE, *PORTFOLIO_STAGES,
          "capacity", HOT_STAGE, PROCESSES_STAGE, FANOUT_GATEWAYS_STAGE, NODE_LOSS_STAGE)
# Stages whose figures go into the report as they are: (stage, report rows).
SELF_REPORTING = ((HOT_STAGE, HOT_FIGURES), (FANOUT_GATEWAYS_STAGE, FANOUT_GATEWAYS_FIGURES),
                  (NODE_LOSS_STAGE, NODE_LOSS_FIGURES))
# A three-node cluster of its own takes a minute or two: full runs only, or --only node_loss.
NOT_QUICK = (NODE_LOSS_STAGE,)


def machine_info(tmp: Path) -> dict[str, Any]:
    import ray

    fs = "?"
    with contextlib.suppress(Exception):
        fs = subprocess.run(["df", "-T", str(tmp)], capture_output=True, text=True,
                            timeout=5).stdout.splitlines()[-1].split()[1]
    return {
        "cpu_count": os.cpu_count(), "memory_bytes": psutil.virtual_memory().total,
        "memory_available_bytes": psutil.virtual_memory().available,
        "python": platform.python_version(), "ray": ray.__version__,
        "aiohttp": aiohttp.__version__, "platform": platform.platform(),
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
        "data_dir_filesystem": fs, "nofile": gen.raise_nofile(),
    }


class TimeLimit(Exception):
    pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtests.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="every stage but node_loss, small, < 7 min")
    parser.add_argument("--out", type=Path, help="JSON output (default results/latest.json)")
    parser.add_argument("--k", type=int, help="live auctions in the end-to-end workload")
    parser.add_argument("--b", type=int, help="bidder sockets per auction")
    parser.add_argument("--w", type=int, help="watcher sockets per auction")
    parser.add_argument("--window", type=int, default=2, help="outstanding bids per bidder")
    parser.add_argument("--procs", type=int, default=2, help="generator processes")
    parser.add_argument("--encoding", choices=("json", "msgpack"), default="json")
    parser.add_argument("--measure", type=float, help="seconds per throughput window")
    parser.add_argument("--profile", type=Path, help="py-spy the gateway and hosts into DIR")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (server logs)")
    parser.add_argument("--no-pin", action="store_true",
                        help="capacity: leave servers and generators on every CPU")
    parser.add_argument("--only", help=f"comma-separated subset of: {', '.join(STAGES)}")
    args = parser.parse_args(argv)

    params = Params.build(args)
    out_path = args.out or RESULTS / ("quick.json" if params.quick else "latest.json")
    t_start = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="ece-bench-"))
    bench_id = f"{os.getpid()}{int(time.time()) % 100000}"
    mem_name = f"bench{bench_id}"
    # The servers' private Ray keeps token authentication on; the bench makes up the token
    # for this run and hands it to the servers it starts (the head and those joining it).
    ray_env = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    machine = machine_info(tmp)
    stages: dict[str, Any] = {}
    costs: dict[str, Any] = {}
    errors: list[str] = []
    servers: list[Managed] = []
    joined: Joined | None = None

    stopped: list[str] = []  # why the run was stopped (time limit, signal), once it is

    def stop_run(reason: str) -> None:
        """Raise TimeLimit here, or, inside a stage's event loop (which would log an exception
        raised in its callbacks and carry on), cancel the loop's tasks: the stage ends with
        CancelledError, which `stage` turns into the TimeLimit."""
        stopped.append(reason)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise TimeLimit(reason) from None
        for task in asyncio.all_tasks(loop):
            task.cancel()

    def on_alarm(signum, frame):
        stop_run(f"time limit {params.time_limit_s:.0f}s reached")

    def on_term(signum, frame):
        stop_run(f"stopped by signal {signum}")

    signal.signal(signal.SIGALRM, on_alarm)
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    signal.alarm(int(params.time_limit_s))

    wanted = set(STAGES) - (set(NOT_QUICK) if params.quick else set())
    if args.only:
        wanted = {name.strip() for name in args.only.split(",")}
        unknown = wanted - set(STAGES)
        if unknown:
            parser.error(f"unknown stage(s): {', '.join(sorted(unknown))}")

    def stage(name: str, fn, *a, **kw) -> None:
        if name not in wanted:
            return
        t = time.monotonic()
        print(f"[{time.monotonic() - t_start:6.1f}s] {name} ...", flush=True)
        try:
            stages[name] = fn(*a, **kw)
            stages[name]["elapsed_s"] = round(time.monotonic() - t, 1)
        except TimeLimit:
            raise
        except (Exception, asyncio.CancelledError) as exc:
            if stopped:  # cancelled by stop_run, or failed once it cancelled the stage
                raise TimeLimit(stopped[0]) from exc
            if isinstance(exc, asyncio.CancelledError):
                raise
            errors.append(f"{name}: {exc!r}")
            traceback.print_exc()
            stages[name] = {"error": repr(exc), "figures": {}}

    try:
        stage("rules_engine", rules_engine, params.rules_s, params.auctions, params.bidders)
        stage("echo", echo_limit, params, tmp)
        stage("close_lag", close_lag_stage, params, tmp)
        stage(NODE_LOSS_STAGE, node_loss_stage, params, tmp)
        stage("analytics_ingest", ingest_stage, params, tmp)
        stage("analytics_index", index_stage, params)
        if not wanted - {"rules_engine", "echo", "close_lag", "analytics_ingest",
                         "analytics_index", NODE_LOSS_STAGE}:
            raise StopIteration  # nothing needs a server

        # Servers: the first starts Ray; the others join it, each its own instance and data.
        print(f"[{time.monotonic() - t_start:6.1f}s] starting servers ...", flush=True)
        main_srv = start_server("main", tmp, {"ECE_INSTANCE": f"b{bench_id}main", **ray_env})
        servers.append(main_srv)
        costs["ray_head_and_gateway_start_s"] = round(main_srv.wait_ready(180), 2)
        ray_address = ray_address_of(main_srv)
        joined_specs = {
            "inmemory": {"ECE_STORE": f"memory:{mem_name}"},
            "naive": {"ECE_BATCHING": "0"},
            # The buying-power check's cost: two joined servers differing in that one setting.
            "checked": {"ECE_BALANCE_CHECK": "1"},
            "nocheck": {"ECE_BALANCE_CHECK": "0"},
            "hosted": {},
            "per_actor": {"ECE_AUCTIONS_PER_ACTOR": "1"},
            # The analytics stages: the history route's store (filled by the stage), and
            # two gateways differing in ECE_ANALYTICS only.
            "history": {"ECE_ANALYTICS": "0"},
            "analytics_on": {"ECE_ANALYTICS": "1"},
            "analytics_off": {"ECE_ANALYTICS": "0"},
            # Sale -> holders' portfolio events: its own projections and 10,000 holders.
            "pushed": {"ECE_ANALYTICS": "1"},
            # GET /api/portfolio's store (filled by the stage; nothing folds it), and two
            # gateways differing in ECE_PORTFOLIOS only.
            "pfread": {"ECE_ANALYTICS": "0"},
            "portfolios_on": {"ECE_ANALYTICS": "1", "ECE_PORTFOLIOS": "1"},
            "portfolios_off": {"ECE_ANALYTICS": "1", "ECE_PORTFOLIOS": "0"},
        }
        needs = {"inmemory": "inmemory", "naive": "baseline", "checked": "checked",
                 "nocheck": "unchecked",
                 "hosted": "auctions_hosted",
                 "per_actor": "auctions_per_actor",
                 "history": "analytics_history", "analytics_on": "analytics_bidpath",
                 "analytics_off": "analytics_bidpath", "pushed": PUSH_STAGE,
                 "pfread": "portfolio_read", "portfolios_on": "portfolio_bidpath",
                 "portfolios_off": "portfolio_bidpath"}
        # Stage processes: two servers differing in ECE_GATEWAYS only.
        joined_specs.update(server_specs(params))
        needs.update({name: PROCESSES_STAGE for name in PROCESS_SERVERS.values()})
        specs = {name: env for name, env in joined_specs.items()
                 if needs[name] in wanted or (name == "naive" and "capacity" in wanted)}

        def instance_of(name: str) -> str:
            return f"b{bench_id}{name}"

        def start_joined(name: str, env: dict[str, str]) -> Managed:
            return start_server(name, tmp, {"ECE_RAY_ADDRESS": ray_address,
                                            "ECE_INSTANCE": instance_of(name), **ray_env, **env})

        joined = Joined(specs, instance_of, start_joined, ray_address, ray_env, costs, errors)
        costs["ray_address"] = ray_address

        stage("ray_calls", ray_calls, params, ray_address, ray_env, tmp)
        stage("idle_connections", idle_stage, params, main_srv)
        stage("e2e", e2e_stage, params, main_srv, main_srv, "e2e", True, args.profile)
        stage("checked", e2e_stage, params, joined.use("checked")[0], main_srv, "checked",
              False, args.profile)
        stage("unchecked", e2e_stage, params, joined.use("nocheck")[0], main_srv, "unchecked",
              False, args.profile)
        joined.use()  # the next stages use the head's server only
        stage("fanout", fanout_stage, params, main_srv, main_srv)
        stage(FANOUT_GATEWAYS_STAGE, fanout_gateways_stage, params.quick, tmp, ray_env,
              ray_address, f"b{bench_id}fanoutgw")
        stage(HOT_STAGE, hot_auction_stage, params, main_srv, main_srv)
        stage("offers", offers_stage, params, main_srv)
        stage("inmemory", e2e_stage, params, joined.use("inmemory")[0], main_srv, "inmemory",
              False, args.profile)
        stage("baseline", e2e_stage, params, joined.use("naive")[0], main_srv, "baseline", False,
              args.profile)
        stage("capacity", capacity_stage, params, main_srv, joined.use("naive")[0], main_srv, tmp)
        stage(PROCESSES_STAGE, processes_stage, params,
              dict(zip(PROCESS_SERVERS, joined.use(*PROCESS_SERVERS.values()), strict=True)),
              main_srv,
              stages.get("capacity", {}).get("figures", {}).get("capacity_bids_per_s"))
        stage("auctions_hosted", auctions_stage, params, joined.use("hosted")[0], main_srv, 500,
              params.auctions_default, 120.0 if not params.quick else 20.0)
        stage("auctions_per_actor", auctions_stage, params, joined.use("per_actor")[0], main_srv,
              1, params.auctions_per_actor_max, params.per_actor_budget_s)
        stage(PUSH_STAGE, push_stage, params, joined.use("pushed")[0])
        stage("portfolio_read", portfolio_read_stage, params, joined.use("pfread")[0])
        stage("portfolio_bidpath", portfolio_bidpath_stage, params,
              *joined.use("portfolios_on", "portfolios_off"), main_srv)
        # Last: the bid-path stage leaves its analytics actor folding after its window.
        stage("analytics_history", history_stage, params, joined.use("history")[0])
        stage("analytics_bidpath", bidpath_stage, params,
              *joined.use("analytics_on", "analytics_off"), main_srv)
    except StopIteration:
        pass
    except TimeLimit as exc:
        errors.append(str(exc))
    except Exception as exc:
        errors.append(f"setup: {exc!r}")
        traceback.print_exc()
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # cleaning up: finish it
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        t_stop = time.monotonic()
        if joined is not None:
            joined.stop_all()
        for srv in reversed(servers):  # the Ray head's server last
            try:
                srv.stop(grace=20)
            except Exception as exc:
                errors.append(f"stop {srv.name}: {exc!r}")
        costs["stop_all_s"] = round(time.monotonic() - t_stop, 2)
        for suffix in FILE_SUFFIXES:
            with contextlib.suppress(OSError):
                os.remove(f"/dev/shm/ece-{mem_name}.db{suffix}")
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    machine["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    elapsed = time.monotonic() - t_start
    result = report.build(params=asdict(params), machine=machine, stages=stages, costs=costs,
                          errors=errors, elapsed_s=elapsed)
    report.add_close_lag(result, stages, wanted, params.close_lag_auctions)
    add_to_report(result, stages, wanted, params)
    add_push_report(result, stages, wanted)
    add_capacity_report(result, stages, wanted)
    add_processes_report(result, stages, wanted)
    for name, rows in SELF_REPORTING:
        report.add_stage(result, stages, wanted, name, rows)
    add_portfolio_report(result, stages, wanted, params)
    result["setup_anomalies"] = {k: {"count": len(v), "first": v[0]}
                                 for k, v in ANOMALIES.items()}
    result["generated_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(result, indent=2, sort_keys=False) + "\n")
    print(report.table(result))
    print(f"\nwrote {out_path} in {elapsed:.0f}s")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
