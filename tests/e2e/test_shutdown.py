"""Graceful shutdown under load: SIGTERM while many POSTs are in flight.

The service runs with ``REFERRAL_SHUTDOWN_DRAIN_SECONDS=1``. Forty referral creates are in
flight when SIGTERM arrives: each client has sent its headers and the start of its body and
sends the rest only once the server has stopped listening, so every one of them straddles the
whole shutdown. Checked:

* ``/readyz`` answers 503 (problem+json) after SIGTERM while the server still accepts
  connections, and never 200 again; only then are new connections refused;
* every request that was in flight gets a complete response (201), none is reset, and each
  acknowledged referral is in the database;
* the process exits with the lifespan shutdown completed and no traceback in its log.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from app.db.models import Referral
from app.db.session import Database
from tests.e2e.server import Server, cli, free_port, start
from tests.factories import referral_body
from tests.support import secret_env

pytestmark = pytest.mark.slow
IN_FLIGHT = 40
DRAIN_SECONDS = 1.0
GAUGE = re.compile(r"^referral_http_requests_in_flight (\d+(?:\.\d+)?)$", re.MULTILINE)


def test_sigterm_fails_readiness_first_and_finishes_in_flight_requests(
    backend: str, db_url: str, keys: dict[str, str], tmp_path: Path
) -> None:
    server = start(
        cli("serve"),
        {
            "REFERRAL_DATABASE_URL": db_url,
            "REFERRAL_DEMO_MODE": "false",
            **secret_env(),
            "REFERRAL_SHUTDOWN_DRAIN_SECONDS": str(DRAIN_SECONDS),
            "REFERRAL_DB_POOL_SIZE": "10",
        },
        tmp_path / "server.log",
        port=free_port(),
    )
    try:
        report = asyncio.run(_scenario(server, keys))
        code = server.process.wait(timeout=30)
    finally:
        server.stop()
    log = server.log()
    assert code in (0, -signal.SIGTERM), log
    assert "SIGTERM: readiness fails now" in log
    assert "Application shutdown complete" in log
    assert "Traceback" not in log
    acknowledged = report.pop("acknowledged")
    assert isinstance(acknowledged, list)
    stored = asyncio.run(_stored(db_url, acknowledged))
    assert stored == len(acknowledged) == IN_FLIGHT
    print(json.dumps(report))


async def _stored(db_url: str, ids: list[str]) -> int:
    database = Database(db_url)
    try:
        async with database.unit_of_work(read_only=True) as session:
            rows = (await session.execute(select(Referral.id).where(Referral.id.in_(ids)))).all()
    finally:
        await database.dispose()
    return len(rows)


async def _in_flight(probe: httpx.AsyncClient) -> float:
    match = GAUGE.search((await probe.get("/metrics")).text)
    assert match, "no in-flight gauge"
    return float(match.group(1))


async def _scenario(server: Server, keys: dict[str, str]) -> dict[str, object]:
    clinics = [v for k, v in keys.items() if k.startswith("demo clinic ZH-THC-")]
    listener_closed = asyncio.Event()

    async def slow_body(payload: bytes) -> AsyncIterator[bytes]:
        yield payload[:20]
        await listener_closed.wait()  # the rest only after the server stopped listening
        yield payload[20:]

    fresh = httpx.Limits(max_connections=IN_FLIGHT + 5, max_keepalive_connections=0)
    async with (
        httpx.AsyncClient(base_url=server.base_url, limits=fresh, timeout=30) as client,
        httpx.AsyncClient(base_url=server.base_url, limits=fresh, timeout=5) as probe,
    ):
        tasks = [
            asyncio.create_task(
                client.post(
                    "/v1/referrals",
                    content=slow_body(json.dumps(referral_body()).encode()),
                    headers={
                        "Authorization": f"Bearer {clinics[i % len(clinics)]}",
                        "Idempotency-Key": uuid.uuid4().hex,
                        "Content-Type": "application/json",
                    },
                )
            )
            for i in range(IN_FLIGHT)
        ]
        deadline = time.monotonic() + 20
        while await _in_flight(probe) < IN_FLIGHT + 1:  # + the /metrics request itself
            assert time.monotonic() < deadline, "the requests never reached the server"
            await asyncio.sleep(0.02)  # polling for the requests to arrive

        os.kill(server.process.pid, signal.SIGTERM)
        sent = time.monotonic()
        first_503 = refused = None
        readyz: Counter[int] = Counter()
        while refused is None:
            assert time.monotonic() < sent + DRAIN_SECONDS + 10, "the server kept listening"
            try:
                r = await probe.get("/readyz")
            except (httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError):
                # refused, or reset when it raced the listener closing (a probe, not load)
                refused = time.monotonic()
                break
            readyz[r.status_code] += 1
            if r.status_code == 503:
                assert r.headers["content-type"] == "application/problem+json", r.text
                first_503 = first_503 or time.monotonic()
            else:
                assert r.status_code == 200 and first_503 is None, (r.status_code, r.text)
            await asyncio.sleep(0.05)  # probe interval of a load balancer
        assert first_503 is not None, "readiness never failed before the listener closed"
        assert refused - sent >= DRAIN_SECONDS * 0.9, "stopped listening before the drain time"
        assert server.process.poll() is None  # still finishing the in-flight requests
        listener_closed.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)

    failures = [repr(r) for r in results if isinstance(r, BaseException)]
    assert not failures, failures  # no reset, no incomplete response
    responses = [r for r in results if isinstance(r, httpx.Response)]
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {201: IN_FLIGHT}, {s: n for s, n in statuses.items()}
    return {
        "in_flight_at_sigterm": IN_FLIGHT,
        "statuses": dict(statuses),
        "readyz": dict(readyz),
        "readyz_503_after_s": round(first_503 - sent, 3),
        "listener_closed_after_s": round(refused - sent, 3),
        "acknowledged": [r.json()["id"] for r in responses],
    }
