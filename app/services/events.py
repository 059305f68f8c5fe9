"""One way to record what happened to a referral: the audit event and its notifications.

Every event row is written in the caller's transaction together with its outbox messages,
so a change, its audit trail and its webhooks are stored (or rolled back) together.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Referral
from app.db.repositories import referrals as repo
from app.services import webhook_events as webhooks


def record(
    session: AsyncSession,
    row: Referral,
    type_: str,
    from_status: str | None,
    *,
    at: datetime,
    actor_institution_id: str | None = None,
    actor_user: str | None = None,
    reason: str | None = None,
    reason_code: str | None = None,
    previous_target: str | None = None,
    notify: bool = True,
) -> None:
    """Append the event; ``notify`` False keeps an internal record out of the webhooks."""
    repo.add_event(
        session,
        referral_id=row.id,
        type=type_,
        from_status=from_status,
        to_status=row.status,
        actor_institution_id=actor_institution_id,
        actor_user=actor_user,
        reason=reason,
        reason_code=reason_code,
        target_institution_id=row.target_institution_id,
        at=at,
    )
    if notify:
        webhooks.enqueue(session, row, type_, at, previous_target=previous_target)
