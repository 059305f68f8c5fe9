"""API keys: creation, hashing and lookup; the caller's identity (Principal)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from app.db.repositories import api_keys as repo
from app.domain.enums import Role

KEY_PREFIX = "rsk"


@dataclass(frozen=True, slots=True)
class Principal:
    key_id: str
    role: Role
    institution_id: str | None
    consortium_id: str | None
    name: str


@dataclass(frozen=True, slots=True)
class IssuedKey:
    key_id: str
    key: str
    prefix: str


class PrincipalCache:
    """Keys seen recently, so most requests skip the key lookup (revocation takes ``ttl``)."""

    def __init__(self, ttl_seconds: float = 30.0, max_entries: int = 10_000) -> None:
        self.ttl = ttl_seconds
        self.max_entries = max_entries
        self._entries: dict[str, tuple[float, Principal]] = {}

    def get(self, key: str) -> Principal | None:
        entry = self._entries.get(hashlib.sha256(key.encode()).hexdigest())
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def put(self, key: str, principal: Principal) -> None:
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        digest = hashlib.sha256(key.encode()).hexdigest()
        self._entries[digest] = (time.monotonic() + self.ttl, principal)


def hash_key(key: str, pepper: bytes) -> str:
    return hmac.new(pepper, key.encode(), hashlib.sha256).hexdigest()


def _compose(prefix: str, secret: str) -> str:
    return f"{KEY_PREFIX}_{prefix}_{secret}"


def split_key(key: str) -> tuple[str, str] | None:
    parts = key.split("_")
    if len(parts) != 3 or parts[0] != KEY_PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


def derive_demo_key(seed: bytes, name: str) -> tuple[str, str]:
    """Deterministic demo key material, so demo keys survive restarts (demo mode only)."""
    digest = hmac.new(seed, b"demo-api-key:" + name.encode(), hashlib.sha256).digest()
    text = base64.b32encode(digest).decode().rstrip("=").lower()
    return text[:10], text[10:42]


async def issue_key(
    session: AsyncSession,
    *,
    pepper: bytes,
    name: str,
    role: Role,
    institution_id: str | None,
    consortium_id: str | None,
    material: tuple[str, str] | None = None,
) -> IssuedKey:
    prefix, secret = material or (secrets.token_hex(5), secrets.token_urlsafe(24).replace("_", "-"))
    key = _compose(prefix, secret)
    existing = await repo.get_by_prefix(session, prefix)
    if existing is not None:
        return IssuedKey(key_id=existing.id, key=key, prefix=prefix)
    row = await repo.add(
        session,
        prefix=prefix,
        key_hash=hash_key(key, pepper),
        name=name,
        role=role,
        institution_id=institution_id,
        consortium_id=consortium_id,
    )
    return IssuedKey(key_id=row.id, key=key, prefix=prefix)


async def authenticate(session: AsyncSession, key: str, pepper: bytes) -> Principal | None:
    parts = split_key(key)
    if parts is None:
        return None
    row = await repo.get_by_prefix(session, parts[0])
    if row is None or row.revoked_at is not None:
        return None
    if not hmac.compare_digest(row.key_hash, hash_key(key, pepper)):
        return None
    return Principal(
        key_id=row.id,
        role=row.role,
        institution_id=row.institution_id,
        consortium_id=row.consortium_id,
        name=row.name,
    )
