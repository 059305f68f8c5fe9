"""The README's run command, end to end: a real uvicorn process in demo mode."""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path

import httpx
import pytest

from tests.e2e.server import cli, free_port, start

pytestmark = pytest.mark.slow
ID_PATTERN = re.compile(r"\b\d{17}[\dXx]\b")


def test_demo_serve_lists_members_and_shuts_down_cleanly(tmp_path: Path) -> None:
    keys_file = tmp_path / "keys.json"
    server = start(
        cli("serve", "--demo"),
        {
            "REFERRAL_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'demo.db'}",
            "REFERRAL_DEMO_KEYS_FILE": str(keys_file),
        },
        tmp_path / "server.log",
        port=free_port(),
    )
    try:
        keys = json.loads(keys_file.read_text(encoding="utf-8"))["keys"]
        clinic = next(k for k in keys if k["institution_code"] == "ZH-THC-TS")
        assert clinic["key"] in server.log()  # printed on start-up
        h = {"Authorization": f"Bearer {clinic['key']}"}
        docs = httpx.get(server.base_url + "/docs")
        assert docs.status_code == 200 and "swagger-ui-bundle.js" in docs.text
        consortia = httpx.get(server.base_url + "/v1/consortia", headers=h).json()["items"]
        zhenghe = next(c for c in consortia if c["code"] == "ZHENGHE")
        members = httpx.get(
            server.base_url + "/v1/institutions",
            params={"consortium": zhenghe["id"], "limit": 200},
            headers=h,
        ).json()["items"]
        levels = {m["code"]: m["level"] for m in members}
        assert levels["ZH-CH"] == "secondary" and levels["ZH-THC-TS"] == "primary"
        r = httpx.get(server.base_url + "/v1/institutions/unknown", headers=h)
        assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
    finally:
        code = server.stop()
    log = server.log()
    # uvicorn finishes in-flight work, runs the shutdown, then re-raises SIGTERM
    assert code in (0, -signal.SIGTERM), log
    assert "Application shutdown complete" in log
    lines = [json.loads(x) for x in log.splitlines() if x.startswith("{")]
    access = [x for x in lines if x.get("logger") == "app.access"]
    assert access and all("request_id" in x for x in access)
    assert not ID_PATTERN.search(log)
