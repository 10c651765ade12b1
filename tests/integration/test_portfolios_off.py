"""A gateway started with ECE_PORTFOLIOS=0 serves no portfolio: every portfolio route answers
503 UNAVAILABLE saying so (not an empty portfolio, which would read as "you hold nothing"),
while the rest of the API works; with the default the same routes answer."""

from __future__ import annotations

import pytest

from tests.integration.conftest import gateway_with

pytestmark = pytest.mark.asyncio(loop_scope="session")


def routes(user_id: str) -> list[tuple[str, str, dict]]:
    return [("GET", "/api/portfolio", {}), ("GET", "/api/portfolio/history", {}),
            ("GET", "/api/portfolio/visibility", {}),
            ("PUT", "/api/portfolio/visibility", {"json": {"public": True}}),
            ("GET", f"/api/users/{user_id}/portfolio", {})]


@pytest.mark.parametrize("on", [False, True], ids=["off", "on"])
async def test_portfolio_routes_follow_the_setting(ray_cluster, tmp_path, on: bool) -> None:
    async with gateway_with(tmp_path, portfolios=on) as ece:
        api = ece.api
        user = await api.signup("pfoff", funds=0)
        for method, path, kwargs in routes(user.user_id):
            status, answer = await api.request(method, path, user, **kwargs)
            if on:
                assert status == 200, (path, answer)
            else:
                assert status == 503, (path, answer)
                assert answer["error"]["code"] == "UNAVAILABLE"
                assert "ECE_PORTFOLIOS=0" in answer["error"]["message"]
        assert await api.balance(user) == 0  # the rest of the API answers either way
