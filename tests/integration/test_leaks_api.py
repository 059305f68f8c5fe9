"""Leak analytics (GET /v1/reports/leaks): why up-referrals left the consortium or waited,
checked against counts computed from the generated specs alone, and against what the service
itself stores when a referral walked through the API leaves the consortium."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from fastapi import FastAPI

from app.db.session import Database
from app.domain.localtime import local_date
from tests.driver import ApiDriver
from tests.report_data import ZONE, Spec, expected_leaks, generate

YEAR = 2025
N = 1500


async def _leaks(client: Any, headers: dict[str, str], **params: str) -> list[dict[str, Any]]:
    r = await client.get(
        "/v1/reports/leaks",
        params={"from": f"{YEAR}-01-01", "to": f"{YEAR + 1}-01-01", **params},
        headers=headers,
    )
    assert r.status_code == 200, r.text
    return list(r.json())


async def test_leaks_match_independent_counts(
    client: httpx.AsyncClient, auth: Any, app: FastAPI
) -> None:
    admin = auth("demo admin")
    consortia = (await client.get("/v1/consortia", headers=admin)).json()["items"]
    ids = {c["code"]: c["id"] for c in consortia}
    database: Database = app.state.database
    specs: dict[str, list[Spec]] = {}
    async with database.unit_of_work() as session:
        for code, n in (("ZHENGHE", N), ("HUANGZHONG-1", N // 3)):
            specs[code] = await generate(session, ids[code], n, YEAR, seed=len(code))
    listing = await client.get("/v1/institutions", params={"limit": 200}, headers=admin)
    codes = {i["id"]: i["code"] for i in listing.json()["items"]}
    for code in specs:
        rows = await _leaks(client, auth(f"demo council {code}"))
        want = expected_leaks(specs[code])
        assert len(want) > 20
        got = {(r["month"], r["specialty_code"], r["institution_id"], r["reason"]): r for r in rows}
        assert set(got) == set(want)
        for key, figure in want.items():
            row = got[key]
            assert row["days"] == len(figure.days), key
            assert row["decisions"] == figure.decisions, key
            assert row["referrals"] == len(figure.latest), key
            dests = {d["institution_id"]: d["referrals"] for d in row["destinations"]}
            assert dests == dict(figure.destinations()), key
            assert row["waitlisted"] == figure.destinations()[None]
            assert row["out_of_consortium"] == row["referrals"] - row["waitlisted"]
            if key[2] is not None:
                assert row["institution_code"] == codes[key[2]]
        assert await _leaks(client, admin, consortium=ids[code]) == rows
    zhenghe = await _leaks(client, auth("demo council ZHENGHE"))
    reasons = {r["reason"] for r in zhenghe}
    assert {"no_free_capacity", "previously_declined", "no_member_offers"} <= reasons
    full = next(r for r in zhenghe if r["reason"] == "no_free_capacity" and r["out_of_consortium"])
    assert " full on " in full["summary"] and "满床" in full["summary_zh"], full
    # the same rows as CSV
    c = await client.get(
        "/v1/reports/leaks",
        params={"from": f"{YEAR}-01-01", "to": f"{YEAR + 1}-01-01"},
        headers={**auth("demo council ZHENGHE"), "Accept": "text/csv"},
    )
    assert c.status_code == 200
    assert c.headers["content-type"].startswith("text/csv")
    assert c.content.startswith(b"\xef\xbb\xbf")
    table = list(csv.DictReader(io.StringIO(c.content.decode("utf-8-sig"))))
    assert len(table) == len(zhenghe)
    for x, row in zip(table, zhenghe, strict=True):
        assert (x["month"], x["reason"], x["referrals"], x["days"]) == (
            row["month"],
            row["reason"],
            str(row["referrals"]),
            str(row["days"]),
        )
    # one month only; everything for the admin adds both consortia
    march = await _leaks(client, admin, consortium=ids["ZHENGHE"])
    only = (
        await client.get(
            "/v1/reports/leaks",
            params={"from": f"{YEAR}-03-01", "to": f"{YEAR}-04-01", "consortium": "ZHENGHE"},
            headers=admin,
        )
    ).json()
    assert only == [r for r in march if r["month"] == f"{YEAR}-03"]
    everything = await _leaks(client, admin)
    assert len(everything) == sum(len(expected_leaks(s)) for s in specs.values())
    # who may read them
    for who, status in (
        ("demo council HUANGZHONG-1", 403),
        ("demo clinic ZH-THC-TS", 403),
        ("demo hospital ZH-CH", 403),
        ("demo insurer", 200),
    ):
        r = await client.get(
            "/v1/reports/leaks",
            params={"from": f"{YEAR}-01-01", "to": f"{YEAR}-02-01", "consortium": ids["ZHENGHE"]},
            headers=auth(who),
        )
        assert r.status_code == status, (who, r.status_code)


async def test_a_referral_leaving_the_consortium_is_a_leak(
    api: ApiDriver, client: httpx.AsyncClient, auth: Any
) -> None:
    """Walked through the API: both county hospitals full, the partner free: the referral goes
    out of the consortium and the leak names both members with the partner as destination;
    with the partner full too, the next one waits."""
    ids = await api.ids()
    await api.set_beds("ZH-CH", {"03": (4, 4)})
    await api.set_beds("ZH-TCM", {"03": (4, 4)})
    await api.set_beds("NP-FH", {"03": (4, 3)})
    out = (await api.create("demo clinic ZH-THC-TS")).json()
    assert out["out_of_consortium"] is True
    waits = (await api.create("demo clinic ZH-THC-LY")).json()
    assert waits["status"] == "waitlisted"
    today = local_date(datetime.now(UTC), ZONE)
    r = await client.get(
        "/v1/reports/leaks",
        params={"from": str(today - timedelta(days=1)), "to": str(today + timedelta(days=1))},
        headers=auth("demo council ZHENGHE"),
    )
    assert r.status_code == 200, r.text
    rows = {(x["institution_id"], x["reason"]): x for x in r.json()}
    for member in ("ZH-CH", "ZH-TCM"):
        row = rows[(ids[member], "no_free_capacity")]
        assert row["referrals"] == 2 and row["days"] == 1, row
        dests = {d["institution_id"]: d["referrals"] for d in row["destinations"]}
        assert dests == {ids["NP-FH"]: 1, None: 1}, row
        assert row["specialty_code"] == "03" and row["institution_code"] == member
        assert row["summary"].endswith("2 patients: 1 to 南平市第一医院, 1 waited") or row[
            "summary"
        ].endswith("2 patients: 1 waited, 1 to 南平市第一医院"), row["summary"]


async def test_leak_period_and_consortium_errors_name_the_field(
    client: httpx.AsyncClient, auth: Any
) -> None:
    admin = auth("demo admin")
    for params, loc in (
        ({"from": "2025-02-01", "to": "2025-01-01"}, ["query", "to"]),
        ({"from": "2020-01-01", "to": "2025-01-01"}, ["query", "to"]),
        ({"from": "2025-13-01", "to": "2026-01-01"}, ["query", "from"]),
        ({"to": "2026-01-01"}, ["query", "from"]),
    ):
        r = await client.get("/v1/reports/leaks", params=params, headers=admin)
        assert r.status_code == 422, (params, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        assert any(e["loc"] == loc for e in r.json()["errors"]), (params, r.json())
        assert "2025-13" not in r.text
    r = await client.get(
        "/v1/reports/leaks",
        params={"from": "2025-01-01", "to": "2025-02-01", "consortium": "NO-SUCH-'x"},
        headers=admin,
    )
    # like the monthly figures: an unknown consortium has no figures
    assert r.status_code == 200 and r.json() == [], r.text
