"""PIPL's minimum-necessary rule: a hospital that rejected a referral, or let it expire, loses
access to it (the same 404 as for a missing id) and it leaves its worklists; its answer to the
rejection carries no clinical text and a masked identity."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import update

from app.db.base import utcnow
from app.db.models import Referral
from app.services import lifecycle
from tests.driver import ApiDriver

PATHS = ("", "/events", "/tiers", "/follow-ups", "/milestones")


async def _setup(api: ApiDriver) -> tuple[dict[str, str], dict[str, Any]]:
    ids = await api.ids()
    for code in ("ZH-CH", "ZH-TCM"):
        await api.set_beds(code, {"03": (40, 1)})
    r = await api.create("demo clinic ZH-THC-TS", expect=None)
    assert r.status_code == 201 and r.json()["target_institution_id"] == ids["ZH-CH"]
    return ids, r.json()


async def _no_access(client: httpx.AsyncClient, h: dict[str, str], ref: dict[str, Any]) -> None:
    for path in PATHS:
        r = await client.get(f"/v1/referrals/{ref['id']}{path}", headers=h)
        assert r.status_code == 404, (path, r.status_code)
    assert (await client.get(f"/v1/episodes/{ref['episode_id']}", headers=h)).status_code == 404
    for box in ("incoming", "all"):
        items = (await client.get("/v1/referrals", params={"box": box}, headers=h)).json()
        assert ref["id"] not in {i["id"] for i in items["items"]}


async def test_a_hospital_that_rejected_loses_access(
    api: ApiDriver, client: httpx.AsyncClient, auth: Any
) -> None:
    ids, ref = await _setup(api)
    hospital = auth("demo hospital ZH-CH")
    assert (await client.get(f"/v1/referrals/{ref['id']}", headers=hospital)).status_code == 200
    r = await api.act(hospital, ref, "reject", {"reason_code": "no_bed"})
    answer = r.json()
    assert answer["target_institution_id"] == ids["ZH-TCM"]
    assert answer["diagnosis"]["text"] is None and answer["clinical_summary"] is None
    assert answer["patient"]["name"] == "测****"  # 测试患者甲: the first character
    assert "*" in answer["patient"]["resident_id"]
    await _no_access(client, hospital, ref)
    # the new target and the source still see it in full
    tcm = await client.get(f"/v1/referrals/{ref['id']}", headers=auth("demo hospital ZH-TCM"))
    assert tcm.status_code == 200 and tcm.json()["patient"]["name"] == "测试患者甲"


async def test_a_hospital_that_let_it_expire_loses_access(
    api: ApiDriver, client: httpx.AsyncClient, auth: Any, app: Any
) -> None:
    _ids, ref = await _setup(api)
    async with app.state.database.unit_of_work() as session:
        await session.execute(
            update(Referral).where(Referral.id == ref["id"]).values(respond_by=utcnow())
        )
    async with app.state.database.unit_of_work() as session:
        assert await lifecycle.expire_due(session, app.state.settings) == 1
    await _no_access(client, auth("demo hospital ZH-CH"), ref)
