from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field, StringConstraints, model_validator
from pydantic.json_schema import SkipJsonSchema

from app.api.schemas.common import ResponseModel, StrictModel, TimeZoneName
from app.api.schemas.national import (
    GRADE_DESCRIPTION,
    GradeIn,
    InsuranceCode,
    LicenceNumber,
    Uscc,
)
from app.db.models import Institution
from app.domain.enums import (
    Centre,
    ConsortiumKind,
    InstitutionGrade,
    InstitutionLevel,
    InstitutionType,
)
from app.domain.national_codes import GRADE_NAMES

Code = Annotated[str, StringConstraints(pattern=r"^[A-Z0-9][A-Z0-9-]{0,31}$")]
Prefix = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2,4}$")]
Name = Annotated[str, StringConstraints(min_length=1, max_length=200)]
RegionCode = Annotated[str, StringConstraints(pattern=r"^[0-9]{6,12}$")]
SpecialtyCode = Annotated[str, StringConstraints(pattern=r"^[0-9]{2}(\.[0-9]{2})?$")]
Id = Annotated[str, StringConstraints(min_length=1, max_length=36)]

ALLIANCE_CENTRES = (
    "A specialty alliance's green-channel pathways: a referral on such a pathway from one of "
    "its members runs in it unless the caller names the consortium."
)
ALLIANCE_SPECIALTIES = (
    "A specialty alliance's specialties (GB/T 2261.1-style subject codes, sub-specialties "
    "included): a referral for one of them from one of its members runs in it unless the caller "
    "names the consortium."
)


class SpecialtyOut(ResponseModel):
    code: str = Field(examples=["03.04"])
    name: str = Field(examples=["心血管内科专业"])
    name_en: str = Field(examples=["Cardiology"])
    parent_code: str | None = None


class ConsortiumOut(ResponseModel):
    id: str
    code: str
    name: str
    name_en: str | None
    kind: ConsortiumKind
    close_knit: bool
    region_code: str | None
    referral_prefix: str
    lead_institution_id: str | None = Field(
        description="The lead hospital; with a lead unit of several, the first of "
        "`lead_institution_ids`."
    )
    lead_institution_ids: list[str] = Field(
        description="The lead unit: one hospital or several (by code). Each ranks as "
        "`lead_hospital` in routing."
    )
    upstream_partner_ids: list[str]
    joined_member_ids: list[str] = Field(
        description="Members whose own consortium is another one (joined with PUT "
        "/v1/consortia/{id}/memberships/{institution_id})."
    )
    alliance_centres: list[Centre] = Field(description=ALLIANCE_CENTRES)
    alliance_specialties: list[str] = Field(description=ALLIANCE_SPECIALTIES)
    notes: str | None
    time_zone: str = Field(
        description="IANA time zone of the consortium's days and months.",
        examples=["Asia/Shanghai"],
    )
    created_at: datetime
    updated_at: datetime


class ConsortiumIn(StrictModel):
    code: Code
    name: Name
    name_en: Name | None = None
    kind: ConsortiumKind
    close_knit: bool = True
    region_code: RegionCode | None = None
    referral_prefix: Prefix = Field(description="2-4 capital letters that start referral numbers.")
    upstream_partner_ids: list[Id] = Field(default_factory=list, max_length=50)
    alliance_centres: list[Centre] = Field(
        default_factory=list,
        max_length=10,
        description=ALLIANCE_CENTRES,
    )
    alliance_specialties: list[SpecialtyCode] = Field(
        default_factory=list, max_length=50, description=ALLIANCE_SPECIALTIES
    )
    notes: Annotated[str, StringConstraints(max_length=2000)] | None = None
    time_zone: TimeZoneName | None = Field(
        None,
        description="IANA time zone of its days, months and referral numbers "
        "(default `REFERRAL_DEFAULT_TIME_ZONE`, Asia/Shanghai).",
        examples=["Asia/Shanghai"],
    )


class NoNullPatch(StrictModel):
    """A PATCH body: fields left out stay as they are; null clears only optional fields.

    The fields that may not be null are typed `X | SkipJsonSchema[None]`: None is their
    "left out" default, and the OpenAPI document does not offer null for them.
    """

    _not_nullable: frozenset[str] = frozenset()

    @model_validator(mode="after")
    def _refuse_null(self) -> NoNullPatch:
        nulls = sorted(
            f for f in self.model_fields_set & self._not_nullable if getattr(self, f) is None
        )
        if nulls:
            raise ValueError("may not be null: " + ", ".join(nulls))
        return self


