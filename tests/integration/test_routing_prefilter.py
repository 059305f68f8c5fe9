"""The database's routing pre-filter over a large consortium, on both back ends.

A few hundred members are written straight into the tables of the Zhenghe demo consortium
(hospitals full, free, stale or without a census; primary centres and village clinics; inactive
ones; some without the specialty, some with a stroke centre). Each preview is asked twice: as a
create routes (pre-filtered, bounded) and with ``exclusions=all`` (every member loaded and
routed by the pure function, everything listed). Both must give the same target, the same
listed alternatives, the same counts per reason and the same explanation; the bounded list of
exclusions is the head of the complete one.
"""

from __future__ import annotations

import json
import random
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, insert, select

from app.db.base import new_id
from app.db.models import (
    BedCapacity,
    Consortium,
    ConsortiumPartner,
    Institution,
    InstitutionCentre,
    InstitutionSpecialty,
    SlotCapacity,
)
from app.domain.enums import CareType, Centre, InstitutionLevel, InstitutionType
from app.domain.routing import (
    ALTERNATIVES_LISTED,
    EXCLUDED_LISTED,
    NEAR_MISSES,
    ExclusionReason,
    LeftOut,
)
from app.services.candidates import PREFILTER_TOP, RoutingInput, candidates
from app.services.placement import MAX_HOLD_ATTEMPTS
from app.services.routing_inputs import load_source
from tests.factories import referral_body

GENERATED = 400
SOURCE = "ZH-THC-TS"  # a township centre (primary)
WANTED_DAY = date.today() + timedelta(days=2)
FAR_REASONS = {"inactive", "level_not_higher", "specialty_not_offered", "centre_not_held"}


