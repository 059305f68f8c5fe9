"""What a use case needs of the request that runs it: its unit of work and its caller."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.db.session import Database
from app.services.auth import Principal
from app.services.crypto import PatientDataProtector


@dataclass(frozen=True, slots=True)
class Context:
    session: AsyncSession  # the request's unit of work (committed by the request dependency)
    database: Database  # for the few steps that need a transaction of their own
    settings: Settings
    protector: PatientDataProtector
    principal: Principal
    path: str = ""  # the request path: part of an idempotency key's request hash
    root_path: str = ""  # the gateway's prefix, for Location headers
