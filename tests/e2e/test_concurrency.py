"""Zero overbooking under concurrency, over real HTTP against a real uvicorn.

More than 100 concurrent creates from several Zhenghe clinics compete for 5 free beds at the
lead hospital and 5 at a second member; exactly 10 holds are placed and everyone else goes to
the upstream partner (3 beds) or the waitlist. Runs on PostgreSQL (2 workers) and on SQLite.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.e2e.server import cli, free_port, start
from tests.factories import census, referral_body
from tests.support import secret_env

pytestmark = pytest.mark.slow
CLIENTS = 120
ID_PATTERN = re.compile(r"(?<![0-9A-Za-z.])\d{17}[\dXx](?![0-9A-Za-z])")


async def _create(client: httpx.AsyncClient, key: str, statuses: Counter[int]) -> dict[str, object]:
    body = referral_body()
    idem = uuid.uuid4().hex
    for attempt in range(30):
        r = await client.post(
            "/v1/referrals",
            json=body,
            headers={"Authorization": f"Bearer {key}", "Idempotency-Key": idem},
        )
        statuses[r.status_code] += 1
        if r.status_code == 201:
            return dict(r.json())
        assert r.status_code in (409, 503), r.text  # in flight / lock timeout: retry, same key
        assert r.headers["content-type"] == "application/problem+json"
        if r.status_code == 503:
            assert "retry-after" in r.headers
        await asyncio.sleep(0.05 * (attempt + 1))  # client back-off before its retry
    raise AssertionError("no answer after retries")


def test_no_two_patients_in_the_same_last_bed(
    backend: str, db_url: str, keys: dict[str, str], tmp_path: Path
) -> None:
    workers = "2" if backend == "postgresql" else "1"
    server = start(
        cli("serve"),
        {
            "REFERRAL_DATABASE_URL": db_url,
            "REFERRAL_DEMO_MODE": "false",
            **secret_env(),
            "REFERRAL_WORKERS": workers,
            "REFERRAL_DB_POOL_SIZE": "10",
            "REFERRAL_SQLITE_BUSY_TIMEOUT_MS": "2000",
        },
        tmp_path / "server.log",
        port=free_port(),
    )
    try:
        asyncio.run(_scenario(server.base_url, keys))
    finally:
        server.stop()
    log = server.log()
    assert "Traceback" not in log
    assert not ID_PATTERN.search(log), "a resident ID number reached the log"


async def _scenario(base_url: str, keys: dict[str, str]) -> None:
    admin = {"Authorization": f"Bearer {keys['demo admin']}"}
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60) as client:
        ids = {
            i["code"]: i["id"]
            for i in (
                await client.get("/v1/institutions", params={"limit": 200}, headers=admin)
            ).json()["items"]
        }
        for code, beds in (("ZH-CH", (10, 5)), ("ZH-TCM", (10, 5)), ("NP-FH", (20, 17))):
            r = await client.put(
                f"/v1/institutions/{ids[code]}/capacity",
                json=census({"03": beds}),
                headers=admin,
            )
            assert r.status_code == 200, r.text
        clinics = [v for k, v in keys.items() if k.startswith("demo clinic ZH-THC-")]
        assert len(clinics) >= 4
        statuses: Counter[int] = Counter()
        results = await asyncio.gather(
            *(_create(client, clinics[i % len(clinics)], statuses) for i in range(CLIENTS))
        )
        assert not any(s >= 500 and s != 503 for s in statuses), statuses
        by_target = Counter(
            (r["status"], (r["routing"] or {}).get("target", {}) and r["routing"]["target"]["code"])  # type: ignore[index, union-attr]
            for r in results
        )
        assert by_target[("pending", "ZH-CH")] == 5, by_target
        assert by_target[("pending", "ZH-TCM")] == 5, by_target
        assert by_target[("pending", "NP-FH")] == 3, by_target
        assert by_target[("waitlisted", None)] == CLIENTS - 13, by_target
        assert len({r["number"] for r in results}) == CLIENTS
        for code, holding in (("ZH-CH", 5), ("ZH-TCM", 5), ("NP-FH", 3)):
            cap = (await client.get(f"/v1/institutions/{ids[code]}/capacity", headers=admin)).json()
            beds = next(i for i in cap["items"] if i["specialty_code"] == "03")
            assert beds["held"] == holding, (code, beds)
            assert beds["free"] == 0 and beds["total"] - beds["occupied"] - beds["held"] == 0
        print(json.dumps({"statuses": dict(statuses)}))
