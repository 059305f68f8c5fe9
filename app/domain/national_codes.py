"""National code sets: insurance schemes (险种类型), institution grades, institution identifiers.

Pure checks, no I/O. Sources:
- 险种类型 (insutype): the National Healthcare Security Administration's 医疗保障信息平台
  interface specification for designated medical institutions, data dictionary `insutype`.
- Unified social credit code: GB 32100-2015, check character by MOD 31 over 0-9A-HJ-NPQRTUWXY.
- Medical-insurance designated-institution code: NHSA 医保信息业务编码 (医保发〔2019〕55号),
  `H` + 6-digit administrative region (GB/T 2260) + 5-digit sequence.
- Practising-licence registration number (医疗机构执业许可证登记号): the current 22-character form.
- Grade: 医院分级管理 (一/二/三级, 甲/乙/丙等) as the licence records it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from app.domain.enums import InstitutionGrade, InstitutionLevel, InsuranceScheme

INSUTYPE_SOURCE: Final = (
    "NHSA 医疗保障信息平台 interface specification, dictionary insutype (险种类型)"
)

SCHEME_NAMES: Final[Mapping[InsuranceScheme, tuple[str, str]]] = MappingProxyType(
    {
        InsuranceScheme.EMPLOYEE_BASIC: ("职工基本医疗保险", "employee basic medical insurance"),
        InsuranceScheme.CIVIL_SERVANT_SUBSIDY: ("公务员医疗补助", "civil servant medical subsidy"),
        InsuranceScheme.LARGE_EXPENSE_SUBSIDY: (
            "大额医疗费用补助",
            "large medical expense subsidy",
        ),
        InsuranceScheme.RETIRED_CADRE: ("离休人员医疗保障", "retired cadre medical security"),
        InsuranceScheme.DISABLED_SERVICEMEN: (
            "一至六级残疾军人医疗补助",
            "medical subsidy for grade 1-6 disabled servicemen",
        ),
        InsuranceScheme.RED_ARMY_VETERAN: ("老红军医疗保障", "Red Army veteran medical security"),
        InsuranceScheme.ENTERPRISE_SUPPLEMENTARY: (
            "企业补充医疗保险",
            "enterprise supplementary medical insurance",
        ),
        InsuranceScheme.NEW_RURAL_COOPERATIVE_LEGACY: (
            "新型农村合作医疗",
            "new rural cooperative medical scheme (legacy)",
        ),
        InsuranceScheme.URBAN_RURAL_RESIDENT: (
            "城乡居民基本医疗保险",
            "urban and rural resident basic medical insurance",
        ),
        InsuranceScheme.URBAN_RESIDENT_LEGACY: (
            "城镇居民基本医疗保险",
            "urban resident basic medical insurance (legacy)",
        ),
        InsuranceScheme.RESIDENT_CRITICAL_ILLNESS: (
            "城乡居民大病医疗保险",
            "urban and rural resident critical illness insurance",
        ),
        InsuranceScheme.OTHER_SPECIAL: (
            "其他特殊人员医疗保障",
            "medical security for other special groups",
        ),
        InsuranceScheme.LONG_TERM_CARE: ("长期照护保险", "long-term care insurance"),
        InsuranceScheme.MATERNITY: ("生育保险", "maternity insurance"),
        InsuranceScheme.SELF_PAY: ("自费", "self-pay"),
    }
)

# The words the API took before the national codes; still accepted on input.
LEGACY_SCHEME_WORDS: Final[Mapping[str, InsuranceScheme]] = MappingProxyType(
    {
        "employee_basic": InsuranceScheme.EMPLOYEE_BASIC,
        "urban_rural_resident": InsuranceScheme.URBAN_RURAL_RESIDENT,
        "urban_resident_legacy": InsuranceScheme.URBAN_RESIDENT_LEGACY,
        "new_rural_cooperative_legacy": InsuranceScheme.NEW_RURAL_COOPERATIVE_LEGACY,
        "self_pay": InsuranceScheme.SELF_PAY,
    }
)


def scheme_of(value: str) -> InsuranceScheme:
    """The scheme for a national code or a legacy word; ValueError when neither."""
    legacy = LEGACY_SCHEME_WORDS.get(value)
    if legacy is not None:
        return legacy
    return InsuranceScheme(value)


def scheme_name(scheme: InsuranceScheme) -> str:
    return SCHEME_NAMES[scheme][0]


def scheme_name_en(scheme: InsuranceScheme) -> str:
    return SCHEME_NAMES[scheme][1]


GRADE_NAMES: Final[Mapping[InstitutionGrade, str]] = MappingProxyType(
    {
        InstitutionGrade.G3A: "三级甲等",
        InstitutionGrade.G3B: "三级乙等",
        InstitutionGrade.G3C: "三级丙等",
        InstitutionGrade.G2A: "二级甲等",
        InstitutionGrade.G2B: "二级乙等",
        InstitutionGrade.G2C: "二级丙等",
        InstitutionGrade.G1A: "一级甲等",
        InstitutionGrade.G1B: "一级乙等",
        InstitutionGrade.G1C: "一级丙等",
        InstitutionGrade.UNGRADED: "未定级",
    }
)
_GRADE_BY_NAME: Final = MappingProxyType({name: g for g, name in GRADE_NAMES.items()})


def grade_of(value: str) -> InstitutionGrade:
    """The grade for a stable code (`3A`) or its Chinese word (`三级甲等`)."""
    by_name = _GRADE_BY_NAME.get(value)
    return by_name if by_name is not None else InstitutionGrade(value)


def grade_fits_level(grade: InstitutionGrade, level: InstitutionLevel) -> bool:
    """A graded hospital's tier (一/二/三级) is its level; a village clinic is not graded."""
    if grade is InstitutionGrade.UNGRADED:
        return True
    tier = int(grade.value[0])
    return level.rank == tier


USCC_CHARSET: Final = "0123456789ABCDEFGHJKLMNPQRTUWXY"
USCC_PATTERN: Final = r"^[0-9A-HJ-NPQRTUWXY]{2}[0-9]{6}[0-9A-HJ-NPQRTUWXY]{10}$"
_USCC_WEIGHTS: Final = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


def uscc_check_character(first17: str) -> str:
    """The 18th character of a unified social credit code (GB 32100-2015, 4.5)."""
    total = sum(USCC_CHARSET.index(c) * w for c, w in zip(first17, _USCC_WEIGHTS, strict=True))
    return USCC_CHARSET[(31 - total % 31) % 31]


def is_valid_uscc(code: str) -> bool:
    if re.fullmatch(USCC_PATTERN, code) is None:
        return False
    return uscc_check_character(code[:17]) == code[17]


LICENCE_PATTERN: Final = r"^[0-9A-Z]{22}$"
INSURANCE_CODE_PATTERN: Final = r"^H[0-9]{6}[0-9]{5}$"
