"""Per-API-key rate limit: a token bucket per key, kept in this process.

Every request that presents an API key (``Authorization: Bearer`` or ``X-API-Key``, the same
precedence as authentication) takes one token from that key's bucket. A bucket holds at most
``REFERRAL_RATE_LIMIT_BURST`` tokens and refills at ``REFERRAL_RATE_LIMIT_PER_SECOND``; an empty
bucket answers 429 problem+json with ``Retry-After`` (whole seconds until a token is back),
before routing, authentication or any database work, so a refused request writes nothing.
Either setting at 0 turns the limit off. Requests without a key are not limited here (they get
401 without touching a bucket); the gateway's per-address limit is the place for those. The
operational endpoints (``/livez``, ``/readyz``, ``/metrics``) are never limited, whatever headers
the probe or scraper sends: a throttled probe would take a healthy replica out of service.

What this is and is not:

* **Per process.** Buckets live in memory. With ``REFERRAL_WORKERS`` = W and R replicas the
  effective limit for one key is up to W x R times the setting (a client's requests spread over
  the processes). For one limit across replicas, put the limit on the gateway in front of them
  (per key header), or divide the setting by the number of processes. A shared counter in the
  database would cost a write per request; this limit deliberately does not do that.
* **Keyed by a hash.** Buckets are keyed by a SHA-256 of the presented key, never the key
  itself, and unknown keys get buckets too (checking validity would need the database). The
  table is bounded: idle buckets (full again) are dropped first, then the oldest.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from app.config import Settings

PROBLEM_TYPE = "https://referral.example.org/problems/rate-limited"
EXEMPT_PATHS = frozenset({"/livez", "/readyz", "/metrics"})
MAX_BUCKETS = 10_000


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class TokenBuckets:
    """Token buckets by key hash; ``take`` answers 0 (allowed) or the seconds to wait."""

    def __init__(
        self,
        per_second: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_buckets: int = MAX_BUCKETS,
    ) -> None:
        if per_second <= 0 or burst < 1:
            raise ValueError("a rate limit needs per_second > 0 and burst >= 1")
        self.per_second = per_second
        self.burst = burst
        self.clock = clock
        self.max_buckets = max_buckets
        self._buckets: dict[str, _Bucket] = {}

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key_hash: str) -> float:
        """Take one token; 0.0 when allowed, else how long until one is available."""
        now = self.clock()
        bucket = self._buckets.get(key_hash)
        if bucket is None:
            self._make_room(now)
            bucket = self._buckets[key_hash] = _Bucket(float(self.burst), now)
        else:
            elapsed = max(now - bucket.updated, 0.0)
            bucket.tokens = min(float(self.burst), bucket.tokens + elapsed * self.per_second)
            bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self.per_second

    def _make_room(self, now: float) -> None:
        if len(self._buckets) < self.max_buckets:
            return
        refill_time = self.burst / self.per_second
        for key in [k for k, b in self._buckets.items() if now - b.updated >= refill_time]:
            del self._buckets[key]  # full again: forgetting it changes nothing
        while len(self._buckets) >= self.max_buckets:
            del self._buckets[next(iter(self._buckets))]  # the oldest first


def key_hash(scope: Scope) -> str | None:
    """SHA-256 of the API key the request presents, or None without one."""
    api_key = bearer = None
    for name, value in scope.get("headers", []):
        if name == b"x-api-key" and value:
            api_key = bytes(value)
        elif name == b"authorization" and bytes(value)[:7].lower() == b"bearer ":
            bearer = bytes(value)[7:].strip()
    key = api_key or bearer
    return hashlib.sha256(key).hexdigest() if key else None


class RateLimitMiddleware:
    """Pure ASGI middleware; installed inside the request-context middleware, so a 429 has a
    request id, is counted in the metrics and appears in the access log."""

    def __init__(self, app: ASGIApp, *, settings: Settings) -> None:
        self.app = app
        self.buckets: TokenBuckets | None = None
        if settings.rate_limit_per_second > 0 and settings.rate_limit_burst > 0:
            self.buckets = TokenBuckets(settings.rate_limit_per_second, settings.rate_limit_burst)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.buckets is None or scope["type"] != "http" or _exempt(scope):
            await self.app(scope, receive, send)
            return
        hashed = key_hash(scope)
        wait = self.buckets.take(hashed) if hashed else 0.0
        if not wait:
            await self.app(scope, receive, send)
            return
        await _too_many(scope, send, max(1, math.ceil(wait)))


def _exempt(scope: Scope) -> bool:
    path: str = scope.get("path", "")
    root = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    return path in EXEMPT_PATHS


async def _too_many(scope: Scope, send: Send, retry_after: int) -> None:
    request_id = scope.get("state", {}).get("request_id")
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE,
        "title": "Too many requests",
        "status": 429,
        "detail": "This API key sent more requests than its rate limit allows; "
        f"retry after {retry_after} s.",
        "instance": scope.get("path"),
        "request_id": request_id,
    }
    data = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 429,
            "headers": [
                (b"content-type", b"application/problem+json"),
                (b"content-length", str(len(data)).encode()),
                (b"retry-after", str(retry_after).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})
