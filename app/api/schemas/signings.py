"""Family-doctor signings (1+1+1): what the community HIS pushes and reads back."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from pydantic import Field, StringConstraints

from app.api.schemas.common import IsoDate, ResponseModel, StrictModel
from app.api.schemas.patients import IdentityDocumentIn, SexIn
from app.api.schemas.registry import Id

ContractId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")]


class ResidentIn(StrictModel):
    """The signed resident: one identity document (or ``resident_id``), as for a referral."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    identity_document: IdentityDocumentIn | None = None
    resident_id: Annotated[str, StringConstraints(min_length=1, max_length=32)] | None = None
    sex: SexIn | None = None
    birth_date: IsoDate | None = None


class FamilyDoctorIn(StrictModel):
    name: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    id: Annotated[str, StringConstraints(max_length=64)] | None = None


class SigningIn(StrictModel):
    resident: ResidentIn
    institution_ids: list[Id] = Field(
        min_length=1,
        max_length=3,
        description="The signed institutions (1+1+1): the signing clinic as the primary one, "
        "at most one secondary and one tertiary hospital.",
    )
    valid_from: IsoDate
    valid_to: IsoDate
    family_doctor: FamilyDoctorIn | None = None


class SignedInstitutionOut(ResponseModel):
    institution_id: str
    code: str
    name: str
    level: str


class SigningOut(ResponseModel):
    contract_id: str
    institution_id: str = Field(description="The signing clinic.")
    institutions: list[SignedInstitutionOut]
    valid_from: date
    valid_to: date
    resident_name: str = Field(description="For the signing clinic only; masked otherwise.")
    family_doctor: dict[str, str | None] | None
    version: int
    created_at: datetime
    updated_at: datetime
