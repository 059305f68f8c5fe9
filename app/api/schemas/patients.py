"""The patient's identity document and sex code at the API."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from app.api.schemas.common import ResponseModel, StrictModel
from app.domain.identity_documents import DocumentType

SexIn = Literal["0", "1", "2", "9", "unknown", "male", "female", "unstated"]

_TYPES = (
    "resident_id: 居民身份证, GB 11643-1999, 18 characters with the MOD 11-2 check; "
    "hmt_residence_permit: 港澳台居民居住证, 18 characters, region 810000/820000/830000, "
    "GB 11643 check; hk_macao_travel_permit: 港澳居民来往内地通行证, H or M + 8 digits "
    "(+ 2-digit issue count on older cards); taiwan_travel_permit: 台湾居民来往大陆通行证, "
    "8 digits (+ 2); foreigner_permanent_id: 外国人永久居留身份证, 2017 card 3 letters + 12 digits "
    "or 2023 card 18 digits starting 9 with the GB 11643 check; passport: 5-20 letters or "
    "digits with issuing_country; birth_certificate: 出生医学证明编号, one letter + 9 digits; "
    "newborn: no document of its own, the mother's document and the birth order."
)

Number = Annotated[str, StringConstraints(min_length=1, max_length=32, pattern=r"^[0-9A-Za-z]+$")]
Country = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]


class DocumentIn(StrictModel):
    type: Literal[
        "resident_id",
        "hmt_residence_permit",
        "hk_macao_travel_permit",
        "taiwan_travel_permit",
        "foreigner_permanent_id",
        "passport",
        "birth_certificate",
    ] = Field(description=_TYPES)
    number: Number | None = Field(None, description="Checked by the type's format; sealed.")
    issuing_country: Country | None = Field(
        None, description="Passport only: ISO 3166-1 alpha-3 code of the issuing country."
    )


class MotherIn(StrictModel):
    identity_document: DocumentIn


class IdentityDocumentIn(DocumentIn):
    type: DocumentType = Field(description=_TYPES)  # type: ignore[assignment]
    mother: MotherIn | None = Field(None, description="Newborn only: the mother's document.")
    birth_order: int | None = Field(
        None, ge=1, le=9, description="Newborn only: 1 for a single birth, 2 for a second twin..."
    )


class MotherOut(ResponseModel):
    identity_document: DocumentOut


class DocumentOut(ResponseModel):
    type: DocumentType
    number: str | None = None
    issuing_country: str | None = None


class IdentityDocumentOut(DocumentOut):
    mother: MotherOut | None = None
    birth_order: int | None = None
