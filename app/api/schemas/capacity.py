from __future__ import annotations

from datetime import date, datetime

from pydantic import Field

from app.api.schemas.common import Instant, IsoDate, ResponseModel, StrictModel
from app.api.schemas.registry import SpecialtyCode


class BedCensus(StrictModel):
    specialty_code: SpecialtyCode
    total: int = Field(ge=0, le=100_000, description="Staffed, usable beds.")
    occupied: int = Field(ge=0, le=100_000, description="Occupied beds from the HIS census.")


class SlotCensus(StrictModel):
    specialty_code: SpecialtyCode
    day: IsoDate
    total: int = Field(ge=0, le=100_000, description="Outpatient slots reserved for referrals.")
    occupied: int = Field(ge=0, le=100_000, description="Slots already booked by the HIS.")


class CensusIn(StrictModel):
    as_of: Instant = Field(description="When the HIS took the census (not in the future).")
    beds: list[BedCensus] = Field(default_factory=list, max_length=500)
    slots: list[SlotCensus] = Field(default_factory=list, max_length=5000)


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
