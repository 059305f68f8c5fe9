"""Green channel: pathways as data, milestones timed against targets, and the figures."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.db.base import utcnow
from app.db.models import Milestone, Pathway, PathwayTarget, Referral
from app.db.repositories import pathways as repo
from app.db.repositories import referrals as referral_repo
from app.db.repositories import registry as registry_repo
from app.domain import green_channel
from app.domain.enums import Centre, Role
from app.domain.errors import Conflict, Forbidden, InvalidInput, NotFound
from app.services import events
from app.services.access import can_see
from app.services.auth import Principal

PATHWAYS_FILE = Path(__file__).resolve().parent.parent / "data" / "pathways.json"
CLOCK_SKEW = timedelta(minutes=1)
# who records which milestone: the source for its own departure, the target for the rest
SOURCE_MILESTONES = frozenset({"departed"})
AUTOMATIC_MILESTONES = frozenset({"referral_sent", "target_notified"})


async def load_pathways(session: AsyncSession, path: Path = PATHWAYS_FILE) -> int:
    """Insert the shipped pathways that are missing; never overwrite the council's targets."""
    data = json.loads(await asyncio.to_thread(path.read_text, encoding="utf-8"))
    added = 0
    for p in data["pathways"]:
        if await repo.get(session, p["code"]) is None:
            repo.add(
                session,
                Pathway(
                    code=p["code"],
                    name=p["name"],
                    centre=Centre(p["centre"]),
                    specialties=p["specialties"],
                    targets=p["targets"],
                    version=1,
                    updated_at=utcnow(),
                ),
            )
            added += 1
    await session.flush()
    return added


@dataclass(frozen=True, slots=True)
class PathwayTerms:
    """A pathway as one consortium applies it: its own targets, or the shared defaults
    (``consortium_id`` None)."""

    code: str
    name: str
    centre: Centre
    specialties: list[str]
    targets: list[dict[str, Any]]
    version: int
    updated_at: datetime
    consortium_id: str | None


def _terms(p: Pathway, own: PathwayTarget | None) -> PathwayTerms:
    if own is None:
        return PathwayTerms(
            p.code, p.name, p.centre, p.specialties, p.targets, p.version, p.updated_at, None
        )
    return PathwayTerms(
        p.code,
        p.name,
        p.centre,
        p.specialties,
        own.targets,
        own.version,
        own.updated_at,
        own.consortium_id,
    )


def _consortium_of(principal: Principal, consortium_id: str | None) -> str | None:
    """Whose targets the caller reads or writes: a council's own, an admin's choice (None:
    the shared defaults), an institution's own consortium."""
    if principal.role is Role.ADMIN:
        return consortium_id
    if consortium_id not in (None, principal.consortium_id):
        raise Forbidden("A key reads and changes its own consortium's pathway targets only.")
    return principal.consortium_id


async def list_pathways(
    session: AsyncSession, principal: Principal, consortium_id: str | None = None
) -> list[PathwayTerms]:
    consortium_id = _consortium_of(principal, consortium_id)
    own = await repo.own_targets(session, consortium_id) if consortium_id else {}
    return [_terms(p, own.get(p.code)) for p in await repo.list_all(session)]


async def for_referral(
    session: AsyncSession, code: str | None, consortium_id: str | None = None
) -> PathwayTerms | None:
    """The pathway a referral names, with the targets of the referral's consortium."""
    if code is None:
        return None
    pathway = await repo.get(session, code)
    if pathway is None:
        raise InvalidInput(
            "Unknown green-channel pathway.",
            [{"loc": ["body", "pathway"], "msg": "unknown pathway code"}],
        )
    own = await repo.own_targets(session, consortium_id, [code]) if consortium_id else {}
    return _terms(pathway, own.get(code))


async def centre_of(session: AsyncSession, code: str | None) -> Centre | None:
    pathway = await for_referral(session, code)
    return pathway.centre if pathway else None


