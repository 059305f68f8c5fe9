from __future__ import annotations

import copy
import csv
import io
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from app.domain.localtime import local_date
from tests.factories import referral_body

ID_PATTERN = re.compile(r"(?<![0-9A-Za-z.])\d{17}[\dXx](?![0-9A-Za-z])")
EXAMPLE = Path(__file__).resolve().parents[2] / "app" / "data" / "policies" / "example-policy.json"


async def test_township_to_county_hospital_gets_the_in_consortium_tier(api, client, auth) -> None:
    ids = await api.ids()
    await api.set_beds("ZH-CH", {"03": (20, 0)}, expect=None)
    body = referral_body()
    r = await api.create("demo clinic ZH-THC-TS", body, expect=None)
    ref = r.json()
    tier = ref["tier"]
    assert ref["target_institution_id"] == ids["ZH-CH"]
    # referred up for a condition outside primary scope: the primary (township) rate applies
    assert tier["tier"] == "in_consortium_referral_primary_rate"
    assert tier["ratio"] == "0.85" and tier["policy_code"] == "EXAMPLE-COUNTY"
    assert tier["deductible"] == "500"
    assert any(r["rule"] == "primary_rate_for_referred_up" for r in tier["rules"])
    events = await client.get(f"/v1/referrals/{ref['id']}/events", headers=auth("demo admin"))
    assert "tier_decided" in [e["type"] for e in events.json()]
    # once admitted, the deductible is not charged again within the episode
    h = auth("demo hospital ZH-CH")
    cur = ref
    for action in ("accept", "arrive", "admit"):
        r = await api.act(h, cur, action, expect=None)
        cur = r.json()
    # the same patient and specialty while the first is admitted (live): sent again on purpose
    again = await api.create(
        "demo clinic ZH-THC-TS",
        {**body, "episode_id": ref["episode_id"], "duplicate_reason": "other"},
    )
    second = again.json()["tier"]
    assert second["deductible"] == "0"
    assert any(r["rule"] == "deductible_once_per_episode" for r in second["rules"])


async def test_quote_with_and_without_referral(api, client, auth) -> None:
    ids = await api.ids()
    body = {"scheme": "urban_rural_resident", "target_institution_id": ids["ZH-CH"]}
    r = await client.post(
        "/v1/reimbursement/quote", json=body, headers=auth("demo clinic ZH-THC-TS")
    )
    assert r.status_code == 200, r.text
    quote = r.json()
    assert quote["policy_is_example"] is True
    assert float(quote["with_referral"]["ratio"]) > float(quote["without_referral"]["ratio"])
    assert quote["without_referral"]["tier"] == "self_referral"
    # out of county without referral is the lowest
    out = await client.post(
        "/v1/reimbursement/quote",
        json={**body, "target_institution_id": ids["QH-PPH"]},
        headers=auth("demo clinic ZH-THC-TS"),
    )
    assert out.status_code == 200, out.text
    assert out.json()["without_referral"]["tier"] == "out_of_county_without_referral"
    assert float(out.json()["without_referral"]["ratio"]) < float(
        quote["without_referral"]["ratio"]
    )


async def test_new_policy_version_leaves_recorded_tiers_untouched(api, client, auth) -> None:
    await api.set_beds("ZH-CH", {"03": (20, 0)}, expect=None)
    before = (await api.create("demo clinic ZH-THC-TS")).json()
    doc = copy.deepcopy(json.loads(EXAMPLE.read_text(encoding="utf-8")))
    doc["effective_from"] = str((datetime.now(UTC) - timedelta(days=1)).date())
    doc["terms"]["390"]["primary"]["ratio"] = "0.95"
    denied = await client.post(
        "/v1/reimbursement-policies", json={"policy": doc}, headers=auth("demo clinic ZH-THC-TS")
    )
    assert denied.status_code == 403
    r = await client.post(
        "/v1/reimbursement-policies", json={"policy": doc}, headers=auth("demo insurer")
    )
    assert r.status_code == 201, r.text
    assert r.json()["version"] == 2
    after = (await api.create("demo clinic ZH-THC-TS")).json()
    assert after["tier"]["policy_version"] == 2 and after["tier"]["ratio"] == "0.95"
    again = await client.get(f"/v1/referrals/{before['id']}", headers=auth("demo admin"))
    assert again.json()["tier"]["policy_version"] == 1
    assert again.json()["tier"]["ratio"] == "0.85"


async def test_reroute_records_a_new_tier_and_insurer_lists_csv(api, client, auth) -> None:
    ids = await api.ids()
    for code in ("ZH-CH", "ZH-TCM"):
        await api.set_beds(code, {"03": (20, 0)}, expect=None)
    ref = (await api.create("demo clinic ZH-THC-TS")).json()
    await api.act("demo hospital ZH-CH", ref, "reject", {"reason_code": "no_bed"})
    history = await client.get(
        f"/v1/referrals/{ref['id']}/tiers", headers=auth("demo clinic ZH-THC-TS")
    )
    assert [t["target_institution_id"] for t in history.json()] == [ids["ZH-CH"], ids["ZH-TCM"]]
    today = local_date(datetime.now(UTC), "Asia/Shanghai")  # report days are local days
    params = {"from": str(today), "to": str(today + timedelta(days=1))}
    listing = await client.get("/v1/reports/tiers", params=params, headers=auth("demo insurer"))
    assert listing.status_code == 200
    assert len([x for x in listing.json() if x["referral_id"] == ref["id"]]) == 2
    as_csv = await client.get(
        "/v1/reports/tiers", params=params, headers={**auth("demo insurer"), "Accept": "text/csv"}
    )
    assert as_csv.content.startswith("\ufeff".encode())
    rows = list(csv.DictReader(io.StringIO(as_csv.content.decode("utf-8-sig"))))
    assert len(rows) == len(listing.json())
    assert {r["tier"] for r in rows} == {x["tier"] for x in listing.json()}
    assert not ID_PATTERN.search(as_csv.text) and "测试患者" not in as_csv.text
    clinic = await client.get(
        "/v1/reports/tiers", params=params, headers=auth("demo clinic ZH-THC-TS")
    )
    assert clinic.status_code == 403
