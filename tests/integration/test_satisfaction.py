"""Patient satisfaction (003's appraisal): the primary institution that referred the patient
records a score (1-5) and reason codes once per accepted up-referral; the monthly figures give
their count and mean per target member and month."""

from __future__ import annotations

from datetime import timedelta

from app.db.base import utcnow
from app.domain.localtime import local_date

CLINIC = "demo clinic ZH-THC-TS"
HOSPITAL = "demo hospital ZH-CH"


async def _accepted(api) -> dict:
    ref = (await api.create(CLINIC)).json()
    return dict((await api.act(HOSPITAL, ref, "accept")).json())


async def test_recorded_once_by_the_referring_institution_and_counted(api, client, auth) -> None:
    ids = await api.ids()
    await api.set_beds("ZH-CH", {"03": (40, 1)})
    first, second = await _accepted(api), await _accepted(api)
    pending = (await api.create(CLINIC)).json()
    url = f"/v1/referrals/{first['id']}/satisfaction"
    body = {"score": 4, "reason_codes": ["waiting_time", "communication"]}
    # only the referring institution records it, once, for an accepted referral
    assert (await client.post(url, json=body, headers=auth(HOSPITAL))).status_code == 403
    other = await client.post(url, json=body, headers=auth("demo clinic ZH-THC-LY"))
    assert other.status_code == 404
    r = await client.post(url, json=body, headers=auth(CLINIC))
    assert r.status_code == 201, r.text
    assert r.json()["target_institution_id"] == ids["ZH-CH"] and r.json()["score"] == 4
    assert (await client.post(url, json=body, headers=auth(CLINIC))).status_code == 409
    waiting = f"/v1/referrals/{pending['id']}/satisfaction"
    assert (await client.post(waiting, json=body, headers=auth(CLINIC))).status_code == 409
    for bad in ({"score": 0}, {"score": 6}, {"score": 3, "reason_codes": ["free text"]}):
        refused = await client.post(
            f"/v1/referrals/{second['id']}/satisfaction", json=bad, headers=auth(CLINIC)
        )
        assert refused.status_code == 422, bad
    r = await client.post(
        f"/v1/referrals/{second['id']}/satisfaction", json={"score": 1}, headers=auth(CLINIC)
    )
    assert r.status_code == 201, r.text
    read = await client.get(url, headers=auth(HOSPITAL))
    assert read.status_code == 200 and read.json()["reason_codes"] == [
        "waiting_time",
        "communication",
    ]
    # the month's figures for ZH-CH: two scores, mean 2.5
    day = local_date(utcnow(), "Asia/Shanghai")
    report = await client.get(
        "/v1/reports/referrals",
        params={"from": str(day.replace(day=1)), "to": str(day + timedelta(days=1))},
        headers=auth("demo council ZHENGHE"),
    )
    assert report.status_code == 200, report.text
    zh_ch = next(row for row in report.json() if row["key"] == ids["ZH-CH"])
    assert (zh_ch["satisfaction_count"], zh_ch["satisfaction_mean"]) == (2, 2.5)
    others = [row for row in report.json() if row["key"] != ids["ZH-CH"]]
    assert all(row["satisfaction_count"] == 0 for row in others)
    csv = await client.get(
        "/v1/reports/referrals",
        params={"from": str(day.replace(day=1)), "to": str(day + timedelta(days=1))},
        headers={**auth("demo council ZHENGHE"), "Accept": "text/csv"},
    )
    assert "satisfaction_mean" in csv.text.splitlines()[0] and ",2.5," in csv.text
