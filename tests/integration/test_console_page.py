"""The console page and its assets without a browser: served from the service, a strict CSP
(no inline script, this origin only), only relative URLs (a gateway prefix works), ECharts
with its licence, the key never written to localStorage. The browser test is
tests/e2e/test_console.py."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

STATIC = Path(__file__).resolve().parents[2] / "app" / "static"
PREFIX = "/referral"


async def test_the_console_page_is_strict_and_relative(client: httpx.AsyncClient) -> None:
    r = await client.get("/console")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == "'self'"  # no inline script, no eval
    assert directives["style-src"] == "'self'"
    assert directives["connect-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert r.headers["cache-control"] == "no-store"
    html = r.text
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html)  # every script is a file
    assert " style=" not in html and "<style" not in html and " on" + "click=" not in html
    urls = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert urls and all(not u.startswith(("/", "http:", "https:", "//")) for u in urls), urls
    for u in urls:
        asset = await client.get("/" + u)
        assert asset.status_code == 200, u
        assert "no-store" not in asset.headers.get("cache-control", "")


def test_echarts_is_vendored_with_its_licence() -> None:
    js = (STATIC / "echarts.min.js").read_text(encoding="utf-8")
    assert "Apache License" in js[:2000] and len(js) > 500_000
    assert "Apache License" in (STATIC / "echarts.LICENSE").read_text(encoding="utf-8")
    assert "Apache ECharts" in (STATIC / "echarts.NOTICE").read_text(encoding="utf-8")
    console = (STATIC / "console" / "console.js").read_text(encoding="utf-8")
    assert "localStorage" not in console.replace("never localStorage", "")
    assert "sessionStorage" in console
    assert "innerHTML" not in console and "eval(" not in console
    assert not re.search(r"https?://", console)  # nothing leaves the service


@pytest.fixture
def settings_overrides() -> dict[str, str]:
    return {"root_path": PREFIX}


@pytest.mark.parametrize("prefix", ["", PREFIX], ids=["gateway-strips", "gateway-keeps"])
async def test_the_console_under_a_gateway_prefix(app: FastAPI, prefix: str) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as bare:
        page = await bare.get(f"{prefix}/console")
        assert page.status_code == 200
        for asset in (
            "static/echarts.min.js",
            "static/console/console.js",
            "static/console/console.css",
        ):
            r = await bare.get(f"{prefix}/{asset}")
            assert r.status_code == 200, (prefix, asset)
