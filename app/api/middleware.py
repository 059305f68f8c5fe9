"""Pure ASGI middleware: request ids, body size limit, metrics and the access log."""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.security_headers import NO_STORE, NOSNIFF, extra_headers
from app.logging_setup import request_id_var

access_log = logging.getLogger("app.access")
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
UNMATCHED_ROUTE = "<unmatched>"


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "referral_http_requests_total",
            "HTTP requests by method, route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "referral_http_request_duration_seconds",
            "HTTP request latency by method and route template.",
            ["method", "route"],
            registry=self.registry,
            buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        self.in_flight = Gauge(
            "referral_http_requests_in_flight", "Requests being served.", registry=self.registry
        )


class BodyTooLarge(Exception):
    pass


#: the one request that may carry more than ``max_body_bytes``: a document upload
DOCUMENT_UPLOAD = re.compile(r"/v1/referrals/[^/]+/documents$")


class RequestContextMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: Metrics,
        max_body_bytes: int,
        document_max_bytes: int | None = None,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.document_max_bytes = document_max_bytes or max_body_bytes

    def _limit(self, scope: Scope) -> int:
        """The body size allowed: larger for a document upload, else ``max_body_bytes``."""
        if scope.get("method") == "POST" and DOCUMENT_UPLOAD.search(str(scope.get("path", ""))):
            return max(self.document_max_bytes, self.max_body_bytes)
        return self.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = _header(scope, b"x-request-id")
        request_id = incoming if incoming and _REQUEST_ID_RE.match(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status_holder = {"status": 500}
        declared = _header(scope, b"content-length")
        limit = self._limit(scope)
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _too_large(scope, send, request_id, limit)
            self._record(scope, 413, started)
            request_id_var.reset(token)
            return

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(f"The request body exceeds {limit} bytes.")
            return message

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                headers.extend(extra_headers(str(scope.get("path", "")), headers))
                message = {**message, "headers": headers}
            await send(message)

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, limited_receive, send_wrapper)
        except BodyTooLarge:
            status_holder["status"] = 413
            await _too_large(scope, send, request_id, limit)
        finally:
            self.metrics.in_flight.dec()
            self._record(scope, status_holder["status"], started)
            request_id_var.reset(token)

    def _record(self, scope: Scope, status: int, started: float) -> None:
        elapsed = time.perf_counter() - started
        route = getattr(scope.get("route"), "path", None) or UNMATCHED_ROUTE
        method = scope["method"]
        self.metrics.requests.labels(method, route, str(status)).inc()
        self.metrics.latency.labels(method, route).observe(elapsed)
        client = scope.get("client")
        access_log.info(
            "request",
            extra={
                "method": method,
                "route": route,
                # the caller as the trusted gateway reported it (X-Forwarded-For)
                "client": client[0] if client else None,
                "status": status,
                "duration_ms": round(elapsed * 1000, 2),
            },
        )


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


async def _too_large(scope: Scope, send: Send, request_id: str, limit: int) -> None:
    import json

    body: dict[str, Any] = {
        "type": "https://referral.example.org/problems/payload-too-large",
        "title": "Payload too large",
        "status": 413,
        "detail": f"The request body exceeds {limit} bytes.",
        "instance": scope.get("path"),
        "request_id": request_id,
    }
    data = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/problem+json"),
                (b"content-length", str(len(data)).encode()),
                (b"x-request-id", request_id.encode()),
                (b"connection", b"close"),
                NOSNIFF,
                NO_STORE,
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})


class RootPathMiddleware:
    """Gives every route the path as ASGI defines it: the root path included.

    A gateway that publishes the service under ``REFERRAL_ROOT_PATH`` usually strips the prefix
    (deploy/nginx.conf does), so requests arrive as ``/v1/...`` while ``root_path`` is
    ``/referral``. Routes match either way, but mounted apps (the Swagger UI and ReDoc assets
    under ``/static``) resolve their files from the path minus the root path and answered 404.
    Requests that already carry the prefix (a gateway that does not strip it) pass unchanged.
    """

    def __init__(self, app: ASGIApp, root_path: str) -> None:
        self.app = app
        self.root = root_path.rstrip("/")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.root and scope["type"] in ("http", "websocket"):
            path: str = scope["path"]
            scope = {**scope, "root_path": self.root}
            if path != self.root and not path.startswith(self.root + "/"):
                scope["path"] = self.root + path
                raw = scope.get("raw_path")
                if raw is not None:
                    scope["raw_path"] = self.root.encode() + bytes(raw)
        await self.app(scope, receive, send)
