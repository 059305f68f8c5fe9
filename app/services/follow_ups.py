"""Follow-up after a down-referral: visits recorded by the primary institution, the hospital
doctor's guidance, overdue visits; and the episode view."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.db.base import utcnow
from app.db.models import FollowUp, Referral
from app.db.repositories import episodes as repo
from app.db.repositories import referrals as referral_repo
from app.db.repositories import registry as registry_repo
from app.domain.enums import Role
from app.domain.errors import Conflict, Forbidden, InvalidInput, NotFound
from app.domain.localtime import DEFAULT_TIME_ZONE, today
from app.services import events
from app.services.access import can_see
from app.services.auth import Principal
from app.services.crypto import PatientDataProtector

OPEN_STATES = repo.LIVE_STATES


@dataclass(frozen=True, slots=True)
class FollowUpView:
    row: FollowUp
    content: dict[str, Any]
    overdue: bool


def _view(protector: PatientDataProtector, row: FollowUp, today: date) -> FollowUpView:
    content = protector.open(row.content, associated=row.referral_id) if row.content else {}
    overdue = row.kind == "planned" and row.done_at is None and (row.due_date or today) < today
    return FollowUpView(row, content, overdue)


async def _today(
    session: AsyncSession, *, consortium_id: str | None = None, institution_id: str | None = None
) -> date:
    """Today in the consortium's zone (of the referral, the council or the institution); the
    default zone for a caller outside any consortium (an admin's list across consortia)."""
    zone = None
    if consortium_id is not None:
        zone = await registry_repo.consortium_time_zone(session, consortium_id)
    elif institution_id is not None:
        zone = await registry_repo.institution_time_zone(session, institution_id)
    return today(utcnow(), zone or DEFAULT_TIME_ZONE)


async def _down_referral(
    session: AsyncSession, principal: Principal, referral_id: str, *, lock: bool = False
) -> Referral:
    """The visible down-referral; ``lock``: its row locked, so that a follow-up written now
    and a transition of the referral (which locks it too) happen one after the other and the
    follow-up's copy of the referral's target and state is the one that commits."""
    get = referral_repo.get_for_update if lock else referral_repo.get
    row = await get(session, referral_id)
    if row is None or not can_see(principal, row):
        raise NotFound("No referral with this id.")
    if row.direction != "down":
        raise Conflict("Follow-up belongs to down-referrals.")
    return row


async def list_follow_ups(
    session: AsyncSession, protector: PatientDataProtector, principal: Principal, referral_id: str
) -> list[FollowUpView]:
    row = await _down_referral(session, principal, referral_id)
    day = await _today(session, consortium_id=row.consortium_id)
    return [_view(protector, f, day) for f in await repo.follow_ups_of(session, row.id)]


async def record(
    session: AsyncSession,
    protector: PatientDataProtector,
    principal: Principal,
    referral_id: str,
    body: dict[str, Any],
    user: str | None,
) -> list[FollowUpView]:
    """A visit (the receiving primary institution) or guidance (the referring hospital)."""
    row = await _down_referral(session, principal, referral_id, lock=True)
    now = utcnow()
    local_today = await _today(session, consortium_id=row.consortium_id)
    kind = body["kind"]
    hands_on = principal.role in (Role.CLINIC, Role.HOSPITAL)
    if kind == "visit" and not (hands_on and principal.institution_id == row.target_institution_id):
        raise Forbidden("Visits are recorded by the primary institution following the patient.")
    if kind == "guidance" and not (
        hands_on and principal.institution_id == row.source_institution_id
    ):
        raise Forbidden("Guidance is written by the referring hospital.")
    if row.status not in OPEN_STATES:
        raise Conflict(
            "Follow-up is recorded while the down-referral is open.", current_status=row.status
        )
    if kind == "visit":
        visit_date = body["visit_date"]
        if visit_date > local_today:
            raise InvalidInput(
                "A visit cannot be in the future.",
                [{"loc": ["body", "visit_date"], "msg": "must not be in the future"}],
            )
        planned = [
            f
            for f in await repo.follow_ups_of(session, row.id)
            if f.kind == "planned" and f.done_at is None
        ]
        if planned:  # the earliest open planned visit is the one done now
            earliest = min(planned, key=lambda f: (f.due_date or date.max, f.id))
            earliest.done_at = visit_date
        content = {"findings": body.get("findings")}
        repo.add_follow_up(
            session,
            row,
            FollowUp(
                kind="visit",
                visit_date=visit_date,
                adherence=body.get("adherence"),
                content=protector.seal(content, associated=row.id),
                author_institution_id=principal.institution_id,
                author_user=user,
                created_at=now,
            ),
        )
        if body.get("next_visit"):
            repo.add_follow_up(
                session,
                row,
                FollowUp(
                    kind="planned",
                    due_date=body["next_visit"],
                    content=protector.seal({"purpose": "next visit"}, associated=row.id),
                    author_institution_id=principal.institution_id,
                    author_user=user,
                    created_at=now,
                ),
            )
    else:
        repo.add_follow_up(
            session,
            row,
            FollowUp(
                kind="guidance",
                content=protector.seal({"guidance": body.get("guidance")}, associated=row.id),
                author_institution_id=principal.institution_id,
                author_user=user,
                created_at=now,
            ),
        )
    events.record(
        session,
        row,
        f"follow_up_{kind}",
        row.status,
        at=now,
        actor_institution_id=principal.institution_id,
        actor_user=user,
    )
    await session.flush()
    return [_view(protector, f, local_today) for f in await repo.follow_ups_of(session, row.id)]


async def overdue(
    session: AsyncSession, principal: Principal, *, role: str, limit: int
) -> list[tuple[FollowUp, Referral]]:
    """Overdue planned visits: to do (the primary institution) or obligations (the hospital)."""
    day = await _today(
        session, consortium_id=principal.consortium_id, institution_id=principal.institution_id
    )
    if principal.role in (Role.CLINIC, Role.HOSPITAL):
        me = principal.institution_id
        rows = await repo.overdue(
            session,
            day,
            target_id=me if role == "receiving" else None,
            source_id=me if role == "referring" else None,
            consortium_id=None,
            limit=limit,
        )
    elif principal.role is Role.COUNCIL:
        rows = await repo.overdue(
            session,
            day,
            target_id=None,
            source_id=None,
            consortium_id=principal.consortium_id,
            limit=limit,
        )
    elif principal.role is Role.ADMIN:
        rows = await repo.overdue(
            session, day, target_id=None, source_id=None, consortium_id=None, limit=limit
        )
    else:
        raise Forbidden("Follow-up lists are for the institutions involved and the council.")
    return list(rows)


async def visible_referral(
    session: AsyncSession, principal: Principal, referral_id: str
) -> Referral:
    row = await referral_repo.get(session, referral_id)
    if row is None or not can_see(principal, row):
        raise NotFound("No referral with this id.")
    return row


async def episode(session: AsyncSession, principal: Principal, episode_id: str) -> list[Referral]:
    found = await repo.get(session, episode_id)
    chain = list(await repo.referrals_of(session, episode_id)) if found else []
    if not chain or not any(can_see(principal, r) for r in chain):
        raise NotFound("No episode with this id.")
    return chain