class ConsortiumPatch(NoNullPatch):
    _not_nullable = frozenset(
        {
            "name",
            "kind",
            "close_knit",
            "referral_prefix",
            "upstream_partner_ids",
            "time_zone",
            "lead_institution_ids",
            "alliance_centres",
            "alliance_specialties",
        }
    )

    @model_validator(mode="after")
    def _one_lead_field(self) -> ConsortiumPatch:
        if {"lead_institution_id", "lead_institution_ids"} <= self.model_fields_set:
            raise ValueError("send lead_institution_id or lead_institution_ids, not both")
        return self

    name: Name | SkipJsonSchema[None] = None
    name_en: Name | None = None
    kind: ConsortiumKind | SkipJsonSchema[None] = None
    close_knit: bool | SkipJsonSchema[None] = None
    region_code: RegionCode | None = None
    referral_prefix: Prefix | SkipJsonSchema[None] = None
    lead_institution_id: Id | None = Field(
        None, description="A lead unit of one (null: none). Or send `lead_institution_ids`."
    )
    lead_institution_ids: Annotated[list[Id], Field(max_length=10)] | SkipJsonSchema[None] = Field(
        None, description="The lead unit: members of the consortium ([]: none)."
    )
    upstream_partner_ids: Annotated[list[Id], Field(max_length=50)] | SkipJsonSchema[None] = None
    alliance_centres: Annotated[list[Centre], Field(max_length=10)] | SkipJsonSchema[None] = None
    alliance_specialties: (
        Annotated[list[SpecialtyCode], Field(max_length=50)] | SkipJsonSchema[None]
    ) = None
    notes: Annotated[str, StringConstraints(max_length=2000)] | None = None
    time_zone: TimeZoneName | SkipJsonSchema[None] = None


class Location(StrictModel):
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    approximate: bool = False


class Contact(StrictModel):
    name: Annotated[str, StringConstraints(max_length=100)] | None = None
    phone: Annotated[str, StringConstraints(max_length=40)] | None = None


class InstitutionOut(ResponseModel):
    id: str
    code: str
    name: str
    name_en: str | None
    level: InstitutionLevel
    grade: InstitutionGrade | None = Field(description=GRADE_DESCRIPTION)
    grade_name: str | None = Field(examples=["三级甲等"])
    type: InstitutionType
    region_code: str | None
    uscc: str | None = Field(description="Unified social credit code (GB 32100-2015).")
    licence_number: str | None = Field(description="Practising-licence registration number.")
    insurance_code: str | None = Field(
        description="Medical-insurance designated-institution code (H + region + sequence)."
    )
    location: Location | None
    consortium_id: str | None
    is_lead: bool
    specialties: list[str]
    centres: list[Centre]
    contact: Contact
    active: bool
    generated_name: bool = Field(description="True where demo data invented the name.")
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: Institution) -> InstitutionOut:
        location = (
            Location(lat=row.latitude, lon=row.longitude, approximate=row.location_approximate)
            if row.latitude is not None and row.longitude is not None
            else None
        )
        return cls(
            id=row.id,
            code=row.code,
            name=row.name,
            name_en=row.name_en,
            level=row.level,
            grade=row.grade,
            grade_name=GRADE_NAMES[row.grade] if row.grade is not None else None,
            type=row.type,
            region_code=row.region_code,
            uscc=row.uscc,
            licence_number=row.licence_number,
            insurance_code=row.insurance_code,
            location=location,
            consortium_id=row.consortium_id,
            is_lead=row.is_lead,
            specialties=sorted(link.specialty_code for link in row.specialty_links),
            centres=sorted(link.centre for link in row.centre_links),
            contact=Contact(name=row.contact_name, phone=row.contact_phone),
            active=row.active,
            generated_name=row.generated_name,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


class InstitutionIn(StrictModel):
    code: Code
    name: Name
    name_en: Name | None = None
    level: InstitutionLevel
    grade: GradeIn | None = None
    type: InstitutionType
    region_code: RegionCode | None = None
    uscc: Uscc | None = None
    licence_number: LicenceNumber | None = None
    insurance_code: InsuranceCode | None = None
    location: Location | None = None
    consortium_id: Id | None = None
    specialties: list[SpecialtyCode] = Field(default_factory=list, max_length=200)
    centres: list[Centre] = Field(default_factory=list, max_length=10)
    contact: Contact | None = None
    active: bool = True


class InstitutionPatch(NoNullPatch):
    _not_nullable = frozenset({"name", "level", "type", "specialties", "centres", "active"})

    name: Name | SkipJsonSchema[None] = None
    name_en: Name | None = None
    level: InstitutionLevel | SkipJsonSchema[None] = None
    grade: GradeIn | None = None
    type: InstitutionType | SkipJsonSchema[None] = None
    region_code: RegionCode | None = None
    uscc: Uscc | None = None
    licence_number: LicenceNumber | None = None
    insurance_code: InsuranceCode | None = None
    location: Location | None = None
    consortium_id: Id | None = None
    specialties: Annotated[list[SpecialtyCode], Field(max_length=200)] | SkipJsonSchema[None] = None
    centres: Annotated[list[Centre], Field(max_length=10)] | SkipJsonSchema[None] = None
    contact: Contact | None = None
    active: bool | SkipJsonSchema[None] = None


def institution_columns(body: InstitutionIn | InstitutionPatch) -> dict[str, object]:
    """Flatten the API shape into column values (only the fields the caller sent)."""
    data = body.model_dump(exclude_unset=True)
    if "location" in data:
        loc = data.pop("location")
        data["latitude"] = loc["lat"] if loc else None
        data["longitude"] = loc["lon"] if loc else None
        data["location_approximate"] = bool(loc and loc.get("approximate"))
    if "contact" in data:
        contact = data.pop("contact") or {}
        data["contact_name"] = contact.get("name")
        data["contact_phone"] = contact.get("phone")
    return data


class CallerOut(ResponseModel):
    role: str = Field(description="clinic, hospital, council, insurer, admin or notifier")
    institution_id: str | None = Field(description="The key's institution (clinic, hospital).")
    consortium_id: str | None = Field(description="The key's consortium (council, notifier).")
