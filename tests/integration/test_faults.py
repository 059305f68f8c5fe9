"""Faults the service must notice: a schema behind the code, a deleted SQLite file, a held lock
and a stalled table on PostgreSQL. Each answers 503 (never a hang, a 500 or a new empty
database), and `serve` refuses to start on a database it cannot serve."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url

from app.db import migrate as migrations
from app.main import create_app
from tests.driver import ApiDriver
from tests.factories import referral_body
from tests.support import pg_connect, secret_env, settings_for


async def _client_for(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def test_readiness_fails_while_the_schema_is_behind(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'behind.db'}"
    await asyncio.to_thread(migrations.upgrade, url, migrations.revision_before("0018"))
    app = create_app(settings_for(url))
    try:
        async with await _client_for(app) as client:
            r = await client.get("/readyz")
            assert r.status_code == 503
            assert "referral-service migrate" in r.json()["detail"]
            await asyncio.to_thread(migrations.upgrade, url)
            assert (await client.get("/readyz")).status_code == 200
    finally:
        await app.state.database.dispose()


def _serve(url: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        **secret_env(),
        "REFERRAL_DATABASE_URL": url,
        "REFERRAL_DEMO_MODE": "false",
    }
    return subprocess.run(
        [sys.executable, "-m", "app.cli", "serve", "--port", "0"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_serve_refuses_an_unmigrated_database(tmp_path: Path) -> None:
    missing = tmp_path / "none.db"
    done = _serve(f"sqlite+aiosqlite:///{missing}", tmp_path)
    assert done.returncode == 2
    assert "referral-service migrate" in done.stderr
    assert not missing.exists()  # serve never creates an empty database
    behind = tmp_path / "behind.db"
    migrations.upgrade(f"sqlite+aiosqlite:///{behind}", "0008")
    done = _serve(f"sqlite+aiosqlite:///{behind}", tmp_path)
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "referral-service migrate" in lines[0]


async def test_sqlite_deleted_file_answers_503_and_is_never_recreated(
    client: httpx.AsyncClient, auth: Any, db_url: str, backend: str
) -> None:
    if backend != "sqlite":
        pytest.skip("a SQLite file")
    headers = {**auth("demo clinic ZH-THC-TS"), "Idempotency-Key": uuid.uuid4().hex}
    assert (
        await client.post("/v1/referrals", json=referral_body(), headers=headers)
    ).status_code == 201
    path = Path(make_url(db_url).database or "")
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    headers["Idempotency-Key"] = uuid.uuid4().hex
    r = await client.post("/v1/referrals", json=referral_body(), headers=headers)
    assert r.status_code == 503, r.text
    assert (await client.get("/readyz")).status_code == 503
    assert not path.exists()


@pytest.fixture
def settings_overrides(request: pytest.FixtureRequest) -> dict[str, Any]:
    return {"db_lock_timeout_ms": 300} if "lock" in request.node.name else {}


async def test_postgres_held_lock_answers_503_not_a_hang(
    api: ApiDriver, client: httpx.AsyncClient, auth: Any, db_url: str, backend: str
) -> None:
    if backend != "postgresql":
        pytest.skip("PostgreSQL lock_timeout")
    await api.set_beds("ZH-CH", {"03": (40, 1)})
    holder = await pg_connect(db_url)
    try:
        tx = holder.transaction()
        await tx.start()
        await holder.execute("SELECT 1 FROM consortium WHERE code = 'ZHENGHE' FOR UPDATE")
        headers = {**auth("demo clinic ZH-THC-TS"), "Idempotency-Key": uuid.uuid4().hex}
        started = time.monotonic()
        r = await asyncio.wait_for(
            client.post("/v1/referrals", json=referral_body(), headers=headers), 15
        )
        elapsed = time.monotonic() - started
        await tx.rollback()
    finally:
        await holder.close()
    assert r.status_code == 503, r.text
    assert r.headers["retry-after"] == "1"
    assert elapsed < 5
    # the key was released: the same request succeeds once the lock is gone
    again = await client.post("/v1/referrals", json=referral_body(), headers=headers)
    assert again.status_code == 201, again.text


async def test_postgres_stalled_table_fails_readiness_within_two_seconds(
    client: httpx.AsyncClient, db_url: str, backend: str
) -> None:
    if backend != "postgresql":
        pytest.skip("PostgreSQL")
    holder = await pg_connect(db_url)
    try:
        tx = holder.transaction()
        await tx.start()
        await holder.execute("LOCK TABLE alembic_version IN ACCESS EXCLUSIVE MODE")
        started = time.monotonic()
        r = await asyncio.wait_for(client.get("/readyz"), 10)
        elapsed = time.monotonic() - started
        await tx.rollback()
    finally:
        await holder.close()
    assert r.status_code == 503
    assert elapsed < 3
    assert (await client.get("/readyz")).status_code == 200
