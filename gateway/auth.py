"""Passwords (argon2) and bearer tokens (JWT, HS256)."""

from __future__ import annotations

import asyncio
import time

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()
# Verified against when the username is unknown, so timing does not reveal which users exist.
_DUMMY_HASH = _hasher.hash("not-a-real-password")


async def hash_password(password: str) -> str:
    # argon2 is deliberately slow: keep it off the event loop.
    return await asyncio.to_thread(_hasher.hash, password)


async def verify_password(password_hash: str | None, password: str) -> bool:
    def check() -> bool:
        try:
            return _hasher.verify(password_hash or _DUMMY_HASH, password) and bool(password_hash)
        except (VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(check)


class TokenError(Exception):
    pass


class Tokens:
    def __init__(self, secret: str, ttl_s: int) -> None:
        self._secret = secret
        self._ttl_s = ttl_s

    def issue(self, user_id: str, username: str) -> str:
        now = int(time.time())
        claims = {"sub": user_id, "name": username, "iat": now, "exp": now + self._ttl_s}
        return jwt.encode(claims, self._secret, algorithm="HS256")

    def verify(self, token: str) -> tuple[str, str]:
        """(user_id, username) of a valid token; TokenError otherwise (bad, forged, expired)."""
        try:
            claims = jwt.decode(
                token, self._secret, algorithms=["HS256"], options={"require": ["sub", "exp"]}
            )
        except jwt.PyJWTError as exc:
            raise TokenError(str(exc)) from exc
        return str(claims["sub"]), str(claims.get("name", ""))
