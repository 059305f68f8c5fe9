"""Many referrals written straight into the tables (PostgreSQL), for worklist plans and benches.

One SQL statement per table (``INSERT ... SELECT`` over ``generate_series``): a million
referrals, each with a routing attempt and two events, in about a minute. The rows carry no
patient data (``sensitive`` is a placeholder no key opens); only the worklist columns are
realistic: the consortium's members as sources and targets with the lead hospital as the
busiest target (``busiest_share``), statuses weighted toward closed referrals as years of
history are, priorities and urgencies as the service sets them, creation times spread over
``days`` days before ``until``. Patients come back: referral ``g`` is patient ``g % patients``'s;
a repeat whose patient already has a live one (the rule of one live up-referral per patient and
specialty, ``uq_referral_live_need``) is marked as a duplicate (``duplicate_reason``
``before_check``, as migration 0027 marks the history stored before the rule).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Consortium, Institution

STATUSES = (
    # (status, weight): closed referrals dominate a table that holds years of history
    ("completed", 70),
    ("cancelled", 6),
    ("rejected", 4),
    ("expired", 3),
    ("no_show", 2),
    ("admitted", 5),
    ("accepted", 4),
    ("arrived", 2),
    ("pending", 3),
    ("waitlisted", 1),
)
#: the statuses that close an up-referral: every other one is live (uq_referral_live_need)
CLOSED = ("completed", "cancelled", "no_show")
PATIENTS = 400_000  # referral g is patient g % PATIENTS's: a million referrals, repeat patients


@dataclass(frozen=True, slots=True)
class Generated:
    consortium_id: str
    busiest_id: str  # the lead hospital: the target of most referrals
    small_id: str  # a small hospital: the target of few
    clinic_ids: list[str]
    referrals: int


def _array(values: list[str]) -> str:
    return "ARRAY[" + ",".join(f"'{v}'" for v in values) + "]::varchar[]"


def _uniform(salt: str, column: str) -> str:
    """A deterministic uniform number in [0, 1) from ``column`` (repeatable data)."""
    return (
        f"((('x' || substr(md5('{salt}' || {column}), 1, 8))::bit(32)::bigint & 2147483647)"
        " / 2147483648.0)"
    )


def _status_case(column: str) -> str:
    total = sum(w for _, w in STATUSES)
    parts, acc = [], 0
    for status, weight in STATUSES:
        acc += weight
        parts.append(f"WHEN {column} < {acc / total:.4f} THEN '{status}'")
    return "CASE " + " ".join(parts) + " END"


async def generate(
    session: AsyncSession,
    consortium_code: str,
    n: int,
    *,
    busiest_share: float = 0.6,
    days: int = 1460,
    until: datetime | None = None,
    patients: int = PATIENTS,
) -> Generated:
    cons = (
        await session.execute(
            text("SELECT id FROM consortium WHERE code = :c"), {"c": consortium_code}
        )
    ).scalar_one()
    rows = (
        await session.execute(
            text(
                "SELECT id, level, is_lead FROM institution WHERE consortium_id = :c ORDER BY code"
            ),
            {"c": cons},
        )
    ).all()
    hospitals = [r.id for r in rows if r.level in ("secondary", "tertiary")]
    lead = next(r.id for r in rows if r.is_lead)
    others = [h for h in hospitals if h != lead]
    clinics = [r.id for r in rows if r.level in ("primary", "village")]
    small = others[-1]
    end = until or datetime.now(UTC)
    closed = ", ".join(f"'{c}'" for c in CLOSED)
    # a repeat is a duplicate when an earlier referral of its patient (g - patients, ...) is live
    duplicate = (
        f"CASE WHEN s.status NOT IN ({closed}) AND EXISTS ("
        f"SELECT 1 FROM generate_series(g - {int(patients)}, 1, {-int(patients)}) AS j "
        f"WHERE {_status_case(_uniform('s', 'j'))} NOT IN ({closed})"
        ") THEN 'before_check' END"
    )
    await session.execute(
        text(
            f"""
            INSERT INTO referral (
                id, number, consortium_id, direction, status, source_institution_id,
                target_institution_id, out_of_consortium, specialty_code, care_type, urgency,
                insurance_scheme, diagnosis_code, patient_sex, patient_birth_date,
                resident_id_hmac, sensitive, priority, version, created_at, updated_at,
                signed_institution_ids, declined_institution_ids, overflow, reason,
                duplicate_reason
            )
            SELECT
                md5('r' || g)::uuid::text,
                'WL-' || lpad(g::text, 9, '0'),
                :cons,
                'up',
                s.status,
                ({_array(clinics)})[1 + (g % {len(clinics)})],
                CASE WHEN s.status = 'waitlisted' THEN NULL
                     WHEN s.u2 < :busiest THEN :lead
                     ELSE ({_array(others)})[1 + (g % {len(others)})] END,
                false,
                '03',
                'inpatient',
                CASE WHEN g % 20 = 0 THEN 'emergency' WHEN g % 5 = 0 THEN 'urgent'
                     ELSE 'routine' END,
                '390',
                'I63.9',
                CASE WHEN g % 2 = 0 THEN '2' ELSE '1' END,
                DATE '1950-01-01' + (g % 20000),
                md5('h' || (g % {int(patients)})),
                'generated',
                CASE WHEN g % 97 = 0 THEN 0 WHEN g % 20 = 0 THEN 1 WHEN g % 5 = 0 THEN 2
                     ELSE 3 END,
                1,
                s.at,
                s.at,
                '[]',
                '[]',
                false,
                'outside_primary_scope',
                {duplicate}
            FROM generate_series(1, :n) AS g
            CROSS JOIN LATERAL (
                SELECT {_status_case(_uniform("s", "g"))} AS status,
                       {_uniform("t", "g")} AS u2,
                       CAST(:end AS timestamptz)
                           - ({_uniform("d", "g")} * :days) * interval '1 day' AS at
            ) AS s
            """
        ),
        {"cons": cons, "lead": lead, "busiest": busiest_share, "n": n, "end": end, "days": days},
    )
    await session.execute(
        text(
            """
            INSERT INTO routing_attempt (id, referral_id, attempt, outcome,
                                         target_institution_id, decision, created_at)
            SELECT md5('a' || r.id)::uuid::text, r.id, 1, 'routed', r.target_institution_id,
                   '{}', r.created_at
            FROM referral r WHERE r.consortium_id = :cons AND r.number LIKE 'WL-%'
            """
        ),
        {"cons": cons},
    )
    await session.execute(
        text(
            """
            INSERT INTO referral_event (id, referral_id, type, from_status, to_status,
                                        actor_institution_id, target_institution_id, at)
            SELECT md5(k || r.id)::uuid::text, r.id,
                   CASE WHEN k = 'c' THEN 'created' ELSE 'transition' END,
                   CASE WHEN k = 'c' THEN NULL ELSE 'pending' END,
                   CASE WHEN k = 'c' THEN 'pending' ELSE r.status END,
                   r.source_institution_id, r.target_institution_id,
                   r.created_at + CASE WHEN k = 'c' THEN interval '0' ELSE interval '1 hour' END
            FROM referral r CROSS JOIN (VALUES ('c'), ('t')) AS e(k)
            WHERE r.consortium_id = :cons AND r.number LIKE 'WL-%'
            """
        ),
        {"cons": cons},
    )
    return Generated(cons, lead, small, clinics, n)


__all__ = ["Consortium", "Generated", "Institution", "generate"]
