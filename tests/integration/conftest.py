"""A local Ray cluster for the whole session, and ECE gateways running in this process."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
import ray
from aiohttp import web

from actors.analytics.actor import get_or_create_analytics
from actors.directory import get_or_create_directory
from actors.portfolio.actor import get_or_create_portfolios
from gateway.app import build_app
from gateway.config import Settings
from gateway.state import GATEWAY, Gateway
from testkit.client import Api, unique

_instances = itertools.count()


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[str]:
    ray.init(num_cpus=2, namespace="ece", include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@dataclass
class Ece:
    base: str
    settings: Settings
    runner: web.AppRunner
    http: aiohttp.ClientSession

    @property
    def api(self) -> Api:
        return Api(self.base, self.http)

    @property
    def gateway(self) -> Gateway:
        return self.runner.app[GATEWAY]


async def start_gateway(settings: Settings) -> web.AppRunner:
    runner = web.AppRunner(build_app(settings), shutdown_timeout=2.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner


def port_of(runner: web.AppRunner) -> int:
    return runner.addresses[0][1]


async def shutdown_instance(settings: Settings) -> None:
    directory = get_or_create_directory(settings.cluster())
    await directory.shutdown.remote()
    ray.kill(directory, no_restart=True)
    cluster = settings.cluster()
    names = [cluster.analytics_name(),
             *(cluster.portfolio_name(i) for i in range(cluster.portfolio_shards))]
    for name in names:
        with contextlib.suppress(ValueError):  # only instances that ran analytics have them
            ray.kill(ray.get_actor(name, namespace="ece"), no_restart=True)


# One test process plays many users from one address: the per-IP and per-user creation limits
# are raised here (tests of those limits set their own).
GENEROUS = {"auth_ip_per_min": 1e6, "auth_ip_burst": 1e5, "auth_user_per_min": 1e6,
            "auth_user_burst": 1e5, "create_per_min": 1e6, "create_burst": 1e5}


def make_settings(data_dir: Path, **overrides) -> Settings:
    return Settings(data_dir=data_dir, seed=False, instance=f"t{next(_instances)}",
                    secret="test-secret-of-at-least-thirty-two-bytes",
                    **{**GENEROUS, **overrides})


@asynccontextmanager
async def gateway_with(tmp_path: Path, analytics: bool = False, portfolio: bool = False,
                       **overrides) -> AsyncIterator[Ece]:
    """A fresh ECE instance (own store, own actors) served by a gateway in this process, with
    `overrides` of the test settings; its data in a new folder under `tmp_path`. With
    `analytics`, its analytics actor runs too, and with `portfolio` its portfolio actors (as
    `ece serve` starts both)."""
    settings = make_settings(tmp_path / unique("g"), **overrides)
    runner = await start_gateway(settings)
    if analytics:
        await get_or_create_analytics(settings.cluster()).ready.remote()
    if portfolio:
        for actor in get_or_create_portfolios(settings.cluster()):
            await actor.ready.remote()
    try:
        async with aiohttp.ClientSession() as http:
            yield Ece(f"http://127.0.0.1:{port_of(runner)}", settings, runner, http)
    finally:
        await runner.cleanup()
        await shutdown_instance(settings)


def _mongo_url(uri: str, db_name: str) -> str:
    """The same server, another database: each instance gets an empty one."""
    scheme_host, _, rest = uri.partition("://")
    host, _, query = rest.partition("/")
    query = query.split("?", 1)[1] if "?" in query else ""
    return f"{scheme_host}://{host}/{db_name}" + (f"?{query}" if query else "")


@pytest_asyncio.fixture(
    loop_scope="session",
    params=[(500, "sqlite"), (1, "sqlite"), (500, "mongo")],
    ids=["hosted", "per-auction", "hosted-mongo"],
)
async def ece(request, ray_cluster, tmp_path) -> AsyncIterator[Ece]:
    """A fresh ECE instance (own store, own actors): both hosting settings, both stores."""
    per_actor, store = request.param
    overrides: dict = {"auctions_per_actor": per_actor}
    if store == "mongo":
        uri = request.getfixturevalue("mongo_uri")
        overrides["mongodb_uri"] = _mongo_url(uri, f"ece_it_{next(_instances)}")
    async with gateway_with(tmp_path, **overrides) as instance:
        yield instance


@pytest_asyncio.fixture(loop_scope="session")
async def ece_hosted(ray_cluster, tmp_path) -> AsyncIterator[Ece]:
    """One instance at the default hosting setting, for tests about the gateway itself."""
    async with gateway_with(tmp_path) as instance:
        yield instance
