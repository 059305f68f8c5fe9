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

:func:`generate_follow_ups` adds down-referrals (hospitals to primary institutions, one clinic
the target of most, one of very few) with three planned visits and one piece of guidance
each: the referrals still followed up are recent and half of their past visits are done,
closed ones are years old and a fifth of their visits were never made (open planned visits
that no overdue list shows).
"""

from __future__ import annotations

import hashlib
import uuid
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
CLOSED = ("completed", "cancelled", "no_show", "rejected", "expired")
PATIENTS = 400_000  # referral g is patient g % PATIENTS's: a million referrals, repeat patients


@dataclass(frozen=True, slots=True)
class Generated:
    consortium_id: str
    busiest_id: str  # the lead hospital: the target of most referrals
    small_id: str  # a small hospital: the target of few
    clinic_ids: list[str]
    referrals: int
    other_hospital_ids: list[str]  # every hospital but the lead


def _array(values: list[str]) -> str:
    return "ARRAY[" + ",".join(f"'{v}'" for v in values) + "]::varchar[]"


def _uniform(salt: str, column: str) -> str:
    """A deterministic uniform number in [0, 1) from ``column`` (repeatable data)."""
    return (
        f"((('x' || substr(md5('{salt}' || {column}), 1, 8))::bit(32)::bigint & 2147483647)"
        " / 2147483648.0)"
    )


def _status_case(column: str, statuses: tuple[tuple[str, int], ...] = STATUSES) -> str:
    total = sum(w for _, w in statuses)
    parts, acc = [], 0
    for status, weight in statuses:
        acc += weight
        parts.append(f"WHEN {column} < {acc / total:.4f} THEN '{status}'")
    return "CASE " + " ".join(parts) + " END"


async def members(session: AsyncSession, consortium_code: str, n: int = 0) -> Generated:
    """The consortium's institutions in the roles the generated rows give them."""
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
    return Generated(cons, lead, others[-1], clinics, n, others)


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
    m = await members(session, consortium_code, n)
    cons, lead, clinics, others = m.consortium_id, m.busiest_id, m.clinic_ids, m.other_hospital_ids
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
    return m


DOWN_STATUSES = (
    ("completed", 70),
    ("cancelled", 5),
    ("rejected", 3),
    ("expired", 2),
    ("in_follow_up", 10),
    ("accepted", 4),
    ("arrived", 2),
    ("pending", 3),
    ("waitlisted", 1),
)
CLOSED_SQL = "(" + ", ".join(f"'{c}'" for c in CLOSED) + ")"
LIVE = "('accepted', 'arrived', 'in_follow_up')"


@dataclass(frozen=True, slots=True)
class GeneratedFollowUps:
    busiest_clinic_id: str  # the target of most down-referrals
    small_clinic_id: str  # the target of very few
    down_referrals: int
    follow_ups: int


async def generate_follow_ups(
    session: AsyncSession,
    gen: Generated,
    n: int,
    *,
    busiest_share: float = 0.4,
    small_share: float = 0.005,
    days: int = 1460,
    recent_days: int = 180,
    until: datetime | None = None,
) -> GeneratedFollowUps:
    """``n`` down-referrals of ``gen``'s consortium with four follow-up rows each."""
    others = gen.other_hospital_ids
    busy, small = gen.clinic_ids[0], gen.clinic_ids[-1]
    rest = gen.clinic_ids[1:-1]
    end = until or datetime.now(UTC)
    await session.execute(
        text(
            f"""
            INSERT INTO referral (
                id, number, consortium_id, direction, status, source_institution_id,
                target_institution_id, out_of_consortium, specialty_code, care_type, urgency,
                insurance_scheme, diagnosis_code, patient_sex, patient_birth_date,
                resident_id_hmac, sensitive, priority, version, created_at, updated_at,
                signed_institution_ids, declined_institution_ids, overflow
            )
            SELECT
                md5('d' || g)::uuid::text,
                'WD-' || lpad(g::text, 9, '0'),
                :cons,
                'down',
                s.status,
                CASE WHEN s.u3 < 0.6 THEN :lead
                     ELSE ({_array(others)})[1 + (g % {len(others)})] END,
                CASE WHEN s.status = 'waitlisted' THEN NULL
                     WHEN s.u2 < :busiest THEN :busy
                     WHEN s.u2 < :small_below THEN :small
                     ELSE ({_array(rest)})[1 + (g % {len(rest)})] END,
                false,
                '02',
                'outpatient',
                'routine',
                '390',
                'I63.9',
                CASE WHEN g % 2 = 0 THEN '2' ELSE '1' END,
                DATE '1950-01-01' + (g % 20000),
                md5('h' || (g % 400000)),
                'generated',
                3,
                1,
                t.at,
                t.at,
                '[]',
                '[]',
                false
            FROM generate_series(1, :n) AS g
            CROSS JOIN LATERAL (
                SELECT {_status_case(_uniform("ds", "g"), DOWN_STATUSES)} AS status,
                       {_uniform("dt", "g")} AS u2,
                       {_uniform("dh", "g")} AS u3,
                       {_uniform("dd", "g")} AS u4
            ) AS s
            CROSS JOIN LATERAL (
                SELECT CAST(:end AS timestamptz)
                    - (s.u4 * CASE WHEN s.status IN {CLOSED_SQL} THEN CAST(:days AS integer)
                               ELSE CAST(:recent AS integer) END)
                      * interval '1 day' AS at
            ) AS t
            """
        ),
        {
            "cons": gen.consortium_id,
            "lead": gen.busiest_id,
            "busy": busy,
            "small": small,
            "busiest": busiest_share,
            "small_below": busiest_share + small_share,
            "n": n,
            "end": end,
            "days": days,
            "recent": recent_days,
        },
    )
    result = await session.execute(
        text(
            f"""
            INSERT INTO follow_up (id, referral_id, kind, due_date, done_at, content,
                                   author_institution_id, created_at, consortium_id,
                                   source_institution_id, target_institution_id, live)
            SELECT md5('f' || k || r.id)::uuid::text, r.id,
                   CASE WHEN k = 4 THEN 'guidance' ELSE 'planned' END,
                   CASE WHEN k < 4 THEN v.due END,
                   CASE WHEN k = 4 THEN NULL
                        WHEN r.status = 'completed' AND v.u < 0.8 THEN v.due
                        WHEN r.status IN {LIVE} AND v.due < CAST(:end AS date) AND v.u < 0.5
                            THEN v.due
                   END,
                   'generated', r.source_institution_id, r.created_at, r.consortium_id,
                   r.source_institution_id, r.target_institution_id, r.status IN {LIVE}
            FROM referral r
            CROSS JOIN generate_series(1, 4) AS k
            CROSS JOIN LATERAL (
                SELECT CAST(r.created_at + k * 30 * interval '1 day' AS date) AS due,
                       {_uniform("fv", "r.id || k")} AS u
            ) AS v
            WHERE r.consortium_id = :cons AND r.number LIKE 'WD-%'
            """
        ),
        {"cons": gen.consortium_id, "end": end},
    )
    count = int(result.rowcount)  # type: ignore[attr-defined]
    return GeneratedFollowUps(busy, small, n, count)


