"""Demo mode: the demo consortia and one API key per role and institution.

Demo keys are derived from the demo secret, so they are the same after every restart and
can be read again from the keys file. They exist only in demo mode.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from app.db.repositories import registry as repo
from app.domain.enums import InstitutionLevel, Role
from app.services import auth, loader, tiers


@dataclass(frozen=True, slots=True)
class DemoKey:
    name: str
    role: str
    key: str
    institution_code: str | None = None
    institution_name: str | None = None
    consortium_code: str | None = None


async def _issue(
    session: AsyncSession,
    pepper: bytes,
    seed: bytes,
    *,
    name: str,
    role: Role,
    institution_id: str | None = None,
    consortium_id: str | None = None,
) -> str:
    issued = await auth.issue_key(
        session,
        pepper=pepper,
        name=name,
        role=role,
        institution_id=institution_id,
        consortium_id=consortium_id,
        material=auth.derive_demo_key(seed, name),
    )
    return issued.key


async def load_demo(session: AsyncSession, *, pepper: bytes, seed: bytes) -> list[DemoKey]:
    await loader.load_reference_data(session)
    await tiers.load_example_policy(session)
    keys = [
        DemoKey(
            "demo admin",
            Role.ADMIN.value,
            await _issue(session, pepper, seed, name="demo admin", role=Role.ADMIN),
        ),
        DemoKey(
            "demo insurer",
            Role.INSURER.value,
            await _issue(session, pepper, seed, name="demo insurer", role=Role.INSURER),
        ),
    ]
    for path in loader.demo_files():
        result = await loader.load_consortium(session, loader.parse_file(path), with_capacity=True)
        members = await repo.list_institutions(
            session, after=None, limit=10_000, consortium_id=result.consortium_id
        )
        council_issued = False  # one council key, at the first of the lead unit
        for inst in members:
            if inst.consortium_id != result.consortium_id:
                continue  # upstream partners get no demo key
            if inst.is_lead and not council_issued:
                council_issued = True
                name = f"demo council {result.consortium_code}"
                keys.append(
                    DemoKey(
                        name,
                        Role.COUNCIL.value,
                        await _issue(
                            session,
                            pepper,
                            seed,
                            name=name,
                            role=Role.COUNCIL,
                            institution_id=inst.id,
                            consortium_id=result.consortium_id,
                        ),
                        inst.code,
                        inst.name,
                        result.consortium_code,
                    )
                )
                name = f"demo notifier {result.consortium_code}"  # the SMS gateway's key
                keys.append(
                    DemoKey(
                        name,
                        Role.NOTIFIER.value,
                        await _issue(
                            session,
                            pepper,
                            seed,
                            name=name,
                            role=Role.NOTIFIER,
                            consortium_id=result.consortium_id,
                        ),
                        None,
                        None,
                        result.consortium_code,
                    )
                )
            role = (
                Role.HOSPITAL
                if inst.level in (InstitutionLevel.SECONDARY, InstitutionLevel.TERTIARY)
                else Role.CLINIC
            )
            name = f"demo {role.value} {inst.code}"
            keys.append(
                DemoKey(
                    name,
                    role.value,
                    await _issue(
                        session,
                        pepper,
                        seed,
                        name=name,
                        role=role,
                        institution_id=inst.id,
                        consortium_id=result.consortium_id,
                    ),
                    inst.code,
                    inst.name,
                    result.consortium_code,
                )
            )
    return keys


def write_keys(path: Path, keys: list[DemoKey]) -> None:
    payload = {
        "note": "Demo API keys (demo mode only). Send as 'Authorization: Bearer <key>'.",
        "keys": [asdict(k) for k in keys],
    }
    path.write_text(json.dumps(payload, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def summary(keys: list[DemoKey]) -> str:
    """A short table for the console: admin, insurer and per consortium council, lead, a clinic."""
    lines = []
    seen: set[tuple[str | None, str]] = set()
    for k in keys:
        marker = (k.consortium_code, k.role)
        if k.role in ("admin", "insurer") or marker not in seen:
            seen.add(marker)
            who = f"{k.institution_name or ''} ({k.institution_code})" if k.institution_code else ""
            lines.append(f"  {k.role:<8} {k.consortium_code or '-':<14} {k.key}  {who}")
    return "\n".join(lines)
