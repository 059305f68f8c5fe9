"""A national insurance scheme the local policy has no figures for (the example policy covers
310, 380, 390 and 391): the referral is still made, its tier left unrecorded; a quote answers
422 naming `scheme` (both gave 500 before)."""

from __future__ import annotations

from typing import Any

import httpx

from tests.driver import ApiDriver
from tests.factories import referral_body


async def test_scheme_without_terms_refers_and_quotes_clearly(
    api: ApiDriver, client: httpx.AsyncClient, auth: Any
) -> None:
    admin = auth("demo admin")
    ids = await api.ids()
    await api.set_beds("ZH-CH", {"03": (40, 1)})
    body = referral_body()
    body["patient"]["insurance_scheme"] = "392"
    r = await api.create("demo clinic ZH-THC-TS", body)
    assert r.json()["insurance_scheme"] == "392"
    tiers = await client.get(
        f"/v1/referrals/{r.json()['id']}/tiers", headers=auth("demo clinic ZH-THC-TS")
    )
    assert tiers.status_code == 200 and tiers.json() == []
    q = await client.post(
        "/v1/reimbursement/quote",
        json={
            "source_institution_id": ids["ZH-THC-TS"],
            "target_institution_id": ids["ZH-CH"],
            "scheme": "392",
        },
        headers=admin,
    )
    assert q.status_code == 422, q.text
    assert q.json()["errors"][0]["loc"] == ["body", "scheme"]
