"""Gateway settings, read once from the environment (the composition root's only input).

Every setting is declared once, in `SETTINGS`: its environment variable, the `Settings` field
it fills, its type, default, bounds and a one-line description. Parsing (`Settings.from_env`),
validation (`Settings.__post_init__`), the dataclass defaults and the configuration table of
docs/architecture.md (`settings_table_markdown`) all come from it;
tests/unit/test_settings_declaration.py checks the docs and the README against it.
"""

from __future__ import annotations

import base64
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from actors.config import ClusterConfig
from gateway.secret import (
    MIN_SECRET_BYTES,
    load_or_create_provenance_key,
    load_or_create_secret,
)

Kind = Literal["int", "float", "str", "bool", "path", "list"]


@dataclass(frozen=True)
class Setting:
    """One setting. For `str`, `min`/`max` bound the length in bytes (UTF-8)."""

    env: str  # the environment variable
    field: str  # the `Settings` field it fills
    kind: Kind
    default: Any  # None: unset (optional)
    description: str  # one line, for the docs table
    min: float | None = None
    max: float | None = None
    min_exclusive: bool = False  # "> min" rather than ">= min" (rates: positive)
    choices: tuple[str, ...] = ()
    shown_default: str | None = None  # the default as the docs say it, when not the value

    def default_text(self) -> str:
        """The default as the documentation tables show it."""
        if self.shown_default is not None:
            return self.shown_default
        value = self.default
        if value is None or value == ():
            return "—"
        if isinstance(value, bool):
            return "1" if value else "0"
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        return str(value)

    def allowed_text(self) -> str:
        """The accepted values as the docs table shows them."""
        if self.choices:
            quoted = [f"`{c}`" for c in self.choices]
            return ", ".join(quoted[:-1]) + " or " + quoted[-1] if len(quoted) > 1 else quoted[0]
        base = {"int": "integer", "float": "number", "str": "text", "bool": "`1` or `0`",
                "path": "path", "list": "comma-separated"}[self.kind]
        if self.min is not None and self.max is not None and not self.min_exclusive:
            return f"{base} from {_num(self.min)} to {_num(self.max)}"
        bounds = []
        if self.min is not None:
            bounds.append(f"{'>' if self.min_exclusive else '≥'} {_num(self.min)}")
        if self.max is not None:
            bounds.append(f"≤ {_num(self.max)}")
        if self.kind == "str" and bounds:
            return f"{base}, {' and '.join(bounds)} bytes"
        return f"{base} {', '.join(bounds)}" if bounds else base

    def parse(self, raw: str) -> Any:
        """The value of `raw` (never empty: unset and empty mean the default)."""
        name = self.env
        if self.kind == "int":
            try:
                return int(raw)
            except ValueError:
                raise ValueError(f"{name}={raw!r} is not an integer") from None
        if self.kind == "float":
            try:
                value = float(raw)
            except ValueError:
                raise ValueError(f"{name}={raw!r} is not a number") from None
            if not math.isfinite(value):
                raise ValueError(f"{name}={raw!r} is not a finite number")
            return value
        if self.kind == "bool":
            lowered = raw.strip().lower()
            if lowered in _TRUE:
                return True
            if lowered in _FALSE:
                return False
            raise ValueError(f"{name}={raw!r} is not a boolean (1 or 0)")
        if self.kind == "path":
            return Path(raw).resolve()
        if self.kind == "list":
            return tuple(part.strip() for part in raw.split(",") if part.strip())
        return raw

    def check(self, value: Any) -> None:
        """Raise a ValueError naming the variable if `value` is out of bounds."""
        if value is None:
            return
        name = self.env
        if self.kind == "float" and not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number (got {value!r})")
        if self.choices and value not in self.choices:
            allowed = " or ".join(repr(c) for c in self.choices)
            raise ValueError(f"{name} must be {allowed} (got {value!r})")
        if self.kind == "str":
            size, unit = len(str(value).encode()), " bytes"
        elif self.kind in ("int", "float"):
            size, unit = value, ""
        else:
            return
        if self.min is not None:
            if self.min_exclusive and not size > self.min:
                raise ValueError(f"{name} must be greater than {_num(self.min)} (got {value!r})")
            if not self.min_exclusive and not size >= self.min:
                raise ValueError(f"{name} must be at least {_num(self.min)}{unit}")
        if self.max is not None and not size <= self.max:
            raise ValueError(f"{name} must be at most {_num(self.max)}{unit} (got {value!r})")


_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _positive(env: str, field: str, default: float, description: str) -> Setting:
    return Setting(env, field, "float", default, description, min=0, min_exclusive=True)


