"""One live up-referral per patient and need: a second live up-referral for the same patient
and specialty in the consortium answers 409 naming the live one's number and writes nothing,
unless the source says it is deliberate (recorded); a closed referral or another specialty is no
duplicate; two concurrent creates for one patient make exactly one referral (PostgreSQL)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from sqlalchemy import func, select

from app.db.models import Referral
from tests.factories import referral_body

CLINIC = "demo clinic ZH-THC-TS"


async def _post(client: Any, auth: Any, body: dict[str, Any], who: str = CLINIC) -> Any:
    return await client.post(
        "/v1/referrals",
        json=body,
        headers={**auth(who), "Idempotency-Key": uuid.uuid4().hex},
    )


async def _count(app: Any) -> int:
    async with app.state.database.unit_of_work(read_only=True) as session:
        return int(await session.scalar(select(func.count()).select_from(Referral)) or 0)


async def test_a_second_live_referral_is_refused_with_the_first_ones_number(
    api, client, auth, app
) -> None:
    await api.set_beds("ZH-CH", {"03": (40, 1)})
    await api.set_beds("ZH-TCM", {"03": (40, 1)})
    sent = referral_body()
    first = await _post(client, auth, sent)
    assert first.status_code == 201, first.text
    patient = referral_body(patient=sent["patient"])  # the same patient, the same need
    before = await _count(app)
    again = await _post(client, auth, patient)
    assert again.status_code == 409, again.text
    problem = again.json()
    assert problem["type"].endswith("/duplicate-referral")
    assert problem["existing_number"] == first.json()["number"]
    assert patient["patient"]["resident_id"] not in again.text  # the value is never echoed
    assert await _count(app) == before  # nothing written
    # another clinic of the consortium refers the same patient for the same need: the same 409
    other = await _post(client, auth, patient, "demo clinic ZH-THC-LY")
    assert other.status_code == 409, other.text
    # another specialty is another need
    surgery = await _post(client, auth, {**patient, "specialty_code": "04"})
    assert surgery.status_code == 201, surgery.text
    # on purpose, with a reason: made, and said in the audit trail
    deliberate = await _post(client, auth, {**patient, "duplicate_reason": "second_opinion"})
    assert deliberate.status_code == 201, deliberate.text
    events = await client.get(
        f"/v1/referrals/{deliberate.json()['id']}/events", headers=auth(CLINIC)
    )
    acknowledged = [e for e in events.json() if e["type"] == "duplicate_acknowledged"]
    assert [e["reason_code"] for e in acknowledged] == ["second_opinion"]
    assert first.json()["number"] in acknowledged[0]["reason"]


async def test_a_closed_referral_is_no_duplicate(api, client, auth) -> None:
    await api.set_beds("ZH-CH", {"03": (40, 1)})
    await api.set_beds("ZH-TCM", {"03": (40, 1)})
    body = referral_body()
    first = await _post(client, auth, body)
    assert first.status_code == 201, first.text
    cancel = await client.post(
        f"/v1/referrals/{first.json()['id']}/cancel",
        headers={**auth(CLINIC), "If-Match": first.headers["ETag"]},
    )
    assert cancel.status_code == 200, cancel.text
    again = await _post(client, auth, referral_body(patient=body["patient"]))
    assert again.status_code == 201, again.text


async def test_two_concurrent_creates_for_one_patient_make_one_referral(
    backend, api, client, auth, app
) -> None:
    if backend != "postgresql":
        pytest.skip("needs concurrent writers; SQLite has one writer at a time")
    await api.set_beds("ZH-CH", {"03": (40, 1)})
    await api.set_beds("ZH-TCM", {"03": (40, 1)})
    patient = referral_body()["patient"]
    before = await _count(app)
    answers = await asyncio.gather(
        *(_post(client, auth, referral_body(patient=patient)) for _ in range(4))
    )
    codes = sorted(a.status_code for a in answers)
    assert codes == [201, 409, 409, 409], [a.text for a in answers]
    assert await _count(app) == before + 1
    made = next(a for a in answers if a.status_code == 201).json()["number"]
    assert {a.json()["existing_number"] for a in answers if a.status_code == 409} <= {made}


async def test_a_referral_the_patient_declined_is_no_duplicate(api) -> None:
    """A rejection because the patient declined ends the referral (status rejected, closed):
    the patient may be referred for the same need again."""
    await api.set_beds("ZH-CH", {"03": (40, 1)})
    body = referral_body()
    first = (await api.create(CLINIC, body)).json()
    declined = await api.act(
        "demo hospital ZH-CH", first, "reject", {"reason_code": "patient_declined"}
    )
    assert declined.json()["status"] == "rejected"
    await api.create(CLINIC, referral_body(patient=body["patient"]))  # 201, not 409