async def _generate(app: FastAPI, n: int = GENERATED, seed: int = 23) -> tuple[list[str], int]:
    """``n`` members of the Zhenghe consortium written into the tables: their ids, and how many
    candidates the consortium now has (members and partners)."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    institutions: list[dict[str, Any]] = []
    specialties: list[dict[str, Any]] = []
    centres: list[dict[str, Any]] = []
    beds: list[dict[str, Any]] = []
    slots: list[dict[str, Any]] = []
    async with app.state.database.unit_of_work() as session:
        consortium_id = (
            await session.execute(select(Consortium.id).where(Consortium.code == "ZHENGHE"))
        ).scalar_one()
        places: list[tuple[float, float] | None] = []
        for i in range(n):
            iid = new_id()
            level = rng.choices(list(InstitutionLevel), weights=[40, 30, 25, 5])[0]
            hospital = level in (InstitutionLevel.SECONDARY, InstitutionLevel.TERTIARY)
            if places and rng.random() < 0.2:
                place = rng.choice(places)  # the same place as another: ties on distance
            elif rng.random() < 0.04:
                place = None
            else:
                place = (27.37 + rng.uniform(-0.4, 0.4), 118.86 + rng.uniform(-0.4, 0.4))
            places.append(place)
            institutions.append(
                {
                    "id": iid,
                    "code": f"GEN-{i:04d}",
                    "name": f"生成机构{i:04d}",
                    "level": level,
                    "type": InstitutionType.GENERAL,
                    "consortium_id": consortium_id,
                    "is_lead": False,
                    "active": rng.random() > 0.05,
                    "latitude": None if place is None else place[0],
                    "longitude": None if place is None else place[1],
                }
            )
            offered = set(rng.sample(["02", "03", "03.03", "03.04", "04"], rng.randrange(0, 4)))
            if hospital and rng.random() < 0.8:
                offered.add("03")
            specialties += [{"institution_id": iid, "specialty_code": c} for c in sorted(offered)]
            if hospital and rng.random() < 0.5:
                centres.append({"institution_id": iid, "centre": Centre.STROKE})
            if level is InstitutionLevel.VILLAGE or rng.random() < 0.15:
                continue  # no census ever reported
            for code in rng.sample(["03", "03.04", "03.03", "04"], rng.randrange(1, 4)):
                total = rng.choice([5, 20, 60])
                held = rng.randrange(0, 3)
                full = rng.random() < 0.2
                occupied = total - held if full else rng.randrange(0, total - held)
                age = rng.choices([10, 20 * 60, 100 * 60], weights=[70, 15, 15])[0]
                as_of = now - timedelta(minutes=age)
                figures = {"total": total, "occupied": occupied, "held": held, "as_of": as_of}
                beds.append({"institution_id": iid, "specialty_code": code, **figures})
                slots.append(
                    {"institution_id": iid, "specialty_code": code, "day": WANTED_DAY, **figures}
                )
        await session.execute(insert(Institution), institutions)
        for model, rows in (
            (InstitutionSpecialty, specialties),
            (InstitutionCentre, centres),
            (BedCapacity, beds),
            (SlotCapacity, slots),
        ):
            if rows:
                await session.execute(insert(model), rows)
        members = select(Institution.id).where(Institution.consortium_id == consortium_id)
        partners = select(ConsortiumPartner.institution_id).where(
            ConsortiumPartner.consortium_id == consortium_id,
            ConsortiumPartner.institution_id.not_in(members),
        )
        count = (
            await session.execute(select(func.count()).select_from(members.subquery()))
        ).scalar()
        count += (
            await session.execute(select(func.count()).select_from(partners.subquery()))
        ).scalar()
    return [r["id"] for r in institutions], int(count)


async def _ids(client: httpx.AsyncClient, auth: Any) -> dict[str, str]:
    ids: dict[str, str] = {}
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 200, **({"cursor": cursor} if cursor else {})}
        r = await client.get("/v1/institutions", params=params, headers=auth("demo admin"))
        body = r.json()
        ids.update({i["code"]: i["id"] for i in body["items"]})
        cursor = body["next_cursor"]
        if not cursor:
            return ids


async def _both(
    client: httpx.AsyncClient, headers: dict[str, str], body: dict[str, Any]
) -> tuple[httpx.Response, httpx.Response]:
    bounded = await client.post("/v1/routing/preview", json=body, headers=headers)
    complete = await client.post(
        "/v1/routing/preview", params={"exclusions": "all"}, json=body, headers=headers
    )
    return bounded, complete


def _same_decision(bounded: httpx.Response, complete: httpx.Response, candidates: int) -> None:
    assert bounded.status_code == complete.status_code == 200, (bounded.text, complete.text)
    a, b = bounded.json(), complete.json()
    print(
        "PEEK",
        a["alternatives_total"],
        a["excluded_total"],
        len(a["excluded"]),
        a["excluded_counts"],
    )
    for key in (
        "outcome",
        "target",
        "explanation",
        "overflow",
        "alternatives_total",
        "excluded_total",
        "excluded_counts",
    ):
        assert a[key] == b[key], key
    assert a["alternatives"] == b["alternatives"][:ALTERNATIVES_LISTED]
    assert len(b["alternatives"]) == b["alternatives_total"]
    assert len(b["excluded"]) == b["excluded_total"]
    assert a["alternatives_truncated"] is (a["alternatives_total"] > ALTERNATIVES_LISTED)
    # every member and partner is the target, an alternative or excluded, counted once
    assert sum(a["excluded_counts"].values()) == a["excluded_total"]
    ranked = a["alternatives_total"] + (a["target"] is not None)
    assert ranked + a["excluded_total"] == candidates
    # the bounded list is the head of the complete one; when shorter than the bound, what
    # it leaves out are institutions excluded for level, specialty, centre or inactivity
    listed = a["excluded"]
    assert len(listed) <= EXCLUDED_LISTED
    assert listed == b["excluded"][: len(listed)]
    assert a["excluded_truncated"] is (len(listed) < a["excluded_total"])
    if len(listed) < min(EXCLUDED_LISTED, a["excluded_total"]):
        assert b["excluded"][len(listed)]["reason"] in FAR_REASONS
    assert len(bounded.content) < 40_000 < len(complete.content)


@pytest.fixture
async def big(app: FastAPI, client: httpx.AsyncClient, auth: Any) -> dict[str, Any]:
    generated, candidates = await _generate(app)
    return {"ids": await _ids(client, auth), "generated": generated, "candidates": candidates}


def test_the_prefilter_loads_enough_for_every_lost_race() -> None:
    assert PREFILTER_TOP >= ALTERNATIVES_LISTED + 1 + MAX_HOLD_ATTEMPTS
    assert {r.value for r in NEAR_MISSES}.isdisjoint(FAR_REASONS)


@pytest.mark.parametrize(
    "body",
    [
        {"specialty_code": "03", "care_type": "inpatient"},
        {"specialty_code": "03.04", "care_type": "inpatient"},  # parent-only: excluded
        {"specialty_code": "03.04", "care_type": "outpatient", "wanted_day": str(WANTED_DAY)},
        {"specialty_code": "04", "care_type": "examination", "wanted_day": str(WANTED_DAY)},
        {"pathway": "stroke", "care_type": "inpatient", "urgency": "emergency"},
    ],
    ids=["inpatient-03", "inpatient-03.04", "outpatient-03.04", "examination-04", "stroke"],
)
async def test_prefiltered_preview_is_the_complete_decision_bounded(
    client: httpx.AsyncClient, auth: Any, big: dict[str, Any], body: dict[str, Any]
) -> None:
    bounded, complete = await _both(client, auth(f"demo clinic {SOURCE}"), body)
    _same_decision(bounded, complete, big["candidates"])
    decision = bounded.json()
    if body.get("specialty_code") == "03":
        assert decision["target"] is not None
        assert decision["excluded_counts"]["level_not_higher"] > 150
        assert decision["excluded_truncated"] is True


async def test_signed_institutions_and_a_village_source(
    client: httpx.AsyncClient, auth: Any, big: dict[str, Any]
) -> None:
    rng = random.Random(4)
    h = auth(f"demo clinic {SOURCE}")
    for _ in range(4):
        signed = rng.sample(big["generated"], 3)
        body = {"specialty_code": "03", "care_type": "inpatient", "signed_institution_ids": signed}
        bounded, complete = await _both(client, h, body)
        _same_decision(bounded, complete, big["candidates"])
        listed = [x["institution_id"] for x in bounded.json()["excluded"]]
        excluded_signed = [
            i for i in signed if i in {x["institution_id"] for x in complete.json()["excluded"]}
        ]
        assert listed[: len(excluded_signed)] == excluded_signed  # named first, in order
    # the council previews for a village clinic: primary centres are of a higher level
    ids = big["ids"]
    village = next(c for c in ids if c.startswith("ZH-") and "-VC-" in c)
    body = {"specialty_code": "03", "care_type": "inpatient", "source_institution_id": ids[village]}
    bounded, complete = await _both(client, auth("demo council ZHENGHE"), body)
    _same_decision(bounded, complete, big["candidates"])


async def test_from_members_of_every_level(
    client: httpx.AsyncClient, auth: Any, big: dict[str, Any]
) -> None:
    rng = random.Random(11)
    h = auth("demo council ZHENGHE")
    bodies = [
        {"specialty_code": "03", "care_type": "inpatient"},
        {"specialty_code": "03.04", "care_type": "outpatient", "wanted_day": str(WANTED_DAY)},
    ]
    for source in rng.sample(big["generated"], 8):
        for body in bodies:
            bounded, complete = await _both(client, h, {**body, "source_institution_id": source})
            _same_decision(bounded, complete, big["candidates"])


async def test_the_database_loads_a_few_and_counts_the_rest(
    app: FastAPI, client: httpx.AsyncClient, auth: Any, big: dict[str, Any]
) -> None:
    data = RoutingInput("03.04", CareType.OUTPATIENT, WANTED_DAY, (), None)
    async with app.state.database.unit_of_work(read_only=True) as session:
        source = await load_source(session, big["ids"][SOURCE])
        some = await candidates(session, source, data)
        every = await candidates(session, source, data, complete=True)
    assert len(every.members) + len(every.partners) == big["candidates"]
    loaded = len(some.members) + len(some.partners)
    assert loaded < PREFILTER_TOP + EXCLUDED_LISTED + 10 < big["candidates"]
    assert some.left_out.eligible > 0
    assert some.left_out.excluded[ExclusionReason.LEVEL_NOT_HIGHER] > 200
    left = sum(some.left_out.excluded.values()) + some.left_out.eligible
    assert loaded + left == big["candidates"]
    assert every.left_out == LeftOut()


async def test_patient_choice_is_judged_the_same(
    client: httpx.AsyncClient, auth: Any, big: dict[str, Any]
) -> None:
    h = auth(f"demo clinic {SOURCE}")
    plain = {"specialty_code": "03", "care_type": "inpatient"}
    everything = (
        await client.post(
            "/v1/routing/preview", params={"exclusions": "all"}, json=plain, headers=h
        )
    ).json()
    eligible = [a["institution_id"] for a in everything["alternatives"]][-3:]
    refused = [x["institution_id"] for x in everything["excluded"]][-3:]
    for choice in eligible + refused:
        body = {**plain, "patient_choice_institution_id": choice}
        bounded, complete = await _both(client, h, body)
        if choice in refused:
            assert bounded.status_code == complete.status_code == 422
            assert bounded.json()["reason"] == complete.json()["reason"]
        else:
            _same_decision(bounded, complete, big["candidates"])
            assert bounded.json()["target"]["institution_id"] == choice


async def test_create_routes_as_the_complete_preview_and_stores_the_bounded_decision(
    client: httpx.AsyncClient, auth: Any, big: dict[str, Any]
) -> None:
    h = auth(f"demo clinic {SOURCE}")
    complete = await client.post(
        "/v1/routing/preview",
        params={"exclusions": "all"},
        json={"specialty_code": "03", "care_type": "inpatient"},
        headers=h,
    )
    r = await client.post(
        "/v1/referrals",
        json=referral_body(),
        headers={**h, "Idempotency-Key": uuid.uuid4().hex},
    )
    assert r.status_code == 201, r.text
    routing = r.json()["routing"]
    # the preview prices its candidates; the stored decision is the routing alone
    previewed = {k: v for k, v in complete.json()["target"].items() if k != "reimbursement"}
    assert routing["target"] == previewed
    assert routing["excluded_counts"] == complete.json()["excluded_counts"]
    assert len(routing["excluded"]) <= EXCLUDED_LISTED < routing["excluded_total"]
    assert routing["excluded_truncated"] is True
    assert len(json.dumps(routing, ensure_ascii=False)) < 40_000
    again = await client.get(f"/v1/referrals/{r.json()['id']}", headers=h)
    assert again.json()["routing"] == routing  # as stored: bounded


@pytest.fixture
def settings_overrides(request: pytest.FixtureRequest) -> dict[str, Any]:
    if "windows" not in request.node.name:
        return {}
    return {"census_stale_after_minutes": 30, "census_exclude_after_minutes": 600}


async def test_the_create_classifies_with_the_services_census_windows(
    client: httpx.AsyncClient, auth: Any, big: dict[str, Any]
) -> None:
    """With a 10 h exclusion window the 20 h old censuses are stale too, in SQL as in Python."""
    h = auth(f"demo clinic {SOURCE}")
    body = {"specialty_code": "03", "care_type": "inpatient"}
    bounded, complete = await _both(client, h, body)
    _same_decision(bounded, complete, big["candidates"])
    r = await client.post(
        "/v1/referrals", json=referral_body(), headers={**h, "Idempotency-Key": uuid.uuid4().hex}
    )
    assert r.status_code == 201, r.text
    assert r.json()["routing"]["excluded_counts"] == bounded.json()["excluded_counts"]
