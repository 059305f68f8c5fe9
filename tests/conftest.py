from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.main import create_app
from tests.driver import ApiDriver
from tests.support import Template, build_template, drop_template, pg_url, settings_for

BACKENDS = ["sqlite", "postgresql"]
# the privacy sweep over the whole run's logs, metrics and error bodies; pytester for its test
pytest_plugins = ["tests.privacy_plugin", "pytester"]


def pytest_report_header(config: pytest.Config) -> str:
    if pg_url():
        return "database back ends: sqlite, postgresql (REFERRAL_TEST_DATABASE_URL set)"
    return "database back ends: sqlite only (set REFERRAL_TEST_DATABASE_URL for PostgreSQL)"


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "postgresql" and not pg_url():
        pytest.skip("PostgreSQL back end: REFERRAL_TEST_DATABASE_URL is not set")
    return str(request.param)


@pytest.fixture(scope="session")
async def template(
    backend: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Template]:
    tpl = await build_template(backend, tmp_path_factory.mktemp(f"tpl-{backend}"))
    yield tpl
    await drop_template(tpl)


@pytest.fixture
async def db_url(template: Template, tmp_path: Path) -> AsyncIterator[str]:
    url = await template.clone(tmp_path)
    yield url
    await template.drop_clone(url)


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {}


@pytest.fixture
async def app(db_url: str, settings_overrides: dict[str, Any]) -> AsyncIterator[FastAPI]:
    application = create_app(settings_for(db_url, **settings_overrides))
    yield application
    await application.state.database.dispose()


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


@pytest.fixture
def keys(template: Template) -> dict[str, str]:
    return template.keys


@pytest.fixture
def auth(keys: dict[str, str]) -> Any:
    def headers(name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {keys[name]}"}

    return headers


@pytest.fixture
def api(client: httpx.AsyncClient, auth: Any) -> ApiDriver:
    """The API steps tests repeat: ids, create, act, get, census (tests/driver.py)."""
    return ApiDriver(client, auth)
