"""Family-doctor signings (1+1+1, 001): the signing clinic pushes a resident's contract, its
composition is checked, routing reads it unless the referral names its own, and the monthly
figures give the share of referrals that went to a signed institution (on both back ends)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from tests.factories import referral_body, resident_id

CLINIC = "demo clinic ZH-THC-TS"
OTHER_CLINIC = "demo clinic ZH-THC-LY"


def signing(ids: dict[str, str], rid: str, *codes: str, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "resident": {"name": "签约居民甲", "resident_id": rid},
        "institution_ids": [ids[c] for c in codes],
        "valid_from": (date.today() - timedelta(days=30)).isoformat(),
        "valid_to": (date.today() + timedelta(days=335)).isoformat(),
        "family_doctor": {"name": "张医生", "id": "fd-9"},
    }
    body.update(overrides)
    return body


async def _put(client, auth, who: str, contract: str, body: dict[str, Any], expect: int):
    r = await client.put(f"/v1/signings/{contract}", json=body, headers=auth(who))
    assert r.status_code == expect, r.text
    return r


async def test_push_read_replace_and_end_a_signing(api, client, auth) -> None:
    ids = await api.ids()
    rid = resident_id()
    body = signing(ids, rid, "ZH-THC-TS", "ZH-TCM", "NP-FH")
    first = (await _put(client, auth, CLINIC, "C-2026-001", body, 201)).json()
    assert [i["code"] for i in first["institutions"]] == ["ZH-THC-TS", "ZH-TCM", "NP-FH"]
    assert first["version"] == 1 and first["resident_name"] == "签约居民甲"
    assert rid not in str(first)  # the identity is sealed, never shown back
    again = (await _put(client, auth, CLINIC, "C-2026-001", body, 200)).json()
    assert again["version"] == 1  # the same body: nothing changed
    changed = signing(ids, rid, "ZH-THC-TS", "ZH-MCH")
    assert (await _put(client, auth, CLINIC, "C-2026-001", changed, 200)).json()["version"] == 2
    got = await client.get("/v1/signings/C-2026-001", headers=auth(CLINIC))
    assert [i["code"] for i in got.json()["institutions"]] == ["ZH-THC-TS", "ZH-MCH"]
    # another clinic's contract of the same number is another contract: 404 to read
    assert (
        await client.get("/v1/signings/C-2026-001", headers=auth(OTHER_CLINIC))
    ).status_code == 404
    assert (await client.delete("/v1/signings/C-2026-001", headers=auth(CLINIC))).status_code == 204
    assert (await client.get("/v1/signings/C-2026-001", headers=auth(CLINIC))).status_code == 404


async def test_the_1_1_1_composition_is_checked(api, client, auth) -> None:
    ids = await api.ids()
    rid = resident_id()
    cases = [
        (("ZH-THC-TS", "ZH-CH", "ZH-TCM"), ["body", "institution_ids", 2], "second secondary"),
        (("ZH-THC-TS", "ZH-THC-LY"), ["body", "institution_ids", 1], "second primary"),
        (("ZH-THC-LY", "ZH-CH"), ["body", "institution_ids", 0], "the signing clinic"),
        (("ZH-CH", "NP-FH"), ["body", "institution_ids"], "must include the signing clinic"),
    ]
    for codes, loc, msg in cases:
        r = await _put(client, auth, CLINIC, "C-BAD", signing(ids, rid, *codes), 422)
        assert r.headers["content-type"].startswith("application/problem+json")
        found = [e for e in r.json()["errors"] if e["loc"] == loc]
        assert found and msg in found[0]["msg"], (codes, r.json())
    unknown = signing(ids, rid, "ZH-THC-TS")
    unknown["institution_ids"].append("no-such-institution")
    r = await _put(client, auth, CLINIC, "C-BAD", unknown, 422)
    assert r.json()["errors"][0]["loc"] == ["body", "institution_ids", 1]
    assert "no-such-institution" not in r.text
    backwards = signing(ids, rid, "ZH-THC-TS", valid_to="2020-01-01")
    r = await _put(client, auth, CLINIC, "C-BAD", backwards, 422)
    assert r.json()["errors"][0]["loc"] == ["body", "valid_to"]
    bad_id = signing(ids, "110101199003070000", "ZH-THC-TS")
    r = await _put(client, auth, CLINIC, "C-BAD", bad_id, 422)
    assert r.json()["errors"][0]["loc"][:3] == ["body", "resident", "resident_id"]
    assert "110101199003070000" not in r.text
    await _put(client, auth, "demo hospital ZH-CH", "C-BAD", signing(ids, rid, "ZH-THC-TS"), 403)
    assert (await client.get("/v1/signings/C-BAD", headers=auth(CLINIC))).status_code == 404


async def test_routing_reads_the_stored_signing_unless_the_referral_names_one(
    api, client, auth
) -> None:
    ids = await api.ids()
    for code in ("ZH-CH", "ZH-TCM"):
        await api.set_beds(code, {"03": (20, 1)})
    rid = resident_id()
    await _put(client, auth, CLINIC, "C-7", signing(ids, rid, "ZH-THC-TS", "ZH-TCM"), 201)
    patient = {**referral_body()["patient"], "resident_id": rid}
    stored = (await api.create(CLINIC, patient=patient)).json()
    assert stored["target_institution_id"] == ids["ZH-TCM"]  # not the lead: the signed one
    assert stored["routing"]["target"]["rule"] == "signed_institution"
    assert stored["signed_from"] == "registry"
    assert stored["patient"]["signed_institution_ids"] == [ids["ZH-THC-TS"], ids["ZH-TCM"]]
    # the referral's own signing overrides the stored one, and says so
    rid2 = resident_id()
    await _put(client, auth, CLINIC, "C-8", signing(ids, rid2, "ZH-THC-TS", "ZH-TCM"), 201)
    own = {**patient, "resident_id": rid2, "signed_institution_ids": [ids["ZH-MCH"]]}
    await api.set_beds("ZH-MCH", {"05": (20, 1)})
    named = (await api.create(CLINIC, patient=own, specialty_code="05")).json()
    assert named["target_institution_id"] == ids["ZH-MCH"]
    assert named["signed_from"] == "referral"
    # another resident: no signing, the lead hospital as before
    plain = (await api.create(CLINIC)).json()
    assert plain["target_institution_id"] == ids["ZH-CH"] and plain["signed_from"] is None
    # an ended contract is no longer read
    await client.delete("/v1/signings/C-7", headers=auth(CLINIC))
    after = (await api.create(CLINIC, patient=patient, specialty_code="03.03")).json()
    assert after["target_institution_id"] == ids["ZH-CH"] and after["signed_from"] is None


async def test_share_of_referrals_to_a_signed_institution(api, client, auth) -> None:
    """up_to_signed / up_placed_signed per sending member and month, against the referrals."""
    ids = await api.ids()
    await api.set_beds("ZH-TCM", {"03": (20, 1)})
    await api.set_beds("ZH-CH", {"03": (20, 1)})
    await api.set_beds("ZH-MCH", {"03": (1, 1)})  # full: a patient signed there goes elsewhere
    made = []
    for i, (signed_with, specialty) in enumerate(
        [("ZH-TCM", "03"), ("ZH-TCM", "03"), ("ZH-MCH", "03"), (None, "03")]
    ):
        rid = resident_id()
        if signed_with:
            await _put(
                client, auth, CLINIC, f"C-S{i}", signing(ids, rid, "ZH-THC-TS", signed_with), 201
            )
        patient = {**referral_body()["patient"], "resident_id": rid}
        ref = (await api.create(CLINIC, patient=patient, specialty_code=specialty)).json()
        made.append((ref, signed_with))
    placed_signed = [r for r, s in made if s and r["target_institution_id"]]
    to_signed = [r for r, s in made if s and r["target_institution_id"] == ids[s]]
    assert len(placed_signed) == 3 and len(to_signed) == 2
    month = made[0][0]["created_local_date"][:7]
    first = date.fromisoformat(made[0][0]["created_local_date"]).replace(day=1)
    rows = (
        await client.get(
            "/v1/reports/referrals",
            params={"from": first.isoformat(), "to": (first + timedelta(days=32)).isoformat()},
            headers=auth("demo council ZHENGHE"),
        )
    ).json()
    mine = next(r for r in rows if r["key"] == ids["ZH-THC-TS"] and r["month"] == month)
    assert (mine["up_placed_signed"], mine["up_to_signed"]) == (3, 2)
    assert mine["up_to_signed_share"] == round(2 / 3, 4)
