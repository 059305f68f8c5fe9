"""PostgreSQL restarted under load: 503s while it is away, service again within 5 s, and every
acknowledged referral stored exactly once.

The test runs its own PostgreSQL cluster (initdb into a temporary directory, its own port on
127.0.0.1, its socket in that directory, trust authentication, fsync off) and never touches the
machine's shared server. As root, initdb refuses to run, so the cluster is run as the
``postgres`` OS user (``runuser``) in a directory that user owns. Skips with the reason when
the PostgreSQL server binaries are not installed.

Scenario: keyed creates at a steady rate (each with its own Idempotency-Key, retried with the
same key on 503, 409 in flight and connection errors); ``pg_ctl stop -m fast``; while it is
down the service answers 503 problem+json with Retry-After (never 500, no stack trace),
``/readyz`` 503, ``/livez`` 200; ``pg_ctl start``; a fresh create succeeds within 5 s; the load
finishes; every referral acknowledged with 201 is in the database exactly once and nothing
else is. A create claimed while the database went away keeps its key "in flight" until
``REFERRAL_IDEMPOTENCY_IN_FLIGHT_SECONDS`` (2 s here, 60 s by default) and is then taken over by
the client's retry.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pwd
import shutil
import subprocess
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import pytest

from app.db import migrate as migrations
from app.db.session import Database
from app.services import demo
from tests.e2e.server import Server, cli, free_port, start
from tests.factories import referral_body
from tests.support import secret_env, settings_for

pytestmark = pytest.mark.slow
RATE_PER_SECOND = 10
BACK_ON_WITHIN_S = 5.0


def _pg_bin() -> Path | None:
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "initdb").exists() and (candidate / "pg_ctl").exists():
            return candidate
    found = shutil.which("pg_ctl")
    return Path(found).parent if found and shutil.which("initdb") else None


@dataclass
class LocalPostgres:
    """A throwaway PostgreSQL cluster on 127.0.0.1:<port>."""

    bin: Path
    root: Path
    port: int
    as_user: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/referral"

    def _run(self, tool: str, *args: str, timeout: float = 60) -> None:
        subprocess.run(
            [*self.as_user, str(self.bin / tool), *args],
            check=True,
            capture_output=True,
            timeout=timeout,
        )

    def init(self) -> None:
        self._run(
            "initdb",
            "-D",
            str(self.root / "data"),
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        )

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c max_connections=50"
        )
        self._run(
            "pg_ctl", "-D", str(self.root / "data"), "-l", str(self.root / "postgres.log"),
            "-o", options, "-w", "-t", "30", "start",
        )  # fmt: skip

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "fast", "-w", "stop")

    def log(self) -> str:
        path = self.root / "postgres.log"
        return path.read_text(errors="replace") if path.exists() else ""


@pytest.fixture
def postgres(tmp_path: Path) -> Iterator[LocalPostgres]:
    pg_bin = _pg_bin()
    if pg_bin is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root: run the cluster as `postgres`
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no `postgres` OS user for initdb")
        if shutil.which("runuser") is None:
            pytest.skip("running as root and `runuser` is missing")
        root = Path(tempfile.mkdtemp(prefix="referral-pg-"))  # tmp_path is root-only
        os.chown(root, owner.pw_uid, owner.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    else:
        root = tmp_path / "pg"
        root.mkdir()
    pg = LocalPostgres(pg_bin, root, free_port(), as_user)
    try:
        pg.init()
        pg.start()
        yield pg
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):  # already stopped
            pg.stop()
        (tmp_path / "postgres.log").write_text(pg.log())  # kept with the test's other logs
        if as_user:
            shutil.rmtree(root, ignore_errors=True)


async def _prepare(pg: LocalPostgres) -> dict[str, str]:
    conn = await asyncpg.connect(host="127.0.0.1", port=pg.port, user="postgres")
    try:
        await conn.execute("CREATE DATABASE referral")
    finally:
        await conn.close()
    await asyncio.to_thread(migrations.upgrade, pg.url)
    settings = settings_for(pg.url)
    database = Database(pg.url)
    try:
        async with database.unit_of_work() as session:
            keys = await demo.load_demo(
                session, pepper=settings.secret("api_key_pepper"), seed=b"test-seed"
            )
    finally:
        await database.dispose()
    return {k.name: k.key for k in keys}


@dataclass
class Load:
    statuses: Counter[str] = field(default_factory=Counter)
    acknowledged: dict[str, set[str]] = field(default_factory=dict)  # key -> referral ids
    numbers: dict[str, str] = field(default_factory=dict)  # referral id -> number
    bad: list[str] = field(default_factory=list)
    gave_up: list[str] = field(default_factory=list)

    @property
    def acked(self) -> int:
        return len(self.acknowledged)


async def _keyed_create(client: httpx.AsyncClient, key: str, load: Load) -> None:
    body = referral_body()
    idem = uuid.uuid4().hex
    headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": idem}
    deadline = time.monotonic() + 45
    while time.monotonic() < deadline:
        try:
            r = await client.post("/v1/referrals", json=body, headers=headers)
        except httpx.TransportError as exc:
            load.statuses[type(exc).__name__] += 1
        else:
            load.statuses[str(r.status_code)] += 1
            if r.status_code == 201:
                created = r.json()
                load.acknowledged.setdefault(idem, set()).add(created["id"])
                load.numbers[created["id"]] = created["number"]
                return
            if r.status_code not in (409, 503) or not _is_problem(r):
                load.bad.append(f"{r.status_code} {r.headers.get('content-type')} {r.text[:300]}")
                return
            if r.status_code == 503 and "retry-after" not in r.headers:
                load.bad.append("503 without Retry-After")
        await asyncio.sleep(0.2)  # the client's back-off before it retries with the same key
    load.gave_up.append(idem)


def _is_problem(r: httpx.Response) -> bool:
    return r.headers.get("content-type") == "application/problem+json" and "Traceback" not in (
        r.text
    )


async def _wait_for(condition: object, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def _scenario(server: Server, pg: LocalPostgres, keys: dict[str, str]) -> dict[str, object]:
    clinics = [v for k, v in keys.items() if k.startswith("demo clinic ZH-THC-")]
    load = Load()
    stop_load = asyncio.Event()
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=50)
    report: dict[str, object] = {}
    async with httpx.AsyncClient(base_url=server.base_url, limits=limits, timeout=20) as client:

        async def generate() -> None:
            tasks = []
            i = 0
            while not stop_load.is_set():
                tasks.append(
                    asyncio.create_task(_keyed_create(client, clinics[i % len(clinics)], load))
                )
                i += 1
                await asyncio.sleep(1 / RATE_PER_SECOND)  # the steady arrival rate
            await asyncio.gather(*tasks)
            report["keys_sent"] = i

        generator = asyncio.create_task(generate())
        await _wait_for(lambda: load.acked >= 10, "10 creates before the outage", 20)

        await asyncio.to_thread(pg.stop)
        down_at = time.monotonic()
        served_503 = load.statuses["503"]
        outage_checks = 0
        while load.statuses["503"] < served_503 + 20:  # the load meets the outage
            assert time.monotonic() - down_at < 20, "no 503s while the database is down"
            readyz = await client.get("/readyz")
            assert readyz.status_code == 503 and _is_problem(readyz), readyz.text
            assert (await client.get("/livez")).status_code == 200
            outage_checks += 1
            await asyncio.sleep(0.1)  # probe interval
        report["outage_probes"] = outage_checks
        probe = await client.post(
            "/v1/referrals",
            json=referral_body(),
            headers={"Authorization": f"Bearer {clinics[0]}", "Idempotency-Key": uuid.uuid4().hex},
        )
        assert probe.status_code == 503 and _is_problem(probe), (probe.status_code, probe.text)
        assert int(probe.headers["retry-after"]) >= 1
        report["outage_s"] = round(time.monotonic() - down_at, 2)

        await asyncio.to_thread(pg.start)
        up_at = time.monotonic()
        fresh = {"Authorization": f"Bearer {clinics[1]}", "Idempotency-Key": uuid.uuid4().hex}
        body = referral_body()
        while True:
            try:
                r = await client.post("/v1/referrals", json=body, headers=fresh)
                if r.status_code == 201:
                    break
                assert r.status_code in (409, 503), (r.status_code, r.text)
            except httpx.TransportError:
                pass
            assert time.monotonic() - up_at < BACK_ON_WITHIN_S, "not serving 5 s after restart"
            await asyncio.sleep(0.05)
        report["serving_again_after_s"] = round(time.monotonic() - up_at, 3)
        load.acknowledged[fresh["Idempotency-Key"]] = {r.json()["id"]}
        load.numbers[r.json()["id"]] = r.json()["number"]
        assert (await client.get("/readyz")).status_code == 200

        acked_at_restart = load.acked
        await _wait_for(lambda: load.acked >= acked_at_restart + 10, "creates after restart", 30)
        stop_load.set()
        await generator
    report["statuses"] = dict(load.statuses)
    report["acknowledged"] = load.acked
    assert not load.bad, load.bad[:5]
    assert not load.gave_up, f"{len(load.gave_up)} keys never acknowledged"
    assert all(len(ids) == 1 for ids in load.acknowledged.values()), "a key got two referrals"
    assert load.statuses["503"] > 0 and "500" not in load.statuses, load.statuses

    conn = await asyncpg.connect(
        host="127.0.0.1", port=pg.port, user="postgres", database="referral"
    )
    try:
        rows = await conn.fetch("SELECT id, number FROM referral")
    finally:
        await conn.close()
    stored = Counter(r["id"] for r in rows)
    acknowledged = {i for ids in load.acknowledged.values() for i in ids}
    assert set(stored) == acknowledged, (len(stored), len(acknowledged))
    assert all(n == 1 for n in stored.values())
    assert len({r["number"] for r in rows}) == len(rows)
    assert {r["id"]: r["number"] for r in rows} == load.numbers
    report["stored"] = len(rows)
    return report


def test_postgres_restart_under_load(postgres: LocalPostgres, tmp_path: Path) -> None:
    keys = asyncio.run(_prepare(postgres))
    server = start(
        cli("serve"),
        {
            "REFERRAL_DATABASE_URL": postgres.url,
            "REFERRAL_DEMO_MODE": "false",
            **secret_env(),
            "REFERRAL_DB_POOL_SIZE": "10",
            "REFERRAL_IDEMPOTENCY_IN_FLIGHT_SECONDS": "2",
            "REFERRAL_RATE_LIMIT_PER_SECOND": "0",  # retries under the outage are bursty
        },
        tmp_path / "server.log",
        port=free_port(),
    )
    try:
        report = asyncio.run(_scenario(server, postgres, keys))
    finally:
        server.stop()
    log = server.log()
    assert "Traceback" not in log
    assert '"status": 500' not in log, "a request answered 500"
    print(json.dumps(report))
