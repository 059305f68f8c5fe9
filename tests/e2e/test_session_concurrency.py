"""Never two patients on one session place: six outpatient referrals pending at the county
hospital are accepted at once into its last session place, over real HTTP against a real
uvicorn with 2 workers on PostgreSQL; exactly one is booked, the others are told it is full."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.e2e.server import run_two_workers
from tests.factories import census, referral_body

pytestmark = [pytest.mark.slow, pytest.mark.postgres_only]
PATIENTS = 6


def test_the_last_session_place_goes_to_one_patient(
    backend: str, db_url: str, keys: dict[str, str], tmp_path: Path
) -> None:
    if backend != "postgresql":
        pytest.skip("the concurrent booking test runs on PostgreSQL")
    run_two_workers(db_url, tmp_path, lambda base_url: _scenario(base_url, keys))


async def _scenario(base_url: str, keys: dict[str, str]) -> None:
    admin = {"Authorization": f"Bearer {keys['demo admin']}"}
    county = {"Authorization": f"Bearer {keys['demo hospital ZH-CH']}"}
    clinic = {"Authorization": f"Bearer {keys['demo clinic ZH-THC-TS']}"}
    day = (datetime.now(ZoneInfo("Asia/Shanghai")).date() + timedelta(days=1)).isoformat()
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
        items = (await client.get("/v1/institutions", params={"limit": 200}, headers=admin)).json()
        ch = next(i["id"] for i in items["items"] if i["code"] == "ZH-CH")
        slots = {
            **census({}),
            "slots": [{"specialty_code": "03", "day": day, "total": PATIENTS, "occupied": 0}],
        }
        r = await client.put(f"/v1/institutions/{ch}/capacity", json=slots, headers=admin)
        assert r.status_code == 200, r.text
        refs = []
        for i in range(PATIENTS):
            r = await client.post(
                "/v1/referrals",
                json=referral_body(care_type="outpatient", wanted_day=day),
                headers={**clinic, "Idempotency-Key": f"session-{i}-{day}"},
            )
            assert r.status_code == 201 and r.json()["target_institution_id"] == ch, r.text
            refs.append(r.json())
        sessions = {
            "as_of": datetime.now(UTC).isoformat(),
            "sessions": [
                {
                    "session_id": "LAST",
                    "specialty_code": "03",
                    "day": day,
                    "period": "morning",
                    "start": "08:00",
                    "end": "12:00",
                    "total": 4,
                    "occupied": 3,  # one place left
                }
            ],
        }
        r = await client.put(f"/v1/institutions/{ch}/sessions", json=sessions, headers=admin)
        assert r.status_code == 200, r.text
        session_id = r.json()["items"][0]["id"]

        async def accept(ref: dict[str, object]) -> httpx.Response:
            return await client.post(
                f"/v1/referrals/{ref['id']}/accept",
                json={"session_id": session_id},
                headers={**county, "If-Match": f'"{ref["id"]}.{ref["version"]}"'},
            )

        answers = await asyncio.gather(*(accept(ref) for ref in refs))
        statuses = Counter(a.status_code for a in answers)
        assert statuses == Counter({200: 1, 409: PATIENTS - 1}), statuses
        winner = next(a.json() for a in answers if a.status_code == 200)
        assert winner["appointment"]["number"] == 1
        assert all(
            a.json()["type"].endswith("/session-full") for a in answers if a.status_code == 409
        )
        listed = await client.get(
            f"/v1/institutions/{ch}/sessions", params={"day": day}, headers=admin
        )
        only = listed.json()["items"][0]
        assert (only["booked"], only["free"]) == (1, 0)
