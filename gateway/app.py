"""The aiohttp application: REST, WebSocket, static web UI and metrics on one port.

Only assembly: middleware, routes, startup and shutdown. Shared state is in `gateway.state`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web
from prometheus_client import generate_latest

from gateway.analytics import routes as analytics_routes
from gateway.catalog import routes as catalog_routes
from gateway.config import Settings
from gateway.malformed import quiet_malformed_requests
from gateway.offers import routes as offer_routes
from gateway.portfolio import routes as portfolio_routes
from gateway.public_portfolio import routes as public_portfolio_routes
from gateway.rest import ApiError, error_body, routes
from gateway.sio import attach as attach_socketio
from gateway.state import GATEWAY, Gateway
from gateway.tokens import routes as token_routes
from gateway.valuations import routes as valuation_routes
from gateway.wallet import routes as wallet_routes
from gateway.ws import websocket_handler
from market.errors import INTERNAL, INVALID, NOT_FOUND, UNAVAILABLE, http_status
from storage import StoreError

log = logging.getLogger("ece.gateway")
STATIC = Path(__file__).parent / "static"


@web.middleware
async def errors_as_json(request: web.Request, handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError:
        raise
    except web.HTTPException as exc:
        if exc.status >= 400 and request.path.startswith("/api"):
            code = {404: NOT_FOUND, 405: INVALID, 413: INVALID}.get(exc.status, INVALID)
            return web.json_response(error_body(code, exc.reason),
                                     status=exc.status)
        raise
    except StoreError:
        if request.app[GATEWAY].ready:
            log.exception("store error on %s %s", request.method, request.path)
        return web.json_response(error_body(UNAVAILABLE, "storage unavailable; retry"),
                                 status=http_status(UNAVAILABLE))
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return web.json_response(error_body(INTERNAL, "internal error"),
                                 status=http_status(INTERNAL))


async def index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "index.html")


async def metrics(request: web.Request) -> web.Response:
    gateway: Gateway = request.app[GATEWAY]
    return web.Response(body=generate_latest(gateway.metrics.registry),
                        content_type="text/plain")


async def config_js(request: web.Request) -> web.Response:
    gateway: Gateway = request.app[GATEWAY]
    settings = gateway.settings
    body = {"mint": settings.mint, "deposits": settings.deposits,
            "seller_fee_bps": settings.seller_fee_bps,
            "buyer_premium_bps": settings.buyer_premium_bps,
            "offer_fee_bps": settings.offer_fee_bps}
    return web.Response(text=f"window.ECE_CONFIG = {json.dumps(body)};",
                        content_type="application/javascript")


def build_app(settings: Settings) -> web.Application:
    quiet_malformed_requests()  # aiohttp's own 400s: no traceback per request
    app = web.Application(middlewares=[errors_as_json], client_max_size=64 * 1024)
    gateway = Gateway(settings)
    app[GATEWAY] = gateway

    async def resources(_: web.Application) -> AsyncIterator[None]:
        # A cleanup context ends after every handler has finished (on_shutdown runs before),
        # so a request still being served during shutdown never meets a closed store.
        await gateway.start()
        yield
        await gateway.stop()

    async def on_shutdown(_: web.Application) -> None:
        await gateway.close_sockets()

    app.cleanup_ctx.append(resources)
    app.on_shutdown.append(on_shutdown)
    app.add_routes(routes)
    app.add_routes(catalog_routes)
    app.add_routes(token_routes)
    app.add_routes(wallet_routes)
    app.add_routes(offer_routes)
    app.add_routes(analytics_routes)
    app.add_routes(valuation_routes)
    app.add_routes(portfolio_routes)
    app.add_routes(public_portfolio_routes)
    app.router.add_get("/ws", websocket_handler)
    attach_socketio(app)  # /socket.io/: the same sessions as /ws
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/config.js", config_js)
    app.router.add_get("/", index)
    app.router.add_static("/static/", STATIC)
    return app
