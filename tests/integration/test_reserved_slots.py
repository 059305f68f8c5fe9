"""Reserved referral slots (001's reserved outpatient sources): a census of the day's specialist
sources keeps the policy's share for consortium referrals and, of that, a share for patients
signed with the hospital until a set time before the session; signed referrals draw the signed
reserve first, other referrals never take it before its release, and every way a hold ends
gives the place back to the pool it came from (API, both back ends; the race on PostgreSQL)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import random
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import create_async_engine

from app.db import migrate as migrations
from app.db.base import clock_at
from app.db.models import SlotCapacity
from app.services import slot_reservation
from tests.driver import ApiDriver
from tests.factories import referral_body, resident_id
from tests.integration import test_routing_prefilter as prefilter_cases
from tests.support import pg_url

CLINIC = "demo clinic ZH-THC-TS"
LEAD = "ZH-CH"  # the lead hospital: an unsigned patient's first choice
OTHER = "ZH-TCM"
SHANGHAI = ZoneInfo("Asia/Shanghai")
POLICY = slot_reservation.load(str(slot_reservation.DEFAULT_FILE))


def _day(ahead: int = 10) -> date:
    """A day after the demo's seeded slot days: only the slots a test sets exist."""
    return datetime.now(SHANGHAI).date() + timedelta(days=ahead)


def _release_of(day: date) -> datetime:
    """The example policy's release time, worked out here from the file's own figures."""
    figures = POLICY.figures(day, None)
    assert figures is not None and POLICY.is_example
    start = datetime.combine(day, figures.session_start, SHANGHAI)
    return (start - timedelta(hours=figures.release_hours_before)).astimezone(UTC)


async def _slots(
    api: ApiDriver, code: str, day: date, *, as_of: datetime | None = None, **fig: Any
) -> dict[str, Any]:
    row = {"specialty_code": "03", "day": day.isoformat(), "occupied": 0, **fig}
    body = {"as_of": (as_of or datetime.now(UTC)).isoformat(), "slots": [row]}
    r = await api._census(code, body, 200)
    (item,) = r.json()["items"]
    return dict(item)


async def _read(api: ApiDriver, client: httpx.AsyncClient, auth: Any, code: str, day: date):
    ids = await api.ids()
    r = await client.get(f"/v1/institutions/{ids[code]}/capacity", headers=auth("demo admin"))
    assert r.status_code == 200, r.text
    (item,) = [
        i
        for i in r.json()["items"]
        if i["kind"] == "slots" and i["day"] == day.isoformat() and i["specialty_code"] == "03"
    ]
    return item


async def _refer(
    api: ApiDriver, day: date, signed_with: str | None = None, expect: int | None = 201
) -> httpx.Response:
    ids = await api.ids()
    patient = {**referral_body()["patient"], "resident_id": resident_id()}
    if signed_with is not None:
        patient["signed_institution_ids"] = [ids["ZH-THC-TS"], ids[signed_with]]
    return await api.create(
        CLINIC,
        patient=patient,
        care_type="outpatient",
        wanted_day=day.isoformat(),
        specialty_code="03",
        urgency="routine",
        expect=expect,
    )


async def test_census_with_sources_keeps_the_policy_shares(
    api: ApiDriver, client: httpx.AsyncClient, auth: Any
) -> None:
    day = _day()
    item = await _slots(api, LEAD, day, sources=30)
    figures = POLICY.figures(day, None)
    assert figures is not None
    total = (30 * figures.consortium_share.numerator) // figures.consortium_share.denominator
    reserved = (total * figures.signed_share.numerator) // figures.signed_share.denominator
    assert (item["total"], item["reserved_signed"], item["sources"]) == (total, reserved, 30)
    assert (total, reserved) == (10, 5)  # the example: a third, and half of it
    assert datetime.fromisoformat(item["release_at"]) == _release_of(day)
    assert item["released"] is False and item["released_count"] == 0
    assert item["signed_used"] == 0 and item["free"] == total
    assert await _read(api, client, auth, LEAD, day) == {**item, "stale": False}
    # the HIS's own figures win over the policy's; without sources and a reserve: as before
    own = await _slots(api, LEAD, day, sources=30, total=12, reserved_signed=2)
    assert (own["total"], own["reserved_signed"]) == (12, 2)
    plain = await _slots(api, LEAD, day, total=7)
    assert (plain["total"], plain["reserved_signed"], plain["release_at"]) == (7, 0, None)
    assert plain["sources"] is None


