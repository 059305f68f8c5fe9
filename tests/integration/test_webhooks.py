"""Webhooks end to end through the outbox: a real HTTP receiver (uvicorn on loopback, in a
thread), referrals driven through the API, the relay run by hand (``relay_once``).

Time is advanced by moving ``next_attempt_at`` / ``give_up_at`` into the past with SQL, never
by sleeping. Signatures are checked with an implementation of the Standard Webhooks scheme
written here, independently of the service's.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import socket
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx
import pytest
import uvicorn
from sqlalchemy import func, insert, select, update

from app.db.models import IdempotencyRecord, Referral, ReferralCounter, ReferralEvent
from app.db.session import Database
from app.db.webhook_models import WebhookDelivery, WebhookEvent, WebhookSubscription
from app.services import relay
from app.services.housekeeping import housekeeping_once
from tests.factories import referral_body

ALL_TYPES = [
    "referral.created",
    "referral.routed",
    "referral.accepted",
    "referral.rejected",
    "referral.rerouted",
    "referral.expired",
    "referral.waitlisted",
    "referral.arrived",
    "referral.admitted",
    "referral.seen",
    "referral.completed",
    "referral.cancelled",
    "referral.no_show",
    "referral.milestone",
    "referral.follow_up_due",
]
PATIENT_NAME = referral_body()["patient"]["name"]


# --- the receiver ------------------------------------------------------------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    answer: int | str

    @property
    def payload(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.body)
        return result

    @property
    def ok(self) -> bool:
        return isinstance(self.answer, int) and 200 <= self.answer < 300


@dataclass
class Receiver:
    """An HTTP endpoint that records every request and answers as planned.

    ``plan`` holds the next answers (a status code, or "hang": never answer), used up one
    request at a time; afterwards every request gets ``default``.
    """

    port: int
    plan: list[int | str] = field(default_factory=list)
    default: int | str = 200
    requests: list[Received] = field(default_factory=list)
    _release: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

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
        if answer == "hang":  # keep the connection open without a word until the test ends
            await asyncio.to_thread(self._release.wait, 60)
            return
        assert isinstance(answer, int)
        await send({"type": "http.response.start", "status": answer, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    def on(self, path: str) -> list[Received]:
        return [r for r in self.requests if r.path == path]


R = TypeVar("R", bound=Receiver)


@contextmanager
def serve_receiver(kind: type[R] = Receiver) -> Iterator[R]:  # type: ignore[assignment]
    """Run a Receiver (or a subclass answering otherwise) with uvicorn on a free loopback port
    in a thread."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    rec = kind(port)
    config = uvicorn.Config(
        rec, host="127.0.0.1", port=port, log_level="warning", lifespan="off", access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="webhook-receiver", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline, "receiver did not start"
            time.sleep(0.01)  # polling for start-up, not papering over a race
        yield rec
    finally:
        rec._release.set()
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with serve_receiver() as rec:
        yield rec


# --- an independent Standard Webhooks verifier -------------------------------------------


def verify(secret: str, r: Received, tolerance_s: int = 300) -> bool:
    """True when one of the v1 signatures matches HMAC-SHA256(id.timestamp.body)."""
    msg_id, ts = r.headers["webhook-id"], r.headers["webhook-timestamp"]
    if abs(time.time() - int(ts)) > tolerance_s:
        return False
    key = base64.b64decode(secret.split("_", 1)[1])
    mac = hmac.new(key, msg_id.encode() + b"." + ts.encode() + b"." + r.body, hashlib.sha256)
    expected = base64.b64encode(mac.digest()).decode()
    given = [s.split(",", 1)[1] for s in r.headers["webhook-signature"].split() if "," in s]
    return any(hmac.compare_digest(expected, g) for g in given)


# --- helpers -----------------------------------------------------------------------------

LOOPBACK = "127.0.0.1"


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {
        "webhook_relay_interval_seconds": 0,
        "webhook_timeout_seconds": 2,
        "webhook_backoff_base_seconds": 1,
        "webhook_allow": LOOPBACK,  # the receivers listen on loopback
    }


async def _subscribe(
    client: httpx.AsyncClient, headers: dict[str, str], url: str, **extra: Any
) -> dict[str, Any]:
    body = {"url": url, "event_types": ALL_TYPES, **extra}
    r = await client.post("/v1/webhook-subscriptions", json=body, headers=headers)
    assert r.status_code == 201, r.text
    return dict(r.json())


async def _make_due(database: Database, *, give_up: bool = False) -> None:
    """Time passes: every pending delivery is due now (and past its give-up time)."""
    past = datetime.now(UTC) - timedelta(seconds=1)
    values: dict[str, Any] = {"next_attempt_at": past}
    if give_up:
        values["give_up_at"] = past
    async with database.unit_of_work() as session:
        await session.execute(
            update(WebhookDelivery).where(WebhookDelivery.state == "pending").values(**values)
        )


async def _states(database: Database) -> dict[str, int]:
    async with database.unit_of_work(read_only=True) as session:
        rows = await session.execute(
            select(WebhookDelivery.state, func.count()).group_by(WebhookDelivery.state)
        )
        return {state: int(n) for state, n in rows.all()}


async def _drain(app: Any, rounds: int = 30) -> None:
    database, settings = app.state.database, app.state.settings
    for _ in range(rounds):
        await relay.relay_once(database, settings)
        if not (await _states(database)).get("pending"):
            return
        await _make_due(database)
    raise AssertionError(f"deliveries still pending: {await _states(database)}")


def _sequence(requests: list[Received]) -> dict[str, list[str]]:
    """Per referral, the event types in the order requests arrived, repeats of a retried
    message collapsed (so a later event arriving before an earlier one succeeded shows)."""
    out: dict[str, list[str]] = defaultdict(list)
    last: dict[str, str] = {}
    for r in requests:
        p = r.payload
        ref = p["data"]["referral_id"]
        if last.get(ref) != p["id"]:
            out[ref].append(p["type"])
            last[ref] = p["id"]
    return dict(out)


# --- tests -------------------------------------------------------------------------------


async def test_every_event_once_in_order_signed_despite_failures(
    api, client, auth, app, receiver
) -> None:
    ids = await api.ids()
    await api.set_beds("ZH-CH", {"03": (20, 5)})
    await api.set_beds("ZH-TCM", {"03": (20, 5)})
    secrets = {
        "/clinic": (
            await _subscribe(client, auth("demo clinic ZH-THC-TS"), receiver.url("/clinic"))
        )["secret"],
        "/ch": (await _subscribe(client, auth("demo hospital ZH-CH"), receiver.url("/ch")))[
            "secret"
        ],
        "/tcm": (await _subscribe(client, auth("demo hospital ZH-TCM"), receiver.url("/tcm")))[
            "secret"
        ],
    }
    receiver.plan = [500, 500, 500]  # the first three deliveries fail

    a = (await api.create("demo clinic ZH-THC-TS")).json()
    assert a["target_institution_id"] == ids["ZH-CH"]
    a = (await api.act("demo hospital ZH-CH", a, "reject", {"reason_code": "no_bed"})).json()
    a = (await client.get(f"/v1/referrals/{a['id']}", headers=auth("demo admin"))).json()
    assert a["target_institution_id"] == ids["ZH-TCM"]
    await api.act("demo hospital ZH-TCM", a, "accept")
    b = (await api.create("demo clinic ZH-THC-TS")).json()
    assert b["target_institution_id"] == ids["ZH-CH"]
    b = (await api.act("demo hospital ZH-CH", b, "accept")).json()
    await api.act("demo hospital ZH-CH", b, "arrive")

    await _drain(app)

    expected = {
        "/clinic": {
            a["id"]: ["created", "rejected", "rerouted", "accepted"],
            b["id"]: ["created", "accepted", "arrived"],
        },
        "/ch": {
            a["id"]: ["created", "rejected", "rerouted"],
            b["id"]: ["created", "accepted", "arrived"],
        },
        "/tcm": {a["id"]: ["rerouted", "accepted"]},
    }
    assert sum(1 for r in receiver.requests if r.answer == 500) == 3
    total_events = 0
    for path, per_referral in expected.items():
        got = receiver.on(path)
        assert all(verify(secrets[path], r) for r in got), path
        want = {ref: [f"referral.{t}" for t in types] for ref, types in per_referral.items()}
        assert _sequence(got) == want, path
        # after de-duplication by webhook-id every event is there exactly once, answered 2xx once
        ok_ids = [r.headers["webhook-id"] for r in got if r.ok]
        assert len(ok_ids) == len(set(ok_ids)) == sum(len(t) for t in per_referral.values())
        assert {r.headers["webhook-id"] for r in got} == set(ok_ids)
        total_events += len(ok_ids)
        for r in got:
            payload = r.payload
            assert payload["id"] == r.headers["webhook-id"]
            assert set(payload) == {"id", "type", "timestamp", "data"}
            assert set(payload["data"]) == {"referral_id", "number", "status"}
            assert r.headers["content-type"] == "application/json"
            assert PATIENT_NAME not in r.body.decode()
    assert len(receiver.requests) == total_events + 3
    # the same story in the subscribers' delivery logs
    attempts = 0
    for path, key in (
        ("/clinic", "demo clinic ZH-THC-TS"),
        ("/ch", "demo hospital ZH-CH"),
        ("/tcm", "demo hospital ZH-TCM"),
    ):
        subs = (await client.get("/v1/webhook-subscriptions", headers=auth(key))).json()["items"]
        assert [s["url"] for s in subs] == [receiver.url(path)]
        assert "secret" not in subs[0]
        log = (
            await client.get(
                f"/v1/webhook-subscriptions/{subs[0]['id']}/deliveries", headers=auth(key)
            )
        ).json()["items"]
        assert {d["state"] for d in log} == {"delivered"}
        assert all(d["last_status_code"] == 200 and d["next_attempt_at"] is None for d in log)
        attempts += sum(d["attempts"] for d in log)
    assert attempts == len(receiver.requests)


async def test_relay_killed_mid_batch_loses_nothing(api, client, auth, app, receiver) -> None:
    database, settings = app.state.database, app.state.settings
    await api.set_beds("ZH-CH", {"03": (20, 5)})
    sub = await _subscribe(client, auth("demo clinic ZH-THC-TS"), receiver.url("/hook"))
    made = [(await api.create("demo clinic ZH-THC-TS")).json() for _ in range(3)]
    await api.act("demo hospital ZH-CH", made[0], "accept")

    # a relay claims a batch, sends one message, and dies before recording anything
    await relay.fan_out(database, settings)
    abandoned = await relay.claim_batch(database, settings)
    assert len(abandoned) == 3  # the three "created"; made[0]'s "accepted" waits its turn
    async with httpx.AsyncClient() as http:
        sent = await relay.send(http, abandoned[0], settings)
    assert sent.ok and len(receiver.requests) == 1

    # while the lease lasts nobody else takes those rows (and the next event waits behind)
    assert await relay.relay_once(database, settings) == 0
    assert len(receiver.requests) == 1
    # the lease ends: another relay delivers everything
    await _make_due(database)
    await _drain(app)
    assert await _states(database) == {"delivered": 4}
    by_id: dict[str, int] = defaultdict(int)
    for r in receiver.requests:
        assert verify(sub["secret"], r)
        by_id[r.headers["webhook-id"]] += 1
    assert len(by_id) == 4  # every event, once after de-duplication by webhook-id
    assert sorted(by_id.values()) == [1, 1, 1, 2]  # at least once: the unrecorded send repeats
    assert _sequence(receiver.requests)[made[0]["id"]] == ["referral.created", "referral.accepted"]

    # the dead relay wakes up and reports failures: its lease is gone, nothing changes
    stale = [(c, relay.Outcome(500, "http_500")) for c in abandoned]
    assert await relay.record(database, settings, stale) == 0
    assert await _states(database) == {"delivered": 4}


@pytest.mark.parametrize(
    "settings_overrides",
    [
        {
            "webhook_relay_interval_seconds": 0,
            "webhook_allow": LOOPBACK,
            "webhook_timeout_seconds": 0.5,
            "webhook_backoff_base_seconds": 1,
            "webhook_give_up_after_seconds": 3600,
        }
    ],
)
async def test_silent_endpoint_dead_letters_then_replay_delivers(
    api, client, auth, app, receiver
) -> None:
    database, settings = app.state.database, app.state.settings
    await api.set_beds("ZH-CH", {"03": (20, 5)})
    clinic = auth("demo clinic ZH-THC-TS")
    sub = await _subscribe(client, clinic, receiver.url("/silent"))
    deliveries = f"/v1/webhook-subscriptions/{sub['id']}/deliveries"
    receiver.default = "hang"  # accepts the connection, never answers
    ref = (await api.create("demo clinic ZH-THC-TS")).json()
    await api.act("demo hospital ZH-CH", ref, "accept")

    assert await relay.relay_once(database, settings) == 1  # "created" times out
    log = (await client.get(deliveries, headers=clinic)).json()["items"]
    first = next(d for d in log if d["event_type"] == "referral.created")
    assert first["state"] == "pending" and first["last_error"] == "timeout"
    assert first["attempts"] == 1 and first["last_status_code"] is None
    assert datetime.fromisoformat(first["next_attempt_at"]) > datetime.now(UTC)

    # the give-up time passes: the next failures end in the dead letters, in order
    for _ in range(3):
        await _make_due(database, give_up=True)
        await relay.relay_once(database, settings)
    assert await _states(database) == {"dead": 2}
    log = (await client.get(deliveries, params={"state": "dead"}, headers=clinic)).json()["items"]
    assert {d["event_type"] for d in log} == {"referral.created", "referral.accepted"}
    assert all(d["dead_at"] and d["next_attempt_at"] is None for d in log)
    assert len(receiver.requests) == 3  # created twice, then accepted once
    other = await client.get(deliveries, headers=auth("demo clinic ZH-THC-LY"))
    assert other.status_code == 404

    # the endpoint works again; nothing moves by itself, a replay delivers
    receiver.default = 200
    assert await relay.relay_once(database, settings) == 0
    created = next(d for d in log if d["event_type"] == "referral.created")
    r = await client.post(f"{deliveries}/{created['id']}/replay", headers=clinic)
    assert r.status_code == 200 and r.json()["state"] == "pending" and r.json()["attempts"] == 0
    again = await client.post(f"{deliveries}/{created['id']}/replay", headers=clinic)
    assert again.status_code == 409
    assert await relay.relay_once(database, settings) == 1
    r = await client.post(f"{deliveries}/replay-dead", headers=clinic)
    assert r.status_code == 200 and r.json() == {"replayed": 1}
    assert await relay.relay_once(database, settings) == 1
    assert await _states(database) == {"delivered": 2}
    delivered = [x for x in receiver.requests if x.ok]
    assert [x.payload["type"] for x in delivered] == ["referral.created", "referral.accepted"]
    # the replay carries the webhook-id of the attempts that timed out
    assert delivered[0].headers["webhook-id"] == receiver.requests[0].headers["webhook-id"]
    assert all(verify(sub["secret"], x) for x in receiver.requests)


async def test_rotated_secret_signs_with_both_during_overlap(
    api, client, auth, app, receiver
) -> None:
    database = app.state.database
    await api.set_beds("ZH-CH", {"03": (20, 5)})
    hospital = auth("demo hospital ZH-CH")
    sub = await _subscribe(client, hospital, receiver.url("/rot"))
    r = await client.post(
        f"/v1/webhook-subscriptions/{sub['id']}/rotate-secret",
        json={"overlap_seconds": 3600},
        headers=hospital,
    )
    assert r.status_code == 200, r.text
    rotated = r.json()
    assert rotated["secret"] != sub["secret"] and rotated["previous_secret_expires_at"]
    await api.create("demo clinic ZH-THC-TS")
    await _drain(app)
    first = receiver.requests[-1]
    assert len(first.headers["webhook-signature"].split()) == 2
    assert verify(rotated["secret"], first) and verify(sub["secret"], first)

    async with database.unit_of_work() as session:  # the overlap is over
        await session.execute(
            update(WebhookSubscription).values(
                previous_secret_expires_at=datetime.now(UTC) - timedelta(seconds=1)
            )
        )
    await api.create("demo clinic ZH-THC-TS")
    await _drain(app)
    second = receiver.requests[-1]
    assert len(second.headers["webhook-signature"].split()) == 1
    assert verify(rotated["secret"], second) and not verify(sub["secret"], second)
    # rotating without overlap drops the old secret at once
    r = await client.post(
        f"/v1/webhook-subscriptions/{sub['id']}/rotate-secret",
        json={"overlap_seconds": 0},
        headers=hospital,
    )
    assert r.json()["previous_secret_expires_at"] is None


async def test_two_relays_deliver_each_message_once(
    api, client, auth, app, db_url, receiver
) -> None:
    settings = app.state.settings
    await api.set_beds("ZH-CH", {"03": (20, 5)})
    await _subscribe(client, auth("demo clinic ZH-THC-TS"), receiver.url("/a"))
    await _subscribe(client, auth("demo hospital ZH-CH"), receiver.url("/b"))
    for _ in range(8):
        ref = (await api.create("demo clinic ZH-THC-TS")).json()
        await api.act("demo hospital ZH-CH", ref, "accept")
    one, two = Database(db_url), Database(db_url)
    try:
        counts = await asyncio.gather(
            relay.relay_once(one, settings), relay.relay_once(two, settings)
        )
    finally:
        await one.dispose()
        await two.dispose()
    assert sum(counts) == 32, counts
    assert await _states(app.state.database) == {"delivered": 32}
    seen = [(r.path, r.headers["webhook-id"]) for r in receiver.requests]
    assert len(seen) == len(set(seen)) == 32
    for path in ("/a", "/b"):
        for types in _sequence(receiver.on(path)).values():
            assert types == ["referral.created", "referral.accepted"]


async def test_unreadable_secret_fails_the_attempt_not_the_relay(
    api, client, auth, app, receiver
) -> None:
    from app.services.webhooks import SecretBox

    database, settings = app.state.database, app.state.settings
    await api.set_beds("ZH-CH", {"03": (20, 5)})
    broken = await _subscribe(client, auth("demo clinic ZH-THC-TS"), receiver.url("/broken"))
    await _subscribe(client, auth("demo hospital ZH-CH"), receiver.url("/fine"))
    async with database.unit_of_work() as session:  # as if sealed under another data key
        sealed = SecretBox(b"an earlier key").seal("whsec_AAAA", subscription_id=broken["id"])
        await session.execute(
            update(WebhookSubscription)
            .where(WebhookSubscription.id == broken["id"])
            .values(secret_sealed=sealed)
        )
    await api.create("demo clinic ZH-THC-TS")
    assert await relay.relay_once(database, settings) == 2
    assert [r.path for r in receiver.requests] == ["/fine"]
    log = (
        await client.get(
            f"/v1/webhook-subscriptions/{broken['id']}/deliveries",
            headers=auth("demo clinic ZH-THC-TS"),
        )
    ).json()["items"]
    assert [(d["state"], d["last_error"]) for d in log] == [("pending", "secret_unreadable")]


async def test_housekeeping_deletes_what_has_served_its_purpose(
    api, client, auth, app, receiver
) -> None:
    """Old delivered deliveries and finished outbox rows, expired idempotency records and past
    day counters are deleted; fresh deliveries, dead-lettered ones (until replayed), their
    events and every referral record stay. Time passes by moving timestamps back with SQL."""
    database: Database = app.state.database
    await api.set_beds("ZH-CH", {"03": (20, 5)})
    clinic = auth("demo clinic ZH-THC-TS")
    await _subscribe(client, clinic, receiver.url("/clinic"))
    old_key, fresh_key = uuid.uuid4().hex, uuid.uuid4().hex
    made, bodies = {}, {old_key: referral_body(), fresh_key: referral_body()}
    for key in (old_key, fresh_key):
        made[key] = (await api.create(clinic, bodies[key], key=key)).json()
    await _drain(app)
    assert (await _states(database)) == {"delivered": 2}
    receiver.default = 500  # from now on the subscriber fails: the next one goes dead
    dead_one = (await api.create("demo clinic ZH-THC-TS")).json()
    await relay.relay_once(database, app.state.settings)
    await _make_due(database, give_up=True)
    await relay.relay_once(database, app.state.settings)
    assert (await _states(database)) == {"delivered": 2, "dead": 1}

    long_ago = datetime.now(UTC) - timedelta(days=40)
    old_id = made[old_key]["id"]
    async with database.unit_of_work() as session:
        for model, column in ((WebhookDelivery, "delivered_at"), (WebhookEvent, "occurred_at")):
            await session.execute(
                update(model)
                .where(model.referral_id.in_([old_id, dead_one["id"]]))
                .values({column: long_ago})
            )
        await session.execute(
            update(IdempotencyRecord)
            .where(IdempotencyRecord.key == old_key)
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
        await session.execute(
            insert(ReferralCounter).values(
                consortium_id=made[old_key]["consortium_id"],
                day=(datetime.now(UTC) - timedelta(days=3)).date(),
                last=9,
            )
        )

    async def counts() -> dict[str, int]:
        async with database.unit_of_work(read_only=True) as session:
            out = {}
            for model in (
                WebhookDelivery,
                WebhookEvent,
                IdempotencyRecord,
                ReferralCounter,
                Referral,
                ReferralEvent,
            ):
                n = await session.scalar(select(func.count()).select_from(model))
                out[model.__tablename__] = int(n or 0)
            return out

    before = await counts()
    purged = await housekeeping_once(database, app.state.settings)
    after = await counts()
    assert (purged.webhook_deliveries, purged.idempotency_records) == (1, 1)
    assert purged.referral_counters == 1
    # the old referral's outbox rows went with their deliveries; the dead one's stay
    assert purged.webhook_events >= 1
    assert after["webhook_event"] == before["webhook_event"] - purged.webhook_events
    assert after["webhook_delivery"] == before["webhook_delivery"] - 1
    assert (await _states(database)) == {"delivered": 1, "dead": 1}
    async with database.unit_of_work(read_only=True) as session:
        left = set((await session.execute(select(WebhookEvent.referral_id))).scalars())
    assert old_id not in left and dead_one["id"] in left
    assert (after["referral"], after["referral_event"]) == (
        before["referral"],
        before["referral_event"],
    )
    # the purged key may be used again (a new referral, of another patient: the old key's
    # patient still has a live referral for this specialty); the fresh one still replays
    again = await api.create(clinic, referral_body(), key=old_key, expect=None)
    assert again.status_code == 201 and again.json()["id"] != old_id
    replay = await api.create(clinic, bodies[fresh_key], key=fresh_key, expect=None)
    assert replay.status_code == 201 and replay.json()["id"] == made[fresh_key]["id"]
    # a second run finds nothing more to do
    assert (await housekeeping_once(database, app.state.settings)).total == 0
