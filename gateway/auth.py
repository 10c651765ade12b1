"""Passwords (argon2id) and bearer tokens (JWT, HS256)."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import time
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from typing import TypeVar

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

# OWASP's recommended argon2id cost (19 MiB, 2 passes, 1 lane) instead of the library's 64 MiB.
# Hashes made with other parameters still verify: argon2 encodes them in the hash itself.
ARGON2_TIME_COST = 2
ARGON2_MEMORY_KIB = 19 * 1024
ARGON2_PARALLELISM = 1
HASH_CONCURRENCY = 2

PASSWORD_MIN = 10
PASSWORD_MAX = 256

_T = TypeVar("_T")


class Hasher:
    """argon2id hashing on a small dedicated thread pool, at most `concurrency` at a time.

    Callers queue on an asyncio.Semaphore (cheap, cancellable) rather than in the pool, so a
    flood of sign-ins neither blocks the event loop nor occupies the loop's default executor.
    """

    def __init__(self, concurrency: int = HASH_CONCURRENCY,
                 hasher: PasswordHasher | None = None) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.concurrency = concurrency
        self._hasher = hasher or PasswordHasher(
            time_cost=ARGON2_TIME_COST, memory_cost=ARGON2_MEMORY_KIB,
            parallelism=ARGON2_PARALLELISM)
        self._executor: ThreadPoolExecutor | None = None
        # asyncio primitives bind to the first loop that waits on them: one semaphore per loop.
        self._gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary())
        self._dummy_hash: str | None = None

    async def _run(self, fn: Callable[[], _T]) -> _T:
        loop = asyncio.get_running_loop()
        gate = self._gates.get(loop)
        if gate is None:
            gate = self._gates[loop] = asyncio.Semaphore(self.concurrency)
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.concurrency, thread_name_prefix="argon2")
        async with gate:
            return await loop.run_in_executor(self._executor, fn)

    async def hash(self, password: str) -> str:
        return await self._run(functools.partial(self._hasher.hash, password))

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """True iff `password` matches; an unknown user (None) costs the same time and fails."""
        return await self._run(functools.partial(self._check, password_hash, password))

    def _check(self, password_hash: str | None, password: str) -> bool:
        if password_hash is None:
            # Verified against when the username is unknown, so timing does not reveal which
            # users exist. Made lazily (in a pool thread) with the current parameters.
            if self._dummy_hash is None:
                self._dummy_hash = self._hasher.hash("not-a-real-password")
            target = self._dummy_hash
        else:
            target = password_hash
        try:
            return self._hasher.verify(target, password) and password_hash is not None
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        """True if the hash was made with other parameters (rehash it after a good sign-in)."""
        try:
            return self._hasher.check_needs_rehash(password_hash)
        except (InvalidHashError, ValueError):
            return True

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None


_default = Hasher()


async def hash_password(password: str) -> str:
    return await _default.hash(password)


async def verify_password(password_hash: str | None, password: str) -> bool:
    return await _default.verify(password_hash, password)


def needs_rehash(password_hash: str) -> bool:
    return _default.needs_rehash(password_hash)


@functools.cache
def common_passwords() -> frozenset[str]:
    """The shipped common-password list (lowercase), read once."""
    text = resources.files("gateway").joinpath("common_passwords.txt").read_text("utf-8")
    return frozenset(
        line.strip().lower() for line in text.splitlines()
        if line.strip() and not line.startswith("#"))


def password_problem(password: str, username: str) -> str | None:
    """None if `password` is acceptable for `username`, else a message to show the user."""
    if len(password) < PASSWORD_MIN:
        return f"password: at least {PASSWORD_MIN} characters"
    if len(password) > PASSWORD_MAX:
        return f"password: at most {PASSWORD_MAX} characters"
    if password.lower() in common_passwords():
        return "password is too common; choose another"
    name = username.strip().casefold()
    if name and name in password.casefold():
        return "password must not contain the username"
    return None


class TokenError(Exception):
    pass


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a valid token speaks for, and until when (epoch seconds)."""

    user_id: str
    username: str
    expires_at: int

    def expired(self, now: float | None = None) -> bool:
        return (time.time() if now is None else now) >= self.expires_at


def key_id(secret: str) -> str:
    """The `kid` of tokens signed with `secret`: names the key, reveals nothing of it."""
    return hashlib.sha256(b"ece-token-key:" + secret.encode()).hexdigest()[:16]


class Tokens:
    """Signs and checks session tokens (HS256). `previous`: the secret being rotated out;
    tokens it signed stay valid until they expire, new ones are signed with `secret`."""

    def __init__(self, secret: str, ttl_s: int, clock: Callable[[], float] = time.time,
                 previous: str | None = None) -> None:
        self._secret = secret
        self._kid = key_id(secret)
        self._keys = {self._kid: secret}
        if previous:
            self._keys[key_id(previous)] = previous
        self._ttl_s = ttl_s
        self._clock = clock

    def issue(self, user_id: str, username: str) -> str:
        now = int(self._clock())
        claims = {"sub": user_id, "name": username, "iat": now, "exp": now + self._ttl_s}
        return jwt.encode(claims, self._secret, algorithm="HS256", headers={"kid": self._kid})

    def verify(self, token: str) -> Identity:
        """The Identity of a valid token; TokenError otherwise (bad, forged, expired)."""
        try:
            # A token from before key ids were named is checked against the current secret.
            kid = jwt.get_unverified_header(token).get("kid", self._kid)
            secret = self._keys.get(kid) if isinstance(kid, str) else None
            if secret is None:
                raise TokenError("signed with an unknown key")
            claims = jwt.decode(
                token, secret, algorithms=["HS256"],
                # Expiry is checked below against the injected clock.
                options={"require": ["sub", "exp"], "verify_exp": False, "verify_iat": False})
            expires_at = int(claims["exp"])
        except jwt.PyJWTError as exc:
            raise TokenError(str(exc)) from exc
        except (TypeError, ValueError, OverflowError) as exc:
            raise TokenError("exp must be an integer") from exc
        if expires_at <= self._clock():
            raise TokenError("Signature has expired")
        return Identity(str(claims["sub"]), str(claims.get("name", "")), expires_at)
