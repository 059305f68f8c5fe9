from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

from app.db.session import Database
from app.domain.green_channel import percentile
from tests.report_data import expected, generate

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
    "up_completed_received",
    "follow_ups_due",
    "follow_ups_on_time",
)


async def test_monthly_report_matches_independent_counts(client, auth, app) -> None:
    consortia = (await client.get("/v1/consortia", headers=auth("demo admin"))).json()["items"]
    zhenghe = next(c["id"] for c in consortia if c["code"] == "ZHENGHE")
    database: Database = app.state.database
    async with database.unit_of_work() as session:
        specs = await generate(session, zhenghe, N, YEAR)
    want = expected(specs, datetime.now(UTC).date())
    r = await client.get(
        "/v1/reports/referrals",
        params={"from": f"{YEAR}-01-01", "to": f"{YEAR + 1}-01-01"},
        headers=auth("demo council ZHENGHE"),
    )
    assert r.status_code == 200, r.text
    got = {(row["key"], row["month"]): row for row in r.json()}
    keys = {k for k in want if k[1].startswith(str(YEAR))}
    assert keys <= set(got)
    checked = 0
    for key in keys:
        row, counts = got[key], want[key]
        for name in COUNT_FIELDS:
            assert row[name] == counts[name], (key, name, row[name], counts[name])
            checked += 1
        for reason, n in row["rejections"].items():
            assert n == counts[f"rejected:{reason}"], (key, reason)
        offered = counts["up_received"] + counts["down_received"]
        if offered:
            assert row["acceptance_rate"] == round(counts["accepted"] / offered, 4)
    assert checked > 1000
    # time to accept: median and p90 per member and month, recomputed from the specs
    minutes: dict[tuple[str, str], list[float]] = {}
    for spec in specs:
        if spec.accepted_at is not None and spec.target is not None:
            key = (spec.target, f"{spec.accepted_at:%Y-%m}")
            offered = spec.attempts[-1][1]
            minutes.setdefault(key, []).append((spec.accepted_at - offered).total_seconds() / 60)
    for key, values in minutes.items():
        if key in got:
            assert abs(got[key]["accept_minutes_median"] - percentile(values, 0.5)) <= 0.1
            assert abs(got[key]["accept_minutes_p90"] - percentile(values, 0.9)) <= 0.1
    total_up = sum(1 for s in specs if s.direction == "up")
    assert sum(row["up_sent"] for row in r.json()) == total_up
    # the same numbers as CSV, with a BOM and the Chinese names
    c = await client.get(
        "/v1/reports/referrals",
        params={"from": f"{YEAR}-01-01", "to": f"{YEAR + 1}-01-01"},
        headers={**auth("demo council ZHENGHE"), "Accept": "text/csv"},
    )
    assert c.headers["content-type"].startswith("text/csv")
    assert c.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(c.content.decode("utf-8-sig"))))
    assert len(rows) == len(r.json())
    by_key = {(x["key"], x["month"]): x for x in rows}
    for key in keys:
        for name in COUNT_FIELDS:
            assert int(by_key[key][name]) == got[key][name]
    assert "政和县医院" in c.content.decode("utf-8-sig")
    # grouping by month adds up the members
    m = await client.get(
        "/v1/reports/referrals",
        params={"from": f"{YEAR}-01-01", "to": f"{YEAR + 1}-01-01", "group_by": "month"},
        headers=auth("demo admin"),
    )
    assert sum(x["up_sent"] for x in m.json()) == total_up
    assert len(m.json()) == 12
    # a clinic may not read it; another consortium's council gets its own (empty) figures
    assert (
        await client.get(
            "/v1/reports/referrals",
            params={"from": f"{YEAR}-01-01", "to": f"{YEAR}-02-01"},
            headers=auth("demo clinic ZH-THC-TS"),
        )
    ).status_code == 403
    other = await client.get(
        "/v1/reports/referrals",
        params={"from": f"{YEAR}-01-01", "to": f"{YEAR + 1}-01-01"},
        headers=auth("demo council HUANGZHONG-1"),
    )
    assert other.json() == []
