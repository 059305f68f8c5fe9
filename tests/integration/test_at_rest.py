"""Patient data at rest: after creates, a rejection, a down-referral, follow-ups, an
escalation and the insurance filings they make (filed at a real gateway, cancelled, re-filed,
manual), no column of any table holds the patients' resident IDs, name, insurance number or
diagnosis text in clear (only sealed columns hold them, as ciphertext). SQLite: the database
file and its WAL, byte for byte; PostgreSQL: every text, varchar, json and bytea column of
every table. The idempotency record kept the whole 201 body in clear before."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from app.services import filing_relay
from tests.driver import ApiDriver
from tests.factories import referral_body
from tests.integration import test_down_referral_api as down_flow
from tests.integration.test_insurance_filing import Gateway
from tests.integration.test_webhooks import serve_receiver

NAME = "测试患者甲"
INSURANCE = "INS-000123456"
DIAGNOSIS_TEXT = "脑梗死（测试诊断文字）"


@pytest.fixture
def insurance_gateway() -> Iterator[Gateway]:
    with serve_receiver(Gateway) as rec:
        yield rec


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"webhook_allow": "127.0.0.1", "webhook_relay_interval_seconds": 0}


async def _create_and_reject(
    api: ApiDriver, client: httpx.AsyncClient, auth: Any, app: Any, gateway: Gateway
) -> str:
    """A referral filed at the gateway, rejected (the filing cancelled, another filed); the
    consortium's gateway is then removed, so the later referrals' filings are manual."""
    for code in ("ZH-CH", "ZH-TCM"):
        await api.set_beds(code, {"03": (40, 1)})
    consortia = (await client.get("/v1/consortia", headers=auth("demo admin"))).json()["items"]
    zhenghe = next(c["id"] for c in consortia if c["code"] == "ZHENGHE")
    url = f"/v1/consortia/{zhenghe}/insurance-gateway"
    r = await client.put(url, json={"url": gateway.url("/fsi")}, headers=auth("demo admin"))
    assert r.status_code == 200, r.text
    body = referral_body()
    ref = (await api.create("demo clinic ZH-THC-TS", body)).json()
    await filing_relay.deliver_once(app.state.database, app.state.settings)
    await api.act("demo hospital ZH-CH", ref, "reject", {"reason_code": "no_bed"})
    await filing_relay.deliver_once(app.state.database, app.state.settings)
    assert [m["infno"] for m in gateway.messages()] == ["2501", "2502", "2501"]
    assert (await client.delete(url, headers=auth("demo admin"))).status_code == 204
    resident_id: str = body["patient"]["resident_id"]
    return resident_id


async def _pg_hits(app: Any, values: list[str]) -> list[tuple[str, str, str]]:
    hits = []
    async with app.state.database.unit_of_work(read_only=True) as session:
        columns = (
            await session.execute(
                text(
                    "SELECT table_name, column_name, data_type FROM information_schema.columns "
                    "WHERE table_schema = 'public' AND data_type IN "
                    "('text', 'character varying', 'json', 'jsonb', 'bytea')"
                )
            )
        ).all()
        for table, column, kind in columns:
            for value in values:
                if kind == "bytea":
                    where = f"position(convert_to(:v, 'UTF8') in \"{column}\") > 0"
                else:
                    where = f'position(:v in "{column}"::text) > 0'
                n = (
                    await session.execute(
                        text(f'SELECT count(*) FROM "{table}" WHERE {where}'), {"v": value}
                    )
                ).scalar_one()
                if n:
                    hits.append((table, column, value[:3] + "…"))
    return hits


def _file_hits(db_url: str, values: list[str]) -> list[tuple[str, str]]:
    path = Path(make_url(db_url).database or "")
    hits = []
    for file in (path, path.with_name(path.name + "-wal")):
        if file.exists():
            data = file.read_bytes()
            hits += [(file.name, v[:3] + "…") for v in values if v.encode() in data]
    return hits


async def test_no_patient_data_in_clear_at_rest(
    api: ApiDriver,
    client: httpx.AsyncClient,
    auth: Any,
    app: Any,
    db_url: str,
    backend: str,
    insurance_gateway: Gateway,
) -> None:
    first = await _create_and_reject(api, client, auth, app, insurance_gateway)
    await down_flow.test_closed_loop_up_down_follow_up_escalate(api, client, auth, app)
    rows = await _pg_hits(app, [first]) if backend == "postgresql" else []
    # the down-referral flow's patient: the up-referral its hospital sent
    async with app.state.database.unit_of_work(read_only=True) as session:
        count = (await session.execute(text("SELECT count(*) FROM referral"))).scalar_one()
        records = (
            await session.execute(text("SELECT count(*) FROM idempotency_record"))
        ).scalar_one()
        states = set((await session.execute(text("SELECT state FROM insurance_filing"))).scalars())
    assert count >= 4 and records >= 3  # creates, the down-referral and the escalation
    assert {"cancelled", "filed", "manual"} <= states, states
    values = [first, NAME, INSURANCE, DIAGNOSIS_TEXT]
    if backend == "postgresql":
        assert await _pg_hits(app, values) == [] and rows == []
    else:
        await app.state.database.dispose()  # the WAL as the service left it
        assert _file_hits(db_url, values) == []