def _limit(env: str, field: str, default: int, description: str) -> Setting:
    return Setting(env, field, "int", default, description, min=1)


SETTINGS: tuple[Setting, ...] = (
    Setting("ECE_HOST", "host", "str", "127.0.0.1", "address the gateway listens on"),
    Setting("ECE_PORT", "port", "int", 8080, "port the gateway listens on", min=0, max=65535),
    Setting("ECE_GATEWAYS", "gateways", "int", 1,
            "gateway processes sharing the port (`SO_REUSEPORT`); each enforces 1/N of the "
            "per-user, per-address and in-flight limits (docs/operations.md)", min=1, max=8),
    Setting("ECE_DATA_DIR", "data_dir", "path", Path("data"),
            "SQLite store file, JWT secret, demo accounts", shown_default="./data"),
    Setting("ECE_SEED", "seed", "bool", True,
            "demo users, cards, auctions and bots (0 = none); their random passwords are "
            "printed at start and kept in the data dir's `demo-accounts.json` (0600)"),
    Setting("ECE_MONGODB_URI", "mongodb_uri", "str", None,
            "use MongoDB (PyMongo async; write concern majority + journal) instead of the "
            "embedded store"),
    Setting("ECE_RAY_ADDRESS", "ray_address", "str", None,
            "join a running Ray cluster instead of starting one"),
    Setting("ECE_RAY_NODE_IP", "ray_node_ip", "str", None,
            "with `ECE_RAY_ADDRESS`: the address of this machine's Ray node to attach to, "
            "where several share one machine (unset: Ray's choice, the head's if it is here)"),
    Setting("ECE_RAY_CPUS", "ray_cpus", "int", 2,
            "CPUs of the private Ray started when `ECE_RAY_ADDRESS` is unset", min=1),
    Setting("ECE_AUCTIONS_PER_ACTOR", "auctions_per_actor", "int", 500,
            "auctions per host actor (1 = one actor each)", min=1),
    Setting("ECE_SECRET", "secret", "str", None,
            "JWT signing secret (share it between gateways); unset: a random one created once "
            "in the data dir (0600, written, fsynced, linked into place, so gateways starting "
            "together agree)", min=MIN_SECRET_BYTES, shown_default="generated"),
    Setting("ECE_SECRET_PREVIOUS", "secret_previous", "str", None,
            "the JWT secret being rotated out: tokens it signed stay valid until they expire "
            "(docs/operations.md)", min=MIN_SECRET_BYTES),
    Setting("ECE_PROVENANCE_KEY", "provenance_key", "str", None,
            "the exchange's Ed25519 key signing token provenance, base64 of its 32 raw bytes "
            "(share it between gateways; never rotate it without re-publishing the old public "
            "key); unset: one created once in the data dir like the secret",
            min=MIN_SECRET_BYTES, shown_default="generated"),
    Setting("ECE_MINT", "mint", "str", "all",
            "who may mint cards: everyone, or only the users in `ECE_ADMINS`",
            choices=("all", "admin")),
    Setting("ECE_ADMINS", "admins", "list", (),
            "user ids allowed to mint (`ECE_MINT=admin`) and deposit (`ECE_DEPOSITS=admin`)"),
    Setting("ECE_DEPOSITS", "deposits", "str", "open",
            "who may deposit (instant, standing in for a payment processor): everyone, or "
            "only the users in `ECE_ADMINS`", choices=("open", "admin")),
    Setting("ECE_SELLER_FEE_BPS", "seller_fee_bps", "int", 500,
            "seller fee in basis points of the price, kept from the seller", min=0, max=10_000),
    Setting("ECE_BUYER_PREMIUM_BPS", "buyer_premium_bps", "int", 0,
            "buyer's premium in basis points of the price, paid on top by the winner",
            min=0, max=10_000),
    Setting("ECE_OFFER_FEE_BPS", "offer_fee_bps", "int", 0,
            "fee in basis points of a trade offer's cash leg, paid by whoever receives the "
            "cash (cards swap free)", min=0, max=10_000),
    Setting("ECE_ANALYTICS", "analytics", "bool", True,
            "run the analytics and portfolio projections (0: bids and the rest run without "
            "them)"),
    Setting("ECE_PRICE_SHARDS", "price_shards", "int", 1,
            "price projections, each owning the cards that hash to it", min=1, max=64),
    Setting("ECE_BEHAVIOUR_SHARDS", "behaviour_shards", "int", 1,
            "behaviour projections, each owning the users that hash to it", min=1, max=64),
    Setting("ECE_PORTFOLIOS", "portfolios", "bool", True,
            "run the portfolio actors (with `ECE_ANALYTICS`) and serve the portfolio routes "
            "(0: they answer 503 UNAVAILABLE)"),
    Setting("ECE_PORTFOLIO_SHARDS", "portfolio_shards", "int", 1,
            "portfolio actors, each owning the users that hash to it", min=1, max=64),
    Setting("ECE_RISK_FREE_RATE", "risk_free_rate", "float", 0.0,
            "annual risk-free rate of the portfolios' Sharpe ratio (0.04 = 4%)", min=-1.0,
            max=1.0),
    Setting("ECE_CONCENTRATION_SHARE", "concentration_share", "float", 0.25,
            "a portfolio warns when one card, player or set holds more than this share",
            min=0.0, max=1.0, min_exclusive=True),
    Setting("ECE_SEED_SALES", "seed_sales", "int", 120_000,
            "simulated sales of market history `ECE_SEED` adds to an empty feed", min=0,
            max=2_000_000),
    Setting("ECE_BALANCE_CHECK", "balance_check", "bool", True,
            "refuse bids beyond the bidder's available balance (0: benchmark only)"),
    _positive("ECE_RATE_LIMIT", "rate_per_s", 50.0, "per-user bids per second"),
    _positive("ECE_RATE_BURST", "rate_burst", 100.0, "per-user bid burst"),
    _positive("ECE_FRAME_RATE", "frame_rate", 200.0,
              "WebSocket frames per second per socket (taken before decoding)"),
    _positive("ECE_FRAME_BURST", "frame_burst", 400.0, "WebSocket frame burst per socket"),
    _limit("ECE_MAX_CONN_PER_IP", "max_conn_per_ip", 256, "open WebSockets per client address"),
    _limit("ECE_MAX_CONN_PER_USER", "max_conn_per_user", 32, "open WebSockets per user"),
    _limit("ECE_MAX_SUBSCRIPTIONS", "max_subscriptions", 256, "subscriptions per socket"),
    _positive("ECE_AUTH_IP_PER_MIN", "auth_ip_per_min", 30.0,
              "sign-ins and sign-ups per client address per minute"),
    _positive("ECE_AUTH_IP_BURST", "auth_ip_burst", 30.0,
              "sign-ins and sign-ups per client address, burst"),
    _positive("ECE_AUTH_USER_PER_MIN", "auth_user_per_min", 6.0,
              "sign-in tries per username per minute"),
    _positive("ECE_AUTH_USER_BURST", "auth_user_burst", 5.0, "sign-in tries per username, burst"),
    _positive("ECE_CREATE_PER_MIN", "create_per_min", 10.0,
              "mints, listings, and deposits + withdrawals, each per user per minute"),
    _positive("ECE_CREATE_BURST", "create_burst", 10.0,
              "mints, listings, and deposits + withdrawals per user, burst"),
    _limit("ECE_MAX_HOSTS", "max_hosts", 100,
           "auction host actors, each ~80 MB (listing answers `OVERLOADED` beyond)"),
    _limit("ECE_SEND_QUEUE", "send_queue", 1024, "per-socket send queue (then close 1013)"),
    _positive("ECE_SLOW_CLIENT_MS", "slow_client_ms", 2000.0,
              "a socket whose send queue stays at least half full this long is closed 1013"),
    _positive("ECE_IDLE_CLIENT_MS", "idle_client_ms", 90_000.0,
              "a socket that completes no frame this long is closed 1008 (a quiet one is "
              "pinged every third of it, at most every 30 s, and its pong counts); one that "
              "takes none of our frames this long is closed 1013"),
    _limit("ECE_MAX_INFLIGHT", "max_inflight", 20_000,
           "gateway-wide commands in flight (then `OVERLOADED`)"),
    Setting("ECE_BATCHING", "batching", "bool", True,
            "0 = the baseline: one call per command, nothing else changed (benchmark only)"),
    Setting("ECE_DIRECT", "direct", "bool", True,
            "1 = the bid path's calls to a host on this machine over its Unix socket "
            "(`actors/direct.py`); 0 = every call by Ray"),
    Setting("ECE_STORE", "store_url_override", "str", None,
            "override the store URL, e.g. `memory:bench` (benchmark only)"),
    Setting("ECE_INSTANCE", "instance", "str", "ece",
            "prefix of named actors (several instances on one cluster)"),
    Setting("ECE_BOTS", "bots", "int", 3, "demo bots (with `ECE_SEED`)", min=0),
    Setting("ECE_LOG_LEVEL", "log_level", "str", "INFO", "log level",
            choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")),
)

SETTING_BY_FIELD: dict[str, Setting] = {s.field: s for s in SETTINGS}


def _default(field: str) -> Any:
    return SETTING_BY_FIELD[field].default


@dataclass(frozen=True)
class Settings:
    # Defaults come from SETTINGS; fields not there are not read from the environment.
    host: str = _default("host")
    port: int = _default("port")
    gateways: int = _default("gateways")
    data_dir: Path = _default("data_dir")  # noqa: RUF009 (a Path is immutable)
    seed: bool = _default("seed")
    mongodb_uri: str | None = _default("mongodb_uri")
    ray_address: str | None = _default("ray_address")
    ray_node_ip: str | None = _default("ray_node_ip")
    secret_previous: str | None = _default("secret_previous")
    ray_cpus: int = _default("ray_cpus")
    store_url_override: str | None = _default("store_url_override")
    instance: str = _default("instance")
    auctions_per_actor: int = _default("auctions_per_actor")
    batching: bool = _default("batching")
    direct: bool = _default("direct")
    secret: str | None = _default("secret")
    provenance_key: str | None = _default("provenance_key")
    mint: str = _default("mint")
    admins: tuple[str, ...] = _default("admins")
    deposits: str = _default("deposits")
    seller_fee_bps: int = _default("seller_fee_bps")
    buyer_premium_bps: int = _default("buyer_premium_bps")
    offer_fee_bps: int = _default("offer_fee_bps")
    analytics: bool = _default("analytics")
    price_shards: int = _default("price_shards")
    behaviour_shards: int = _default("behaviour_shards")
    portfolios: bool = _default("portfolios")
    portfolio_shards: int = _default("portfolio_shards")
    risk_free_rate: float = _default("risk_free_rate")
    concentration_share: float = _default("concentration_share")
    seed_sales: int = _default("seed_sales")
    balance_check: bool = _default("balance_check")
    rate_per_s: float = _default("rate_per_s")
    rate_burst: float = _default("rate_burst")
    send_queue: int = _default("send_queue")
    slow_client_ms: float = _default("slow_client_ms")
    idle_client_ms: float = _default("idle_client_ms")
    max_inflight: int = _default("max_inflight")
    token_ttl_s: int = 7 * 24 * 3600  # not a setting
    bots: int = _default("bots")
    # Bounds on what one client can hold or cost (see docs/architecture.md, "Bounded").
    frame_rate: float = _default("frame_rate")
    frame_burst: float = _default("frame_burst")
    max_conn_per_ip: int = _default("max_conn_per_ip")
    max_conn_per_user: int = _default("max_conn_per_user")
    max_subscriptions: int = _default("max_subscriptions")
    auth_ip_per_min: float = _default("auth_ip_per_min")
    auth_ip_burst: float = _default("auth_ip_burst")
    auth_user_per_min: float = _default("auth_user_per_min")
    auth_user_burst: float = _default("auth_user_burst")
    create_per_min: float = _default("create_per_min")
    create_burst: float = _default("create_burst")
    max_hosts: int = _default("max_hosts")
    log_level: str = _default("log_level")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Settings from `env` (default: os.environ); a ValueError names a bad variable."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for setting in SETTINGS:
            raw = env.get(setting.env)
            if raw is None or raw == "":
                if setting.kind == "path":
                    values[setting.field] = Path(setting.default).resolve()
                continue
            values[setting.field] = setting.parse(raw)
        return cls(**values)

    def __post_init__(self) -> None:
        for setting in SETTINGS:
            setting.check(getattr(self, setting.field))

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
            direct=self.direct,
            max_hosts=self.max_hosts,
            seller_fee_bps=self.seller_fee_bps,
            buyer_premium_bps=self.buyer_premium_bps,
            offer_fee_bps=self.offer_fee_bps,
            price_shards=self.price_shards,
            behaviour_shards=self.behaviour_shards,
            portfolio_shards=self.portfolio_shards,
            risk_free_rate=self.risk_free_rate,
            concentration_share=self.concentration_share,
            provenance_key=base64.b64encode(self.provenance_private_key()).decode(),
        )

    def provenance_private_key(self) -> bytes:
        """ECE_PROVENANCE_KEY, else a key generated once and kept in the data dir."""
        return load_or_create_provenance_key(self.data_dir, self.provenance_key)

    def signing_secret(self) -> str:
        """ECE_SECRET, else a secret generated once and kept in the data dir."""
        return load_or_create_secret(self.data_dir, self.secret)


def settings_table_markdown() -> str:
    """The configuration table of docs/architecture.md (a test keeps the doc equal to it)."""
    rows = ["| variable | default | accepts | meaning |", "|---|---|---|---|"]
    for s in SETTINGS:
        default = s.default_text()
        if default not in ("—", "generated"):
            default = f"`{default}`"
        rows.append(f"| `{s.env}` | {default} | {s.allowed_text()} | {s.description} |")
    return "\n".join(rows) + "\n"
