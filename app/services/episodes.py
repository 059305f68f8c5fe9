"""Episodes: one patient's chain of referrals in one consortium (up, down, escalation)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Episode
from app.db.repositories import episodes as episode_repo
from app.domain.errors import InvalidInput


async def open_or_join(
    session: AsyncSession,
    episode_id: str | None,
    consortium_id: str,
    resident_hmac: str,
    now: datetime,
) -> str:
    """Join the named episode (same patient, same consortium) or open a new one."""
    if episode_id is not None:
        episode = await episode_repo.get(session, episode_id)
        if (
            episode is None
            or episode.consortium_id != consortium_id
            or episode.resident_id_hmac != resident_hmac
        ):
            raise InvalidInput(
                "The episode does not exist or belongs to another patient or consortium.",
                [{"loc": ["body", "episode_id"], "msg": "not an episode of this patient"}],
            )
        return episode.id
    episode = Episode(consortium_id=consortium_id, resident_id_hmac=resident_hmac, opened_at=now)
    episode_repo.add(session, episode)
    await session.flush()
    return episode.id