async def test_bad_slot_figures_are_422_naming_the_field(
    api: ApiDriver, client: httpx.AsyncClient, auth: Any
) -> None:
    ids = await api.ids()
    day = _day().isoformat()
    cases = [
        ({"occupied": 0}, "total"),
        ({"total": 4, "occupied": 0, "reserved_signed": 5}, "reserved_signed"),
        ({"sources": 3, "total": 4, "occupied": 0}, "total"),
        ({"sources": 3, "occupied": 2}, "occupied"),  # 1 place offered, 2 booked
        ({"sources": -1, "occupied": 0}, "sources"),
        ({"sources": 30, "occupied": 0, "release_at": "tomorrow"}, "release_at"),
    ]
    for fig, field in cases:
        body = {
            "as_of": datetime.now(UTC).isoformat(),
            "slots": [{"specialty_code": "03", "day": day, **fig}],
        }
        r = await client.put(
            f"/v1/institutions/{ids[LEAD]}/capacity", json=body, headers=auth("demo admin")
        )
        assert r.status_code == 422, (fig, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
        locs = [e["loc"] for e in r.json()["errors"]]
        assert ["body", "slots", 0, field] in locs, (fig, locs)
        assert "tomorrow" not in r.text


async def test_signed_referrals_draw_the_signed_reserve_first_and_others_never_take_it(
    api: ApiDriver, client: httpx.AsyncClient, auth: Any
) -> None:
    ids = await api.ids()
    day = _day(11)
    await _slots(api, LEAD, day, sources=6)  # 2 places, 1 of them kept for signed patients
    await _slots(api, OTHER, day, total=5)
    signed = (await _refer(api, day, signed_with=LEAD)).json()
    assert signed["target_institution_id"] == ids[LEAD]
    cap = await _read(api, client, auth, LEAD, day)
    assert (cap["held"], cap["signed_used"], cap["free"]) == (1, 1, 1)
    # the consortium place left goes to an unsigned patient
    first = (await _refer(api, day)).json()
    assert first["target_institution_id"] == ids[LEAD]
    # a second signed patient: the signed reserve is used, the consortium's places are gone
    await _slots(api, LEAD, day, sources=9)  # 3 places, 1 kept: one consortium place more
    second = (await _refer(api, day, signed_with=LEAD)).json()
    assert second["target_institution_id"] == ids[LEAD]
    cap = await _read(api, client, auth, LEAD, day)
    assert (cap["total"], cap["held"], cap["signed_used"], cap["free"]) == (3, 3, 1, 0)
    # cancelling the signed one gives its place back to the signed reserve
    await api.act(CLINIC, signed, "cancel")
    cap = await _read(api, client, auth, LEAD, day)
    assert (cap["held"], cap["signed_used"], cap["free"]) == (2, 0, 1)
    unsigned = (await _refer(api, day)).json()  # that place is kept: not for this patient
    assert unsigned["target_institution_id"] == ids[OTHER]
    excluded = {e["code"]: e["reason"] for e in unsigned["routing"]["excluded"]}
    assert excluded.get(LEAD) == "no_free_capacity"
    # the hospital rejects the second signed one (a consortium place): it goes back there
    second = (await api.get(CLINIC, second)).json()
    await api.act(
        f"demo hospital {LEAD}", second, "reject", {"reason_code": "no_specialist_on_duty"}
    )
    cap = await _read(api, client, auth, LEAD, day)
    assert (cap["held"], cap["signed_used"], cap["free"]) == (1, 0, 2)
    again = (await _refer(api, day)).json()
    assert again["target_institution_id"] == ids[LEAD]  # the freed consortium place
    cap = await _read(api, client, auth, LEAD, day)
    assert (cap["held"], cap["signed_used"], cap["free"]) == (2, 0, 1)
    third = (await _refer(api, day, signed_with=LEAD)).json()
    assert third["target_institution_id"] == ids[LEAD]
    cap = await _read(api, client, auth, LEAD, day)
    assert (cap["held"], cap["signed_used"], cap["free"]) == (3, 1, 0)
    # seen: the signed place stays used from the reserve (not given back to it)
    hospital = f"demo hospital {LEAD}"
    r = await api.act(hospital, third, "accept")
    r = await api.act(hospital, r, "arrive")
    await api.act(hospital, r, "see")
    cap = await _read(api, client, auth, LEAD, day)
    assert (cap["held"], cap["occupied"], cap["signed_used"], cap["free"]) == (2, 1, 1, 0)
    another = (await _refer(api, day, signed_with=LEAD)).json()
    assert another["target_institution_id"] == ids[OTHER]


async def test_the_reserve_is_released_at_its_time_and_then_taken_by_an_unsigned_referral(
    api: ApiDriver, client: httpx.AsyncClient, auth: Any
) -> None:
    ids = await api.ids()
    day = _day(12)
    release = _release_of(day)
    assert release > datetime.now(UTC)
    await _slots(api, LEAD, day, sources=6)
    taken = (await _refer(api, day)).json()  # the one consortium place
    assert taken["target_institution_id"] == ids[LEAD]
    just_before = release - timedelta(minutes=1)
    with clock_at(just_before):
        # a fresh census at that time (the old one would be stale by then); the same figures
        item = await _slots(api, LEAD, day, sources=6, as_of=just_before)
        assert (item["released"], item["free"], item["reserved_signed"]) == (False, 1, 1)
        refused = (await _refer(api, day)).json()
        assert refused["status"] == "waitlisted"  # the kept place is not for this patient
    just_after = release + timedelta(minutes=1)
    with clock_at(just_after):
        # the reserve is released: the place is open, and the unsigned referral waiting for
        # it goes before the new one
        new = (await _refer(api, day)).json()
        assert new["status"] == "waitlisted"
        placed = (await api.get(CLINIC, refused)).json()
        assert placed["target_institution_id"] == ids[LEAD] and placed["status"] == "pending"
        cap = await _read(api, client, auth, LEAD, day)
        assert (cap["held"], cap["signed_used"], cap["free"]) == (2, 0, 0)
        # the one reserve place went unused to the general pool (and was taken there)
        assert cap["released"] is True and cap["released_count"] == 1
        item = await _slots(api, LEAD, day, sources=6, as_of=just_after)
        assert (item["released"], item["released_count"], item["free"]) == (True, 1, 0)


async def test_a_census_releasing_the_reserve_gives_it_to_the_waitlisted_unsigned_referral(
    api: ApiDriver, client: httpx.AsyncClient, auth: Any
) -> None:
    ids = await api.ids()
    day = _day(13)
    await _slots(api, LEAD, day, total=1, reserved_signed=1)
    waiting = (await _refer(api, day)).json()
    assert waiting["status"] == "waitlisted"  # the only place of the day is kept
    cap = await _read(api, client, auth, LEAD, day)
    assert (cap["released"], cap["free"], cap["held"]) == (False, 1, 0)
    past = datetime.now(UTC) - timedelta(hours=1)
    item = await _slots(api, LEAD, day, total=1, reserved_signed=1, release_at=past.isoformat())
    assert (item["released"], item["released_count"]) == (True, 1)
    placed = (await api.get(CLINIC, waiting)).json()
    assert placed["target_institution_id"] == ids[LEAD] and placed["status"] == "pending"
    cap = await _read(api, client, auth, LEAD, day)
    assert (cap["held"], cap["signed_used"], cap["free"]) == (1, 0, 0)
    # a signed patient now finds nothing left: the reserve went to the general pool
    signed = (await _refer(api, day, signed_with=LEAD)).json()
    assert signed["target_institution_id"] != ids[LEAD]


@pytest.fixture
def settings_overrides(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    if "consortium_figures" not in request.node.name:
        return {}
    doc = json.loads(slot_reservation.DEFAULT_FILE.read_text(encoding="utf-8"))
    own = {"consortium_share": "0.5", "signed_share": "1", "release_hours_before": 0}
    doc["versions"][0]["consortia"] = {"ZHENGHE": {**own, "session_start": "13:30"}}
    path = tmp_path / "reservation.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    return {"slot_reservation_file": path}


async def test_consortium_figures_of_its_own_are_used(api: ApiDriver) -> None:
    day = _day()
    item = await _slots(api, LEAD, day, sources=9)
    assert (item["total"], item["reserved_signed"]) == (4, 4)
    start = datetime.combine(day, time(13, 30), SHANGHAI).astimezone(UTC)
    assert datetime.fromisoformat(item["release_at"]) == start


def test_a_broken_policy_file_is_refused(tmp_path: Path) -> None:
    doc = json.loads(slot_reservation.DEFAULT_FILE.read_text(encoding="utf-8"))
    bad = [
        ("consortium_share", "1.5"),
        ("signed_share", "half"),
        ("release_hours_before", -1),
        ("session_start", "8 am"),
    ]
    for key, value in bad:
        broken = json.loads(json.dumps(doc))
        broken["versions"][0]["default"][key] = value
        with pytest.raises(slot_reservation.SlotReservationFileError, match=key):
            slot_reservation.parse(broken)
    with pytest.raises(slot_reservation.SlotReservationFileError):
        slot_reservation.parse({"versions": []})


@pytest.mark.skipif(not pg_url(), reason="the race needs PostgreSQL (REFERRAL_TEST_DATABASE_URL)")
async def test_concurrent_signed_and_unsigned_creates_keep_the_reserve(
    api: ApiDriver, client: httpx.AsyncClient, auth: Any, backend: str
) -> None:
    if backend != "postgresql":
        pytest.skip("the race needs PostgreSQL")
    ids = await api.ids()
    day = _day(14)
    await _slots(api, LEAD, day, total=4, reserved_signed=2)
    kinds = [LEAD if i % 2 else None for i in range(12)]
    answers = await asyncio.gather(*(_refer(api, day, signed_with=k, expect=None) for k in kinds))
    assert all(r.status_code in (201, 409) for r in answers), [r.text for r in answers]
    made = [(r.json(), k) for r, k in zip(answers, kinds, strict=True) if r.status_code == 201]
    at_lead = [(ref, k) for ref, k in made if ref["target_institution_id"] == ids[LEAD]]
    cap = await _read(api, client, auth, LEAD, day)
    assert cap["held"] == len(at_lead) <= cap["total"] == 4
    unsigned = [ref for ref, k in at_lead if k is None]
    assert len(unsigned) <= 4 - 2  # never into the unused signed reserve
    assert cap["signed_used"] <= 2 and cap["free"] == 4 - len(at_lead)
    signed_made = sum(1 for _, k in made if k is not None)
    if signed_made >= 2:  # enough signed patients came: the reserve went to them
        assert cap["signed_used"] == 2
    if len(made) == len(kinds):  # more patients than places: every place is taken
        assert cap["held"] == 4


async def test_monthly_figures_count_the_reserve_kept_used_and_released(
    api: ApiDriver, client: httpx.AsyncClient, auth: Any
) -> None:
    """reserved_slots / reserved_used / reserved_released per member and month, recomputed
    here from the slot rows this test made (as the census read shows them)."""
    ids = await api.ids()
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    days = [_day(15), _day(16), _day(17)]
    await _slots(api, LEAD, days[0], sources=30)  # 10 places, 5 kept
    await _slots(api, LEAD, days[1], total=4, reserved_signed=3, release_at=past)
    await _slots(api, OTHER, days[2], total=6, reserved_signed=2)
    for _ in range(2):
        ref = (await _refer(api, days[0], signed_with=LEAD)).json()
        assert ref["target_institution_id"] == ids[LEAD]
    ref = (await _refer(api, days[2], signed_with=OTHER)).json()
    assert ref["target_institution_id"] == ids[OTHER]
    expected: dict[tuple[str, str], list[int]] = {}
    for code, day in ((LEAD, days[0]), (LEAD, days[1]), (OTHER, days[2])):
        cap = await _read(api, client, auth, code, day)
        sums = expected.setdefault((ids[code], day.isoformat()[:7]), [0, 0, 0])
        sums[0] += cap["reserved_signed"]
        sums[1] += cap["signed_used"]
        sums[2] += cap["released_count"]
    assert expected[(ids[LEAD], days[0].isoformat()[:7])][0] >= 5
    assert sum(s[1] for s in expected.values()) == 3
    assert sum(s[2] for s in expected.values()) == 3  # the second day's, released unused
    first = min(days).replace(day=1)
    end = max(days) + timedelta(days=1)
    for accept in ("application/json", "text/csv"):
        r = await client.get(
            "/v1/reports/referrals",
            params={"from": first.isoformat(), "to": end.isoformat()},
            headers={**auth("demo council ZHENGHE"), "Accept": accept},
        )
        assert r.status_code == 200, r.text
        if accept == "text/csv":
            rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
        else:
            rows = r.json()
        got = {
            (row["key"], row["month"]): [
                int(row["reserved_slots"]),
                int(row["reserved_used"]),
                int(row["reserved_released"]),
            ]
            for row in rows
            if row["key"] in (ids[LEAD], ids[OTHER])
            and int(row["reserved_slots"] or 0) + int(row["reserved_used"] or 0)
        }
        assert got == expected, accept


async def _slot_rows(url: str, hold: bool = False) -> list[tuple[Any, ...]]:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            if hold:  # a stored hold and a booked slot on one row, before the reserve existed
                await conn.execute(
                    sa.text(
                        "UPDATE slot_capacity SET held = 2, occupied = 1 WHERE specialty_code = "
                        "'03' AND institution_id = (SELECT MIN(institution_id) FROM "
                        "slot_capacity WHERE specialty_code = '03')"
                    )
                )
            rows = await conn.execute(
                sa.text(
                    "SELECT institution_id, specialty_code, day, total, occupied, held, overflow "
                    "FROM slot_capacity ORDER BY institution_id, specialty_code, day"
                )
            )
            return [tuple(r) for r in rows]
    finally:
        await engine.dispose()


async def _reserve_columns(url: str) -> set[tuple[Any, ...]]:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            rows = await conn.execute(
                sa.text(
                    "SELECT reserved_signed, held_signed, used_signed, release_at, sources "
                    "FROM slot_capacity"
                )
            )
            pools = await conn.execute(sa.text("SELECT DISTINCT hold_pool FROM referral"))
            return {tuple(r) for r in rows} | {("pool", *p) for p in pools}
    finally:
        await engine.dispose()


def test_stored_slot_rows_survive_the_migration(db_url: str) -> None:
    """Down to 0037 and up again: every stored slot row keeps its figures and holds, with no
    reserve (every place a consortium place)."""
    stored = asyncio.run(_slot_rows(db_url, hold=True))
    assert stored and any(r[5] == 2 for r in stored)
    migrations.downgrade(db_url, "0037")
    assert asyncio.run(_slot_rows(db_url)) == stored
    migrations.upgrade(db_url)
    assert asyncio.run(_slot_rows(db_url)) == stored
    assert asyncio.run(_reserve_columns(db_url)) <= {(0, 0, 0, None, None), ("pool", None)}


async def test_the_prefilter_counts_the_unused_reserve_as_the_hold_does(
    app: FastAPI, client: httpx.AsyncClient, auth: Any
) -> None:
    """Hundreds of generated members, some slot rows with a signed reserve (kept, used in
    part, or released): the pre-filtered preview (SQL) is the complete one (Python) for an
    unsigned patient and for one signed with some of them."""
    generated, count = await prefilter_cases._generate(app)
    body = {
        "specialty_code": "03.04",
        "care_type": "outpatient",
        "wanted_day": str(prefilter_cases.WANTED_DAY),
    }
    h = auth(f"demo clinic {prefilter_cases.SOURCE}")
    before, _ = await prefilter_cases._both(client, h, body)
    rng = random.Random(7)
    now = datetime.now(UTC)
    async with app.state.database.unit_of_work() as session:
        m = SlotCapacity
        rows = (
            await session.execute(
                sa.select(m.institution_id, m.specialty_code, m.total, m.occupied, m.held).where(
                    m.day == prefilter_cases.WANTED_DAY, m.institution_id.in_(generated)
                )
            )
        ).all()
        changes = []
        for iid, code, total, occupied, held in rows:
            left = total - occupied - held
            if left <= 0 or rng.random() < 0.3:
                continue
            reserved = rng.choice([left, left, max(1, left // 2)])
            when = rng.choice([now + timedelta(days=1), now - timedelta(hours=1), None])
            changes.append(
                {
                    "i": iid,
                    "c": code,
                    "r": reserved,
                    "hs": min(held, rng.randrange(0, 2)),
                    "at": when,
                }
            )
        for ch in changes:
            await session.execute(
                sa.update(m)
                .where(
                    m.institution_id == ch["i"],
                    m.specialty_code == ch["c"],
                    m.day == prefilter_cases.WANTED_DAY,
                )
                .values(reserved_signed=ch["r"], held_signed=ch["hs"], release_at=ch["at"])
            )
    assert len(changes) > 20
    bounded, complete = await prefilter_cases._both(client, h, body)
    prefilter_cases._same_decision(bounded, complete, count)
    full = "no_free_capacity"
    assert bounded.json()["excluded_counts"][full] > before.json()["excluded_counts"][full]
    reserved_ids = [ch["i"] for ch in changes]
    for _ in range(3):
        signed = rng.sample(reserved_ids, 3)
        bounded, complete = await prefilter_cases._both(
            client, h, {**body, "signed_institution_ids": signed}
        )
        prefilter_cases._same_decision(bounded, complete, count)
