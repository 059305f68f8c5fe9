"""The target records which prior results it repeated anyway, and why (mutual recognition)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from app.db.base import utcnow
from app.db.repositories import referrals as repo
from app.domain.errors import Forbidden, InvalidInput, NotFound
from app.services import events
from app.services.access import can_see
from app.services.auth import Principal
from app.services.crypto import PatientDataProtector


@dataclass(frozen=True, slots=True)
class Repeat:
    index: int  # the position in the referral's tests_done
    reason_code: str


async def record(
    session: AsyncSession,
    protector: PatientDataProtector,
    principal: Principal,
    referral_id: str,
    repeats: Sequence[Repeat],
    *,
    user: str | None,
) -> list[dict[str, object]]:
    """Mark the repeats on the sealed tests; the referral counts those that were recognised
    (and what they cost). Marking a test again changes its reason only."""
    row = await repo.get_for_update(session, referral_id)
    if row is None or not can_see(principal, row):
        raise NotFound("No referral with this id.")
    if principal.institution_id != row.target_institution_id:
        raise Forbidden("The referral's current target records the tests it repeated.")
    sealed = protector.open(row.sensitive, associated=row.id)
    tests: list[dict[str, object]] = [dict(t) for t in sealed.get("tests_done") or []]
    bad = [
        {"loc": ["body", "items", n, "index"], "msg": "no test done with this index"}
        for n, r in enumerate(repeats)
        if not 0 <= r.index < len(tests)
    ]
    if bad:
        raise InvalidInput("The referral has no such tests done.", bad)
    now = utcnow()
    for r in repeats:
        tests[r.index]["repeated"] = {
            "reason_code": r.reason_code,
            "at": now.isoformat().replace("+00:00", "Z"),
            "by_institution_id": principal.institution_id,
        }
    sealed["tests_done"] = tests
    row.sensitive = protector.seal(sealed, associated=row.id)
    repeated = [t for t in tests if t.get("repeated") and _recognised(t)]
    row.repeated_tests = len(repeated)
    row.repeated_fen = sum(_fen(t) for t in repeated)
    row.version += 1
    row.updated_at = now
    events.record(
        session,
        row,
        "tests_repeated",
        row.status,
        at=now,
        actor_institution_id=principal.institution_id,
        actor_user=user,
        reason_code=",".join(sorted({r.reason_code for r in repeats})),
        notify=False,
    )
    return tests


def _recognised(test: dict[str, object]) -> bool:
    found = test.get("recognition")
    return isinstance(found, dict) and bool(found.get("recognised"))


def _fen(test: dict[str, object]) -> int:
    found = test.get("recognition")
    price = found.get("price_yuan") if isinstance(found, dict) else None
    return int(Decimal(str(price)) * 100) if price else 0