async def update_targets(
    session: AsyncSession,
    principal: Principal,
    code: str,
    targets: list[dict[str, Any]],
    consortium_id: str | None = None,
) -> PathwayTerms:
    """A new version of the targets; referrals keep the version they were created with.

    A council changes its own consortium's targets (the first change starts them from the
    shared defaults); an admin changes the shared defaults, or a named consortium's."""
    if principal.role not in (Role.COUNCIL, Role.ADMIN):
        raise Forbidden("Pathway targets are changed by a council or an admin.")
    consortium_id = _consortium_of(principal, consortium_id)
    if principal.role is Role.COUNCIL and consortium_id is None:
        raise Forbidden("This council key belongs to no consortium.")
    pathway = await repo.get(session, code)
    if pathway is None:
        raise NotFound("No pathway with this code.")
    known = set(green_channel.MILESTONES)
    bad = [i for i, t in enumerate(targets) if t["from"] not in known or t["to"] not in known]
    if bad:
        raise InvalidInput(
            "Targets must run between known milestones.",
            [{"loc": ["body", "targets", i], "msg": "unknown milestone"} for i in bad],
        )
    now = utcnow()
    if consortium_id is None:
        pathway.targets = targets
        pathway.version += 1
        pathway.updated_at = now
        await session.flush()
        return _terms(pathway, None)
    if not await registry_repo.get_consortium(session, consortium_id):
        raise NotFound("No consortium with this id.")
    own = await repo.own_target_for_update(session, code, consortium_id)
    if own is None:  # versions go on from the defaults' version this consortium had
        own = PathwayTarget(
            pathway_code=code,
            consortium_id=consortium_id,
            targets=targets,
            version=pathway.version + 1,
            updated_at=now,
        )
        repo.add_own_target(session, own)
    else:
        own.targets, own.version, own.updated_at = targets, own.version + 1, now
    await session.flush()
    return _terms(pathway, own)


async def on_green_channel_created(
    session: AsyncSession, row: Referral, source_id: str, user: str | None, now: datetime
) -> None:
    """The referral was sent and its target notified: the first two milestones."""
    for code in ("referral_sent", "target_notified"):
        if code == "target_notified" and row.target_institution_id is None:
            continue
        repo.add_milestone(
            session,
            Milestone(
                referral_id=row.id,
                code=code,
                at=now,
                recorded_by=source_id,
                recorded_user=user,
                recorded_at=now,
            ),
        )
    if row.target_institution_id is not None:
        events.record(
            session,
            row,
            "target_notified",
            row.status,
            at=now,
            reason="Green channel: the target is told before the patient arrives.",
        )


@dataclass(frozen=True, slots=True)
class MilestoneView:
    pathway_code: str
    pathway_version: int | None
    milestones: dict[str, datetime]
    targets: list[green_channel.TargetResult]
    overflow: bool


async def _green_referral(
    session: AsyncSession, principal: Principal, referral_id: str
) -> Referral:
    row = await referral_repo.get(session, referral_id)
    if row is None or not can_see(principal, row):
        raise NotFound("No referral with this id.")
    if row.pathway_code is None:
        raise Conflict("This referral is not on a green-channel pathway.")
    return row


async def milestones(
    session: AsyncSession, principal: Principal, referral_id: str
) -> MilestoneView:
    row = await _green_referral(session, principal, referral_id)
    return await _view(session, row)


async def _view(session: AsyncSession, row: Referral) -> MilestoneView:
    recorded = {m.code: m.at for m in await repo.milestones_of(session, row.id)}
    assert row.pathway_code is not None
    return MilestoneView(
        row.pathway_code,
        row.pathway_version,
        recorded,
        green_channel.evaluate(row.pathway_targets or [], recorded, utcnow()),
        row.overflow,
    )


async def record_milestone(
    session: AsyncSession,
    principal: Principal,
    referral_id: str,
    code: str,
    at: datetime,
    user: str | None,
) -> MilestoneView:
    row = await _green_referral(session, principal, referral_id)
    now = utcnow()
    if code in AUTOMATIC_MILESTONES:
        raise InvalidInput(
            "This milestone is recorded by the service itself.",
            [{"loc": ["body", "milestone"], "msg": "recorded automatically"}],
        )
    if at > now + CLOCK_SKEW:
        raise InvalidInput(
            "A milestone cannot be in the future.",
            [{"loc": ["body", "at"], "msg": "must not be in the future"}],
        )
    if at < row.created_at - timedelta(hours=24):
        raise InvalidInput(
            "A milestone cannot be long before the referral was sent.",
            [{"loc": ["body", "at"], "msg": "more than 24 h before the referral"}],
        )
    expected = row.source_institution_id if code in SOURCE_MILESTONES else row.target_institution_id
    if principal.role not in (Role.CLINIC, Role.HOSPITAL) or principal.institution_id != expected:
        who = "the source" if code in SOURCE_MILESTONES else "the current target"
        raise Forbidden(f"This milestone is recorded by {who}.")
    if await repo.get_milestone(session, row.id, code) is not None:
        raise Conflict("This milestone is already recorded.")
    repo.add_milestone(
        session,
        Milestone(
            referral_id=row.id,
            code=code,
            at=at,
            recorded_by=principal.institution_id,
            recorded_user=user,
            recorded_at=now,
        ),
    )
    events.record(
        session,
        row,
        "milestone",
        row.status,
        at=now,
        actor_institution_id=principal.institution_id,
        actor_user=user,
        reason=code,
        reason_code=code,
    )
    await session.flush()
    return await _view(session, row)
