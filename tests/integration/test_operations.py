from __future__ import annotations

import re
from pathlib import Path

import pytest

from app.config import ConfigurationError, Settings
from app.main import create_app
from app.openapi_export import render

ROOT = Path(__file__).resolve().parents[2]


async def test_health_and_readiness(client) -> None:
    assert (await client.get("/livez")).json() == {"status": "ok"}
    r = await client.get("/readyz")
    assert r.status_code == 200


async def test_readyz_fails_when_database_unreachable(tmp_path) -> None:
    from tests.support import settings_for

    url = f"sqlite+aiosqlite:///{tmp_path}/missing-dir/x.db"
    app = create_app(settings_for(url))
    import httpx

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        assert (await c.get("/livez")).status_code == 200
        r = await c.get("/readyz")
        assert r.status_code == 503
        assert r.headers["content-type"] == "application/problem+json"
        assert "Traceback" not in r.text
    await app.state.database.dispose()


async def test_request_id_echoed_or_generated(client, auth) -> None:
    r = await client.get("/livez", headers={"X-Request-ID": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    r = await client.get("/livez", headers={"X-Request-ID": "bad id with spaces"})
    assert re.fullmatch(r"[0-9a-f]{32}", r.headers["x-request-id"])


async def test_metrics_label_route_templates_not_ids(client, auth) -> None:
    h = auth("demo admin")
    await client.get("/v1/institutions/some-specific-id-123", headers=h)
    text = (await client.get("/metrics")).text
    assert 'route="/v1/institutions/{institution_id}"' in text
    assert "some-specific-id-123" not in text


async def test_body_too_large_is_413_problem(client, auth) -> None:
    r = await client.post(
        "/v1/institutions",
        content=b"{" + b" " * (1024 * 1024 + 10) + b"}",
        headers={**auth("demo admin"), "Content-Type": "application/json"},
    )
    assert r.status_code == 413
    assert r.headers["content-type"] == "application/problem+json"


async def test_malformed_json_is_422_problem(client, auth) -> None:
    r = await client.post(
        "/v1/institutions",
        content=b"{not json",
        headers={**auth("demo admin"), "Content-Type": "application/json"},
    )
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"


def test_missing_secret_outside_demo_refuses_to_start(monkeypatch) -> None:
    for name in ("API_KEY_PEPPER", "PATIENT_DATA_KEY", "PATIENT_HMAC_KEY", "DEMO_MODE"):
        monkeypatch.delenv(f"REFERRAL_{name}", raising=False)
    settings = Settings(database_url="sqlite+aiosqlite:///x.db")
    with pytest.raises(ConfigurationError, match="REFERRAL_API_KEY_PEPPER"):
        create_app(settings)
    assert Settings(demo_mode=True).api_key_pepper is not None


def test_committed_openapi_matches_app() -> None:
    from tests.support import settings_for

    committed = (ROOT / "openapi" / "openapi.json").read_text(encoding="utf-8")
    assert render(create_app(settings_for("sqlite+aiosqlite:///unused.db"))) == committed, (
        "openapi/openapi.json is stale: run `referral-service export-openapi`"
    )


def test_every_operation_declares_errors_and_an_id() -> None:
    from tests.support import settings_for

    spec = create_app(settings_for("sqlite+aiosqlite:///unused.db")).openapi()
    ids = []
    for path, item in spec["paths"].items():
        for method, op in item.items():
            ids.append(op["operationId"])
            if path.startswith("/v1/"):
                assert "401" in op["responses"], (method, path)
                assert "422" in op["responses"], (method, path)
    assert len(ids) == len(set(ids))


async def test_docs_reference_no_external_host(client) -> None:
    for page in ("/docs", "/redoc"):
        html = (await client.get(page)).text
        urls = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
        urls += re.findall(r"""url:\s*['"]([^'"]+)['"]""", html)
        assert urls, page
        for u in urls:
            assert not re.match(r"^(https?:)?//", u), (page, u)
        for asset in re.findall(r"/static/[\w.-]+", html):
            assert (await client.get(asset)).status_code == 200, asset
