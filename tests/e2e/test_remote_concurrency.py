"""Read slots are never overbooked: 60 concurrent remote ECG reads from the Zhenghe clinics
compete for 3 free read slots at the county hospital and 2 at the TCM hospital, over real HTTP
against a real uvicorn with 2 workers on PostgreSQL; exactly 5 are held, the rest wait."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.e2e.server import run_two_workers
from tests.integration.test_remote_services import read_body

pytestmark = [pytest.mark.slow, pytest.mark.postgres_only]
CLIENTS = 60


async def _create(client: httpx.AsyncClient, key: str, statuses: Counter[int]) -> dict[str, object]:
    body = read_body()
    idem = uuid.uuid4().hex
    for attempt in range(30):
        r = await client.post(
            "/v1/remote-requests",
            json=body,
            headers={"Authorization": f"Bearer {key}", "Idempotency-Key": idem},
        )
        statuses[r.status_code] += 1
        if r.status_code == 201:
            return dict(r.json())
        assert r.status_code in (409, 503), r.text  # in flight / lock timeout: retry, same key
        await asyncio.sleep(0.05 * (attempt + 1))  # client back-off before its retry
    raise AssertionError("no answer after retries")


def test_no_two_requests_in_the_same_last_read_slot(
    backend: str, db_url: str, keys: dict[str, str], tmp_path: Path
) -> None:
    if backend != "postgresql":
        pytest.skip("the concurrent read-slot test runs on PostgreSQL")
    run_two_workers(db_url, tmp_path, lambda base_url: _scenario(base_url, keys))


async def _scenario(base_url: str, keys: dict[str, str]) -> None:
    admin = {"Authorization": f"Bearer {keys['demo admin']}"}
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    day = datetime.now(ZoneInfo("Asia/Shanghai")).date().isoformat()
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60) as client:
        ids = {
            i["code"]: i["id"]
            for i in (
                await client.get("/v1/institutions", params={"limit": 200}, headers=admin)
            ).json()["items"]
        }
        for code, slots in (("ZH-CH", 3), ("ZH-TCM", 2)):
            url = f"/v1/institutions/{ids[code]}"
            services = {"services": [{"kind": "remote_read", "specialty_code": "32.06"}]}
            r = await client.put(f"{url}/remote-services", json=services, headers=admin)
            assert r.status_code == 200, r.text
            figure = {"kind": "remote_read", "modality": "ECG", "day": day}
            body = {
                "as_of": datetime.now(UTC).isoformat(),
                "capacity": [{**figure, "total": slots + 4, "occupied": 4}],
            }
            r = await client.put(f"{url}/remote-capacity", json=body, headers=admin)
            assert r.status_code == 200, r.text
        clinics = [v for k, v in keys.items() if k.startswith("demo clinic ZH-THC-")]
        statuses: Counter[int] = Counter()
        results = await asyncio.gather(
            *(_create(client, clinics[i % len(clinics)], statuses) for i in range(CLIENTS))
        )
        assert not any(s >= 500 and s != 503 for s in statuses), statuses
        by_target = Counter((r["status"], r["target_institution_id"]) for r in results)
        assert by_target[("pending", ids["ZH-CH"])] == 3, by_target
        assert by_target[("pending", ids["ZH-TCM"])] == 2, by_target
        assert by_target[("waitlisted", None)] == CLIENTS - 5, by_target
        assert len({r["number"] for r in results}) == CLIENTS
        for code, holding in (("ZH-CH", 3), ("ZH-TCM", 2)):
            cap = await client.get(f"/v1/institutions/{ids[code]}/remote-capacity", headers=admin)
            slot = next(
                c
                for c in cap.json()["items"]
                if (c["kind"], c["specialty_code"], c["day"]) == ("remote_read", "32.06", day)
            )
            assert (slot["held"], slot["free"]) == (holding, 0), (code, slot)
            assert slot["total"] - slot["occupied"] - slot["held"] == 0
