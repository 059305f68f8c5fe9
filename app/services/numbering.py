"""Referral numbers: `ZH-20261122-0007`, one counter per consortium and local day."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.db.repositories import referrals as repo
from app.db.repositories import registry as registry_repo
from app.domain.localtime import local_date


@dataclass(frozen=True, slots=True)
class Number:
    """A referral number taken ahead of the create, in the idempotency claim's transaction."""

    consortium_id: str
    text: str


def format_number(prefix: str, day: date, seq: int) -> str:
    """`ZH-20261122-0007`: the day is the consortium's local date of the create."""
    return f"{prefix}-{day:%Y%m%d}-{seq:04d}"


async def take_number(session: AsyncSession, institution_id: str, now: datetime) -> Number | None:
    """The next number of the day for the institution's consortium, in the short transaction
    of the idempotency claim (committed before the create's own transaction starts).

    The day's counter row is the one row every create of a consortium writes: taken inside
    the create's transaction it would stay locked until that commits, queueing all creates of
    the consortium behind each other. Here it is locked for one short transaction. A create
    that fails afterwards leaves a gap in the day's numbers (numbers stay unique and rising).
    """
    found = await registry_repo.consortium_prefix_of(session, institution_id)
    if found is None:
        return None
    consortium_id, prefix, time_zone = found
    day = local_date(now, time_zone)
    seq = await repo.next_sequence(session, consortium_id, day)
    return Number(consortium_id, format_number(prefix, day, seq))


async def number_for(
    session: AsyncSession, consortium_id: str, now: datetime, taken: Number | None
) -> str:
    """The number taken ahead if it is for this consortium, else one taken here."""
    if taken is not None and taken.consortium_id == consortium_id:
        return taken.text
    consortium = await registry_repo.get_consortium(session, consortium_id)
    assert consortium is not None
    day = local_date(now, consortium.time_zone)
    seq = await repo.next_sequence(session, consortium_id, day)
    return format_number(consortium.referral_prefix, day, seq)
