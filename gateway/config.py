"""Gateway settings, read once from the environment (the composition root's only input)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from actors.config import ClusterConfig
from gateway.secret import MIN_SECRET_BYTES, load_or_create_secret


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not an integer") from None


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw in (None, ""):
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"{name}={raw!r} is not a finite number")
    return value


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
    # Bounds on what one client can hold or cost (see docs/architecture.md, "Bounded").
    frame_rate: float = 200.0  # WebSocket frames per second per socket, before decoding
    frame_burst: float = 400.0
    max_conn_per_ip: int = 256
    max_conn_per_user: int = 32
    max_subscriptions: int = 256  # per socket
    auth_ip_per_min: float = 30.0  # sign-ins and sign-ups per client IP
    auth_ip_burst: float = 30.0
    auth_user_per_min: float = 6.0  # sign-in tries per username
    auth_user_burst: float = 5.0
    create_per_min: float = 10.0  # mints, and listings, per user
    create_burst: float = 10.0
    max_hosts: int = 100  # auction host actors (each a process of ~80 MB)

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
            frame_rate=_float("ECE_FRAME_RATE", 200.0),
            frame_burst=_float("ECE_FRAME_BURST", 400.0),
            max_conn_per_ip=_int("ECE_MAX_CONN_PER_IP", 256),
            max_conn_per_user=_int("ECE_MAX_CONN_PER_USER", 32),
            max_subscriptions=_int("ECE_MAX_SUBSCRIPTIONS", 256),
            auth_ip_per_min=_float("ECE_AUTH_IP_PER_MIN", 30.0),
            auth_ip_burst=_float("ECE_AUTH_IP_BURST", 30.0),
            auth_user_per_min=_float("ECE_AUTH_USER_PER_MIN", 6.0),
            auth_user_burst=_float("ECE_AUTH_USER_BURST", 5.0),
            create_per_min=_float("ECE_CREATE_PER_MIN", 10.0),
            create_burst=_float("ECE_CREATE_BURST", 10.0),
            max_hosts=_int("ECE_MAX_HOSTS", 100),
        )

    def __post_init__(self) -> None:
        if self.secret is not None and len(self.secret.encode()) < MIN_SECRET_BYTES:
            raise ValueError(f"ECE_SECRET must be at least {MIN_SECRET_BYTES} bytes")
        if self.mint not in ("all", "admin"):
            raise ValueError("ECE_MINT must be 'all' or 'admin'")
        for name in ("max_conn_per_ip", "max_conn_per_user", "max_subscriptions", "max_hosts",
                     "send_queue", "max_inflight", "auctions_per_actor"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        for name in ("rate_per_s", "rate_burst", "frame_rate", "frame_burst", "auth_ip_per_min",
                     "auth_ip_burst", "auth_user_per_min", "auth_user_burst", "create_per_min",
                     "create_burst"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive")

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
            max_hosts=self.max_hosts,
        )

    def signing_secret(self) -> str:
        """ECE_SECRET, else a secret generated once and kept in the data dir."""
        return load_or_create_secret(self.data_dir, self.secret)
