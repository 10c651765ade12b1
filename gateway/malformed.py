"""Requests aiohttp cannot parse (a header line past its 8,190-byte limit, a broken request
line, a bad chunked body): aiohttp answers them 400 and closes the connection by itself,
before any handler or middleware runs, and logs the parse error at ERROR with a full
traceback - one per request, log spam any client can cause. `quiet_malformed_requests`
makes each such record one line at DEBUG without the traceback (kept only when the
`aiohttp.server` logger is enabled for DEBUG, e.g. ECE_LOG_LEVEL=DEBUG). Errors of the
server itself (an exception in a handler) are left as they are."""

from __future__ import annotations

import logging

from aiohttp.http_exceptions import HttpProcessingError

SERVER_LOGGER = "aiohttp.server"  # where aiohttp's RequestHandler logs


class MalformedRequests(logging.Filter):
    """A client's malformed request: one DEBUG line, no traceback (or nothing when DEBUG is
    off); every other record unchanged."""

    def filter(self, record: logging.LogRecord) -> bool | logging.LogRecord:
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, HttpProcessingError):
            return True
        if not logging.getLogger(record.name).isEnabledFor(logging.DEBUG):
            return False
        return logging.makeLogRecord({
            "name": record.name, "levelno": logging.DEBUG, "levelname": "DEBUG",
            "pathname": record.pathname, "lineno": record.lineno, "created": record.created,
            "msg": "malformed request answered 400 (%s): %s",
            "args": (record.getMessage(), _short(exc.message or type(exc).__name__))})


def _short(text: str, most: int = 120) -> str:
    """The parser's message, which quotes the offending line (up to the limit, 8 KB)."""
    return text if len(text) <= most else text[:most] + f"... ({len(text)} chars)"


_FILTER = MalformedRequests()


def quiet_malformed_requests() -> None:
    """Install the filter on aiohttp's server logger (once, however often it is called)."""
    logging.getLogger(SERVER_LOGGER).addFilter(_FILTER)
