from __future__ import annotations

import csv
import io
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import update

from app.db.models import Referral
from app.db.session import Database
from app.domain.green_channel import percentile
from app.domain.localtime import local_date
from app.services.sweeper import sweep_once
from tests.report_data import ZONE, Spec, expected, generate, month_of

YEAR = 2025
N = 1500
COUNT_FIELDS = (
    "up_sent",
    "up_received",
    "down_sent",
    "down_received",
    "accepted",
    "overflow",
    "out_of_consortium",
    "rerouted",
    "expired",
    "waitlisted",
    "waitlist_placed",
    "up_completed_received",
    "follow_ups_due",
    "follow_ups_on_time",
)


SHARES = (
    ("up_treated_in_consortium_share", "up_in_consortium", "up_placed"),
    ("up_treated_in_county_share", "up_in_county", "up_placed"),
    ("down_share_of_completed_up", "down_sent", "up_completed_received"),
    ("follow_ups_on_time_share", "follow_ups_on_time", "follow_ups_due"),
)


async def _year(client, headers: dict[str, str], **params: str) -> list[dict[str, Any]]:
    r = await client.get(
        "/v1/reports/referrals",
        params={"from": f"{YEAR}-01-01", "to": f"{YEAR + 1}-01-01", **params},
        headers=headers,
    )
    assert r.status_code == 200, r.text
    return list(r.json())


def _check(rows: list[dict[str, Any]], specs: list[Spec], regions: dict[str, Any]) -> int:
    """Every figure of every (member, month) of the year against the specs; the count of
    figures checked."""
    want = expected(specs, local_date(datetime.now(UTC), ZONE), regions)
    got = {(row["key"], row["month"]): row for row in rows}
    keys = {k for k in want if k[1].startswith(str(YEAR))}
    assert keys <= set(got)
    assert {k[0] for k in got} <= {k[0] for k in want}  # nothing from another consortium
    checked = 0
    for key in keys:
        row, counts = got[key], want[key]
        for name in COUNT_FIELDS:
            assert row[name] == counts[name], (key, name, row[name], counts[name])
            checked += 1
        for reason, n in row["rejections"].items():
            assert n == counts[f"rejected:{reason}"], (key, reason)
            checked += 1
        offered = counts["up_received"] + counts["down_received"]
        assert row["acceptance_rate"] == (
            round(counts["accepted"] / offered, 4) if offered else None
        )
        for share, numerator, denominator in SHARES:
            d = counts[denominator]
            assert row[share] == (round(counts[numerator] / d, 4) if d else None), (key, share)
            checked += 1
    # time to accept: median and p90 per member and month, recomputed from the specs
    minutes: dict[tuple[str, str], list[float]] = {}
    for spec in specs:
        if spec.accepted_at is not None and spec.target is not None:
            key = (spec.target, month_of(spec.accepted_at))
            offered_at = spec.attempts[-1][1]
            seconds = (spec.accepted_at - offered_at).total_seconds()
            minutes.setdefault(key, []).append(seconds / 60)
    for key, values in minutes.items():
        if key in got:
            assert abs(got[key]["accept_minutes_median"] - percentile(values, 0.5)) <= 0.1
            assert abs(got[key]["accept_minutes_p90"] - percentile(values, 0.9)) <= 0.1
            checked += 2
    # time on the waitlist: median and p90 per sending member and month of the placement
    waited: dict[tuple[str, str], list[float]] = {}
    for spec in specs:
        if spec.left_waitlist_at is not None:
            key = (spec.source, month_of(spec.left_waitlist_at))
            seconds = (spec.left_waitlist_at - spec.created_at).total_seconds()
            waited.setdefault(key, []).append(seconds / 60)
    assert len(waited) > 5
    for key, values in waited.items():
        if key in got:
            assert abs(got[key]["waitlist_minutes_median"] - percentile(values, 0.5)) <= 0.1
            assert abs(got[key]["waitlist_minutes_p90"] - percentile(values, 0.9)) <= 0.1
            checked += 2
    total_up = sum(1 for s in specs if s.direction == "up")
    assert sum(row["up_sent"] for row in rows) == total_up
    return checked


