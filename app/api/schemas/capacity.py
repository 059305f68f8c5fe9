from __future__ import annotations

from datetime import date, datetime

from pydantic import Field, StrictInt, ValidationInfo, field_validator

from app.api.schemas.common import Instant, IsoDate, ResponseModel, StrictModel
from app.api.schemas.registry import SpecialtyCode

MAX_SLOT_ROWS = 2000
"""Slot rows one census may carry (a 90-day window of about 20 specialties)."""


def _not_above_total(occupied: int, info: ValidationInfo) -> int:
    total = info.data.get("total")
    if isinstance(total, int) and occupied > total:
        raise ValueError("occupied must not exceed total")
    return occupied


class BedCensus(StrictModel):
    specialty_code: SpecialtyCode
    total: StrictInt = Field(ge=0, le=100_000, description="Staffed, usable beds.")
    occupied: StrictInt = Field(
        ge=0, le=100_000, description="Occupied beds from the HIS census (at most `total`)."
    )

    _occupied = field_validator("occupied")(_not_above_total)


class SlotCensus(StrictModel):
    specialty_code: SpecialtyCode
    day: IsoDate = Field(
        description="From yesterday to `REFERRAL_CENSUS_SLOT_DAYS_AHEAD` days ahead (UTC)."
    )
    total: StrictInt = Field(
        ge=0, le=100_000, description="Outpatient slots reserved for referrals."
    )
    occupied: StrictInt = Field(
        ge=0, le=100_000, description="Slots already booked by the HIS (at most `total`)."
    )

    _occupied = field_validator("occupied")(_not_above_total)


class CensusIn(StrictModel):
    as_of: Instant = Field(description="When the HIS took the census (not in the future).")
    beds: list[BedCensus] = Field(
        default_factory=list, max_length=500, description="One entry per specialty."
    )
    slots: list[SlotCensus] = Field(
        default_factory=list,
        max_length=MAX_SLOT_ROWS,
        description="One entry per specialty and day.",
    )


class CapacityItemOut(ResponseModel):
    kind: str = Field(description="beds or slots")
    specialty_code: str
    day: date | None
    total: int
    occupied: int
    held: int = Field(description="Held by routed referrals not yet admitted.")
    free: int = Field(description="total - occupied - held, never negative")
    overflow: int = Field(
        description="Patients beyond capacity: the census left no room for existing holds."
    )
    as_of: datetime | None
    stale: bool


class CapacityOut(ResponseModel):
    institution_id: str
    items: list[CapacityItemOut]
