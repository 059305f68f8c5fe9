"""API types for the national code sets (sources in app/domain/national_codes.py)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, StringConstraints, WithJsonSchema

from app.domain import national_codes as nc
from app.domain.enums import InstitutionGrade, InsuranceScheme


def _scheme(value: Any) -> Any:
    return nc.LEGACY_SCHEME_WORDS.get(value, value) if isinstance(value, str) else value


def _grade(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return nc.grade_of(value)
        except ValueError:
            return value
    return value


def _uscc(value: str) -> str:
    if not nc.is_valid_uscc(value):
        raise ValueError("check character does not match (GB 32100-2015)")
    return value


_SCHEME_CODES = [s.value for s in InsuranceScheme]
SCHEME_DESCRIPTION = (
    "险种类型 code of the national medical-insurance platform ("
    + nc.INSUTYPE_SOURCE
    + "): "
    + "; ".join(f"{s.value} {nc.scheme_name(s)}" for s in InsuranceScheme)
    + ". `self_pay` is this service's own code (the national list has none). The old words "
    + ", ".join(nc.LEGACY_SCHEME_WORDS)
    + " are still accepted and stored as their codes."
)

InsuranceSchemeIn = Annotated[
    InsuranceScheme,
    BeforeValidator(_scheme),
    WithJsonSchema(
        {
            "type": "string",
            "enum": [*_SCHEME_CODES, *(w for w in nc.LEGACY_SCHEME_WORDS if w != "self_pay")],
            "description": SCHEME_DESCRIPTION,
        }
    ),
]
InsuranceSchemeOut = Annotated[InsuranceScheme, Field(description=SCHEME_DESCRIPTION)]

GRADE_DESCRIPTION = (
    "Hospital grade (医院等级, 一/二/三级 with 甲/乙/丙等): "
    + "; ".join(f"{g.value} {nc.GRADE_NAMES[g]}" for g in InstitutionGrade)
    + ". Input takes the code or the Chinese word; the tier must match the level "
    "(三级 tertiary, 二级 secondary, 一级 primary; a village clinic is 未定级 or none)."
)
GradeIn = Annotated[
    InstitutionGrade,
    BeforeValidator(_grade),
    WithJsonSchema(
        {
            "type": "string",
            "enum": [
                *(g.value for g in InstitutionGrade),
                *(nc.GRADE_NAMES[g] for g in InstitutionGrade),
            ],
            "description": GRADE_DESCRIPTION,
        }
    ),
]

Uscc = Annotated[
    str,
    StringConstraints(pattern=nc.USCC_PATTERN),
    AfterValidator(_uscc),
    Field(
        description="Unified social credit code (统一社会信用代码, GB 32100-2015): 18 characters "
        "over 0-9A-HJ-NPQRTUWXY, positions 3-8 the region, the last a MOD 31 check character."
    ),
]
LicenceNumber = Annotated[
    str,
    StringConstraints(pattern=nc.LICENCE_PATTERN),
    Field(
        description="Practising-licence registration number (医疗机构执业许可证登记号) in the "
        "current 22-character form: digits and capital letters; its inner layout varies by "
        "province and is not checked."
    ),
]
InsuranceCode = Annotated[
    str,
    StringConstraints(pattern=nc.INSURANCE_CODE_PATTERN),
    Field(
        description="Medical-insurance designated-institution code (定点医药机构编码, NHSA "
        "医保信息业务编码): `H`, the 6-digit region (GB/T 2260), a 5-digit sequence."
    ),
]
