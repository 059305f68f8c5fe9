"""Two replicas on one PostgreSQL behind a reverse proxy, the topology of a gateway in front of
two containers, without containers.

Two ``referral-service serve`` processes share one database (a clone of the test template) and
sit behind a small round-robin HTTP proxy written here (uvicorn + httpx in a thread, adding
``X-Forwarded-For``/``-Proto``); every request of the tests goes through the proxy, so
consecutive requests of one client land on different replicas. Checked:

* routing under concurrency: the zero-overbooking scenario of test_concurrency.py (120
  clients, 10 free member beds, 3 partner beds) gives exactly 10 + 3 holds, no 5xx, and both
  replicas served about half of the requests;
* expiry with both replicas' in-process sweepers (every 0.2 s): overdue referrals (made
  overdue with SQL) are each expired exactly once and re-routed once, holds moved with them;
* webhooks with both replicas' relays (every 0.2 s): every outbox message reaches its
  subscriber exactly once (the same set after de-duplication on ``webhook-id``, and no
  duplicate either), signed.

Needs PostgreSQL (REFERRAL_TEST_DATABASE_URL); SQLite is one file on one host.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import signal
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import uvicorn
from sqlalchemy.engine import make_url

from app.main import create_app
from tests.e2e import test_concurrency
from tests.e2e.server import Server, cli, free_port, start
from tests.factories import census, referral_body
from tests.integration.test_webhooks import ALL_TYPES, Receiver, serve_receiver, verify
from tests.support import secret_env, settings_for

pytestmark = pytest.mark.slow
HOP_BY_HOP = frozenset(
    {b"connection", b"keep-alive", b"transfer-encoding", b"content-length", b"host", b"upgrade"}
)
EXPIRING = 90  # over one sweeper batch (50), so both sweepers get work at once


# --- the reverse proxy -------------------------------------------------------------------


class RoundRobinProxy:
    """An ASGI reverse proxy: each request to the next upstream in turn."""

    def __init__(self, upstreams: list[str]) -> None:
        self.upstreams = upstreams
        self._next = itertools.count()
        self.served: Counter[str] = Counter()
        self.statuses: Counter[int] = Counter()
        self.client: httpx.AsyncClient | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        assert scope["type"] == "http"
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        upstream = self.upstreams[next(self._next) % len(self.upstreams)]
        headers = [(k, v) for k, v in scope["headers"] if k.lower() not in HOP_BY_HOP]
        client_host = (scope.get("client") or ("127.0.0.1", 0))[0]
        headers += [(b"x-forwarded-for", client_host.encode()), (b"x-forwarded-proto", b"http")]
        url = upstream + scope["raw_path"].decode("latin-1")
        if scope.get("query_string"):
            url += "?" + scope["query_string"].decode("latin-1")
        assert self.client is not None
        try:
            r = await self.client.request(scope["method"], url, content=body, headers=headers)
        except httpx.TransportError:
            status, out_headers, content = 502, [(b"content-type", b"text/plain")], b"bad gateway"
        else:
            status, content = r.status_code, r.content
            out_headers = [(k, v) for k, v in r.headers.raw if k.lower() not in HOP_BY_HOP]
            self.served[upstream] += 1
        self.statuses[status] += 1
        out_headers.append((b"content-length", str(len(content)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": out_headers})
        await send({"type": "http.response.body", "body": content})

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                limits = httpx.Limits(max_connections=300, max_keepalive_connections=100)
                self.client = httpx.AsyncClient(limits=limits, timeout=60)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.client is not None:
                    await self.client.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return


@contextmanager
def serve_proxy(upstreams: list[str]) -> Iterator[tuple[str, RoundRobinProxy]]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    proxy = RoundRobinProxy(upstreams)
    config = uvicorn.Config(
        proxy, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="reverse-proxy", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline, "proxy did not start"
            time.sleep(0.01)  # polling for start-up, not papering over a race
        yield f"http://127.0.0.1:{port}", proxy
    finally:
        server.should_exit = True
        thread.join(timeout=10)


# --- two replicas ------------------------------------------------------------------------


@contextmanager
def two_replicas(db_url: str, tmp_path: Path, **env: str) -> Iterator[list[Server]]:
    base = {
        "REFERRAL_DATABASE_URL": db_url,
        "REFERRAL_DEMO_MODE": "false",
        **secret_env(),
        "REFERRAL_WORKERS": "1",
        "REFERRAL_DB_POOL_SIZE": "10",
        **env,
    }
    servers: list[Server] = []
    try:
        for name in ("replica-a", "replica-b"):
            servers.append(start(cli("serve"), base, tmp_path / f"{name}.log", port=free_port()))
        yield servers
    finally:
        codes = [s.stop() for s in servers]
    for server, code in zip(servers, codes, strict=True):
        log = server.log()
        assert code in (0, -signal.SIGTERM), log[-3000:]
        assert "Traceback" not in log and '"status": 500' not in log, log[-3000:]


@pytest.fixture
def pg_only(backend: str) -> None:
    if backend != "postgresql":
        pytest.skip("two replicas share one PostgreSQL; SQLite is one file on one host")


# --- routing under concurrency -----------------------------------------------------------


def test_routing_concurrency_across_two_replicas(
    pg_only: None, db_url: str, keys: dict[str, str], tmp_path: Path
) -> None:
    with (
        two_replicas(db_url, tmp_path) as servers,
        serve_proxy([s.base_url for s in servers]) as (
            url,
            proxy,
        ),
    ):
        started = time.monotonic()
        asyncio.run(test_concurrency._scenario(url, keys))
        elapsed = time.monotonic() - started
    assert all(s < 500 for s in proxy.statuses), proxy.statuses
    total = sum(proxy.served.values())
    shares = {u: n / total for u, n in proxy.served.items()}
    assert len(shares) == 2 and all(0.4 <= s <= 0.6 for s in shares.values()), shares
    print(
        json.dumps(
            {
                "statuses": dict(proxy.statuses),
                "served": list(proxy.served.values()),
                "seconds": round(elapsed, 2),
            }
        )
    )


# --- expiry and webhooks with both replicas' background tasks ----------------------------


def _admin_dsn(db_url: str) -> str:
    return make_url(db_url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _subscribe(db_url: str, receiver: Receiver, keys: dict[str, str]) -> dict[str, str]:
    """Subscriptions through the API of an in-process instance in demo mode (http:// receiver
    URLs are allowed only there); the replicas themselves run outside demo mode."""
    app = create_app(settings_for(db_url, webhook_allow=f"127.0.0.1:{receiver.port}"))
    secrets = {}
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            for name, path in (
                ("demo hospital ZH-CH", "/ZH-CH"),
                ("demo hospital ZH-TCM", "/ZH-TCM"),
                ("demo clinic ZH-THC-TS", "/ZH-THC-TS"),
            ):
                r = await client.post(
                    "/v1/webhook-subscriptions",
                    json={"url": receiver.url(path), "event_types": ALL_TYPES},
                    headers={"Authorization": f"Bearer {keys[name]}"},
                )
                assert r.status_code == 201, r.text
                secrets[path] = r.json()["secret"]
    finally:
        await app.state.database.dispose()
    return secrets


async def _poll(conn: asyncpg.Connection, sql: str, want: int, what: str) -> None:
    deadline = time.monotonic() + 30
    while (got := await conn.fetchval(sql)) != want:
        assert time.monotonic() < deadline, f"{what}: {got}, expected {want}"
        await asyncio.sleep(0.1)  # polling the database for the background work


async def _expiry_and_webhooks(
    url: str, db_url: str, keys: dict[str, str], receiver: Receiver
) -> dict[str, Any]:
    secrets = await _subscribe(db_url, receiver, keys)
    admin = {"Authorization": f"Bearer {keys['demo admin']}"}
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        items = (await client.get("/v1/institutions", params={"limit": 200}, headers=admin)).json()
        ids = {i["code"]: i["id"] for i in items["items"]}
        for code in ("ZH-CH", "ZH-TCM"):
            r = await client.put(
                f"/v1/institutions/{ids[code]}/capacity",
                json=census({"03": (EXPIRING + 30, 0)}),
                headers=admin,
            )
            assert r.status_code == 200, r.text
        gate = asyncio.Semaphore(20)

        async def create(i: int) -> str:
            clinic = ("ZH-THC-TS", "ZH-THC-LY", "ZH-THC-DP")[i % 3]
            headers = {
                "Authorization": f"Bearer {keys[f'demo clinic {clinic}']}",
                "Idempotency-Key": uuid.uuid4().hex,
            }
            async with gate:
                r = await client.post("/v1/referrals", json=referral_body(), headers=headers)
            assert r.status_code == 201, r.text
            assert r.json()["routing"]["target"]["code"] == "ZH-CH"
            return str(r.json()["id"])

        t0 = time.monotonic()
        made = list(await asyncio.gather(*(create(i) for i in range(EXPIRING))))
        t1 = time.monotonic()

        conn = await asyncpg.connect(_admin_dsn(db_url))
        try:
            overdue = datetime.now(UTC) - timedelta(minutes=5)
            await conn.execute(
                "UPDATE referral SET respond_by = $1 WHERE id = ANY($2::text[])", overdue, made
            )
            await _poll(
                conn,
                "SELECT count(*) FROM referral_event WHERE type = 'expired'",
                EXPIRING,
                "expired events",
            )
            await _poll(
                conn,
                "SELECT count(*) FROM referral WHERE status = 'pending' AND respond_by < now()",
                0,
                "overdue referrals left",
            )
            per_referral = await conn.fetch(
                "SELECT referral_id, count(*) AS n FROM referral_event WHERE type = 'expired' "
                "GROUP BY referral_id"
            )
            targets = await conn.fetch(
                "SELECT target_institution_id, status, count(*) AS n FROM referral "
                "WHERE id = ANY($1::text[]) GROUP BY 1, 2",
                made,
            )
            t2 = time.monotonic()
            # the relays: everything fanned out and delivered
            await _poll(
                conn,
                "SELECT count(*) FROM webhook_event WHERE fanned_out_at IS NULL",
                0,
                "outbox rows not fanned out",
            )
            await _poll(
                conn,
                "SELECT count(*) FROM webhook_delivery WHERE state <> 'delivered'",
                0,
                "deliveries not delivered",
            )
            t3 = time.monotonic()
            expected_rows = await conn.fetch(
                "SELECT s.url, e.id FROM webhook_delivery d "
                "JOIN webhook_event e ON e.seq = d.event_seq "
                "JOIN webhook_subscription s ON s.id = d.subscription_id"
            )
        finally:
            await conn.close()
        for code, held in (("ZH-CH", 0), ("ZH-TCM", EXPIRING)):
            cap = (await client.get(f"/v1/institutions/{ids[code]}/capacity", headers=admin)).json()
            beds = next(i for i in cap["items"] if i["specialty_code"] == "03")
            assert beds["held"] == held, (code, beds)

    assert {r["referral_id"]: r["n"] for r in per_referral} == dict.fromkeys(made, 1)
    assert [(r["target_institution_id"], r["status"], r["n"]) for r in targets] == [
        (ids["ZH-TCM"], "pending", EXPIRING)
    ]
    expected = Counter((r["url"].rsplit("/", 1)[1], r["id"]) for r in expected_rows)
    received = Counter((q.path.lstrip("/"), q.headers["webhook-id"]) for q in receiver.requests)
    assert set(received) == set(expected), (len(received), len(expected))  # after de-dup
    assert all(n == 1 for n in received.values()), "a message was delivered twice"
    assert all(q.ok and verify(secrets[q.path], q) for q in receiver.requests)
    types = Counter((q.path, q.payload["type"]) for q in receiver.requests)
    assert types[("/ZH-CH", "referral.created")] == EXPIRING
    assert types[("/ZH-CH", "referral.expired")] == EXPIRING
    assert types[("/ZH-CH", "referral.rerouted")] == EXPIRING
    assert types[("/ZH-TCM", "referral.rerouted")] == EXPIRING
    for kind in ("created", "expired", "rerouted"):  # the source of a third of them
        assert types[("/ZH-THC-TS", f"referral.{kind}")] == EXPIRING // 3, types
    return {
        "seconds": {
            "create": round(t1 - t0, 2),
            "expire": round(t2 - t1, 2),
            "deliver_rest": round(t3 - t2, 2),
        },
        "deliveries": len(receiver.requests),
        "types": {f"{p} {t}": n for (p, t), n in types.items()},
    }


def test_sweepers_and_relays_of_two_replicas(
    pg_only: None, db_url: str, keys: dict[str, str], tmp_path: Path
) -> None:
    background = {
        "REFERRAL_SWEEP_INTERVAL_SECONDS": "0.2",
        "REFERRAL_WEBHOOK_RELAY_INTERVAL_SECONDS": "0.2",
        "REFERRAL_WEBHOOK_ALLOW": "127.0.0.1",  # the receiver listens on loopback
    }
    with (
        serve_receiver() as receiver,
        two_replicas(db_url, tmp_path, **background) as servers,
        serve_proxy([s.base_url for s in servers]) as (url, proxy),
    ):
        report = asyncio.run(_expiry_and_webhooks(url, db_url, keys, receiver))
    swept = [
        sum(int(n) for n in re.findall(r"expired and re-routed (\d+) referrals", s.log()))
        for s in servers
    ]
    assert sum(swept) == EXPIRING, swept
    assert all(s < 500 for s in proxy.statuses), proxy.statuses
    print(json.dumps({**report, "expired_per_replica": swept}))
