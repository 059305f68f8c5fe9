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


def _within_total(value: int | None, info: ValidationInfo) -> int | None:
    total = info.data.get("total")
    if isinstance(value, int) and isinstance(total, int) and value > total:
        raise ValueError(f"{info.field_name} must not exceed total")
    return value


def _within_sources(total: int | None, info: ValidationInfo) -> int | None:
    sources = info.data.get("sources")
    if isinstance(total, int) and isinstance(sources, int) and total > sources:
        raise ValueError("total must not exceed sources")
    return total


class SlotCensus(StrictModel):
    specialty_code: SpecialtyCode
    day: IsoDate = Field(
        description="From yesterday to `REFERRAL_CENSUS_SLOT_DAYS_AHEAD` days ahead (UTC)."
    )
    sources: StrictInt | None = Field(
        default=None,
        ge=0,
        le=100_000,
        description="All specialist outpatient places of the day, as the HIS has them. Without "
        "`total`, the places offered to consortium referrals are `floor(sources × "
        "consortium_share)` of the slot reservation policy in force that day; without "
        "`reserved_signed`, `floor(total × signed_share)` of them are kept for signed patients.",
    )
    total: StrictInt | None = Field(
        default=None,
        ge=0,
        le=100_000,
        description="Outpatient slots reserved for consortium referrals (required unless "
        "`sources` is sent; at most `sources`).",
    )
    occupied: StrictInt = Field(
        ge=0, le=100_000, description="Slots already booked by the HIS (at most `total`)."
    )
    reserved_signed: StrictInt | None = Field(
        default=None,
        ge=0,
        le=100_000,
        description="Of `total`, the places kept for patients signed with this hospital "
        "(family-doctor signing) until `release_at`. Default: 0, or the policy's share when "
        "`sources` is sent.",
    )
    release_at: Instant | None = Field(
        default=None,
        description="When the unused signed reserve goes to every consortium referral. "
        "Default: the day's first session less the policy's hours before (the consortium's "
        "local time).",
    )

    _total = field_validator("total")(_within_sources)
    _occupied = field_validator("occupied")(_not_above_total)
    _reserved = field_validator("reserved_signed")(_within_total)


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
    reserved_signed: int = Field(
        description="Slots: of `total`, the places kept for patients signed with this "
        "institution (0 for beds)."
    )
    signed_used: int = Field(
        description="Slots: places of the signed reserve held or used by signed referrals."
    )
    released: bool = Field(
        description="Slots: the unused signed reserve has gone to every consortium referral "
        "(`release_at` has passed)."
    )
    released_count: int = Field(
        description="Slots: the signed reserve unused when it was released (0 before)."
    )
    release_at: datetime | None = Field(description="Slots: when the unused reserve is released.")
    sources: int | None = Field(
        description="Slots: all specialist outpatient places of the day, if the HIS sent them."
    )


class CapacityOut(ResponseModel):
    institution_id: str
    items: list[CapacityItemOut]
