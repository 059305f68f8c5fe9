"""Behind a gateway that publishes the service under a prefix (REFERRAL_ROOT_PATH).

deploy/nginx.conf strips the prefix, so requests arrive as ``/v1/...``; another gateway may pass
it on. Both must reach every route and the locally served Swagger UI and ReDoc assets (these
answered 404 under a stripping gateway before the root path was put back into the path).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

PREFIX = "/referral"


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"root_path": PREFIX}


@pytest.fixture
async def bare(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


@pytest.mark.parametrize("prefix", ["", PREFIX], ids=["gateway-strips", "gateway-keeps"])
async def test_assets_routes_and_docs_under_the_root_path(
    bare: httpx.AsyncClient, auth: Any, prefix: str
) -> None:
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js"):
        r = await bare.get(f"{prefix}/static/{asset}")
        assert r.status_code == 200, asset
        assert len(r.content) > 1000
    docs = await bare.get(f"{prefix}/docs")
    assert docs.status_code == 200
    assert f"{PREFIX}/static/swagger-ui-bundle.js" in docs.text
    assert f"{PREFIX}/openapi.json" in docs.text
    spec = await bare.get(f"{prefix}/openapi.json")
    assert spec.json()["servers"] == [{"url": PREFIX}]
    assert (await bare.get(f"{prefix}/livez")).status_code == 200
    listed = await bare.get(f"{prefix}/v1/specialties", headers=auth("demo admin"))
    assert listed.status_code == 200
    missing = await bare.get(f"{prefix}/static/none.js")
    assert missing.status_code == 404
