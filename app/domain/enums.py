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


class CareType(StrEnum):
    INPATIENT = "inpatient"
    OUTPATIENT = "outpatient"
    EXAMINATION = "examination"


class Urgency(StrEnum):
    ROUTINE = "routine"
    URGENT = "urgent"
    EMERGENCY = "emergency"


class InsuranceScheme(StrEnum):
    EMPLOYEE_BASIC = "employee_basic"
    URBAN_RURAL_RESIDENT = "urban_rural_resident"
    URBAN_RESIDENT_LEGACY = "urban_resident_legacy"
    NEW_RURAL_COOPERATIVE_LEGACY = "new_rural_cooperative_legacy"
    SELF_PAY = "self_pay"


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
