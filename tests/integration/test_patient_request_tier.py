"""`reason: patient_request` counts as the patient's own choice for the tier: a patient referred
up only because they asked does not get the primary rate that a referral for a condition outside
primary care's scope gets (the example policy's `primary_rate_for_referred_up`). Both directions:
the same patient and route, with and without the reason."""

from __future__ import annotations

from typing import Any


async def _tier(api: Any, **overrides: Any) -> dict[str, Any]:
    r = await api.create("demo clinic ZH-THC-TS", **overrides)
    tier = r.json()["tier"]
    assert tier is not None
    return dict(tier)


async def test_patient_request_loses_the_primary_rate(api) -> None:
    await api.set_beds("ZH-CH", {"03": (40, 1)})
    await api.set_beds("ZH-TCM", {"03": (40, 1)})
    needed = await _tier(api)  # the default reason: outside primary care's scope
    asked = await _tier(api, reason="patient_request")
    assert needed["tier"] == "in_consortium_referral_primary_rate", needed
    assert asked["tier"] == "in_consortium_referral", asked
    assert float(asked["ratio"]) < float(needed["ratio"])
    assert [r["rule"] for r in asked["rules"]][-1] == "patient_request"
    assert "patient's own request" in asked["rules"][-1]["words"]
    assert "patient_request" not in [r["rule"] for r in needed["rules"]]
    assert "primary_rate_for_referred_up" in [r["rule"] for r in needed["rules"]]
