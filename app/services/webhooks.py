"""Push notifications to HIS systems: signed webhooks through a transactional outbox.

``enqueue`` runs inside the transaction of every referral change (through
``app.services.events.record``) and only adds an outbox row: the event, its thin payload
and the institutions concerned. The relay (``app.services.relay``) fans the rows out to the
matching subscriptions and delivers them. This module also manages subscriptions, their
secrets (sealed with AES-GCM at rest), the delivery log and replays.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.db.base import new_id, utcnow
from app.db.models import Referral
from app.db.repositories import webhooks as repo
from app.db.webhook_models import WebhookDelivery, WebhookEvent, WebhookSubscription
from app.domain.enums import Role
from app.domain.errors import Conflict, Forbidden, InvalidInput, NotFound
from app.services import registry as registry_service
from app.services.auth import Principal
from app.services.egress import EgressDenied, EgressPolicy, Resolver, default_port, system_resolve

SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret
SECRET_BYTES = 32
SEALED_VERSION = "v1"
MANAGERS = frozenset({Role.CLINIC, Role.HOSPITAL, Role.COUNCIL, Role.ADMIN})


class WebhookEventType(StrEnum):
    """The event types a subscription can ask for."""

    CREATED = "referral.created"
    ROUTED = "referral.routed"
    ACCEPTED = "referral.accepted"
    REJECTED = "referral.rejected"
    REROUTED = "referral.rerouted"
    EXPIRED = "referral.expired"
    WAITLISTED = "referral.waitlisted"
    ARRIVED = "referral.arrived"
    ADMITTED = "referral.admitted"
    SEEN = "referral.seen"
    COMPLETED = "referral.completed"
    CANCELLED = "referral.cancelled"
    NO_SHOW = "referral.no_show"
    MILESTONE = "referral.milestone"
    FOLLOW_UP_DUE = "referral.follow_up_due"


# internal event types (referral_event.type) whose public name is not "referral.<type>"
_PUBLIC_NAMES = {"target_notified": WebhookEventType.MILESTONE.value}


def public_type(internal: str) -> str:
    """The webhook type of an internal event type: ``accepted`` → ``referral.accepted``."""
    return _PUBLIC_NAMES.get(internal, f"referral.{internal}")


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def enqueue(
    session: AsyncSession,
    row: Referral,
    event_type: str,
    at: datetime,
    *,
    previous_target: str | None = None,
) -> None:
    """Queue the event for the institutions concerned, in the caller's transaction.

    Recipients: the source, the current target and, on a re-route, the previous target.
    The payload is thin on purpose (no patient data): receivers fetch details with their key.
    """
    candidates = (row.source_institution_id, row.target_institution_id, previous_target)
    recipients = list(dict.fromkeys(i for i in candidates if i))
    event_id = new_id()
    type_ = public_type(event_type)
    payload: dict[str, Any] = {
        "id": event_id,
        "type": type_,
        "timestamp": _iso(at),
        "data": {"referral_id": row.id, "number": row.number, "status": row.status},
    }
    repo.add_event(
        session,
        WebhookEvent(
            id=event_id,
            referral_id=row.id,
            type=type_,
            payload=payload,
            recipients=recipients,
            occurred_at=at,
        ),
    )


# --- secrets and signatures --------------------------------------------------------------


class SecretBox:
    """Seals subscription secrets at rest with AES-GCM.

    The key is derived from ``REFERRAL_PATIENT_DATA_KEY`` for this purpose only (HMAC-SHA256
    with its own label), and the subscription id is the associated data.
    """

    def __init__(self, data_secret: bytes) -> None:
        key = hmac.new(data_secret, b"referral-service:webhook-secret", hashlib.sha256).digest()
        self._aead = AESGCM(key)

    @classmethod
    def of(cls, settings: Settings) -> SecretBox:
        return cls(settings.secret("patient_data_key"))

    def seal(self, secret: str, *, subscription_id: str) -> str:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, secret.encode(), subscription_id.encode())
        return f"{SEALED_VERSION}.{base64.b64encode(nonce + sealed).decode()}"

    def open(self, token: str, *, subscription_id: str) -> str:
        version, _, body = token.partition(".")
        if version != SEALED_VERSION:
            raise ValueError("unknown sealed-secret version")
        raw = base64.b64decode(body)
        try:
            return self._aead.decrypt(raw[:12], raw[12:], subscription_id.encode()).decode()
        except InvalidTag as exc:
            raise ValueError("the secret cannot be opened with this key") from exc


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_…`` secret: its base64-decoded bytes."""
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def body_of(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def signature(keys: Sequence[bytes], msg_id: str, timestamp: int, body: bytes) -> str:
    """``webhook-signature``: one ``v1,<base64 HMAC-SHA256>`` per key, space-separated."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return " ".join(
        "v1," + base64.b64encode(hmac.new(k, signed, hashlib.sha256).digest()).decode()
        for k in keys
    )


# --- subscriptions -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IssuedSecret:
    subscription: WebhookSubscription
    secret: str


async def _may_manage(session: AsyncSession, principal: Principal, institution_id: str) -> bool:
    if principal.role is Role.ADMIN:
        return True
    if principal.role in (Role.CLINIC, Role.HOSPITAL):
        return principal.institution_id == institution_id
    if principal.role is Role.COUNCIL:
        found, consortium_id = await repo.institution_consortium(session, institution_id)
        return found and consortium_id is not None and consortium_id == principal.consortium_id
    return False


async def _owned(
    session: AsyncSession, principal: Principal, subscription_id: str, *, lock: bool = False
) -> WebhookSubscription:
    """The subscription, if the caller manages it; otherwise the same 404 as a missing id."""
    if lock:
        row = await repo.get_subscription_for_update(session, subscription_id)
    else:
        row = await repo.get_subscription(session, subscription_id)
    if row is None or not await _may_manage(session, principal, row.institution_id):
        raise NotFound("No webhook subscription with this id.")
    return row


async def _check_url(url: str, settings: Settings, resolver: Resolver) -> None:
    demo_mode = settings.demo_mode

    def invalid(msg: str) -> InvalidInput:
        return InvalidInput(
            "The endpoint URL cannot be used.", [{"loc": ["body", "url"], "msg": msg}]
        )

    try:
        parts = urlsplit(url)
        _ = parts.port
    except ValueError as exc:
        raise invalid("not a valid URL") from exc
    if parts.scheme != "https" and not (demo_mode and parts.scheme == "http"):
        raise invalid("must be an https URL" + ("" if demo_mode else " (http only in demo mode)"))
    if not parts.hostname:
        raise invalid("must name a host")
    if parts.username or parts.password:
        raise invalid("must not carry credentials")
    if parts.fragment:
        raise invalid("must not have a fragment")
    policy = EgressPolicy.of(settings.webhook_allow)
    try:
        await policy.pick(parts.hostname, parts.port or default_port(parts.scheme), resolver)
    except EgressDenied as exc:
        if exc.reason == "dns":
            raise invalid("the host name does not resolve") from None
        raise invalid(
            "must reach a public address (private, loopback, link-local and similar "
            "destinations need the operator's REFERRAL_WEBHOOK_ALLOW)"
        ) from None


async def create_subscription(
    session: AsyncSession,
    settings: Settings,
    principal: Principal,
    *,
    url: str,
    event_types: Sequence[WebhookEventType],
    description: str | None,
    institution_id: str | None,
    resolver: Resolver = system_resolve,
) -> IssuedSecret:
    if principal.role not in MANAGERS:
        raise Forbidden("Webhook subscriptions need a clinic, hospital, council or admin key.")
    if principal.role in (Role.CLINIC, Role.HOSPITAL):
        if institution_id not in (None, principal.institution_id):
            raise Forbidden("A clinic or hospital key subscribes for its own institution only.")
        institution_id = principal.institution_id
    if institution_id is None:
        raise InvalidInput(
            "Name the institution the subscription is for.",
            [{"loc": ["body", "institution_id"], "msg": "required for council and admin keys"}],
        )
    found, consortium_id = await repo.institution_consortium(session, institution_id)
    if not found:
        raise InvalidInput(
            "No institution with this id.",
            [{"loc": ["body", "institution_id"], "msg": "unknown institution"}],
        )
    if principal.role is Role.COUNCIL and consortium_id != principal.consortium_id:
        raise Forbidden("A council key manages subscriptions of its own consortium's members.")
    await _check_url(url, settings, resolver)
    now = utcnow()
    secret = new_secret()
    subscription_id = new_id()
    row = WebhookSubscription(
        id=subscription_id,
        institution_id=institution_id,
        url=url,
        event_types=[str(t) for t in dict.fromkeys(event_types)],
        description=description,
        secret_sealed=SecretBox.of(settings).seal(secret, subscription_id=subscription_id),
        created_by_key_id=principal.key_id,
        created_at=now,
        updated_at=now,
    )
    repo.add_subscription(session, row)
    await session.flush()
    return IssuedSecret(row, secret)


async def list_subscriptions(
    session: AsyncSession,
    principal: Principal,
    *,
    institution_id: str | None,
    after: str | None,
    limit: int,
) -> Sequence[WebhookSubscription]:
    institution_id = await registry_service.institution_ref(session, institution_id)
    consortium_id = None
    if principal.role in (Role.CLINIC, Role.HOSPITAL):
        if institution_id not in (None, principal.institution_id):
            return []
        institution_id = principal.institution_id
    elif principal.role is Role.COUNCIL:
        consortium_id = principal.consortium_id
    elif principal.role is not Role.ADMIN:
        raise Forbidden("Webhook subscriptions need a clinic, hospital, council or admin key.")
    return await repo.list_subscriptions(
        session,
        institution_id=institution_id,
        consortium_id=consortium_id,
        after=after,
        limit=limit,
    )


async def get_subscription(
    session: AsyncSession, principal: Principal, subscription_id: str
) -> WebhookSubscription:
    return await _owned(session, principal, subscription_id)


async def delete_subscription(
    session: AsyncSession, principal: Principal, subscription_id: str
) -> None:
    """Deletes the subscription with its delivery log; nothing more is sent to it."""
    row = await _owned(session, principal, subscription_id, lock=True)
    await repo.delete_subscription(session, row)


async def rotate_secret(
    session: AsyncSession,
    settings: Settings,
    principal: Principal,
    subscription_id: str,
    *,
    overlap: timedelta,
) -> IssuedSecret:
    """A new secret; the current one keeps signing too until the overlap ends."""
    row = await _owned(session, principal, subscription_id, lock=True)
    now = utcnow()
    secret = new_secret()
    if overlap > timedelta(0):
        row.previous_secret_sealed = row.secret_sealed
        row.previous_secret_expires_at = now + overlap
    else:
        row.previous_secret_sealed = None
        row.previous_secret_expires_at = None
    row.secret_sealed = SecretBox.of(settings).seal(secret, subscription_id=row.id)
    row.secret_rotated_at = now
    row.updated_at = now
    await session.flush()
    return IssuedSecret(row, secret)


# --- delivery log and replays ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeliveryView:
    delivery: WebhookDelivery
    event: WebhookEvent


async def list_deliveries(
    session: AsyncSession,
    principal: Principal,
    subscription_id: str,
    *,
    state: str | None,
    before: str | None,
    limit: int,
) -> list[DeliveryView]:
    await _owned(session, principal, subscription_id)
    rows = await repo.list_deliveries(
        session, subscription_id, state=state, before=before, limit=limit
    )
    return [DeliveryView(d, e) for d, e in rows]


async def replay_delivery(
    session: AsyncSession,
    settings: Settings,
    principal: Principal,
    subscription_id: str,
    delivery_id: str,
) -> DeliveryView:
    """Send a dead (or delivered) delivery again, same webhook-id, with a new give-up time."""
    await _owned(session, principal, subscription_id, lock=True)
    row = await repo.get_delivery(session, subscription_id, delivery_id)
    if row is None:
        raise NotFound("No delivery with this id for this subscription.")
    if row.state == repo.PENDING:
        raise Conflict("The delivery is still pending; it is retried on its own.")
    now = utcnow()
    row.state = repo.PENDING
    row.attempts = 0
    row.next_attempt_at = now
    row.give_up_at = now + timedelta(seconds=settings.webhook_give_up_after_seconds)
    row.delivered_at = row.dead_at = None
    await session.flush()
    event = (await repo.events_by_seq(session, [row.event_seq]))[row.event_seq]
    return DeliveryView(row, event)


async def replay_dead(
    session: AsyncSession, settings: Settings, principal: Principal, subscription_id: str
) -> int:
    """Every dead-lettered delivery of the subscription goes back to pending, in event order."""
    await _owned(session, principal, subscription_id, lock=True)
    now = utcnow()
    give_up_at = now + timedelta(seconds=settings.webhook_give_up_after_seconds)
    return await repo.replay_dead(session, subscription_id, now, give_up_at)
