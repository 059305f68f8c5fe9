"""Idempotency keys: a stalled first request and its retry make exactly one referral; every API
key has its own namespace, and a refused create claims nothing (PostgreSQL for the stall: it
needs a second writer while the first request waits)."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import asyncpg
import httpx
import pytest

from tests.driver import ApiDriver
from tests.factories import referral_body
from tests.support import pg_connect

WINDOW = 1  # REFERRAL_IDEMPOTENCY_IN_FLIGHT_SECONDS for this module


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"idempotency_in_flight_seconds": WINDOW}


async def _until(conn: asyncpg.Connection, sql: str, deadline_s: float = 20) -> None:
    """Poll a condition of the database (not a sleep standing in for one)."""
    end = time.monotonic() + deadline_s
    while not await conn.fetchval(sql):
        assert time.monotonic() < end, sql
        await asyncio.sleep(0.05)


async def test_stalled_claim_is_fenced_one_referral(
    api: ApiDriver, client: httpx.AsyncClient, auth: Any, db_url: str, backend: str
) -> None:
    if backend != "postgresql":
        pytest.skip("needs a second writer while the first request waits; SQLite has one")
    ids = await api.ids()
    await api.set_beds("ZH-CH", {"03": (40, 1)})
    headers = {**auth("demo clinic ZH-THC-TS"), "Idempotency-Key": uuid.uuid4().hex}
    body = referral_body()
    lock = await pg_connect(db_url)
    watch = await pg_connect(db_url)
    try:
        # the referral row's foreign key needs a share lock on its consortium: held here, the
        # first request stalls after its claim and before it can finish
        tx = lock.transaction()
        await tx.start()
        await lock.execute("SELECT 1 FROM consortium WHERE code = 'ZHENGHE' FOR UPDATE")
        first = asyncio.create_task(client.post("/v1/referrals", json=body, headers=headers))
        await _until(
            watch,
            "SELECT count(*) > 0 FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND datname = current_database()",
        )
        # past the in-flight window: the retry may take the claim over
        await _until(
            watch,
            f"SELECT bool_and(now() - created_at > interval '{WINDOW} second') "
            "FROM idempotency_record",
        )
        retry = asyncio.create_task(client.post("/v1/referrals", json=body, headers=headers))
        await _until(
            watch,
            "SELECT count(*) >= 2 FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND datname = current_database()",
        )
        await tx.commit()
        answers = await asyncio.gather(first, retry)
        referrals = await watch.fetchval("SELECT count(*) FROM referral")
        held = await watch.fetchval(
            "SELECT held FROM bed_capacity WHERE institution_id = $1 AND specialty_code = '03'",
            ids["ZH-CH"],
        )
    finally:
        await lock.close()
        await watch.close()
    statuses = sorted(a.status_code for a in answers)
    assert referrals == 1, statuses
    assert held == 1
    assert statuses[0] == 201 and statuses[1] in (201, 409), [a.text for a in answers]
    again = await client.post("/v1/referrals", json=body, headers=headers)
    assert again.status_code == 201  # the replay: the one referral
    assert again.json()["id"] in {a.json().get("id") for a in answers}


async def test_keys_are_per_api_key_and_a_refused_create_claims_nothing(
    client: httpx.AsyncClient, auth: Any, app: Any
) -> None:
    from sqlalchemy import text

    key = uuid.uuid4().hex
    body = referral_body()
    council = await client.post(
        "/v1/referrals",
        json=body,
        headers={**auth("demo council ZHENGHE"), "Idempotency-Key": key},
    )
    assert council.status_code == 403
    async with app.state.database.unit_of_work(read_only=True) as session:
        claimed = (await session.execute(text("SELECT count(*) FROM idempotency_record"))).scalar()
        counters = (
            await session.execute(text("SELECT count(*) FROM referral_counter"))
        ).scalar_one()
    assert claimed == 0 and counters == 0  # no claim, no number burnt
    made = await client.post(
        "/v1/referrals",
        json=body,
        headers={**auth("demo clinic ZH-THC-TS"), "Idempotency-Key": key},
    )
    assert made.status_code == 201
    async with app.state.database.unit_of_work(read_only=True) as session:
        scopes = (
            (await session.execute(text("SELECT scope_id FROM idempotency_record"))).scalars().all()
        )
    assert len(scopes) == 1
    assert scopes[0] != made.json()["source_institution_id"]  # the API key, not the institution
