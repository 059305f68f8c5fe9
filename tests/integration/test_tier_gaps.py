"""A national insurance scheme the local policy has no figures for (the example policy covers
310, 380, 390 and 391): the referral is still made, its tier left unrecorded; a quote answers
422 naming `scheme` (both gave 500 before)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from tests.factories import referral_body
from tests.support import member_ids, set_beds


async def test_scheme_without_terms_refers_and_quotes_clearly(
    client: httpx.AsyncClient, auth: Any
) -> None:
    admin = auth("demo admin")
    ids = await member_ids(client, auth)
    await set_beds(client, auth, ids, "ZH-CH")
    body = referral_body()
    body["patient"]["insurance_scheme"] = "392"
    r = await client.post(
        "/v1/referrals",
        json=body,
        headers={**auth("demo clinic ZH-THC-TS"), "Idempotency-Key": uuid.uuid4().hex},
    )
    assert r.status_code == 201, r.text
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
