"""Webhook URLs cannot reach the service's own network: checked at subscribe and at connect.

Real receivers on loopback, a real relay; only the name resolver is swapped where a test needs
a name to resolve one way at subscribe time and another way at connect time (DNS rebinding).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, select

from app.db.webhook_models import WebhookSubscription
from app.services import relay
from tests.integration.test_webhooks import (
    Receiver,
    _subscribe,
    serve_receiver,
)

BASE = "/v1/webhook-subscriptions"
HOSPITAL = "demo hospital ZH-CH"
PUBLIC = "93.184.215.14"  # a public address: allowed by default, never connected to here
REBIND = "his.rebind.test"
COARSE = {"http_status", "timeout", "refused", "tls", "dns", "blocked", "network"}

HOSTILE = [
    "http://127.1/hook",
    "http://2130706433/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "http://0.0.0.0/hook",
    "http://localhost/hook",
    "http://LOCALHOST./hook",
    "http://0x7f.1/hook",
    "http://127.0.0.1:5432/",  # the database port
    "http://[::1]/hook",
    "http://[::]/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://[fe80::1]/hook",
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://10.0.0.5/hook",
    "http://172.16.3.4/hook",
    "http://192.168.1.1/hook",
    "http://100.64.0.1/hook",  # CGNAT
    "http://[fd00::1]/hook",
    "http://224.0.0.1/hook",
    "http://255.255.255.255/hook",
    "http://[64:ff9b::7f00:1]/hook",
    "http://[2002:7f00:1::]/hook",
    "http://intranet/hook",
]


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"webhook_relay_interval_seconds": 0, "webhook_timeout_seconds": 2}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with serve_receiver() as rec:
        yield rec


def resolving(mapping: dict[str, str]) -> Any:
    async def resolve(host: str, port: int) -> list[str]:
        if host not in mapping:
            raise OSError("unknown name")
        return [mapping[host]]

    return resolve


async def _count(app: Any) -> int:
    async with app.state.database.unit_of_work(read_only=True) as session:
        return int(await session.scalar(select(func.count()).select_from(WebhookSubscription)))


@pytest.mark.parametrize("url", HOSTILE)
async def test_ssrf_hostile_urls_are_422_naming_the_url(client, auth, app, url) -> None:
    before = await _count(app)
    body = {"url": url, "event_types": ["referral.created"]}
    r = await client.post(BASE, json=body, headers=auth(HOSPITAL))
    assert r.status_code == 422, r.text
    problem = r.json()
    assert [e["loc"] for e in problem["errors"]] == [["body", "url"]]
    host = url.split("//", 1)[1].split("/", 1)[0]
    assert host not in r.text and url not in r.text
    assert await _count(app) == before


async def test_ssrf_public_address_is_accepted_by_default(client, auth) -> None:
    body = {"url": f"http://{PUBLIC}/hook", "event_types": ["referral.created"]}
    assert (await client.post(BASE, json=body, headers=auth(HOSPITAL))).status_code == 201


@pytest.mark.parametrize(
    "settings_overrides", [{"webhook_allow": "127.0.0.1:9, 10.20.0.0/16, his.intra.local:8443"}]
)
async def test_ssrf_allow_list_opens_only_what_it_names(client, auth, app) -> None:
    app.state.webhook_resolver = resolving({"his.intra.local": "10.99.0.1"})
    h = auth(HOSPITAL)
    for url, status in (
        ("http://127.0.0.1:9/hook", 201),
        ("http://127.0.0.1:5432/hook", 422),  # same address, another port
        ("http://10.20.7.8/hook", 201),
        ("http://10.21.7.8/hook", 422),
        ("https://his.intra.local:8443/hook", 201),  # a named host, whatever it resolves to
        ("https://his.intra.local/hook", 422),
        ("http://[::ffff:127.0.0.1]:9/hook", 422),  # the v4-mapped spelling stays closed
    ):
        r = await client.post(
            BASE, json={"url": url, "event_types": ["referral.created"]}, headers=h
        )
        assert r.status_code == status, (url, r.text)


async def test_ssrf_dns_rebinding_is_refused_at_connect_time(
    api, client, auth, app, receiver
) -> None:
    """Public at subscribe time, loopback when the relay connects: nothing reaches loopback."""
    database, settings = app.state.database, app.state.settings
    app.state.webhook_resolver = resolving({REBIND: PUBLIC})
    await api.set_beds("ZH-CH", {"03": (20, 5)})
    sub = await _subscribe(client, auth(HOSPITAL), f"http://{REBIND}:{receiver.port}/hook")
    await api.create("demo clinic ZH-THC-TS")
    assert await relay.relay_once(database, settings, resolving({REBIND: "127.0.0.1"})) == 1
    assert receiver.requests == []
    log = await client.get(f"{BASE}/{sub['id']}/deliveries", headers=auth(HOSPITAL))
    [entry] = log.json()["items"]
    assert (entry["state"], entry["last_error"], entry["last_status_code"]) == (
        "pending",
        "blocked",
        None,
    )


async def test_ssrf_connection_is_pinned_to_the_checked_address(
    api, client, auth, app, receiver, monkeypatch
) -> None:
    """The relay connects to the address it checked, with the original Host header: the name
    below exists only in the injected resolver, so it cannot be looked up a second time."""
    database, settings = app.state.database, app.state.settings
    monkeypatch.setattr(settings, "webhook_allow", f"127.0.0.1:{receiver.port}")
    pinned = resolving({REBIND: "127.0.0.1"})
    app.state.webhook_resolver = pinned
    await api.set_beds("ZH-CH", {"03": (20, 5)})
    await _subscribe(client, auth(HOSPITAL), f"http://{REBIND}:{receiver.port}/pinned")
    await api.create("demo clinic ZH-THC-TS")
    assert await relay.relay_once(database, settings, pinned) == 1
    [received] = receiver.on("/pinned")
    assert received.headers["host"] == f"{REBIND}:{receiver.port}"


async def test_ssrf_delivery_log_shows_only_coarse_classes(
    api, client, auth, app, receiver, monkeypatch
) -> None:
    database, settings = app.state.database, app.state.settings
    monkeypatch.setattr(settings, "webhook_allow", "127.0.0.1")
    receiver.default = 405
    await api.set_beds("ZH-CH", {"03": (20, 5)})
    h = auth(HOSPITAL)
    subs = {
        "http_status": await _subscribe(client, h, receiver.url("/answers-405")),
        "refused": await _subscribe(client, h, "http://127.0.0.1:9/closed"),
        "tls": await _subscribe(client, h, f"https://127.0.0.1:{receiver.port}/plain-http"),
    }
    await api.create("demo clinic ZH-THC-TS")
    assert await relay.relay_once(database, settings) == 3
    for expected, sub in subs.items():
        r = await client.get(f"{BASE}/{sub['id']}/deliveries", headers=h)
        [entry] = r.json()["items"]
        assert entry["last_error"] == expected, (expected, entry)
        assert entry["last_error"] in COARSE
        for leak in ("127.0.0.1", "Error", "Errno", str(receiver.port)):
            assert leak not in (entry["last_error"] or "")
