"""Webhook subscriptions: who manages which, validation, secrets at rest, the outbox rows."""

from __future__ import annotations

import base64
import uuid
from typing import Any

import pytest
from sqlalchemy import select

from app.db.webhook_models import WebhookEvent, WebhookSubscription
from app.services.webhooks import SecretBox
from tests.factories import referral_body

BASE = "/v1/webhook-subscriptions"
PROBLEM = "application/problem+json"
URL = "http://127.0.0.1:9/hook"
PUBLIC = "93.184.215.14"  # a public address literal: no DNS needed, nothing connects to it


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"webhook_allow": "127.0.0.1:9"}


async def _post(client: Any, headers: dict[str, str], **body: Any) -> Any:
    body.setdefault("url", URL)
    body.setdefault("event_types", ["referral.created", "referral.accepted"])
    return await client.post(BASE, json=body, headers=headers)


async def test_owner_sees_secret_once_and_others_get_404(api, client, auth, app) -> None:
    clinic = auth("demo clinic ZH-THC-TS")
    ids = await api.ids()
    r = await _post(
        client, clinic, event_types=["referral.created", "referral.created", "referral.arrived"]
    )
    assert r.status_code == 201, r.text
    created = r.json()
    assert r.headers["location"] == f"{BASE}/{created['id']}"
    assert created["institution_id"] == ids["ZH-THC-TS"]
    assert created["event_types"] == ["referral.created", "referral.arrived"]
    assert created["secret"].startswith("whsec_")
    assert len(base64.b64decode(created["secret"][6:])) >= 24
    one = f"{BASE}/{created['id']}"

    mine = await client.get(one, headers=clinic)
    assert mine.status_code == 200 and "secret" not in mine.json()
    for key in ("demo admin", "demo council ZHENGHE"):
        assert (await client.get(one, headers=auth(key))).status_code == 200, key
    for key in (
        "demo clinic ZH-THC-LY",
        "demo hospital ZH-CH",
        "demo council HUANGZHONG-1",
        "demo insurer",
    ):
        for method, path in (
            ("get", one),
            ("delete", one),
            ("post", one + "/rotate-secret"),
            ("get", one + "/deliveries"),
            ("post", one + "/deliveries/replay-dead"),
            ("post", one + f"/deliveries/{uuid.uuid4()}/replay"),
        ):
            r = await getattr(client, method)(path, headers=auth(key))
            assert r.status_code == 404, (key, method, path, r.status_code)
            assert r.headers["content-type"] == PROBLEM
    missing = await client.post(one + f"/deliveries/{uuid.uuid4()}/replay", headers=clinic)
    assert missing.status_code == 404
    assert (await client.get(one)).status_code == 401

    # the secret is stored sealed, bound to its subscription
    async with app.state.database.unit_of_work(read_only=True) as session:
        row = await session.get(WebhookSubscription, created["id"])
    assert row is not None and created["secret"] not in row.secret_sealed
    box = SecretBox.of(app.state.settings)
    assert box.open(row.secret_sealed, subscription_id=row.id) == created["secret"]
    with pytest.raises(ValueError, match="cannot be opened"):
        box.open(row.secret_sealed, subscription_id=str(uuid.uuid4()))
    with pytest.raises(ValueError, match="cannot be opened"):
        SecretBox(b"another key").open(row.secret_sealed, subscription_id=row.id)

    r = await client.delete(one, headers=clinic)
    assert r.status_code == 204
    assert (await client.get(one, headers=clinic)).status_code == 404