@dataclass(frozen=True, slots=True)
class GeneratedDeliveries:
    busy_subscription_id: str  # the lead hospital's: every event
    small_subscription_id: str  # the small hospital's: one event in twenty
    events: int


async def generate_deliveries(session: AsyncSession, gen: Generated, n: int) -> GeneratedDeliveries:
    """Outbox rows for the first ``n`` generated referrals and their deliveries to two
    subscriptions; nine in ten delivered, some pending, a few dead."""
    busy, small = md5_id("sub-busy"), md5_id("sub-small")
    for sub, institution in ((busy, gen.busiest_id), (small, gen.small_id)):
        await session.execute(
            text(
                "INSERT INTO webhook_subscription (id, institution_id, url, event_types,"
                " secret_sealed, created_at, updated_at) VALUES (:id, :inst,"
                " 'https://hooks.example/receive', '[\"referral.created\"]', 'generated',"
                " now(), now())"
            ),
            {"id": sub, "inst": institution},
        )
    await session.execute(
        text(
            """
            INSERT INTO webhook_event (id, referral_id, type, payload, recipients,
                                       occurred_at, fanned_out_at)
            SELECT md5('e' || r.id)::uuid::text, r.id, 'referral.created', '{}', '[]',
                   r.created_at, r.created_at
            FROM referral r
            WHERE r.consortium_id = :cons AND r.number LIKE 'WL-%'
            ORDER BY r.number LIMIT :n
            """
        ),
        {"cons": gen.consortium_id, "n": n},
    )
    await session.execute(
        text(
            f"""
            INSERT INTO webhook_delivery (id, subscription_id, event_seq, referral_id, state,
                                          attempts, next_attempt_at, give_up_at, created_at)
            SELECT md5(s.sub || e.id)::uuid::text, s.sub, e.seq, e.referral_id,
                   CASE WHEN u.u < 0.9 THEN 'delivered' WHEN u.u < 0.98 THEN 'pending'
                        ELSE 'dead' END,
                   1, e.occurred_at, e.occurred_at + interval '1 day', e.occurred_at
            FROM webhook_event e
            CROSS JOIN (VALUES (:busy), (:small)) AS s(sub)
            CROSS JOIN LATERAL (SELECT {_uniform("w", "e.id || s.sub")} AS u) AS u
            WHERE s.sub = :busy OR e.seq % 20 = 0
            """
        ),
        {"busy": busy, "small": small},
    )
    return GeneratedDeliveries(busy, small, n)


def md5_id(seed: str) -> str:
    """A repeatable UUID-shaped id."""
    digest = hashlib.md5(seed.encode(), usedforsecurity=False).hexdigest()
    return str(uuid.UUID(digest))


__all__ = [
    "Consortium",
    "Generated",
    "GeneratedDeliveries",
    "GeneratedFollowUps",
    "Institution",
    "generate",
    "generate_deliveries",
    "generate_follow_ups",
]
