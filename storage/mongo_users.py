"""The users of `storage.mongo.MongoStore`: one document each, `_id` the user id, with a
unique `username_lower` (`username_key`) and the `portfolio_public` flag (a user written
before it existed reads as not public)."""

from __future__ import annotations

from typing import Any, Protocol, cast

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from market.errors import USER_EXISTS, USERNAME_TAKEN
from storage.base import Conflict, username_key
from storage.records import UserRecord

type Doc = dict[str, Any]

USER_FIELDS = ("user_id", "username", "password_hash", "created_at")  # + portfolio_public


class _Host(Protocol):
    @property
    def users(self) -> AsyncCollection[Doc]: ...


def _user(doc: Doc | None) -> UserRecord | None:
    if doc is None:
        return None
    picked = {f: doc.get(f) for f in USER_FIELDS}
    return cast(UserRecord, {**picked, "portfolio_public": bool(doc.get("portfolio_public"))})


class MongoUsers:
    async def create_user(self: _Host, user: UserRecord) -> None:
        doc = {f: user.get(f) for f in USER_FIELDS}
        doc["_id"] = user["user_id"]
        doc["username_lower"] = username_key(user["username"])
        doc["portfolio_public"] = bool(user.get("portfolio_public"))
        try:
            await self.users.insert_one(doc)
        except DuplicateKeyError as exc:
            if "username_lower" in str(exc.details or exc):
                msg = f"username {user['username']!r} is taken"
                raise Conflict(USERNAME_TAKEN, msg) from None
            raise Conflict(USER_EXISTS, f"user {user['user_id']!r} exists") from None

    async def get_user(self: _Host, user_id: str) -> UserRecord | None:
        return _user(await self.users.find_one({"_id": user_id}))

    async def get_user_by_username(self: _Host, username: str) -> UserRecord | None:
        return _user(await self.users.find_one({"username_lower": username_key(username)}))

    async def set_portfolio_public(self: _Host, user_id: str, public: bool) -> bool:
        done = await self.users.update_one({"_id": user_id},
                                           {"$set": {"portfolio_public": bool(public)}})
        return done.matched_count == 1
