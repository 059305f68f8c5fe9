"""Response headers, the docs pages' CSP, pinned library loggers, strong secrets, demo listen."""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import secrets
import uuid
from typing import Any

import pytest

from app import cli
from app.config import ConfigurationError, Settings, get_settings
from app.main import create_app
from app.services import relay
from tests.integration.test_webhooks import serve_receiver
from tests.support import TEST_SECRETS

MARKER = "PX-" + uuid.uuid4().hex[:10]


# --- 15. response hardening --------------------------------------------------------------


async def test_every_response_is_nosniff_and_api_answers_are_no_store(client, auth) -> None:
    admin = auth("demo admin")
    for path, headers in (
        ("/v1/institutions", admin),
        ("/v1/referrals/no-such-id", admin),  # a problem body too
        ("/v1/institutions", {}),  # 401
        ("/livez", {}),
        ("/openapi.json", {}),
        ("/docs", {}),
    ):
        r = await client.get(path, headers=headers)
        assert r.headers["x-content-type-options"] == "nosniff", path
        assert r.headers["cache-control"] == "no-store", path
    asset = await client.get("/static/swagger-ui.css")
    assert asset.status_code == 200 and asset.headers["x-content-type-options"] == "nosniff"
    assert "no-store" not in asset.headers.get("cache-control", "")


def _directives(csp: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for part in csp.split(";"):
        name, *values = part.split()
        out[name] = values
    return out


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_docs_csp_allows_exactly_the_assets_the_page_uses(client, page) -> None:
    r = await client.get(page)
    assert r.status_code == 200
    csp = _directives(r.headers["content-security-policy"])
    assert csp["default-src"] == ["'none'"] and csp["frame-ancestors"] == ["'none'"]
    html = r.text
    inline = re.findall(r"<script>(.*?)</script>", html, re.DOTALL)
    hashes = {
        "'sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() + "'"
        for s in inline
    }
    # scripts: this origin plus exactly the page's own inline script(s), nothing inline else
    assert set(csp["script-src"]) == {"'self'", *hashes}
    assert "'unsafe-inline'" not in csp["script-src"]
    assert "'unsafe-eval'" not in csp["script-src"]
    # every asset the page names is same-origin, covered by 'self', and served
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
    assert assets
    for asset in assets:
        assert asset.startswith("/static/"), asset
        assert (await client.get(asset)).status_code == 200, asset
    assert "'self'" in csp["style-src"] and "'self'" in csp["img-src"]
    assert csp["connect-src"] == ["'self'"]  # the page fetches /openapi.json only
    assert (await client.get("/openapi.json")).status_code == 200


async def test_swagger_ui_does_not_persist_authorization(client) -> None:
    html = (await client.get("/docs")).text
    assert "persistAuthorization" not in html


# --- 14. no SQL parameters or webhook URLs in logs ---------------------------------------


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.mark.parametrize(
    "settings_overrides",
    [{"log_level": "debug", "webhook_allow": "127.0.0.1", "webhook_relay_interval_seconds": 0}],
)
async def test_debug_logs_carry_no_sql_parameters_nor_webhook_urls(api, client, auth, app) -> None:
    from app.logging_setup import PINNED_LOGGERS

    root = logging.getLogger()
    collect = _Collect()
    level = root.level
    root.addHandler(collect)
    root.setLevel(logging.DEBUG)  # as REFERRAL_LOG_LEVEL=debug
    try:
        await api.set_beds("ZH-CH", {"03": (20, 5)})
        with serve_receiver() as receiver:
            sub = await client.post(
                "/v1/webhook-subscriptions",
                json={"url": receiver.url(f"/{MARKER}/his"), "event_types": ["referral.created"]},
                headers=auth("demo hospital ZH-CH"),
            )
            assert sub.status_code == 201
            ref = (await api.create("demo clinic ZH-THC-TS")).json()
            await api.act("demo hospital ZH-CH", ref, "accept", {"note": f"ID {MARKER}"})
            assert await relay.relay_once(app.state.database, app.state.settings) == 1
            assert len(receiver.on(f"/{MARKER}/his")) == 1
    finally:
        root.removeHandler(collect)
        root.setLevel(level)
    assert any(r.name == "app.access" for r in collect.records)  # the service did log
    for record in collect.records:
        text = record.getMessage() + repr(record.__dict__.get("args"))
        assert MARKER not in text, (record.name, record.levelname)
        assert "127.0.0.1" not in text, (record.name, record.levelname)
    for name in PINNED_LOGGERS:
        assert logging.getLogger(name).getEffectiveLevel() >= logging.WARNING, name


# --- 16. weak secrets, demo listen address -----------------------------------------------


def _prod(**secrets_: str) -> Settings:
    return Settings(database_url="sqlite+aiosqlite:///unused.db", demo_mode=False, **secrets_)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "values",
    [
        {"api_key_pepper": "x", "patient_data_key": "x", "patient_hmac_key": "x"},
        {"api_key_pepper": "x" * 64, "patient_data_key": "y" * 64, "patient_hmac_key": "z" * 9},
        {**TEST_SECRETS, "patient_data_key": "00" * 32},  # hex, 32 bytes, but not random
        {**TEST_SECRETS, "patient_hmac_key": secrets.token_hex(16)},  # 16 bytes only
        {**TEST_SECRETS, "patient_hmac_key": "change-me-patient-hmac-key"},
        {**TEST_SECRETS, "patient_hmac_key": TEST_SECRETS["patient_data_key"]},  # reused
    ],
)
def test_weak_or_reused_secrets_refuse_to_start_a_production_service(values) -> None:
    with pytest.raises(ConfigurationError, match="secret") as refused:
        create_app(_prod(**values))
    for value in values.values():
        assert len(value) < 8 or value not in str(refused.value)


def test_deploy_example_placeholders_are_refused() -> None:
    from tests.integration.test_deploy_files import env_example

    example = {k.removeprefix("REFERRAL_").lower(): v for k, v in env_example().items()}
    values = {n: example[n] for n in TEST_SECRETS}
    with pytest.raises(ConfigurationError, match="weak secret"):
        _prod(**values).require_secrets()


def test_strong_secrets_start_a_production_service() -> None:
    for values in (
        TEST_SECRETS,
        {n: secrets.token_urlsafe(32) for n in TEST_SECRETS},
        {n: base64.b64encode(secrets.token_bytes(32)).decode() for n in TEST_SECRETS},
    ):
        _prod(**values).require_secrets()


def test_demo_mode_refuses_a_remote_listen_address(monkeypatch, capsys, tmp_path: Any) -> None:
    monkeypatch.setenv("REFERRAL_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'd.db'}")
    monkeypatch.delenv("REFERRAL_DEMO_ALLOW_REMOTE", raising=False)
    # serve writes these into the environment: set here so they are restored afterwards
    monkeypatch.setenv("REFERRAL_DEMO_MODE", "true")
    monkeypatch.setenv("REFERRAL_HOST", "0.0.0.0")
    try:
        assert cli.main(["serve", "--demo", "--host", "0.0.0.0"]) == 2
    finally:
        get_settings.cache_clear()
    assert "REFERRAL_DEMO_ALLOW_REMOTE" in capsys.readouterr().err
    assert not (tmp_path / "d.db").exists()  # refused before anything was prepared
    for host in ("127.0.0.1", "::1", "localhost"):
        Settings(demo_mode=True, host=host).require_safe_listen()
    Settings(demo_mode=True, host="0.0.0.0", demo_allow_remote=True).require_safe_listen()
    Settings(demo_mode=False, host="0.0.0.0", **TEST_SECRETS).require_safe_listen()  # type: ignore[arg-type]
