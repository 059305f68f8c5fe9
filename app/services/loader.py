"""Consortium files (YAML or JSON, format ``referral-consortium/v1``) and the specialty catalogue.

Loading is idempotent: institutions and consortia are matched by code and updated in place.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.base import utcnow
from app.db.models import BedCapacity, Consortium, ConsortiumMembership, Institution, SlotCapacity
from app.db.repositories import capacity as capacity_repo
from app.db.repositories import memberships as memberships_repo
from app.db.repositories import registry as repo
from app.domain import national_codes as nc
from app.domain.enums import (
    Centre,
    ConsortiumKind,
    InstitutionGrade,
    InstitutionLevel,
    InstitutionType,
)
from app.domain.errors import InvalidInput
from app.domain.localtime import DEFAULT_TIME_ZONE, local_date, validate_zone
from app.services import pathways, remote_capacity

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
SPECIALTIES_FILE = DATA_DIR / "specialties.json"
DEMO_CONSORTIA_DIR = DATA_DIR / "consortia"

Code = Annotated[str, StringConstraints(pattern=r"^[A-Z0-9][A-Z0-9-]{0,31}$")]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FileLocation(_Model):
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    approximate: bool = False


class FileContact(_Model):
    name: str | None = None
    phone: str | None = None


class FileInstitution(_Model):
    code: Code
    name: str = Field(min_length=1, max_length=200)
    name_en: str | None = None
    level: InstitutionLevel
    grade: InstitutionGrade | None = Field(None, description="Code such as 3A (三级甲等).")
    type: InstitutionType
    region_code: str | None = None
    uscc: Annotated[str, StringConstraints(pattern=nc.USCC_PATTERN)] | None = None
    licence_number: Annotated[str, StringConstraints(pattern=nc.LICENCE_PATTERN)] | None = None
    insurance_code: Annotated[str, StringConstraints(pattern=nc.INSURANCE_CODE_PATTERN)] | None = (
        None
    )
    location: FileLocation | None = None
    specialties: list[str] = Field(default_factory=list)
    centres: list[Centre] = Field(default_factory=list)
    beds: dict[str, int] = Field(default_factory=dict)
    outpatient_slots_per_day: dict[str, int] = Field(default_factory=dict)
    #: remote services: kind -> specialty -> read or consult slots per day (example figures)
    remote: dict[Literal["remote_read", "consult"], dict[str, int]] = Field(default_factory=dict)
    contact: FileContact | None = None
    active: bool = True
    generated_name: bool = False

    @model_validator(mode="after")
    def _national_codes(self) -> FileInstitution:
        if self.uscc is not None and not nc.is_valid_uscc(self.uscc):
            raise ValueError("uscc: check character does not match (GB 32100-2015)")
        if self.grade is not None and not nc.grade_fits_level(self.grade, self.level):
            raise ValueError("grade: does not fit the level")
        return self


class FileConsortium(_Model):
    code: Code
    name: str
    name_en: str | None = None
    kind: ConsortiumKind
    close_knit: bool = True
    region_code: str | None = None
    referral_prefix: str = Field(pattern=r"^[A-Z]{2,4}$")
    #: the lead unit: one member's code, or several (Zhenghe's three county hospitals)
    lead: Code | list[Code]
    upstream_partners: list[Code] = Field(default_factory=list)
    #: a specialty alliance's scope: its pathways (centres) and specialty codes
    alliance_centres: list[Centre] = Field(default_factory=list)
    alliance_specialties: list[str] = Field(default_factory=list)
    #: institutions registered with another consortium that join this one (by code)
    joined_members: list[Code] = Field(default_factory=list)

    @property
    def leads(self) -> list[str]:
        return [self.lead] if isinstance(self.lead, str) else list(self.lead)

    notes: str | None = None
    time_zone: Annotated[str, AfterValidator(validate_zone)] | None = None


class ConsortiumFile(_Model):
    format: Literal["referral-consortium/v1"]
    consortium: FileConsortium
    institutions: list[FileInstitution]
    partners: list[FileInstitution] = Field(default_factory=list)


@dataclass(frozen=True, slots=True)
class LoadResult:
    consortium_id: str
    consortium_code: str
    institutions: int
    partners: int


def parse_file(path: Path) -> ConsortiumFile:
    text = path.read_text(encoding="utf-8")
    raw: Any = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    try:
        parsed = ConsortiumFile.model_validate(raw)
    except ValidationError as exc:
        raise InvalidInput(
            f"{path.name} is not a valid consortium file.",
            [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()],
        ) from exc
    everyone = [*parsed.institutions, *parsed.partners]
    for field in ("uscc", "licence_number", "insurance_code"):
        given = [getattr(i, field) for i in everyone if getattr(i, field) is not None]
        if len(given) != len(set(given)):
            raise InvalidInput(
                f"{path.name} gives one {field} to two institutions.",
                [{"loc": ["institutions", field], "msg": "already in use"}],
            )
    member_codes = {i.code for i in parsed.institutions}
    partner_codes = {p.code for p in parsed.partners}
    problems = []
    joined_codes = set(parsed.consortium.joined_members)
    for code in parsed.consortium.leads:
        if code not in member_codes | joined_codes:
            problems.append({"loc": ["consortium", "lead"], "msg": "lead is not a listed member"})
    for code in parsed.consortium.upstream_partners:
        if code not in partner_codes:
            problems.append(
                {"loc": ["consortium", "upstream_partners"], "msg": f"{code} not in partners"}
            )
    if problems:
        raise InvalidInput(f"{path.name} is inconsistent.", problems)
    return parsed


def demo_files() -> list[Path]:
    return sorted(DEMO_CONSORTIA_DIR.glob("*.yaml"))


async def load_specialties(session: AsyncSession, path: Path = SPECIALTIES_FILE) -> int:
    rows = json.loads(await asyncio.to_thread(path.read_text, encoding="utf-8"))
    return await repo.upsert_specialties(session, rows)


async def load_reference_data(session: AsyncSession) -> int:
    """The specialty catalogue (kept in step with the file) and missing pathways."""
    return await load_specialties(session) + await pathways.load_pathways(session)


async def _upsert_institution(
    session: AsyncSession, item: FileInstitution, consortium_id: str | None
) -> Institution:
    row = await repo.get_institution_by_code(session, item.code)
    values: dict[str, Any] = {
        "name": item.name,
        "name_en": item.name_en,
        "level": item.level,
        "type": item.type,
        "region_code": item.region_code,
        "grade": item.grade,
        "uscc": item.uscc,
        "licence_number": item.licence_number,
        "insurance_code": item.insurance_code,
        "latitude": item.location.lat if item.location else None,
        "longitude": item.location.lon if item.location else None,
        "location_approximate": bool(item.location and item.location.approximate),
        "contact_name": item.contact.name if item.contact else None,
        "contact_phone": item.contact.phone if item.contact else None,
        "active": item.active,
        "generated_name": item.generated_name,
    }
    if row is None:
        row = Institution(code=item.code, consortium_id=consortium_id, **values)
        row.specialty_links = []
        row.centre_links = []
        session.add(row)
    else:
        for key, value in values.items():
            setattr(row, key, value)
        if consortium_id is not None:
            row.consortium_id = consortium_id
    repo.set_institution_specialties(row, item.specialties)
    repo.set_institution_centres(row, item.centres)
    await session.flush()
    if item.remote:
        await remote_capacity.offer_from_file(session, row.id, item.remote)
    return row


async def seed_capacity(
    session: AsyncSession,
    row: Institution,
    item: FileInstitution,
    now: datetime,
    time_zone: str,
    days: int = 7,
) -> None:
    """Example census from the file where none exists yet (demo mode): about 10% beds free."""
    for code, total in item.beds.items():
        if await capacity_repo.bed_row(session, row.id, code) is None:
            spare = min(total, max(2, total // 10))
            capacity_repo.add(
                session,
                BedCapacity(
                    institution_id=row.id,
                    specialty_code=code,
                    total=total,
                    occupied=total - spare,
                    held=0,
                    overflow=0,
                    as_of=now,
                ),
            )
    for code, per_day in item.outpatient_slots_per_day.items():
        for offset in range(days):
            day = local_date(now, time_zone) + timedelta(days=offset)
            if await capacity_repo.slot_row(session, row.id, code, day) is None:
                capacity_repo.add(
                    session,
                    SlotCapacity(
                        institution_id=row.id,
                        specialty_code=code,
                        day=day,
                        total=per_day,
                        occupied=0,
                        held=0,
                        overflow=0,
                        as_of=now,
                    ),
                )
    if item.remote:
        await remote_capacity.seed_from_file(session, row.id, item.remote, now, time_zone, days)
    await session.flush()


async def load_consortium(
    session: AsyncSession,
    parsed: ConsortiumFile,
    *,
    with_capacity: bool = False,
    default_time_zone: str = DEFAULT_TIME_ZONE,
) -> LoadResult:
    codes = {c for i in [*parsed.institutions, *parsed.partners] for c in i.specialties}
    codes |= {c for i in parsed.institutions for per in i.remote.values() for c in per}
    codes |= set(parsed.consortium.alliance_specialties)
    known = await repo.existing_specialty_codes(session, codes)
    unknown = sorted(codes - known)
    if unknown:
        raise InvalidInput(
            "The file names unknown specialty codes.",
            [{"loc": ["specialties"], "msg": f"unknown specialty code {c}"} for c in unknown],
        )
    spec = parsed.consortium
    time_zone = spec.time_zone or default_time_zone
    consortium = await repo.get_consortium_by_code(session, spec.code)
    values = {
        "name": spec.name,
        "name_en": spec.name_en,
        "kind": spec.kind,
        "close_knit": spec.close_knit,
        "region_code": spec.region_code,
        "referral_prefix": spec.referral_prefix,
        "notes": spec.notes,
        "time_zone": time_zone,
        "alliance_centres": [c.value for c in spec.alliance_centres],
        "alliance_specialties": list(spec.alliance_specialties),
    }
    if consortium is None:
        consortium = await repo.add_consortium(session, Consortium(code=spec.code, **values))
    else:
        for key, value in values.items():
            setattr(consortium, key, value)
    by_code: dict[str, Institution] = {}
    for item in parsed.institutions:
        by_code[item.code] = await _upsert_institution(session, item, consortium.id)
    partner_rows = [await _upsert_institution(session, p, None) for p in parsed.partners]
    for code in spec.joined_members:
        joining = await repo.get_institution_by_code(session, code)
        if joining is None:
            raise InvalidInput(
                "The file names a joined member that is not registered.",
                [{"loc": ["consortium", "joined_members"], "msg": f"unknown institution {code}"}],
            )
        by_code[code] = joining
        if joining.consortium_id != consortium.id and not await memberships_repo.get_membership(
            session, consortium.id, joining.id
        ):
            await memberships_repo.add_membership(
                session,
                ConsortiumMembership(consortium_id=consortium.id, institution_id=joining.id),
            )
    await memberships_repo.set_leads(session, consortium.id, [by_code[c].id for c in spec.leads])
    partner_by_code = {r.code: r for r in partner_rows}
    await repo.set_partners(
        session, consortium.id, [partner_by_code[c].id for c in spec.upstream_partners]
    )
    if with_capacity:
        now = utcnow()
        items = [*parsed.institutions, *parsed.partners]
        rows = [*by_code.values(), *partner_rows]
        for item, inst in zip(items, rows, strict=True):
            await seed_capacity(session, inst, item, now, time_zone)
    await session.flush()
    return LoadResult(consortium.id, consortium.code, len(by_code), len(partner_rows))
