"""A lead unit of several hospitals and membership of several alliances (daily workflows #8,
#9): Zhenghe's lead unit is the County Hospital with the County TCM and Maternity-and-Child
hospitals (003), each ranked as the lead; an institution registered with its county community
joins a specialty alliance (000: provincial and municipal stroke, chest-pain ... alliances), a
referral runs in the alliance when the caller names it or when the alliance covers its pathway
or specialty, else in the county community, and numbers, access and figures stay per
consortium."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from app.domain.enums import Role
from app.services import auth as auth_service
from app.services import loader
from tests.factories import STROKE

CLINIC = "demo clinic ZH-THC-TS"
COUNCIL = "demo council ZHENGHE"
ADMIN = "demo admin"


async def _zhenghe(client, auth) -> dict[str, Any]:
    r = await client.get("/v1/consortia", params={"limit": 50}, headers=auth(ADMIN))
    return next(c for c in r.json()["items"] if c["code"] == "ZHENGHE")


async def _new_secondary(client, auth, zhenghe_id: str) -> str:
    """A secondary general hospital of Zhenghe, not in the lead unit, nearer to Tieshan than
    the county hospitals."""
    body = {
        "code": "ZH-NEAR",
        "name": "政和县第二医院",
        "level": "secondary",
        "type": "general",
        "consortium_id": zhenghe_id,
        "location": {"lat": 27.41, "lon": 118.78},
        "specialties": ["03"],
    }
    r = await client.post("/v1/institutions", json=body, headers=auth(ADMIN))
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def test_each_hospital_of_the_lead_unit_ranks_as_lead(api, client, auth) -> None:
    ids = await api.ids()
    zhenghe = await _zhenghe(client, auth)
    assert zhenghe["lead_institution_ids"] == [ids["ZH-CH"]]
    await _new_secondary(client, auth, zhenghe["id"])
    await api.set_beds("ZH-NEAR", {"03": (20, 1)})
    await api.set_beds("ZH-CH", {"03": (10, 10)})  # the county hospital is full
    await api.set_beds("ZH-TCM", {"03": (10, 1)})
    await api.set_beds("ZH-MCH", {"03": (10, 10)})
    preview = {"specialty_code": "03", "care_type": "inpatient"}
    before = (await client.post("/v1/routing/preview", json=preview, headers=auth(CLINIC))).json()
    # one lead (full): the nearer hospital wins on distance over the TCM hospital
    assert before["target"]["code"] == "ZH-NEAR", before["explanation"]

    unit = [ids["ZH-CH"], ids["ZH-TCM"], ids["ZH-MCH"]]
    r = await client.patch(
        f"/v1/consortia/{zhenghe['id']}", json={"lead_institution_ids": unit}, headers=auth(COUNCIL)
    )
    assert r.status_code == 200, r.text
    assert r.json()["lead_institution_ids"] == [ids["ZH-CH"], ids["ZH-MCH"], ids["ZH-TCM"]]
    assert r.json()["lead_institution_id"] == ids["ZH-CH"]  # the first of the unit, by code
    for code in ("ZH-CH", "ZH-TCM", "ZH-MCH"):
        inst = (await client.get(f"/v1/institutions/{ids[code]}", headers=auth(ADMIN))).json()
        assert inst["is_lead"] is True

    after = (await client.post("/v1/routing/preview", json=preview, headers=auth(CLINIC))).json()
    target = after["target"]
    assert target["code"] == "ZH-TCM" and target["rule"] == "lead_hospital"
    assert "lead unit" in target["why"]
    second = next(a for a in after["alternatives"] if a["code"] == "ZH-NEAR")
    assert second["rule"] == "lead_hospital" and "lead unit" in second["why"]
    # a create lands there too
    created = (await api.create(CLINIC)).json()
    assert created["target_institution_id"] == ids["ZH-TCM"]

    # a unit of one again with the single field; the others are no longer leads
    r = await client.patch(
        f"/v1/consortia/{zhenghe['id']}",
        json={"lead_institution_id": ids["ZH-CH"]},
        headers=auth(COUNCIL),
    )
    assert r.json()["lead_institution_ids"] == [ids["ZH-CH"]]
    tcm = (await client.get(f"/v1/institutions/{ids['ZH-TCM']}", headers=auth(ADMIN))).json()
    assert tcm["is_lead"] is False


async def test_a_lead_unit_is_made_of_members(api, client, auth) -> None:
    ids = await api.ids()
    zhenghe = await _zhenghe(client, auth)
    path = f"/v1/consortia/{zhenghe['id']}"
    foreign = {"lead_institution_ids": [ids["ZH-CH"], ids["HZ-FPH"]]}
    r = await client.patch(path, json=foreign, headers=auth(COUNCIL))
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"] == ["body", "lead_institution_ids", 1]
    both = {"lead_institution_id": ids["ZH-CH"], "lead_institution_ids": [ids["ZH-CH"]]}
    assert (await client.patch(path, json=both, headers=auth(COUNCIL))).status_code == 422
    # nothing changed
    assert (await _zhenghe(client, auth))["lead_institution_ids"] == [ids["ZH-CH"]]
    # none
    r = await client.patch(path, json={"lead_institution_ids": []}, headers=auth(COUNCIL))
    assert r.status_code == 200 and r.json()["lead_institution_id"] is None


async def _alliance(client, auth, app, ids: dict[str, str]) -> tuple[str, dict[str, str]]:
    """A municipal stroke alliance: the Tieshan centre and the County Hospital join it from
    Zhenghe, Nanping First Hospital (a partner, no consortium of its own) leads it."""
    body = {
        "code": "NP-STROKE",
        "name": "南平市卒中专科联盟",
        "kind": "specialty_alliance",
        "referral_prefix": "NPS",
        "alliance_centres": ["stroke"],
        "alliance_specialties": ["03.03"],
    }
    r = await client.post("/v1/consortia", json=body, headers=auth(ADMIN))
    assert r.status_code == 201, r.text
    alliance = r.json()["id"]
    async with app.state.database.unit_of_work() as session:
        issued = await auth_service.issue_key(
            session,
            pepper=app.state.settings.secret("api_key_pepper"),
            name="stroke alliance council",
            role=Role.COUNCIL,
            institution_id=None,
            consortium_id=alliance,
        )
    council = {"Authorization": f"Bearer {issued.key}"}
    return alliance, council


async def test_membership_is_admitted_by_the_alliance(api, client, auth, app) -> None:
    ids = await api.ids()
    alliance, council = await _alliance(client, auth, app, ids)
    path = f"/v1/consortia/{alliance}/memberships"
    # only the alliance's council or an admin admits
    r = await client.put(f"{path}/{ids['ZH-THC-TS']}", json={}, headers=auth(COUNCIL))
    assert r.status_code == 403
    r = await client.put(f"{path}/{ids['ZH-THC-TS']}", json={}, headers=auth(CLINIC))
    assert r.status_code == 403
    r = await client.put(f"{path}/{ids['ZH-THC-TS']}", json={}, headers=council)
    assert r.status_code == 201 and r.json()["lead"] is False
    r = await client.put(f"{path}/{ids['ZH-THC-TS']}", json={}, headers=council)
    assert r.status_code == 200  # idempotent
    r = await client.put(f"{path}/{ids['NP-FH']}", json={"lead": True}, headers=council)
    assert r.status_code == 201
    assert (await client.put(f"{path}/no-such", json={}, headers=council)).status_code == 404
    bad = await client.put(f"{path}/{ids['ZH-CH']}", json={"lead": [True]}, headers=council)
    assert bad.status_code == 422 and bad.json()["errors"][0]["loc"] == ["body", "lead"]
    view = (await client.get(f"/v1/consortia/{alliance}", headers=auth(ADMIN))).json()
    assert view["joined_member_ids"] == sorted(
        [ids["ZH-THC-TS"], ids["NP-FH"]], key=lambda i: {v: k for k, v in ids.items()}[i]
    )
    assert view["lead_institution_ids"] == [ids["NP-FH"]]
    assert view["alliance_centres"] == ["stroke"]
    listed = (await client.get(path, headers=auth(CLINIC))).json()
    assert {m["institution_id"]: m["lead"] for m in listed} == {
        ids["ZH-THC-TS"]: False,
        ids["NP-FH"]: True,
    }
    members = await client.get(
        "/v1/institutions", params={"consortium": "NP-STROKE"}, headers=auth(ADMIN)
    )
    assert {i["code"] for i in members.json()["items"]} == {"ZH-THC-TS", "NP-FH"}
    # leaving
    assert (await client.delete(f"{path}/{ids['ZH-THC-TS']}", headers=council)).status_code == 204
    assert (await client.delete(f"{path}/{ids['ZH-THC-TS']}", headers=council)).status_code == 404


async def test_a_referral_runs_in_the_alliance_of_its_pathway(api, client, auth, app) -> None:
    ids = await api.ids()
    alliance, council = await _alliance(client, auth, app, ids)
    path = f"/v1/consortia/{alliance}/memberships"
    for code, lead in (("ZH-THC-TS", False), ("ZH-CH", False), ("NP-FH", True)):
        r = await client.put(f"{path}/{ids[code]}", json={"lead": lead}, headers=council)
        assert r.status_code == 201, r.text

    # a stroke referral: the alliance covers the pathway
    stroke = (await api.create(CLINIC, **STROKE)).json()
    assert stroke["consortium_id"] == alliance and stroke["consortium_basis"] == "pathway"
    assert stroke["number"].startswith("NPS-")
    assert stroke["target_institution_id"] in {ids["ZH-CH"], ids["NP-FH"]}
    assert stroke["out_of_consortium"] is False  # a member of the alliance it runs in
    # another need: the county community
    other = (await api.create(CLINIC, specialty_code="04")).json()
    assert other["consortium_basis"] == "own" and other["number"].startswith("ZH-")
    zhenghe = await _zhenghe(client, auth)
    assert other["consortium_id"] == zhenghe["id"]
    # named by the caller: that consortium
    named = (await api.create(CLINIC, specialty_code="03", consortium_id="NP-STROKE")).json()
    assert named["consortium_id"] == alliance and named["consortium_basis"] == "named"
    # a consortium the source is not in: refused, naming the field, nothing written
    refused = await api.create(
        CLINIC, specialty_code="05", consortium_id="HUANGZHONG-1", expect=422
    )
    assert refused.json()["errors"][0]["loc"] == ["body", "consortium_id"]
    assert "HUANGZHONG" not in refused.text

    # access per consortium: the alliance's council reads the alliance's referrals, Zhenghe's
    # council its own
    assert (await api.get(council, stroke)).status_code == 200
    assert (await api.get(COUNCIL, stroke, expect=None)).status_code in (403, 404)
    assert (await api.get(council, other, expect=None)).status_code in (403, 404)
    assert (await api.get(COUNCIL, other)).status_code == 200
    # figures per consortium
    assert await _up_sent(client, council, alliance) == 2  # the stroke and the named one
    assert await _up_sent(client, auth(COUNCIL), zhenghe["id"]) == 1

    # a re-route stays in the alliance: the nearest stroke centre declines, the next centre
    # of the alliance takes it (the partner is a member there, so no out-of-consortium tier)
    assert stroke["target_institution_id"] == ids["ZH-CH"]
    await api.act("demo hospital ZH-CH", stroke, "reject", {"reason_code": "beyond_capability"})
    moved = (await api.get(CLINIC, stroke)).json()
    assert moved["consortium_id"] == alliance
    assert moved["target_institution_id"] == ids["NP-FH"] and moved["out_of_consortium"] is False


async def _up_sent(client, headers: dict[str, str], consortium_id: str) -> int:
    day = datetime.now(ZoneInfo("Asia/Shanghai")).date()
    params = {
        "from": str(day - timedelta(days=1)),
        "to": str(day + timedelta(days=2)),
        "consortium": consortium_id,
    }
    r = await client.get("/v1/reports/referrals", params=params, headers=headers)
    assert r.status_code == 200, r.text
    return sum(int(row["up_sent"]) for row in r.json())


async def test_a_consortium_file_names_a_lead_unit_and_joined_members(
    api, client, auth, app, tmp_path
) -> None:
    ids = await api.ids()
    path = tmp_path / "np-chest.yaml"
    path.write_text(
        "format: referral-consortium/v1\n"
        "consortium:\n"
        "  code: NP-CHEST\n"
        "  name: 南平市胸痛专科联盟\n"
        "  kind: specialty_alliance\n"
        "  referral_prefix: NPC\n"
        "  alliance_centres: [chest_pain]\n"
        "  lead: [NP-FH, ZH-CH]\n"
        "  joined_members: [NP-FH, ZH-CH, ZH-THC-TS]\n"
        "institutions: []\n",
        encoding="utf-8",
    )
    async with app.state.database.unit_of_work() as session:
        result = await loader.load_consortium(session, loader.parse_file(path))
    view = (await client.get(f"/v1/consortia/{result.consortium_id}", headers=auth(ADMIN))).json()
    assert sorted(view["lead_institution_ids"]) == sorted([ids["NP-FH"], ids["ZH-CH"]])
    assert set(view["joined_member_ids"]) == {ids["NP-FH"], ids["ZH-CH"], ids["ZH-THC-TS"]}
    chest = (await api.create(CLINIC, pathway="chest_pain", urgency="emergency")).json()
    assert chest["consortium_id"] == result.consortium_id
    assert chest["consortium_basis"] == "pathway" and chest["number"].startswith("NPC-")
    # Zhenghe keeps its own lead: the alliance's lead flag is the alliance's
    assert (await _zhenghe(client, auth))["lead_institution_ids"] == [ids["ZH-CH"]]
