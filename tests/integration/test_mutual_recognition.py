"""Coded prior results and mutual recognition (the record that travels with the patient, #2):
each coded result of a new up-referral is marked recognised or not, with the reason, by the
versioned catalogue (which tests, done at which member levels, valid how long); the target
records the ones it repeated anyway; the monthly figures count recognised, repeated and the
yuan not spent twice (catalogue prices, example figures)."""

from __future__ import annotations

from datetime import timedelta

from app.db.base import utcnow
from app.domain.localtime import local_date

CLINIC = "demo clinic ZH-THC-TS"
HOSPITAL = "demo hospital ZH-CH"


async def test_recognised_repeated_and_counted(api, client, auth) -> None:
    ids = await api.ids()
    await api.set_beds("ZH-CH", {"03": (40, 1)})
    day = local_date(utcnow(), "Asia/Shanghai")
    yesterday, long_ago = str(day - timedelta(days=1)), str(day - timedelta(days=40))
    tests = [
        # an ECG by the referring township centre yesterday: recognised (primary level, 3 days)
        {
            "name": "心电图",
            "code_system": "loinc",
            "code": "11524-6",
            "done_on": yesterday,
            "performed_by_institution_id": ids["ZH-THC-TS"],
            "result": "窦性心律",
        },
        # a blood count by the county TCM hospital yesterday: recognised (20.00 yuan)
        {
            "name": "血常规",
            "code_system": "loinc",
            "code": "58410-2",
            "done_on": yesterday,
            "performed_by_institution_id": ids["ZH-TCM"],
        },
        # too old
        {
            "name": "血糖",
            "code_system": "loinc",
            "code": "2345-7",
            "done_on": long_ago,
            "performed_by_institution_id": ids["ZH-TCM"],
        },
        # done outside the consortium
        {
            "name": "血常规",
            "code_system": "loinc",
            "code": "58410-2",
            "done_on": yesterday,
            "performed_by_institution_id": ids["HZ-FPH"],
        },
        # not coded, and a code the catalogue does not list
        {"name": "腹部彩超"},
        {
            "name": "某检查",
            "code_system": "local",
            "code": "X-1",
            "done_on": yesterday,
            "performed_by_institution_id": ids["ZH-TCM"],
        },
    ]
    ref = (await api.create(CLINIC, tests_done=tests)).json()
    marks = [t["recognition"] for t in ref["tests_done"]]
    assert [m["recognised"] for m in marks] == [True, True, False, False, False, False]
    assert [m["reason"] for m in marks] == [
        None,
        None,
        "too_old",
        "performed_outside_consortium",
        "not_coded",
        "not_in_catalogue",
    ]
    assert marks[0]["catalogue_version"] == 2 and marks[1]["price_yuan"] == "20.00"
    # an unknown performing institution is refused, naming it
    bad = [{**tests[0], "performed_by_institution_id": "no-such-institution"}]
    r = await api.create(CLINIC, tests_done=bad, expect=422)
    assert r.json()["errors"][0]["loc"] == ["body", "tests_done", 0, "performed_by_institution_id"]
    # the target repeats the blood count anyway; only the target may say so
    url = f"/v1/referrals/{ref['id']}/repeated-tests"
    body = {"items": [{"index": 1, "reason_code": "condition_changed"}]}
    assert (await client.post(url, json=body, headers=auth(CLINIC))).status_code == 403
    out = await client.post(
        url, json={"items": [{"index": 9, "reason_code": "other"}]}, headers=auth(HOSPITAL)
    )
    assert out.status_code == 422
    r = await client.post(url, json=body, headers=auth(HOSPITAL))
    assert r.status_code == 200, r.text
    assert r.json()["tests_done"][1]["repeated"]["reason_code"] == "condition_changed"
    report = await client.get(
        "/v1/reports/referrals",
        params={"from": str(day.replace(day=1)), "to": str(day + timedelta(days=1))},
        headers=auth("demo council ZHENGHE"),
    )
    zh_ch = next(row for row in report.json() if row["key"] == ids["ZH-CH"])
    # ECG 25.00 and blood count 20.00 recognised; the blood count repeated: 25.00 not spent
    assert (zh_ch["tests_recognised"], zh_ch["tests_repeated"]) == (2, 1)
    assert zh_ch["yuan_not_spent_twice"] == 25.0