async def test_who_may_subscribe_for_whom(api, client, auth) -> None:
    ids = await api.ids()
    ch = ids["ZH-CH"]
    r = await _post(client, auth("demo clinic ZH-THC-TS"), institution_id=ch)
    assert r.status_code == 403
    r = await _post(client, auth("demo hospital ZH-CH"), institution_id=ch)
    assert r.status_code == 201
    r = await _post(client, auth("demo council ZHENGHE"), institution_id=ch)
    assert r.status_code == 201 and r.json()["institution_id"] == ch
    r = await _post(client, auth("demo council HUANGZHONG-1"), institution_id=ch)
    assert r.status_code == 403
    r = await _post(client, auth("demo council ZHENGHE"))
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["body", "institution_id"]
    r = await _post(client, auth("demo admin"), institution_id=str(uuid.uuid4()))
    assert r.status_code == 422
    r = await _post(client, auth("demo admin"), institution_id=ids["HZ-FPH"])
    assert r.status_code == 201
    assert (await _post(client, auth("demo insurer"), institution_id=ch)).status_code == 403

    def urls(r: Any) -> list[str]:
        return sorted(s["institution_id"] for s in r.json()["items"])

    assert urls(await client.get(BASE, headers=auth("demo hospital ZH-CH"))) == [ch, ch]
    assert urls(await client.get(BASE, headers=auth("demo council ZHENGHE"))) == [ch, ch]
    assert urls(await client.get(BASE, headers=auth("demo council HUANGZHONG-1"))) == [
        ids["HZ-FPH"]
    ]
    assert len((await client.get(BASE, headers=auth("demo admin"))).json()["items"]) == 3
    r = await client.get(BASE, params={"institution_id": ch}, headers=auth("demo clinic ZH-THC-TS"))
    assert r.json()["items"] == []
    assert (await client.get(BASE, headers=auth("demo insurer"))).status_code == 403
    page = await client.get(BASE, params={"limit": 2}, headers=auth("demo admin"))
    rest = await client.get(
        BASE, params={"limit": 2, "cursor": page.json()["next_cursor"]}, headers=auth("demo admin")
    )
    assert len(page.json()["items"]) == 2 and len(rest.json()["items"]) == 1


@pytest.mark.parametrize(
    "body",
    [
        {"event_types": ["referral.exploded"]},
        {"event_types": []},
        {"url": "ftp://his.example.org/hook"},
        {"url": "https://user:pw@his.example.org/hook"},
        {"url": "https:///no-host"},
        {"url": "https://his.example.org:99999/hook"},
        {"secret": "whsec_mine"},
    ],
)
async def test_invalid_subscriptions_are_422_without_echo(client, auth, body) -> None:
    r = await _post(client, auth("demo clinic ZH-THC-TS"), **body)
    assert r.status_code == 422 and r.headers["content-type"] == PROBLEM
    for value in body.values():
        if isinstance(value, str):
            assert value not in r.text


@pytest.mark.parametrize("settings_overrides", [{"demo_mode": False, "webhook_allow": ""}])
async def test_https_required_outside_demo_mode(client, auth) -> None:
    clinic = auth("demo clinic ZH-THC-TS")
    r = await _post(client, clinic, url=f"http://{PUBLIC}/hook")
    assert r.status_code == 422 and "https" in r.json()["errors"][0]["msg"]
    assert (await _post(client, clinic, url=f"https://{PUBLIC}/hook")).status_code == 201


async def test_outbox_rows_are_thin_and_name_the_institutions_concerned(
    api, client, auth, app
) -> None:
    ids = await api.ids()
    for code, beds in (("ZH-CH", (10, 5)), ("ZH-TCM", (10, 10)), ("NP-FH", (10, 10))):
        await api.set_beds(code, {"03": beds})
    body = referral_body()
    ref = (await api.create("demo clinic ZH-THC-TS", body, expect=None)).json()
    r = await api.act("demo hospital ZH-CH", ref, "reject", {"reason_code": "no_bed"}, expect=None)
    assert r.status_code == 200, r.text  # nowhere else to go: waitlisted
    async with app.state.database.unit_of_work(read_only=True) as session:
        rows = (
            (
                await session.execute(
                    select(WebhookEvent)
                    .where(WebhookEvent.referral_id == ref["id"])
                    .order_by(WebhookEvent.seq)
                )
            )
            .scalars()
            .all()
        )
    clinic, ch = ids["ZH-THC-TS"], ids["ZH-CH"]
    assert [(e.type, e.recipients) for e in rows] == [
        ("referral.created", [clinic, ch]),
        ("referral.rejected", [clinic, ch]),
        ("referral.waitlisted", [clinic, ch]),  # the previous target hears of it
    ]
    assert len({e.id for e in rows}) == 3
    for e in rows:
        assert e.payload["id"] == e.id and e.payload["type"] == e.type
        assert e.payload["data"] == {
            "referral_id": ref["id"],
            "number": ref["number"],
            "status": e.payload["data"]["status"],
        }
        text = str(e.payload)
        assert body["patient"]["name"] not in text and body["patient"]["resident_id"] not in text
    assert [e.payload["data"]["status"] for e in rows] == ["pending", "rejected", "waitlisted"]
