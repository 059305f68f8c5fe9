"""A referral for TCM care records the TCM rules on its tier too: beside the general terms, the
terms of decoctions (ratio at least the policy's `tcm_decoction_ratio`) and of the non-drug TCM
therapies (no deductible), each as POST /v1/reimbursement/quote decides them for the same route.
Other care records none."""

from __future__ import annotations

from typing import Any

CLINIC = "demo clinic ZH-THC-TS"


async def _create(api: Any, **overrides: Any) -> dict[str, Any]:
    return dict((await api.create(CLINIC, **overrides)).json())


async def test_tcm_referral_records_its_item_terms(api, client, auth) -> None:
    ids = await api.ids()
    await api.set_beds("ZH-TCM", {"50": (60, 10), "03": (40, 10)})
    made = await _create(api, specialty_code="50", diagnosis={"icd10": "M54.5"})
    assert made["target_institution_id"] == ids["ZH-TCM"]
    tier = made["tier"]
    terms = {t["item_kind"]: t for t in tier["item_terms"]}
    assert set(terms) == {"tcm_decoction", "tcm_non_drug"}
    for kind, term in terms.items():
        quote = await client.post(
            "/v1/reimbursement/quote",
            json={
                "scheme": made["insurance_scheme"],
                "target_institution_id": ids["ZH-TCM"],
                "urgency": made["urgency"],
                "item_kind": kind,
            },
            headers=auth(CLINIC),
        )
        assert quote.status_code == 200, quote.text
        quoted = quote.json()["with_referral"]
        assert (term["deductible"], term["ratio"]) == (quoted["deductible"], quoted["ratio"])
    # decoctions: at least the example policy's 80 % (here the primary rate is higher already)
    assert float(terms["tcm_decoction"]["ratio"]) >= 0.80
    assert float(terms["tcm_decoction"]["ratio"]) >= float(tier["ratio"])
    # the non-drug therapies: no deductible, although the general terms have one
    assert terms["tcm_non_drug"]["deductible"] == "0" and float(tier["deductible"]) > 0
    assert "tcm_non_drug_no_deductible" in [r["rule"] for r in terms["tcm_non_drug"]["rules"]]
    # the same terms when the referral is read back
    again = await client.get(f"/v1/referrals/{made['id']}", headers=auth(CLINIC))
    assert again.json()["tier"]["item_terms"] == tier["item_terms"]


async def test_other_care_records_no_item_terms(api) -> None:
    await api.set_beds("ZH-CH", {"03": (40, 10)})
    made = await _create(api)
    assert made["tier"] is not None and made["tier"]["item_terms"] is None
