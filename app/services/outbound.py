"""What every at-least-once sender shares: the webhook relay (``relay``) and the insurance
filing relay (``filing_relay``).

The lease of a claimed row, the retry backoff and the give-up rule, the coarse failure class
of an attempt (never exception text, addresses or ports), the HTTP client that goes through
the egress policy (``egress``: resolved and checked at connect time, pinned to the checked
address, no redirects, no proxy from the environment), and the loop that runs a pass every
interval.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

import httpx

from app.config import Settings
from app.services.egress import EgressDenied, EgressPolicy, PinnedTransport, Resolver


def lease(settings: Settings) -> timedelta:
    """How long a claimed row stays with its relay: well beyond one attempt."""
    return timedelta(seconds=2 * settings.webhook_timeout_seconds + 30)


def backoff(settings: Settings, attempt: int) -> timedelta:
    """Delay after the ``attempt``-th failed attempt: base × 2^(attempt−1), capped."""
    exponent = min(max(attempt - 1, 0), 32)
    seconds = settings.webhook_backoff_base_seconds * (2**exponent)
    return timedelta(seconds=min(seconds, settings.webhook_backoff_max_seconds))


def give_up_at(settings: Settings, now: datetime) -> datetime:
    return now + timedelta(seconds=settings.webhook_give_up_after_seconds)


def after_failure(
    settings: Settings, now: datetime, attempt: int, give_up: datetime
) -> dict[str, Any]:
    """The columns of a failed attempt: retried after the backoff, or dead past ``give_up``
    (``{"dead": True}`` marks the latter for the caller, which sets its own state)."""
    if now >= give_up:
        return {"dead": True, "dead_at": now, "next_attempt_at": None}
    return {"next_attempt_at": min(now + backoff(settings, attempt), give_up)}


def failure_class(exc: BaseException) -> str:
    """A coarse class for the log: never exception text, addresses or ports."""
    if isinstance(exc, EgressDenied):
        return exc.reason
    if isinstance(exc, TimeoutError | httpx.TimeoutException):
        return "timeout"
    if _is_tls(exc):
        return "tls"
    if isinstance(exc, httpx.ConnectError):
        return "refused"
    return "network"


def _is_tls(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError | ssl.CertificateError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


@asynccontextmanager
async def client(settings: Settings, resolver: Resolver) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client whose every connection goes through the egress policy."""
    transport = PinnedTransport(EgressPolicy.of(settings.webhook_allow), resolver)
    async with httpx.AsyncClient(
        timeout=httpx.Timeout(settings.webhook_timeout_seconds),
        follow_redirects=False,
        transport=transport,
        trust_env=False,
    ) as http:
        yield http


async def every(
    interval: float, one_pass: Callable[[], Awaitable[object]], log: logging.Logger, what: str
) -> None:
    """Run ``one_pass`` every ``interval`` seconds until cancelled; a failed pass is logged
    by its exception's class only, and the next one runs on time."""
    while True:
        try:
            await one_pass()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("%s pass failed: %s", what, type(exc).__name__)
        await asyncio.sleep(interval)
