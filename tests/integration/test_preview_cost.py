"""The cost in front of the patient: each ranked candidate of POST /v1/routing/preview carries
the reimbursement the patient would get there, the same terms the quote gives and the tier a
create then records; exclusions carry none and the answer stays bounded."""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.driver import ApiDriver

PREVIEW = {"specialty_code": "03", "care_type": "inpatient", "urgency": "urgent"}
CLINIC = "demo clinic ZH-THC-TS"


async def _preview(client: Any, auth: Any, body: dict[str, Any], **params: str) -> dict[str, Any]:
    r = await client.post("/v1/routing/preview", json=body, params=params, headers=auth(CLINIC))
    assert r.status_code == 200, r.text
    return dict(r.json())


async def _quote(client: Any, auth: Any, target: str, scheme: str) -> dict[str, Any]:
    r = await client.post(
        "/v1/reimbursement/quote",
        json={"scheme": scheme, "target_institution_id": target, "urgency": "urgent"},
        headers=auth(CLINIC),
    )
    assert r.status_code == 200, r.text
    return dict(r.json()["with_referral"])


def _same_terms(cost: dict[str, Any], tier: dict[str, Any]) -> None:
    for name in ("tier", "ratio", "deductible", "annual_cap", "policy_code", "policy_version"):
        assert cost[name] == tier[name], (name, cost, tier)


async def test_each_ranked_candidate_carries_the_reimbursement(
    api: ApiDriver, client: httpx.AsyncClient, auth: Any
) -> None:
    ids = await api.ids()
    await api.set_beds("ZH-CH", {"03": (20, 2)})
    await api.set_beds("ZH-TCM", {"03": (20, 2)})
    await api.set_beds("NP-FH", {"03": (20, 2)})
    decision = await _preview(client, auth, PREVIEW)
    ranked = [decision["target"], *decision["alternatives"]]
    assert len(ranked) >= 2
    for r in ranked:
        cost = r["reimbursement"]
        assert cost is not None and cost["scheme"] == "390" and cost["policy_is_example"] is True
        _same_terms(cost, await _quote(client, auth, r["institution_id"], "390"))
    assert all("reimbursement" not in x for x in decision["excluded"])
    target = decision["target"]
    assert target["institution_id"] == ids["ZH-CH"]
    # referred up from primary care: the primary rate at the county hospital
    assert target["reimbursement"]["tier"] == "in_consortium_referral_primary_rate"
    assert target["reimbursement"]["summary"] == "85% after ¥500"
    assert target["reimbursement"]["summary_zh"] == "报销 85%，起付线 ¥500"
    # another scheme, another figure (310: the employees' scheme)
    employees = await _preview(client, auth, {**PREVIEW, "insurance_scheme": "310"})
    assert employees["target"]["reimbursement"]["scheme"] == "310"
    _same_terms(
        employees["target"]["reimbursement"], await _quote(client, auth, ids["ZH-CH"], "310")
    )
    # the create records the very terms the preview showed
    created = (await api.create(CLINIC)).json()
    assert created["target_institution_id"] == target["institution_id"]
    tiers = await client.get(f"/v1/referrals/{created['id']}/tiers", headers=auth(CLINIC))
    assert tiers.status_code == 200, tiers.text
    _same_terms(target["reimbursement"], tiers.json()[-1])


async def test_out_of_consortium_costs_more(
    api: ApiDriver, client: httpx.AsyncClient, auth: Any
) -> None:
    """Both county hospitals full: the partner, out of the consortium, at its lower rate."""
    ids = await api.ids()
    await api.set_beds("ZH-CH", {"03": (4, 4)})
    await api.set_beds("ZH-TCM", {"03": (4, 4)})
    await api.set_beds("NP-FH", {"03": (20, 2)})
    decision = await _preview(client, auth, PREVIEW)
    assert decision["outcome"] == "out_of_consortium"
    cost = decision["target"]["reimbursement"]
    assert decision["target"]["institution_id"] == ids["NP-FH"]
    assert cost["tier"] == "referral_out_of_consortium"
    assert cost["summary"] == "50% after ¥1,000"
    _same_terms(cost, await _quote(client, auth, ids["NP-FH"], "390"))
    created = (await api.create(CLINIC)).json()
    tiers = (await client.get(f"/v1/referrals/{created['id']}/tiers", headers=auth(CLINIC))).json()
    _same_terms(cost, tiers[-1])


async def test_the_answer_stays_bounded_and_bad_schemes_are_refused(
    api: ApiDriver, client: httpx.AsyncClient, auth: Any
) -> None:
    await api.set_beds("ZH-CH", {"03": (20, 2)})
    listed = await _preview(client, auth, PREVIEW)
    everything = await _preview(client, auth, PREVIEW, exclusions="all")
    # the cost is a handful of fields per ranked entry (at most 21 of them), never per exclusion
    for decision in (listed, everything):
        priced = [x for x in [decision["target"], *decision["alternatives"]] if x["reimbursement"]]
        assert len(priced) <= 21
        assert len(json.dumps([x["reimbursement"] for x in priced])) < 21 * 400
        assert all("reimbursement" not in x for x in decision["excluded"])
    for bad in ("999", "x" * 300, "self_pay\x00"):
        r = await client.post(
            "/v1/routing/preview", json={**PREVIEW, "insurance_scheme": bad}, headers=auth(CLINIC)
        )
        assert r.status_code == 422, r.text
        assert r.headers["content-type"] == "application/problem+json"
        assert any(e["loc"][:2] == ["body", "insurance_scheme"] for e in r.json()["errors"])
        assert bad[:20] not in r.text
    # no terms for a scheme the example policy does not price: the ranking stays, no cost
    unpriced = await _preview(client, auth, {**PREVIEW, "insurance_scheme": "510"})
    assert unpriced["target"] is not None and unpriced["target"]["reimbursement"] is None
