"""Enumerations shared by the domain, the database models and the API schemas."""

from __future__ import annotations

from enum import StrEnum


class InstitutionLevel(StrEnum):
    """Institution level; the order of members is the order of care levels."""

    VILLAGE = "village"
    PRIMARY = "primary"
    SECONDARY = "secondary"
    TERTIARY = "tertiary"

    @property
    def rank(self) -> int:
        return _LEVEL_RANK[self]


_LEVEL_RANK = {
    InstitutionLevel.VILLAGE: 0,
    InstitutionLevel.PRIMARY: 1,
    InstitutionLevel.SECONDARY: 2,
    InstitutionLevel.TERTIARY: 3,
}


class InstitutionType(StrEnum):
    GENERAL = "general"
    TCM = "tcm"
    MATERNAL_CHILD = "maternal_child"
    ETHNIC = "ethnic"
    SPECIALTY = "specialty"


class ConsortiumKind(StrEnum):
    COUNTY_MEDICAL_COMMUNITY = "county_medical_community"
    URBAN_MEDICAL_GROUP = "urban_medical_group"
    SPECIALTY_ALLIANCE = "specialty_alliance"
    TELEMEDICINE_NETWORK = "telemedicine_network"


class Centre(StrEnum):
    """Green-channel centres an institution may hold (the county hospital's "five centres")."""

    CHEST_PAIN = "chest_pain"
    STROKE = "stroke"
    TRAUMA = "trauma"
    CRITICAL_MATERNAL = "critical_maternal"
    CRITICAL_NEONATAL = "critical_neonatal"


class Role(StrEnum):
    CLINIC = "clinic"
    HOSPITAL = "hospital"
    COUNCIL = "council"
    INSURER = "insurer"
    ADMIN = "admin"
    NOTIFIER = "notifier"  # a consortium's SMS gateway: patient notices only


class CareType(StrEnum):
    INPATIENT = "inpatient"
    OUTPATIENT = "outpatient"
    EXAMINATION = "examination"


class Urgency(StrEnum):
    ROUTINE = "routine"
    URGENT = "urgent"
    EMERGENCY = "emergency"


class InsuranceScheme(StrEnum):
    """险种类型 codes of the national medical-insurance platform (insutype), plus self-pay.

    Names and sources: app/domain/national_codes.py. `self_pay` is this service's own code: the
    national list has none for patients without insurance.
    """

    EMPLOYEE_BASIC = "310"
    CIVIL_SERVANT_SUBSIDY = "320"
    LARGE_EXPENSE_SUBSIDY = "330"
    RETIRED_CADRE = "340"
    DISABLED_SERVICEMEN = "350"
    RED_ARMY_VETERAN = "360"
    ENTERPRISE_SUPPLEMENTARY = "370"
    NEW_RURAL_COOPERATIVE_LEGACY = "380"
    URBAN_RURAL_RESIDENT = "390"
    URBAN_RESIDENT_LEGACY = "391"
    RESIDENT_CRITICAL_ILLNESS = "392"
    OTHER_SPECIAL = "399"
    LONG_TERM_CARE = "410"
    MATERNITY = "510"
    SELF_PAY = "self_pay"


class InstitutionGrade(StrEnum):
    """Hospital grade (医院等级): tier digit, 甲/乙/丙 as A/B/C; words in national_codes."""

    G3A = "3A"
    G3B = "3B"
    G3C = "3C"
    G2A = "2A"
    G2B = "2B"
    G2C = "2C"
    G1A = "1A"
    G1B = "1B"
    G1C = "1C"
    UNGRADED = "ungraded"


class Sex(StrEnum):
    """Sex, as the readable word; stored and exchanged as its GB/T 2261.1 code (SexCode)."""

    MALE = "male"
    FEMALE = "female"
    UNKNOWN = "unknown"
    UNSTATED = "unstated"

    @property
    def code(self) -> SexCode:
        return _SEX_CODE[self]


class SexCode(StrEnum):
    """GB/T 2261.1-2003 人的性别代码: 0 unknown, 1 male, 2 female, 9 unstated."""

    UNKNOWN = "0"
    MALE = "1"
    FEMALE = "2"
    UNSTATED = "9"

    @property
    def word(self) -> Sex:
        return Sex[self.name]


_SEX_CODE = {s: SexCode[s.name] for s in Sex}
