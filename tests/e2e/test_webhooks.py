"""The relay in the service process: a real uvicorn service pushes a signed webhook."""

from __future__ import annotations

import json
import signal
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from tests.e2e.server import cli, free_port, start
from tests.factories import referral_body
from tests.integration.test_webhooks import serve_receiver, verify

pytestmark = pytest.mark.slow


def test_served_app_delivers_webhooks_in_process(tmp_path: Path) -> None:
    keys_file = tmp_path / "keys.json"
    with serve_receiver() as receiver:
        server = start(
            cli("serve", "--demo"),
            {
                "REFERRAL_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'demo.db'}",
                "REFERRAL_DEMO_KEYS_FILE": str(keys_file),
                "REFERRAL_WEBHOOK_RELAY_INTERVAL_SECONDS": "0.2",
                "REFERRAL_WEBHOOK_ALLOW": f"127.0.0.1:{receiver.port}",
            },
            tmp_path / "server.log",
            port=free_port(),
        )
        try:
            keys = {
                k["name"]: k["key"]
                for k in json.loads(keys_file.read_text(encoding="utf-8"))["keys"]
            }

            def h(name: str) -> dict[str, str]:
                return {"Authorization": f"Bearer {keys[name]}"}

            base = server.base_url
            items = httpx.get(
                base + "/v1/institutions", params={"limit": 200}, headers=h("demo admin")
            ).json()["items"]
            ch = next(i["id"] for i in items if i["code"] == "ZH-CH")
            census = {
                "as_of": datetime.now(UTC).isoformat(),
                "beds": [{"specialty_code": "03", "total": 10, "occupied": 2}],
            }
            r = httpx.put(
                f"{base}/v1/institutions/{ch}/capacity", json=census, headers=h("demo admin")
            )
            assert r.status_code == 200, r.text
            sub = httpx.post(
                base + "/v1/webhook-subscriptions",
                json={"url": receiver.url("/his"), "event_types": ["referral.created"]},
                headers=h("demo hospital ZH-CH"),
            ).json()
            created = httpx.post(
                base + "/v1/referrals",
                json=referral_body(),
                headers={**h("demo clinic ZH-THC-TS"), "Idempotency-Key": uuid.uuid4().hex},
            ).json()
            deadline = time.monotonic() + 30
            while not receiver.requests:  # waiting for the relay's next pass
                assert time.monotonic() < deadline, server.log()
                time.sleep(0.05)
            got = receiver.requests[0]
            assert got.payload["type"] == "referral.created"
            assert got.payload["data"]["referral_id"] == created["id"]
            assert verify(sub["secret"], got)
        finally:
            code = server.stop()
    assert code in (0, -signal.SIGTERM), server.log()
    assert "Application shutdown complete" in server.log()
    assert len(receiver.requests) == 1
