"""Everyday routing paths: sub-specialty matching, the words of each ranked entry, the worklist's
last event (API, both back ends)."""

from __future__ import annotations

import itertools
import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.driver import ApiDriver

VILLAGE = "ZH-VC-TS-01"


async def _fresh_census(api: ApiDriver) -> None:
    for code, beds in (("ZH-CH", {"03": (120, 10), "03.04": (40, 10)}),
                       ("ZH-THC-TS", {"03": (12, 2)}), ("ZH-THC-LY", {"03": (12, 2)})):  # fmt: skip
        await api.set_beds(code, beds)


async def test_cardiology_inpatient_never_lands_in_a_township_internal_medicine_ward(
    api: ApiDriver, client: httpx.AsyncClient, auth: Any
) -> None:
    ids = await api.ids()
    await _fresh_census(api)
    ref = (
        await api.create(f"demo clinic {VILLAGE}", specialty_code="03.04", care_type="inpatient")
    ).json()
    routing = ref["routing"]
    assert routing["target"]["code"] == "ZH-CH"
    assert routing["target"]["specialty_match"] == "exact"
    townships = [x for x in routing["excluded"] if x["code"].startswith("ZH-THC-")]
    assert townships and all(x["reason"] == "only_parent_specialty" for x in townships)
    assert townships[0]["detail"] == ("offers only Internal medicine (03), not Cardiology (03.04)")
    # after a no_bed the referral goes on, but still not to a township centre
    await api.act("demo hospital ZH-CH", ref, "reject", {"reason_code": "no_bed"})
    again = (
        await client.get(f"/v1/referrals/{ref['id']}", headers=auth(f"demo clinic {VILLAGE}"))
    ).json()
    target = again["target_institution_id"]
    assert target not in {ids[c] for c in ids if c.startswith("ZH-THC-")}


async def test_cardiology_outpatient_counts_a_township_but_after_cardiology(
    api: ApiDriver, client: httpx.AsyncClient, auth: Any
) -> None:
    day = (date.today() + timedelta(days=2)).isoformat()
    for code, slots in (("ZH-CH", {"03.04": (10, 0)}), ("ZH-THC-TS", {"03": (10, 0)})):
        await api.set_slots(code, day, slots)
    ref = (
        await api.create(
            f"demo clinic {VILLAGE}", specialty_code="03.04", care_type="outpatient", wanted_day=day
        )
    ).json()
    ranked = [ref["routing"]["target"], *ref["routing"]["alternatives"]]
    assert ranked[0]["code"] == "ZH-CH"
    township = next(e for e in ranked if e["code"] == "ZH-THC-TS")
    assert township["specialty_match"] == "parent" and township["offered_specialty"] == "03"
    assert "offers only Internal medicine (03), not Cardiology (03.04)" in township["why"]
    for above, entry in itertools.pairwise(ranked):
        assert entry["why"].startswith(f"after {above['name']}")
        assert entry["why_zh"]


@pytest.fixture
def settings_overrides(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    if "policy" not in request.node.name:
        return {}
    doc = json.loads(Path("app/data/routing_policy.json").read_text(encoding="utf-8"))
    doc["version"] = 2
    doc["parent_only_matches"]["consortia"] = {"ZHENGHE": {"inpatient": True}}
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    return {"routing_policy_file": path}


async def test_consortium_policy_can_count_parent_only_inpatient_beds(
    api: ApiDriver, client: httpx.AsyncClient, auth: Any
) -> None:
    await _fresh_census(api)
    ref = (
        await api.create(f"demo clinic {VILLAGE}", specialty_code="03.04", care_type="inpatient")
    ).json()
    ranked = [ref["routing"]["target"], *ref["routing"]["alternatives"]]
    assert ranked[0]["code"] == "ZH-CH"
    parents = [e for e in ranked if e["code"].startswith("ZH-THC-")]
    assert parents and all(e["specialty_match"] == "parent" for e in parents)
    assert all(x["reason"] != "only_parent_specialty" for x in ref["routing"]["excluded"])


async def test_worklist_last_event_is_the_reroute_with_its_reason(
    api: ApiDriver, client: httpx.AsyncClient, auth: Any
) -> None:
    ids = await api.ids()
    for code in ("ZH-CH", "ZH-TCM"):
        await api.set_beds(code, {"03": (40, 10)})
    ref = (await api.create("demo clinic ZH-THC-TS")).json()
    assert ref["target_institution_id"] == ids["ZH-CH"]
    await api.act("demo hospital ZH-CH", ref, "reject", {"reason_code": "no_bed"})
    events = (
        await client.get(f"/v1/referrals/{ref['id']}/events", headers=auth("demo clinic ZH-THC-TS"))
    ).json()
    assert events[-1]["type"] == "tier_decided"  # the service's own record comes last
    items = (
        await client.get(
            "/v1/referrals", params={"box": "outgoing"}, headers=auth("demo clinic ZH-THC-TS")
        )
    ).json()["items"]
    (item,) = [i for i in items if i["id"] == ref["id"]]
    last = item["last_event"]
    assert last["type"] != "tier_decided"
    assert last["type"] == events[-2]["type"]
    assert last["reason_code"] == "no_bed"
