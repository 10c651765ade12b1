"""A real multi-node Ray cluster on this machine, run the way `cluster.yaml` runs one.

Each node is a `ray start --block` process of its own (its own raylet, object store and
workers) on its own loopback address (127.0.0.2, .3, ...), with one CPU, a small object store
and a custom resource naming it (`ece_node_<i>`); node 0 is the head. The store is
MongoDB: mongoeco's wire server in a process of its own (`testkit.mongo_wire`), or a real
MongoDB when `ECE_TEST_MONGODB_URI` is set (then every cluster gets a database of its own,
dropped by `stop()`).
Every node runs one gateway, `ece serve` joining with `ECE_RAY_ADDRESS`, `ECE_MONGODB_URI` and
a shared `ECE_SECRET` / `ECE_PROVENANCE_KEY`, as `cluster.yaml`'s start commands do.

The head's GCS notices a dead node within about two seconds (`HEALTH_CHECK`; Ray's default
is about fifteen).

Usage::

    with Cluster(Path(tmp), workers=2, env={"ECE_AUCTIONS_PER_ACTOR": "2"}) as cluster:
        cluster.nodes[1].node_id          # Ray node id (hex) of worker 1
        cluster.nodes[1].gateway.base     # http://127.0.0.1:PORT of its gateway
        cluster.gateways                  # the live gateways' Managed processes
        cluster.ece("status", "--json")   # any `ece` command, joined to this cluster
        cluster.kill_node(1)              # SIGKILL its raylet and every process on it
        cluster.add_node()                # a node that joins later (with its gateway)

Every process is ours and is stopped by pid (testkit.processes), never by name. They run in
sessions of their own, so a test process killed with SIGKILL leaves them behind: `stop()` (or
the `with` block) is the only cleanup.

Several raylets share this machine, and Ray attaches a driver to the head's raylet when it
finds more than one here; each gateway is told its own node's address (`ECE_RAY_NODE_IP`),
so its Ray client sits on its node's raylet, as on separate machines, and dies with it.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from pymongo import MongoClient
from pymongo.errors import PyMongoError

from gateway.cli import several_nodes_here, workers_at_normal_priority
from testkit.processes import MANY_USERS, ROOT, Managed, free_port, start_ece

MONGO_URI_ENV = "ECE_TEST_MONGODB_URI"
RAY = str(Path(sys.executable).with_name("ray"))
# The head's GCS probes every raylet this often and declares it dead after this many failed
# probes in a row (Ray's defaults: 3000 ms, 10000 ms, 5, i.e. about 15 s).
HEALTH_CHECK = {
    "RAY_health_check_period_ms": "500",
    "RAY_health_check_timeout_ms": "1000",
    "RAY_health_check_failure_threshold": "3",
}
RAY_ENV = {
    **several_nodes_here(),  # multi-node allowed (prepare_environment turns it off)
    **workers_at_normal_priority(),  # the hosts (workers) not behind the gateways
    "RAY_AUTH_MODE": "disabled",
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0",  # stop() tears down: nothing to drain
    **HEALTH_CHECK,
}
_URI = re.compile(r"MONGODB_URI=(\S+)")
log = logging.getLogger(__name__)


def with_database(uri: str, db: str) -> str:
    """The same server, database `db` (its query string kept)."""
    scheme, _, rest = uri.partition("://")
    host, _, tail = rest.partition("/")
    query = tail.split("?", 1)[1] if "?" in tail else ""
    return f"{scheme}://{host}/{db}" + (f"?{query}" if query else "")


def node_ip(index: int) -> str:
    return f"127.0.0.{2 + index}"


def resource_of(index: int) -> str:
    """The custom resource only node `index` has (one unit of it)."""
    return f"ece_node_{index}"


@dataclass
class Node:
    index: int
    ip: str
    ray: Managed  # the `ray start --block` process; the raylet and workers descend from it
    node_id: str
    gateway: Managed | None = None
    alive: bool = True
    killed: list[psutil.Process] = field(default_factory=list)

    @property
    def resource(self) -> str:
        return resource_of(self.index)


class Cluster:
    def __init__(self, workdir: Path, workers: int = 2, env: Mapping[str, str] | None = None,
                 gateways: bool = True) -> None:
        """`env`: settings for every gateway (over the harness's own: no analytics, no demo
        data, limits raised for one machine playing many users)."""
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.workers = workers
        self.with_gateways = gateways
        # Unix socket paths must stay short: the Ray session lives under /tmp, not tmp_path.
        self.ray_dir = Path(tempfile.mkdtemp(prefix="ece-ray-", dir="/tmp"))
        self.port = free_port()
        self.address = f"{node_ip(0)}:{self.port}"
        self.nodes: list[Node] = []
        self.mongo: Managed | None = None
        self.mongo_uri = ""
        self.database: str | None = None  # ours to drop, on a real MongoDB (MONGO_URI_ENV)
        self.settings: dict[str, str] = {
            "ECE_SECRET": secrets.token_urlsafe(32),
            "ECE_PROVENANCE_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
            "ECE_ANALYTICS": "0",
            "ECE_LOG_LEVEL": "INFO",
            **MANY_USERS,
            **(env or {}),
        }

    # ---- life cycle ------------------------------------------------------------------------

    def start(self) -> Cluster:
        try:
            self._start_store()
            for _ in range(self.workers + 1):
                self._start_node()
            if self.with_gateways:
                for node in self.nodes:
                    self.start_gateway(node.index)
                for node in self.nodes:
                    self.wait_gateway(node.index)
        except BaseException:
            self.stop()
            raise
        return self

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop every gateway, then every node (workers first), then the store (on a real
        MongoDB: drop this cluster's database)."""
        for node in self.nodes:
            if node.gateway is not None:
                node.gateway.stop(grace=15)
        for node in reversed(self.nodes):
            node.ray.stop(grace=15)
        if self.mongo is not None:
            self.mongo.stop(grace=5)
        if self.database is not None:
            self._drop_database(self.database)
            self.database = None
        shutil.rmtree(self.ray_dir, ignore_errors=True)

    # ---- pieces ----------------------------------------------------------------------------

    @property
    def env(self) -> dict[str, str]:
        """What a process joining this cluster as an ECE gateway or `ece` command needs."""
        return {**RAY_ENV, **self.settings, "ECE_RAY_ADDRESS": self.address,
                "ECE_MONGODB_URI": self.mongo_uri}

    @property
    def gateways(self) -> list[Managed]:
        """The gateways of the live nodes."""
        return [n.gateway for n in self.nodes if n.alive and n.gateway is not None]

    @property
    def node_ids(self) -> list[str]:
        return [n.node_id for n in self.nodes]

    def _drop_database(self, name: str) -> None:
        """Drop `name` on the real MongoDB; a failure is logged, never raised (cleanup)."""
        try:
            with MongoClient(self.mongo_uri, serverSelectionTimeoutMS=5000,
                                     connectTimeoutMS=5000, timeoutMS=10000) as client:
                client.drop_database(name)
        except PyMongoError as exc:
            log.warning("could not drop test database %s: %s", name, exc)

    def _start_store(self) -> None:
        real = os.environ.get(MONGO_URI_ENV)
        if real:
            self.database = f"ece_cluster_{secrets.token_hex(4)}"
            self.mongo_uri = with_database(real, self.database)
            return
        port = free_port()
        _fresh(self.workdir / "mongo.log")
        self.mongo = Managed("mongo", [sys.executable, "-m", "testkit.mongo_wire", "--port",
                                       str(port)], {}, self.workdir / "mongo.log", port)
        deadline = time.monotonic() + 30
        while not (found := _URI.search(self.mongo.log_tail(10_000))):
            if self.mongo.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mongo wire server did not start:\n{self.mongo.log_tail()}")
            time.sleep(0.1)
        self.mongo_uri = with_database(found.group(1), "ece")

    def _start_node(self) -> Node:
        index = len(self.nodes)
        ip = node_ip(index)
        argv = [RAY, "start", "--block", f"--node-ip-address={ip}", "--num-cpus=1",
                "--object-store-memory=80000000", "--disable-usage-stats",
                f"--resources={json.dumps({resource_of(index): 1})}",
                f"--dashboard-agent-listen-port={free_port()}",
                f"--metrics-export-port={free_port()}",
                f"--runtime-env-agent-port={free_port()}"]
        if index == 0:
            argv += ["--head", f"--port={self.port}", "--include-dashboard=false",
                     f"--dashboard-port={free_port()}",
                     f"--ray-client-server-port={free_port()}",
                     f"--temp-dir={self.ray_dir}"]
        else:
            argv += [f"--address={self.address}"]
        for attempt in range(3):  # on a loaded machine a join can time out: try again
            log = _fresh(self.workdir / f"node{index}.log")
            proc = Managed(f"node{index}", argv, RAY_ENV, log, self.port)
            try:
                node = Node(index, ip, proc, _wait_node_id(proc))
                break
            except RuntimeError:
                proc.stop(grace=10)
                if attempt == 2 or index == 0:
                    raise
        self.nodes.append(node)
        return node

    def add_node(self, gateway: bool = True) -> Node:
        """A worker node that joins now (and its gateway, ready, unless `gateway` is False)."""
        node = self._start_node()
        if gateway:
            self.start_gateway(node.index)
            self.wait_gateway(node.index)
        return node

    def start_gateway(self, index: int, **env: str) -> Managed:
        """`ece serve` for node `index` (not waited for: `wait_gateway`)."""
        node = self.nodes[index]
        data = self.workdir / f"gateway{index}"
        node.gateway = start_ece(_fresh(self.workdir / f"gateway{index}.log"),
                                 {**self.env, "ECE_DATA_DIR": str(data),
                                  "ECE_RAY_NODE_IP": node.ip, **env},
                                 name=f"gateway{index}")
        return node.gateway

    def wait_gateway(self, index: int, timeout: float = 180.0) -> float:
        gateway = self.nodes[index].gateway
        assert gateway is not None
        return gateway.wait_ready(timeout)

    def ece(self, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        """Run `ece ARGS` joined to this cluster (e.g. `status --json`); never raises on a
        non-zero exit: look at `returncode`."""
        return subprocess.run([sys.executable, "-m", "gateway.cli", *args], cwd=ROOT,
                              env={**os.environ, **self.env}, capture_output=True, text=True,
                              timeout=timeout, check=False)

    def status(self) -> dict:
        """`ece status --json`, parsed (whatever its exit code)."""
        done = self.ece("status", "--json", "--sample", "0.2")
        try:
            return json.loads(done.stdout)
        except json.JSONDecodeError as exc:
            raise RuntimeError(f"ece status: {done.returncode}\n{done.stdout}\n{done.stderr}"
                               ) from exc

    # ---- failure ---------------------------------------------------------------------------

    def kill_node(self, index: int) -> float:
        """SIGKILL node `index` this instant, as a power cut would: its raylet, object store,
        agents and every worker and actor on it, and its gateway. Returns time.monotonic()
        of the kill. Never the head (index 0): the cluster's GCS lives there."""
        if index == 0:
            raise ValueError("node 0 is the head; kill a worker node")
        node = self.nodes[index]
        leaders = [m for m in (node.ray, node.gateway) if m is not None]
        procs = [p for m in leaders for p in [_proc(m.pid), *m.descendants()] if p is not None]
        for proc in procs:  # stop first: nothing is orphaned or restarted meanwhile
            with contextlib.suppress(psutil.Error):
                proc.suspend()
        node.alive = False
        at = time.monotonic()
        for proc in reversed(procs):
            with contextlib.suppress(psutil.Error):
                proc.kill()
        for managed in leaders:
            managed.kill()
        psutil.wait_procs(procs, timeout=10)
        node.killed = procs
        return at


def _fresh(log: Path) -> Path:
    """`log`, emptied: what is searched in it must come from this start."""
    log.unlink(missing_ok=True)
    return log


def _proc(pid: int) -> psutil.Process | None:
    try:
        return psutil.Process(pid)
    except psutil.Error:
        return None


def _wait_node_id(node: Managed, timeout: float = 120.0) -> str:
    """The node id of the raylet `ray start` started, once it is up."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if node.proc.poll() is not None:
            raise RuntimeError(f"{node.name} exited:\n{node.log_tail()}")
        if "Ray runtime started" in node.log_tail(20_000):
            for child in node.descendants():
                with contextlib.suppress(psutil.Error):
                    for arg in child.cmdline():
                        if arg.startswith("--node_id="):
                            node.remember_descendants()
                            return arg.split("=", 1)[1]
        time.sleep(0.2)
    raise RuntimeError(f"{node.name} not up after {timeout:.0f}s:\n{node.log_tail()}")
