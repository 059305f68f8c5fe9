"""The appraisal scorecard (GET /v1/reports/appraisal): every member's figure of every month met
or missed against the targets in force, checked against counts computed from the generated
specs alone; the targets file's versions; who may read it; errors naming the field."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.db.session import Database
from app.domain.localtime import local_date
from app.services import appraisal
from tests.report_data import ZONE, Spec, expected, generate, month_of

YEAR = 2025
N = 1500
MINIMUM = {  # version 1 of the shipped example (valid from 2024-01-01)
    "treated_in_county": Decimal("0.90"),
    "accepted_in_time": Decimal("0.90"),
    "follow_ups_on_time": Decimal("0.80"),
    "green_channel_met": Decimal("0.80"),
}


def _want(
    specs: list[Spec], regions: dict[str, Any]
) -> dict[tuple[str, str, str], tuple[int, int]]:
    """(member, target, month) -> (numerator, denominator), from the specs alone."""
    counts = expected(specs, local_date(datetime.now(UTC), ZONE), regions)
    out: dict[tuple[str, str, str], tuple[int, int]] = {}
    for (member, month), c in counts.items():
        out[(member, "treated_in_county", month)] = (c["up_in_county"], c["up_placed"])
        out[(member, "follow_ups_on_time", month)] = (c["follow_ups_on_time"], c["follow_ups_due"])
    in_time: dict[tuple[str, str, str], list[int]] = {}
    for s in specs:
        if s.accepted_at is None or s.target is None:
            continue
        key = (s.target, "accepted_in_time", month_of(s.accepted_at))
        pair = in_time.setdefault(key, [0, 0])
        pair[1] += 1
        if s.accepted_at - s.attempts[-1][1] <= timedelta(minutes=1440):  # routine
            pair[0] += 1
    out.update({k: (v[0], v[1]) for k, v in in_time.items()})
    return out


async def test_scorecard_matches_independent_counts(
    client: httpx.AsyncClient, auth: Any, app: FastAPI
) -> None:
    admin = auth("demo admin")
    consortia = (await client.get("/v1/consortia", headers=admin)).json()["items"]
    ids = {c["code"]: c["id"] for c in consortia}
    listing = await client.get("/v1/institutions", params={"limit": 200}, headers=admin)
    institutions = listing.json()["items"]
    regions = {i["id"]: i["region_code"] for i in institutions}
    database: Database = app.state.database
    async with database.unit_of_work() as session:
        specs = await generate(session, ids["ZHENGHE"], N, YEAR, seed=7)
        await generate(session, ids["HUANGZHONG-1"], N // 3, YEAR, seed=9)
    r = await client.get(
        "/v1/reports/appraisal", params={"year": YEAR}, headers=auth("demo council ZHENGHE")
    )
    assert r.status_code == 200, r.text
    card = r.json()
    assert card["year"] == YEAR and card["consortium_code"] == "ZHENGHE"
    assert card["targets_are_example"] is True
    assert [t["code"] for t in card["targets"]] == list(MINIMUM)
    members = {i["id"] for i in institutions if i["consortium_id"] == ids["ZHENGHE"]}
    assert {m["institution_id"] for m in card["members"]} == members
    want = _want(specs, regions)
    checked = met = missed = 0
    for m in card["members"]:
        for t in m["targets"]:
            assert len(t["months"]) == 12
            for x in t["months"]:
                num, den = want.get((m["institution_id"], t["code"], x["month"]), (0, 0))
                assert (x["numerator"], x["denominator"]) == (num, den), (m["code"], t["code"], x)
                assert x["version"] == 1 and x["min"] == float(MINIMUM[t["code"]])
                if den:
                    ok = Decimal(num) >= MINIMUM[t["code"]] * den
                    assert x["met"] is ok and x["value"] == round(num / den, 4)
                    met, missed = met + ok, missed + (not ok)
                else:
                    assert x["met"] is None and x["value"] is None
                checked += 1
            assert t["months_met"] == sum(x["met"] is True for x in t["months"])
            assert t["months_missed"] == sum(x["met"] is False for x in t["months"])
            assert t["year_denominator"] == sum(x["denominator"] for x in t["months"])
        assert m["months_met"] == sum(t["months_met"] for t in m["targets"])
    assert checked == len(members) * 4 * 12
    assert met > 20 and missed > 20, (met, missed)  # the example targets are met and missed
    # the admin and the insurer read the same by code; CSV has one row per member, target, month
    for who in ("demo admin", "demo insurer"):
        again = await client.get(
            "/v1/reports/appraisal",
            params={"year": YEAR, "consortium": "ZHENGHE"},
            headers=auth(who),
        )
        assert again.json() == card
    c = await client.get(
        "/v1/reports/appraisal",
        params={"year": YEAR},
        headers={**auth("demo council ZHENGHE"), "Accept": "text/csv"},
    )
    assert c.headers["content-type"].startswith("text/csv") and c.content.startswith(
        b"\xef\xbb\xbf"
    )
    table = list(csv.DictReader(io.StringIO(c.content.decode("utf-8-sig"))))
    assert len(table) == checked
    by_key = {(x["institution_id"], x["target"], x["month"]): x for x in table}
    for m in card["members"]:
        for t in m["targets"]:
            for x in t["months"]:
                row = by_key[(m["institution_id"], t["code"], x["month"])]
                assert row["met"] == ("" if x["met"] is None else ("met" if x["met"] else "missed"))
                assert row["numerator"] == str(x["numerator"])
    # the next year runs under version 2 (stricter): nothing measured, the new minimums shown
    later = (
        await client.get(
            "/v1/reports/appraisal",
            params={"year": YEAR + 1},
            headers=auth("demo council ZHENGHE"),
        )
    ).json()
    months = later["members"][0]["targets"][1]["months"]
    assert {x["version"] for x in months} == {2} and months[0]["min"] == 0.95


async def test_who_may_read_a_scorecard_and_errors_name_the_field(
    client: httpx.AsyncClient, auth: Any
) -> None:
    for who, params, status in (
        ("demo council HUANGZHONG-1", {"year": "2025", "consortium": "ZHENGHE"}, 403),
        ("demo clinic ZH-THC-TS", {"year": "2025"}, 403),
        ("demo hospital ZH-CH", {"year": "2025"}, 403),
        ("demo notifier ZHENGHE", {"year": "2025"}, 403),
    ):
        r = await client.get("/v1/reports/appraisal", params=params, headers=auth(who))
        assert r.status_code == status, (who, r.status_code, r.text)
        assert r.headers["content-type"] == "application/problem+json"
    assert (await client.get("/v1/reports/appraisal", params={"year": "2025"})).status_code == 401
    for params, loc in (
        ({"year": "1999"}, ["query", "year"]),
        ({"year": "2101"}, ["query", "year"]),
        ({"year": "2025x"}, ["query", "year"]),
        ({}, ["query", "year"]),
        ({"year": "2025"}, ["query", "consortium"]),  # the admin names the consortium
    ):
        r = await client.get("/v1/reports/appraisal", params=params, headers=auth("demo admin"))
        assert r.status_code == 422, (params, r.text)
        assert any(e["loc"] == loc for e in r.json()["errors"]), (params, r.json())
        assert "2025x" not in r.text
    r = await client.get(
        "/v1/reports/appraisal",
        params={"year": "2025", "consortium": "NO-SUCH"},
        headers=auth("demo admin"),
    )
    assert r.status_code in (404, 422) and "NO-SUCH" not in r.text, r.text


def test_targets_file_versions_and_errors(tmp_path: Path) -> None:
    shipped = appraisal.load(str(appraisal.DEFAULT_FILE))
    assert shipped.is_example and [v.version for v in shipped.versions] == [1, 2]
    assert shipped.in_force(datetime(2023, 12, 31).date()) is None
    v1 = shipped.in_force(datetime(2025, 6, 1).date())
    assert v1 is not None and v1.version == 1
    county = next(t for t in v1.default if t.code == "treated_in_county")
    assert county.min == Decimal("0.90") and "003" in county.source
    data = json.loads(appraisal.DEFAULT_FILE.read_text(encoding="utf-8"))
    data["versions"][0]["consortia"] = {"ZHENGHE": data["versions"][0]["default"][:1]}
    parsed = appraisal.parse(data)
    assert len(parsed.versions[0].for_consortium("ZHENGHE")) == 1
    assert len(parsed.versions[0].for_consortium("OTHER")) == 4
    bad_cases: list[tuple[Any, str]] = []
    for change, words in (
        ({"figure": "nonsense"}, "figure must be one of"),
        ({"min": "1.5"}, "between 0 and 1"),
        ({"min": "x"}, "required"),
    ):
        broken = json.loads(json.dumps(data))
        broken["versions"][0]["default"][0].update(change)
        bad_cases.append((broken, words))
    twice = json.loads(json.dumps(data))
    twice["versions"][1]["valid_from"] = twice["versions"][0]["valid_from"]
    bad_cases.append((twice, "one version per valid_from"))
    bad_cases.append(({"versions": {}}, "versions"))
    for broken, words in bad_cases:
        with pytest.raises(appraisal.TargetsFileError, match=words):
            appraisal.parse(broken)


async def test_green_channel_target_matches_independent_counts(
    api: Any, client: httpx.AsyncClient, auth: Any, app: FastAPI
) -> None:
    """Stroke referrals with their milestones, placed in months of the year: each member's
    green_channel_met_share cell is the intervals met over those decided, recomputed here from
    the times recorded (both ends: met within the target's minutes; only the door, long past:
    missed; nothing recorded: not decided)."""
    from sqlalchemy import update

    from app.db.models import Referral
    from tests.factories import STROKE

    targets = {
        "door_to_imaging": ("door", "imaging", 25),
        "door_to_needle": ("door", "treatment_start", 60),
    }
    door = datetime.now(UTC) - timedelta(hours=3)
    # (month of the year, minutes door→imaging, minutes door→treatment; None: not recorded)
    plan = [
        (3, 20, 50),  # both met
        (3, 30, 55),  # imaging missed, needle met
        (3, 24, 70),  # imaging met, needle missed
        (4, 40, 90),  # both missed
        (4, None, None),  # the door only, long past: both missed
        (4, 10, None),  # imaging met, needle missed (time up)
        (7, 25, 60),  # exactly on target: met
    ]
    want: dict[tuple[str, str], list[int]] = {}
    hospital = auth("demo hospital ZH-CH")
    ids = await api.ids()
    await api.set_beds("ZH-CH", {"03": (40, 1), "03.03": (10, 1)})
    for month, imaging, needle in plan:
        ref = (await api.create("demo clinic ZH-THC-TS", **STROKE)).json()
        assert ref["target_institution_id"] == ids["ZH-CH"]
        times = {"door": door}
        if imaging is not None:
            times["imaging"] = door + timedelta(minutes=imaging)
        if needle is not None:
            times["treatment_start"] = door + timedelta(minutes=needle)
        for code, at in times.items():
            r = await client.post(
                f"/v1/referrals/{ref['id']}/milestones",
                json={"milestone": code, "at": at.isoformat()},
                headers=hospital,
            )
            assert r.status_code in (200, 201), r.text
        created = datetime(YEAR, month, 15, 2, 0, tzinfo=UTC)
        async with app.state.database.unit_of_work() as session:
            await session.execute(
                update(Referral).where(Referral.id == ref["id"]).values(created_at=created)
            )
        cell = want.setdefault((ids["ZH-CH"], month_of(created)), [0, 0])
        for start, end, minutes in targets.values():
            if end in times:
                actual = (times[end] - times[start]).total_seconds() / 60
                cell[0] += int(actual <= minutes)
                cell[1] += 1
            else:  # the door was three hours ago: every time is up
                cell[1] += 1
    # one without any milestone: nothing decided (pending), counted nowhere
    bare = (await api.create("demo clinic ZH-THC-LY", **STROKE)).json()
    async with app.state.database.unit_of_work() as session:
        await session.execute(
            update(Referral)
            .where(Referral.id == bare["id"])
            .values(created_at=datetime(YEAR, 3, 20, tzinfo=UTC))
        )
    card = (
        await client.get(
            "/v1/reports/appraisal", params={"year": YEAR}, headers=auth("demo council ZHENGHE")
        )
    ).json()
    seen = {}
    for m in card["members"]:
        green = next(t for t in m["targets"] if t["code"] == "green_channel_met")
        for x in green["months"]:
            if x["denominator"]:
                seen[(m["institution_id"], x["month"])] = [x["numerator"], x["denominator"]]
                num, den = want[(m["institution_id"], x["month"])]
                assert x["met"] is (Decimal(num) >= MINIMUM["green_channel_met"] * den)
    assert seen == want
    assert want[(ids["ZH-CH"], f"{YEAR}-03")] == [4, 6]
    assert want[(ids["ZH-CH"], f"{YEAR}-07")] == [2, 2]