async def test_monthly_report_matches_independent_counts(client, auth, app) -> None:
    """A generated year for two demo consortia: each council's figures (and the admin's, per
    consortium) match counts computed from the generated specs alone."""
    admin = auth("demo admin")
    consortia = (await client.get("/v1/consortia", headers=admin)).json()["items"]
    ids = {c["code"]: c["id"] for c in consortia}
    listing = await client.get("/v1/institutions", params={"limit": 200}, headers=admin)
    regions = {i["id"]: i["region_code"] for i in listing.json()["items"]}
    database: Database = app.state.database
    specs: dict[str, list[Spec]] = {}
    async with database.unit_of_work() as session:
        for code, n in (("ZHENGHE", N), ("HUANGZHONG-1", N // 2)):
            specs[code] = await generate(session, ids[code], n, YEAR, seed=len(code))
    checked = 0
    for code in specs:
        council = await _year(client, auth(f"demo council {code}"))
        checked += _check(council, specs[code], regions)
        assert await _year(client, admin, consortium=ids[code]) == council
    assert checked > 2000
    zhenghe = await _year(client, auth("demo council ZHENGHE"))
    got = {(row["key"], row["month"]): row for row in zhenghe}
    # the same numbers as CSV, with a BOM and the Chinese names
    c = await client.get(
        "/v1/reports/referrals",
        params={"from": f"{YEAR}-01-01", "to": f"{YEAR + 1}-01-01"},
        headers={**auth("demo council ZHENGHE"), "Accept": "text/csv"},
    )
    assert c.headers["content-type"].startswith("text/csv")
    assert c.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(c.content.decode("utf-8-sig"))))
    assert len(rows) == len(zhenghe)
    for x in rows:
        row = got[(x["key"], x["month"])]
        assert x["name"] == row["name"]
        for name in (*COUNT_FIELDS, *(s[0] for s in SHARES)):
            assert x[name] == ("" if row[name] is None else str(row[name])), name
    assert "政和县医院" in c.content.decode("utf-8-sig")
    # grouping by month adds up the members; a council may not read another consortium
    months = await _year(client, admin, consortium=ids["ZHENGHE"], group_by="month")
    assert len(months) == 12
    assert sum(x["up_sent"] for x in months) == sum(
        1 for s in specs["ZHENGHE"] if s.direction == "up"
    )
    by_specialty = await _year(client, admin, consortium=ids["ZHENGHE"], group_by="specialty")
    want_specialty: Counter[tuple[str, str]] = Counter()
    for spec in specs["ZHENGHE"]:
        if spec.direction == "up":
            want_specialty[(spec.specialty, month_of(spec.created_at))] += 1
    got_specialty = {(x["key"], x["month"]): x["up_sent"] for x in by_specialty if x["up_sent"]}
    assert got_specialty == dict(want_specialty)
    assert all(x["name"] is None for x in by_specialty)
    everything = await _year(client, admin, group_by="month")
    assert sum(x["up_sent"] for x in everything) == sum(
        1 for group in specs.values() for s in group if s.direction == "up"
    )
    r = await client.get(
        "/v1/reports/referrals",
        params={"from": f"{YEAR}-01-01", "to": f"{YEAR}-02-01", "consortium": ids["ZHENGHE"]},
        headers=auth("demo council HUANGZHONG-1"),
    )
    assert r.status_code == 403
    assert (
        await client.get(
            "/v1/reports/referrals",
            params={"from": f"{YEAR}-01-01", "to": f"{YEAR}-02-01"},
            headers=auth("demo clinic ZH-THC-TS"),
        )
    ).status_code == 403


