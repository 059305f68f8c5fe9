"""Patient identifiers and diagnoses never reach logs, metrics or error bodies."""

from __future__ import annotations

import logging
import re
import uuid

from tests.factories import referral_body

ID_PATTERN = re.compile(r"(?<![0-9A-Za-z.])\d{17}[\dXx](?![0-9A-Za-z])")


async def test_no_patient_data_in_logs_metrics_or_errors(client, auth, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    h = auth("demo clinic ZH-THC-TS")
    body = referral_body()
    secrets = [body["patient"]["resident_id"], body["patient"]["name"], body["diagnosis"]["text"]]
    bodies = []
    r = await client.post("/v1/referrals", json=body, headers={**h, "Idempotency-Key": "p-1"})
    assert r.status_code == 201
    created = r.json()
    # error paths that carry the same patient data
    for bad in (
        {**body, "specialty_code": "99"},
        {**body, "diagnosis": {"icd10": "??", "text": body["diagnosis"]["text"]}},
        {**body, "patient": {**body["patient"], "birth_date": "1900-01-01"}},
        {**body, "unexpected": body["patient"]["resident_id"]},
    ):
        bad_r = await client.post(
            "/v1/referrals", json=bad, headers={**h, "Idempotency-Key": uuid.uuid4().hex}
        )
        assert bad_r.status_code == 422
        bodies.append(bad_r.text)
    reused = await client.post(
        "/v1/referrals", json=referral_body(), headers={**h, "Idempotency-Key": "p-1"}
    )
    bodies.append(reused.text)
    outsider = await client.get(
        f"/v1/referrals/{created['id']}", headers=auth("demo clinic ZH-THC-LY")
    )
    bodies.append(outsider.text)
    bodies.append((await client.get("/metrics")).text)
    captured = caplog.text + "\n".join(bodies)
    hit = ID_PATTERN.search(captured)
    assert hit is None, captured[max(0, hit.start() - 200) : hit.end() + 50]
    for secret in secrets:
        assert secret not in captured
