"""Push notifications to HIS systems: signed webhooks through a transactional outbox.

This module manages subscriptions, their secrets (sealed with AES-GCM at rest) and the
signature; the outbox rows are written by ``webhook_events``, delivered by ``relay``, and the
delivery log and replays are ``webhook_deliveries``.
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
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.db.base import new_id, utcnow
from app.db.repositories import webhooks as repo
from app.db.webhook_models import WebhookSubscription
from app.domain.enums import Role
from app.domain.errors import Forbidden, InvalidInput, NotFound
from app.services import registry as registry_service
from app.services.auth import Principal
from app.services.egress import EgressDenied, EgressPolicy, Resolver, default_port, system_resolve
from app.services.webhook_events import WebhookEventType

SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret
SECRET_BYTES = 32
SEALED_VERSION = "v1"
MANAGERS = frozenset({Role.CLINIC, Role.HOSPITAL, Role.COUNCIL, Role.ADMIN})


class SecretBox:
    """Seals secrets at rest with AES-GCM: webhook subscription secrets, and (with their own
    ``label``) the insurance gateways' tokens.

    The key is derived from ``REFERRAL_PATIENT_DATA_KEY`` for one purpose only (HMAC-SHA256
    with the label), and the owner's id (``subscription_id``: the subscription, or the
    consortium of a gateway) is the associated data.
    """

    def __init__(self, data_secret: bytes, label: bytes = b"webhook-secret") -> None:
        key = hmac.new(data_secret, b"referral-service:" + label, hashlib.sha256).digest()
        self._aead = AESGCM(key)

    @classmethod
    def of(cls, settings: Settings, label: bytes = b"webhook-secret") -> SecretBox:
        return cls(settings.secret("patient_data_key"), label)

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


async def owned(
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


async def check_url(url: str, settings: Settings, resolver: Resolver) -> None:
    """An outbound endpoint (webhook or insurance gateway): https (http in demo mode), a host,
    no credentials or fragment, and a destination the egress policy allows; else 422 naming
    ``url``."""
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
    await check_url(url, settings, resolver)
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
    return await owned(session, principal, subscription_id)


async def delete_subscription(
    session: AsyncSession, principal: Principal, subscription_id: str
) -> None:
    """Deletes the subscription with its delivery log; nothing more is sent to it."""
    row = await owned(session, principal, subscription_id, lock=True)
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
    row = await owned(session, principal, subscription_id, lock=True)
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