# --- the figures follow what the service itself records ----------------------------------


async def test_report_counts_what_the_service_recorded(api, client, auth, app) -> None:
    """Referrals walked through the API (not written into the tables): each figure is the
    number the walk produced, so the report's definitions match the events the service writes
    (a referral created straight onto the waitlist counts as waitlisted, a placement from the
    waitlist counts with its waiting time, a rejection by its reason)."""
    ids = await api.ids()
    await api.set_beds("ZH-CH", {"03": (4, 3)})  # one free bed
    await api.set_beds("ZH-TCM", {"03": (4, 4)})
    await api.set_beds("NP-FH", {"03": (4, 4)})
    ts, ly = auth("demo clinic ZH-THC-TS"), auth("demo clinic ZH-THC-LY")
    a = (await api.create("demo clinic ZH-THC-TS")).json()
    assert a["status"] == "pending" and a["target_institution_id"] == ids["ZH-CH"]
    b = (await api.create("demo clinic ZH-THC-LY")).json()
    assert b["status"] == "waitlisted"  # created on the waitlist
    await api.act("demo hospital ZH-CH", a, "accept")
    await api.set_beds("ZH-TCM", {"03": (4, 3)})  # a bed appears: b leaves the waitlist
    b = (await api.get(ly, b, expect=None)).json()
    assert b["status"] == "pending" and b["target_institution_id"] == ids["ZH-TCM"]
    b = (await api.act("demo hospital ZH-TCM", b, "reject", {"reason_code": "no_bed"})).json()
    assert b["status"] == "waitlisted"  # re-routed: no other place, back on the waitlist
    assert (await api.get(ts, a, expect=None)).json()["status"] == "accepted"
    c = (await api.create("demo clinic ZH-THC-DP")).json()  # takes the bed b gave back
    assert c["status"] == "pending" and c["target_institution_id"] == ids["ZH-TCM"]
    database: Database = app.state.database
    async with database.unit_of_work() as session:  # its answer time has passed
        await session.execute(
            update(Referral)
            .where(Referral.id == c["id"])
            .values(respond_by=datetime.now(UTC) - timedelta(hours=1))
        )
    assert await sweep_once(database, app.state.settings) == 1
    c = (await api.get("demo clinic ZH-THC-DP", c, expect=None)).json()
    assert c["status"] == "waitlisted"  # expired at ZH-TCM, no other place

    today = local_date(datetime.now(UTC), ZONE)
    r = await client.get(
        "/v1/reports/referrals",
        params={"from": str(today - timedelta(days=1)), "to": str(today + timedelta(days=2))},
        headers=auth("demo council ZHENGHE"),
    )
    assert r.status_code == 200, r.text
    totals: dict[str, Counter[str]] = defaultdict(Counter)
    waits: list[float] = []
    for row in r.json():
        for name, value in row.items():
            if isinstance(value, int) and not isinstance(value, bool):
                totals[row["key"]][name] += value
        for reason, n in row["rejections"].items():
            totals[row["key"]][f"rejected:{reason}"] += n
        if row["waitlist_minutes_median"] is not None:
            waits.append(row["waitlist_minutes_median"])
    want = {
        "ZH-THC-TS": {"up_sent": 1},
        "ZH-THC-LY": {"up_sent": 1, "waitlisted": 2, "waitlist_placed": 1},
        "ZH-CH": {"up_received": 1, "accepted": 1},
        "ZH-THC-DP": {"up_sent": 1, "waitlisted": 1},
        "ZH-TCM": {"up_received": 2, "rejected": 1, "rejected:no_bed": 1, "expired": 1},
    }
    for code, figures in want.items():
        got = totals[ids[code]]
        assert {k: v for k, v in got.items() if v} == figures, (code, dict(got))
    assert set(totals) == {ids[c] for c in want}
    assert len(waits) == 1 and 0 <= waits[0] < 5
