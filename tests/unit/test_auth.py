"""Password hashing (cost, bounded pool), password rules and bearer tokens."""

from __future__ import annotations

import asyncio
import dataclasses
import threading

import jwt
import pytest
from argon2 import PasswordHasher, Type, extract_parameters

from gateway import auth
from gateway.auth import (
    Hasher,
    Identity,
    TokenError,
    Tokens,
    common_passwords,
    hash_password,
    needs_rehash,
    password_problem,
    verify_password,
)

SECRET = "s" * 64


class FakeClock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class BlockingHasher(PasswordHasher):
    """Records how many hashes run at once and in which threads; blocks until released."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=8, parallelism=1)
        self.lock = threading.Lock()
        self.release = threading.Event()
        self.started = threading.Semaphore(0)
        self.active = 0
        self.max_active = 0
        self.threads: set[str] = set()

    def hash(self, password: str | bytes, *, salt: bytes | None = None) -> str:
        with self.lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
            self.threads.add(threading.current_thread().name)
        self.started.release()
        try:
            assert self.release.wait(timeout=30), "test never released the hashers"
            return f"hash-of-{password!s}"
        finally:
            with self.lock:
                self.active -= 1


# --- argon2 cost and hashing ---------------------------------------------------------------


async def test_new_hashes_use_owasp_argon2id_parameters():
    params = extract_parameters(await hash_password("correct horse battery"))
    assert params.type is Type.ID
    assert (params.memory_cost, params.time_cost, params.parallelism) == (19456, 2, 1)


async def test_hash_then_verify():
    stored = await hash_password("correct horse battery")
    assert await verify_password(stored, "correct horse battery")
    assert not await verify_password(stored, "correct horse batterY")
    assert not needs_rehash(stored)


async def test_hashes_with_other_parameters_still_verify_and_need_rehash():
    legacy = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=2).hash("old-password-1")
    assert await verify_password(legacy, "old-password-1")
    assert not await verify_password(legacy, "old-password-2")
    assert needs_rehash(legacy)


async def test_unknown_user_and_garbage_hashes_fail_without_raising():
    assert not await verify_password(None, "not-a-real-password")  # the dummy's own password
    assert not await verify_password(None, "anything at all")
    assert not await verify_password("not-an-argon2-hash", "anything at all")
    assert needs_rehash("not-an-argon2-hash")


async def test_unknown_user_still_pays_for_a_verification():
    calls: list[str] = []

    class Spy(PasswordHasher):
        def verify(self, hash: str | bytes, password: str | bytes) -> bool:
            calls.append(str(hash))
            return super().verify(hash, password)

    hasher = Hasher(hasher=Spy(time_cost=1, memory_cost=8, parallelism=1))
    try:
        assert not await hasher.verify(None, "whatever-password")
        assert len(calls) == 1 and calls[0].startswith("$argon2id$")
    finally:
        hasher.close()


async def test_hashing_is_bounded_and_runs_on_its_own_pool():
    fake = BlockingHasher()
    hasher = Hasher(concurrency=2, hasher=fake)
    try:
        tasks = [asyncio.create_task(hasher.hash(f"pw{i}")) for i in range(10)]
        for _ in range(2):  # both slots busy...
            assert await asyncio.to_thread(fake.started.acquire, timeout=30)
        # ...and the event loop is still free to run this coroutine meanwhile.
        assert not any(task.done() for task in tasks)
        fake.release.set()
        results = await asyncio.gather(*tasks)
    finally:
        fake.release.set()
        hasher.close()
    assert results == [f"hash-of-pw{i}" for i in range(10)]
    assert fake.max_active == 2
    assert fake.threads and all(name.startswith("argon2") for name in fake.threads)


def test_a_hasher_serves_several_event_loops():
    fake = BlockingHasher()
    fake.release.set()
    hasher = Hasher(concurrency=1, hasher=fake)

    async def contended() -> list[str]:  # contention binds a semaphore to the running loop
        return list(await asyncio.gather(*(hasher.hash(f"p{i}") for i in range(3))))

    try:
        assert asyncio.run(contended()) == ["hash-of-p0", "hash-of-p1", "hash-of-p2"]
        assert asyncio.run(contended()) == ["hash-of-p0", "hash-of-p1", "hash-of-p2"]
    finally:
        hasher.close()


def test_concurrency_must_be_positive():
    with pytest.raises(ValueError):
        Hasher(concurrency=0)


# --- password rules --------------------------------------------------------------------------


def test_common_password_list_is_large_lowercase_and_skips_its_header():
    words = common_passwords()
    assert len(words) >= 10_000
    assert "password" in words and "qwertyuiop" in words
    assert all(word == word.lower() and not word.startswith("#") for word in words)
    assert common_passwords() is words  # read once


@pytest.mark.parametrize("password", ["a" * 9 + "Z", "Tr0ub4dor&3x", "x" * 256,
                                      "correct horse battery staple"])
def test_acceptable_passwords(password):
    assert password_problem(password, "someone") is None


@pytest.mark.parametrize(("password", "username", "fragment"), [
    ("", "someone", "at least 10"),
    ("nine-char", "someone", "at least 10"),
    ("x" * 257, "someone", "at most 256"),
    ("1234567890", "someone", "common"),
    ("QwertyUIOP", "someone", "common"),
    ("Password1234", "someone", "common"),
    ("AliceSmith99", "alicesmith", "username"),
    ("my-ALICESMITH-pw", "AliceSmith", "username"),
    ("bobbybobby10", "BobbyBobby10", "username"),
])
def test_refused_passwords(password, username, fragment):
    problem = password_problem(password, username)
    assert problem is not None and fragment in problem


def test_shipped_list_is_what_refuses():
    assert "password1234" in common_passwords()
    assert "zz-not-common-9x" not in common_passwords()


# --- tokens ----------------------------------------------------------------------------------


def test_verify_returns_the_identity_and_expiry():
    clock = FakeClock()
    tokens = Tokens(SECRET, ttl_s=3600, clock=clock)
    identity = tokens.verify(tokens.issue("u-1", "alice"))
    assert identity == Identity("u-1", "alice", int(clock.now) + 3600)
    assert not identity.expired(clock.now)
    assert identity.expired(clock.now + 3600)
    with pytest.raises(dataclasses.FrozenInstanceError):
        identity.user_id = "u-2"  # type: ignore[misc]


def test_expired_tokens_are_refused():
    clock = FakeClock()
    tokens = Tokens(SECRET, ttl_s=60, clock=clock)
    token = tokens.issue("u-1", "alice")
    clock.now += 59
    assert tokens.verify(token).user_id == "u-1"
    clock.now += 1
    with pytest.raises(TokenError):
        tokens.verify(token)


def test_real_clock_tokens_round_trip():
    tokens = Tokens(SECRET, ttl_s=3600)
    identity = tokens.verify(tokens.issue("u-9", "zed"))
    assert (identity.user_id, identity.username) == ("u-9", "zed")
    assert not identity.expired()


@pytest.mark.parametrize("token", [
    "forged.token.value",
    "",
    Tokens("o" * 48, ttl_s=3600).issue("u-1", "alice"),  # another secret
    jwt.encode({"sub": "u-1", "name": "alice"}, SECRET, algorithm="HS256"),  # no exp
    jwt.encode({"name": "alice", "exp": 4_000_000_000}, SECRET, algorithm="HS256"),  # no sub
    jwt.encode({"sub": "u-1", "exp": "soon"}, SECRET, algorithm="HS256"),
    jwt.encode({"sub": "u-1", "exp": 4_000_000_000}, SECRET, algorithm="HS512"),
])
def test_bad_tokens_are_refused(token):
    with pytest.raises(TokenError):
        Tokens(SECRET, ttl_s=3600).verify(token)


def test_tokens_without_a_name_claim_verify_with_an_empty_username():
    token = jwt.encode({"sub": "u-1", "exp": 4_000_000_000}, SECRET, algorithm="HS256")
    assert Tokens(SECRET, ttl_s=60).verify(token) == Identity("u-1", "", 4_000_000_000)


OLD_SECRET = "r" * 40


def test_a_rotated_out_secret_keeps_its_tokens_valid_until_they_expire():
    """Rotation: gateways run with ECE_SECRET=new and ECE_SECRET_PREVIOUS=old."""
    old_token = Tokens(OLD_SECRET, ttl_s=3600).issue("u-1", "alice")
    rotating = Tokens(SECRET, ttl_s=3600, previous=OLD_SECRET)
    assert rotating.verify(old_token).user_id == "u-1"
    new_token = rotating.issue("u-2", "bob")
    assert jwt.get_unverified_header(new_token)["kid"] == auth.key_id(SECRET)
    assert Tokens(SECRET, ttl_s=3600).verify(new_token).user_id == "u-2"
    # Once the previous secret is dropped, its tokens are refused.
    with pytest.raises(TokenError, match="unknown key"):
        Tokens(SECRET, ttl_s=3600).verify(old_token)


@pytest.mark.parametrize("kid", [auth.key_id(OLD_SECRET), auth.key_id(SECRET), "0" * 16])
def test_a_key_id_names_the_key_it_must_verify_with(kid):
    """A token naming a key it was not signed with is refused (no trying each key)."""
    forged = jwt.encode({"sub": "u-1", "exp": 4_000_000_000}, "f" * 40, algorithm="HS256",
                        headers={"kid": kid})
    with pytest.raises(TokenError):
        Tokens(SECRET, ttl_s=3600, previous=OLD_SECRET).verify(forged)


def test_a_token_from_before_key_ids_verifies_with_the_current_secret():
    legacy = jwt.encode({"sub": "u-1", "exp": 4_000_000_000}, SECRET, algorithm="HS256")
    assert Tokens(SECRET, ttl_s=60, previous=OLD_SECRET).verify(legacy).user_id == "u-1"


def test_module_defaults():
    assert auth.HASH_CONCURRENCY == 2
    assert (auth.ARGON2_MEMORY_KIB, auth.ARGON2_TIME_COST, auth.ARGON2_PARALLELISM) == (
        19456, 2, 1)
