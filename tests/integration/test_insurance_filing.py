"""Referral filing (转院备案) through the outbox to a real HTTP insurance gateway.

The gateway is a real local HTTP server (uvicorn on loopback, in a thread) answering as the
national platform does (``{"infcode": 0, "output": {"trt_dcla_detl_sn": …}}``) or failing as
planned; the filing relay is run by hand (``filing_relay.deliver_once``), and time passes by
moving ``next_attempt_at`` / ``give_up_at`` into the past with SQL, never by sleeping.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from app.db.filing_models import InsuranceFiling, InsuranceGateway
from app.services import filing_relay
from app.services.filings import token_box
from tests.driver import ApiDriver
from tests.factories import referral_body
from tests.integration.test_webhooks import Received, Receiver, serve_receiver

CLINIC = "demo clinic ZH-THC-TS"
CH = "demo hospital ZH-CH"
COUNCIL = "demo council ZHENGHE"
TOKEN = "gw-token-0123456789"
INSURANCE = referral_body()["patient"]["insurance_number"]
CODES = {"ZH-CH": "H35072500001", "ZH-TCM": "H35072500002", "ZH-THC-TS": "H35072500101"}


@dataclass
class Gateway(Receiver):
    """The regional insurance gateway: answers 2501 with a new filing number and 2502 with
    success, unless the plan says ``500`` (HTTP 500) or ``"infcode"`` (HTTP 200, infcode -1)."""

    numbers: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        with self._lock:
            answer = self.plan.pop(0) if self.plan else self.default
            headers = {k.decode(): v.decode() for k, v in scope["headers"]}
            self.requests.append(Received(scope["path"], headers, body, answer))
            number = f"TD{next(self.numbers):06d}"
        if answer == 500:
            status, reply = 500, b""
        elif answer == "infcode":
            status, reply = 200, json.dumps({"infcode": -1, "err_msg": "busy"}).encode()
        else:
            output = {"trt_dcla_detl_sn": number} if json.loads(body)["infno"] == "2501" else {}
            status, reply = 200, json.dumps({"infcode": 0, "output": output}).encode()
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": reply})

    def messages(self) -> list[dict[str, Any]]:
        return [r.payload for r in self.requests]


@pytest.fixture
def gateway() -> Iterator[Gateway]:
    with serve_receiver(Gateway) as rec:
        yield rec


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {
        "webhook_relay_interval_seconds": 0,
        "sweep_interval_seconds": 0,
        "webhook_timeout_seconds": 2,
        "webhook_backoff_base_seconds": 1,
        "webhook_allow": "127.0.0.1",  # the gateway listens on loopback
    }


async def _setup(api: ApiDriver, client: httpx.AsyncClient, auth: Any) -> dict[str, str]:
    ids = await api.ids()
    for code, insurance_code in CODES.items():
        r = await client.patch(
            f"/v1/institutions/{ids[code]}",
            json={"insurance_code": insurance_code},
            headers=auth("demo admin"),
        )
        assert r.status_code == 200, r.text
    for code in ("ZH-CH", "ZH-TCM"):
        await api.set_beds(code, {"03": (40, 1)})
    consortia = (await client.get("/v1/consortia", headers=auth("demo admin"))).json()["items"]
    ids["ZHENGHE"] = next(c["id"] for c in consortia if c["code"] == "ZHENGHE")
    return ids


async def _configure(client: httpx.AsyncClient, auth: Any, consortium: str, url: str) -> None:
    r = await client.put(
        f"/v1/consortia/{consortium}/insurance-gateway",
        json={"url": url, "token": TOKEN},
        headers=auth(COUNCIL),
    )
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["configured"] and out["has_token"] and TOKEN not in r.text


async def _filings(client: httpx.AsyncClient, auth: Any, ref: dict[str, Any]) -> list[Any]:
    r = await client.get(f"/v1/referrals/{ref['id']}/insurance-filings", headers=auth(CLINIC))
    assert r.status_code == 200, r.text
    result: list[Any] = r.json()
    return result


async def _make_due(app: Any, *, give_up: bool = False) -> None:
    past = datetime.now(UTC) - timedelta(seconds=1)
    values: dict[str, Any] = {"next_attempt_at": past}
    if give_up:
        values["give_up_at"] = past
    async with app.state.database.unit_of_work() as session:
        await session.execute(
            update(InsuranceFiling)
            .where(InsuranceFiling.state.in_(("pending", "cancel_pending")))
            .values(**values)
        )


async def _drain(app: Any, rounds: int = 10) -> None:
    database, settings = app.state.database, app.state.settings
    for _ in range(rounds):
        await filing_relay.deliver_once(database, settings)
        async with database.unit_of_work(read_only=True) as session:
            open_ = (
                await session.execute(
                    select(InsuranceFiling.id).where(
                        InsuranceFiling.state.in_(("pending", "cancel_pending"))
                    )
                )
            ).all()
        if not open_:
            return
        await _make_due(app)
    raise AssertionError("filings still pending")


async def test_filed_after_two_failures_cancelled_and_filed_again_on_reroute_then_cancelled(
    api: ApiDriver, client: httpx.AsyncClient, auth: Any, app: Any, gateway: Gateway
) -> None:
    ids = await _setup(api, client, auth)
    await _configure(client, auth, ids["ZHENGHE"], gateway.url("/fsi"))
    ref = (await api.create(CLINIC)).json()
    assert ref["target_institution_id"] == ids["ZH-CH"]
    [first] = await _filings(client, auth, ref)
    assert first["state"] == "pending" and first["operation"] == "file"
    assert first["tier"].startswith("in_consortium_referral")

    gateway.plan = [500, "infcode"]  # HTTP 500, then infcode -1, then success
    await filing_relay.deliver_once(app.state.database, app.state.settings)
    [first] = await _filings(client, auth, ref)
    assert (first["state"], first["attempts"], first["last_error"]) == ("pending", 1, "http_status")
    await _make_due(app)
    await filing_relay.deliver_once(app.state.database, app.state.settings)
    [first] = await _filings(client, auth, ref)
    assert (first["last_error"], first["last_infcode"]) == ("infcode", -1)
    await _drain(app)
    [first] = await _filings(client, auth, ref)
    assert first["state"] == "filed" and first["filing_number"] == "TD000003"
    assert first["attempts"] == 3 and first["last_error"] is None

    sent = gateway.messages()
    assert [m["infno"] for m in sent] == ["2501"] * 3
    assert len({m["msgid"] for m in sent}) == 1  # one message, retried
    assert all(r.headers["authorization"] == f"Bearer {TOKEN}" for r in gateway.requests)
    refmedin = sent[0]["input"]["refmedin"]
    assert refmedin["psn_no"] == INSURANCE and refmedin["insutype"] == "390"
    assert refmedin["diag_code"] == "I63.9" and refmedin["reflin_medins_no"] == CODES["ZH-CH"]
    assert refmedin["mdtrtarea_admdvs"] == "350725" and refmedin["refl_type"] == "1"
    assert sent[0]["fixmedins_code"] == CODES["ZH-THC-TS"]
    assert refmedin["memo"].endswith(ref["number"])

    # the target rejects: re-routed to ZH-TCM, the first filing is cancelled, a new one filed
    ref = (await api.act(CH, ref, "reject", {"reason_code": "no_bed"})).json()
    ref = (await api.get(CLINIC, ref)).json()
    assert ref["target_institution_id"] == ids["ZH-TCM"]
    first, second = await _filings(client, auth, ref)
    assert (first["state"], first["operation"]) == ("cancel_pending", "cancel")
    assert (second["state"], second["target_institution_id"]) == ("pending", ids["ZH-TCM"])
    gateway.requests.clear()
    await _drain(app)
    first, second = await _filings(client, auth, ref)
    assert first["state"] == "cancelled" and first["filing_number"] == "TD000003"
    assert second["state"] == "filed" and second["filing_number"] == "TD000005"
    cancel, refile = gateway.messages()  # the cancellation first, then the new filing
    assert cancel["infno"] == "2502"
    assert cancel["input"]["data"] == {
        "trt_dcla_detl_sn": "TD000003",
        "psn_no": INSURANCE,
        "memo": refmedin["memo"],
    }
    assert refile["infno"] == "2501"
    assert refile["input"]["refmedin"]["reflin_medins_no"] == CODES["ZH-TCM"]

    # the source cancels the referral: the standing filing is cancelled
    gateway.requests.clear()
    await api.act(CLINIC, ref, "cancel")
    await _drain(app)
    first, second = await _filings(client, auth, ref)
    assert second["state"] == "cancelled"
    [message] = gateway.messages()
    assert message["infno"] == "2502"
    assert message["input"]["data"]["trt_dcla_detl_sn"] == "TD000005"


async def test_a_filing_never_sent_is_superseded_not_cancelled(
    api: ApiDriver, client: httpx.AsyncClient, auth: Any, app: Any, gateway: Gateway
) -> None:
    ids = await _setup(api, client, auth)
    await _configure(client, auth, ids["ZHENGHE"], gateway.url("/fsi"))
    ref = (await api.create(CLINIC)).json()
    await api.act(CH, ref, "reject", {"reason_code": "no_bed"})
    await _drain(app)
    first, second = await _filings(client, auth, ref)
    assert first["state"] == "superseded" and first["filing_number"] is None
    assert second["state"] == "filed"
    assert [m["infno"] for m in gateway.messages()] == ["2501"]


async def test_dead_letter_after_give_up_and_replay(
    api: ApiDriver, client: httpx.AsyncClient, auth: Any, app: Any, gateway: Gateway
) -> None:
    ids = await _setup(api, client, auth)
    await _configure(client, auth, ids["ZHENGHE"], gateway.url("/fsi"))
    ref = (await api.create(CLINIC)).json()
    gateway.default = 500
    await filing_relay.deliver_once(app.state.database, app.state.settings)
    await _make_due(app, give_up=True)
    await filing_relay.deliver_once(app.state.database, app.state.settings)
    [filing] = await _filings(client, auth, ref)
    assert (filing["state"], filing["last_error"], filing["attempts"]) == (
        "dead",
        "http_status",
        2,
    )
    url = f"/v1/referrals/{ref['id']}/insurance-filings/{filing['id']}/replay"
    assert (await client.post(url, headers=auth(CH))).status_code == 403
    assert (await client.post(url, headers=auth("demo hospital HZ-FPH"))).status_code == 404
    r = await client.post(url, headers=auth(COUNCIL))
    assert r.status_code == 200, r.text
    assert (r.json()["state"], r.json()["attempts"]) == ("pending", 0)
    r = await client.post(url, headers=auth(COUNCIL))
    assert r.status_code == 409 and r.headers["content-type"] == "application/problem+json"
    gateway.default = 200
    await _drain(app)
    [filing] = await _filings(client, auth, ref)
    assert filing["state"] == "filed" and filing["filing_number"]


async def test_without_a_gateway_the_filing_is_manual_with_a_payload_to_download(
    api: ApiDriver, client: httpx.AsyncClient, auth: Any, app: Any, gateway: Gateway
) -> None:
    ids = await _setup(api, client, auth)
    r = await client.get(f"/v1/consortia/{ids['ZHENGHE']}/insurance-gateway", headers=auth(COUNCIL))
    assert r.status_code == 200 and r.json()["configured"] is False
    ref = (await api.create(CLINIC)).json()
    [filing] = await _filings(client, auth, ref)
    assert filing["state"] == "manual" and filing["next_attempt_at"] is None
    url = f"/v1/referrals/{ref['id']}/insurance-filings/{filing['id']}"
    r = await client.get(url + "/payload", headers=auth(CLINIC))
    assert r.status_code == 200, r.text
    assert r.headers["content-disposition"].startswith("attachment")
    message = r.json()
    assert message["infno"] == "2501"
    assert message["input"]["refmedin"]["psn_no"] == INSURANCE
    assert message["input"]["refmedin"]["reflin_medins_name"]
    assert (await client.get(url + "/payload", headers=auth(COUNCIL))).status_code == 200
    assert (await client.get(url + "/payload", headers=auth(CH))).status_code == 403
    outsider = await client.get(url + "/payload", headers=auth("demo clinic ZH-THC-LY"))
    assert outsider.status_code == 404
    r = await client.post(url + "/replay", headers=auth(COUNCIL))
    assert r.status_code == 409  # nowhere to send it yet
    await filing_relay.deliver_once(app.state.database, app.state.settings)
    assert gateway.requests == []
    # a gateway is configured afterwards: the manual filing is sent on replay
    await _configure(client, auth, ids["ZHENGHE"], gateway.url("/fsi"))
    r = await client.post(url + "/replay", headers=auth(COUNCIL))
    assert r.status_code == 200 and r.json()["state"] == "pending"
    await _drain(app)
    [filing] = await _filings(client, auth, ref)
    assert filing["state"] == "filed"
    assert gateway.messages()[0]["msgid"] == message["msgid"]


async def test_tiers_without_a_referral_rate_are_not_filed(
    api: ApiDriver, client: httpx.AsyncClient, auth: Any, app: Any
) -> None:
    await _setup(api, client, auth)
    body = referral_body()
    body["patient"]["insurance_scheme"] = "self_pay"
    ref = (await api.create(CLINIC, body)).json()
    assert await _filings(client, auth, ref) == []


async def test_gateway_configuration_rules(
    api: ApiDriver, client: httpx.AsyncClient, auth: Any, app: Any
) -> None:
    ids = await _setup(api, client, auth)
    url = f"/v1/consortia/{ids['ZHENGHE']}/insurance-gateway"
    for who in ("demo council HUANGZHONG-1", "demo insurer", CLINIC):
        assert (await client.get(url, headers=auth(who))).status_code == 403
        r = await client.put(url, json={"url": "http://127.0.0.1:9/x"}, headers=auth(who))
        assert r.status_code == 403
    r = await client.put(url, json={"url": "http://10.1.2.3/fsi"}, headers=auth(COUNCIL))
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["body", "url"]
    assert "10.1.2.3" not in r.text
    r = await client.put(
        url, json={"url": "http://127.0.0.1:9/fsi", "token": TOKEN}, headers=auth("demo admin")
    )
    assert r.status_code == 200 and TOKEN not in r.text
    async with app.state.database.unit_of_work(read_only=True) as session:
        row = await session.get(InsuranceGateway, ids["ZHENGHE"])
        assert row is not None and row.token_sealed and TOKEN not in row.token_sealed
        box = token_box(app.state.settings)
        assert box.open(row.token_sealed, subscription_id=ids["ZHENGHE"]) == TOKEN
    assert (await client.delete(url, headers=auth(COUNCIL))).status_code == 204
    assert (await client.get(url, headers=auth(COUNCIL))).json()["configured"] is False
    missing = await client.get("/v1/consortia/no-such/insurance-gateway", headers=auth(COUNCIL))
    assert missing.status_code == 404


def test_gateway_answers_are_read_without_keeping_their_text() -> None:
    from app.domain.insurance_filing import read_answer

    assert read_answer(b'{"infcode": 0, "output": {"trt_dcla_detl_sn": "X1"}}', expect_number=True)
    nested = b'{"infcode": "0", "output": {"result": {"trt_dcla_detl_sn": 7}}}'
    ok = read_answer(nested, expect_number=True)
    assert ok.filing_number == "7"
    assert read_answer(b'{"infcode": 0, "output": {}}', expect_number=True).failure == (
        "no_filing_number"
    )
    assert read_answer(b"<html>", expect_number=True).failure == "not_json"
    bad = read_answer(b'{"infcode": -1, "err_msg": "name"}', expect_number=False)
    assert (bad.ok, bad.failure, bad.infcode) == (False, "infcode", -1)
