"""Secrets from the environment, or generated once and kept in the data dir: the JWT signing
secret (`secret.key`) and the exchange's Ed25519 provenance key (`provenance.key`, base64 of
its 32 raw bytes).

Several gateways may start together on one data dir. The first to publish wins: each writes a
complete, fsynced temp file (mode 0600) and hard-links it to `secret.key`, which fails if the
name exists, so the file is never seen half-written and a winner is never clobbered.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import secrets
import stat
import time
from collections.abc import Callable
from pathlib import Path

SECRET_FILE = "secret.key"
PROVENANCE_KEY_FILE = "provenance.key"
MIN_SECRET_BYTES = 32
WAIT_S = 5.0
_POLL_S = 0.05


class SecretError(RuntimeError):
    """The secret file exists but cannot be used (permissions, content)."""


def load_or_create_secret(
    data_dir: Path,
    env_secret: str | None,
    *,
    wait_s: float = WAIT_S,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    file_name: str = SECRET_FILE,
    env_name: str = "ECE_SECRET",
    make: Callable[[], str] = lambda: secrets.token_urlsafe(48),
) -> str:
    """`env_secret` if given (at least 32 bytes), else the data dir's `file_name`, made (by
    `make`) if absent.

    A file found missing or empty after losing the race (or left by an older writer) is
    re-read for up to `wait_s` seconds. A file readable or writable by group/other is refused
    with SecretError (not tightened: the secret may have leaked, so the operator must decide).
    """
    if env_secret is not None:
        if len(env_secret.encode("utf-8")) < MIN_SECRET_BYTES:
            raise ValueError(
                f"{env_name} must be at least {MIN_SECRET_BYTES} bytes "
                f"(got {len(env_secret.encode('utf-8'))}); "
                "e.g. python -c 'import secrets; print(secrets.token_urlsafe(48))'")
        return env_secret
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / file_name
    deadline = clock() + wait_s
    created = False
    while True:
        found = _read(path)
        if found is not None and len(found.encode("utf-8")) >= MIN_SECRET_BYTES:
            return found
        if found is None and not created:
            created = True
            _publish(data_dir, path, make())
            continue  # read back what was published: ours, or the winner's
        if clock() >= deadline:
            if found is None:
                raise SecretError(f"{path} vanished after being created; is something deleting it?")
            raise SecretError(
                f"{path} holds {len(found.encode('utf-8'))} bytes, fewer than "
                f"{MIN_SECRET_BYTES}; remove it to have a new secret generated")
        sleep(_POLL_S)


def _read(path: Path) -> str | None:
    """The stripped content, "" if empty; None if missing. Refuses loose permissions."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise SecretError(f"{path} is not a regular file")
        if info.st_mode & 0o077:
            raise SecretError(
                f"{path} has mode {stat.S_IMODE(info.st_mode):o}, open to group/other; the "
                f"secret may have leaked: run chmod 600 {path} (or delete it to rotate)")
    except BaseException:
        os.close(fd)
        raise
    with os.fdopen(fd, "rb") as handle:
        content = handle.read()
    try:
        return content.decode("utf-8").strip()
    except UnicodeDecodeError as exc:
        raise SecretError(f"{path} is not UTF-8 text; remove it to have one generated") from exc


def _publish(data_dir: Path, path: Path, secret: str) -> None:
    """Create `path` holding `secret` unless it exists already (then leave it alone)."""
    temp = data_dir / f".{path.name}.{os.getpid()}.{secrets.token_hex(8)}.tmp"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(secret.encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):  # another process won: use theirs
            os.link(temp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
    _fsync_dir(data_dir)


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:  # e.g. platforms that cannot open directories
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load_or_create_provenance_key(data_dir: Path, env_key: str | None) -> bytes:
    """The exchange's Ed25519 private key (32 raw bytes): `ECE_PROVENANCE_KEY` (base64) if
    given, else the data dir's `provenance.key`, generated once. Every gateway and host of a
    cluster must use the same key (set it from one place, like ECE_SECRET)."""
    text = load_or_create_secret(
        data_dir, env_key, file_name=PROVENANCE_KEY_FILE, env_name="ECE_PROVENANCE_KEY",
        make=lambda: base64.b64encode(secrets.token_bytes(32)).decode())
    try:
        raw = base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        raise SecretError("the provenance key is not base64") from exc
    if len(raw) != 32:
        raise SecretError(f"the provenance key has {len(raw)} bytes; Ed25519 needs 32")
    return raw
