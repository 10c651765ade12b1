"""Gateway settings, read once from the environment (the composition root's only input)."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from actors.config import ClusterConfig


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return default if raw in (None, "") else int(raw)


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return default if raw in (None, "") else float(raw)


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = Path("data")
    seed: bool = True
    mongodb_uri: str | None = None
    ray_address: str | None = None
    store_url_override: str | None = None  # ECE_STORE: e.g. memory:bench (benchmark only)
    instance: str = "ece"
    auctions_per_actor: int = 500
    batching: bool = True
    secret: str | None = None
    mint: str = "all"  # "all" or "admin"
    admins: tuple[str, ...] = ()
    rate_per_s: float = 50.0
    rate_burst: float = 100.0
    send_queue: int = 1024
    max_inflight: int = 20_000
    token_ttl_s: int = 7 * 24 * 3600
    bots: int = 3

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ
        return cls(
            host=env.get("ECE_HOST", "127.0.0.1"),
            port=_int("ECE_PORT", 8080),
            data_dir=Path(env.get("ECE_DATA_DIR", "data")).resolve(),
            seed=env.get("ECE_SEED", "1") != "0",
            mongodb_uri=env.get("ECE_MONGODB_URI") or None,
            ray_address=env.get("ECE_RAY_ADDRESS") or None,
            store_url_override=env.get("ECE_STORE") or None,
            instance=env.get("ECE_INSTANCE", "ece"),
            auctions_per_actor=_int("ECE_AUCTIONS_PER_ACTOR", 500),
            batching=env.get("ECE_BATCHING", "1") != "0",
            secret=env.get("ECE_SECRET") or None,
            mint=env.get("ECE_MINT", "all"),
            admins=tuple(a for a in env.get("ECE_ADMINS", "").split(",") if a),
            rate_per_s=_float("ECE_RATE_LIMIT", 50.0),
            rate_burst=_float("ECE_RATE_BURST", 100.0),
            send_queue=_int("ECE_SEND_QUEUE", 1024),
            max_inflight=_int("ECE_MAX_INFLIGHT", 20_000),
            bots=_int("ECE_BOTS", 3),
        )

    @property
    def store_url(self) -> str:
        if self.store_url_override:
            return self.store_url_override
        if self.mongodb_uri:
            return self.mongodb_uri
        return f"sqlite:///{self.data_dir / 'ece.db'}"

    def cluster(self) -> ClusterConfig:
        return ClusterConfig(
            store_url=self.store_url,
            instance=self.instance,
            namespace="ece",
            auctions_per_actor=self.auctions_per_actor,
            batching=self.batching,
        )

    def signing_secret(self) -> str:
        """ECE_SECRET, else a secret generated once and kept in the data dir."""
        if self.secret:
            return self.secret
        path = self.data_dir / "secret.key"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            with open(path, "x") as handle:  # "x": two gateways starting together agree
                handle.write(secrets.token_urlsafe(48))
            path.chmod(0o600)
        except FileExistsError:
            pass
        return path.read_text().strip()
