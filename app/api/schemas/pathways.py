from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import ConfigDict, Field, StringConstraints

from app.api.schemas.common import Instant, ResponseModel, StrictModel
from app.domain.enums import Centre

MilestoneCode = Annotated[str, StringConstraints(pattern=r"^[a-z_]{2,32}$")]


class TargetDef(StrictModel):
    code: Annotated[str, StringConstraints(pattern=r"^[a-z0-9_]{2,40}$")]
    name: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    from_: MilestoneCode = Field(alias="from")
    to: MilestoneCode
    minutes: int = Field(ge=1, le=1440)

    model_config = ConfigDict(populate_by_name=True, extra="forbid")


class PathwayOut(ResponseModel):
    code: str
    name: str
    centre: Centre
    specialties: list[str]
    targets: list[dict[str, object]]
    version: int
    updated_at: datetime
    consortium_id: str | None = Field(
        description="Whose targets these are; null: the shared defaults."
    )


class PathwayPatch(StrictModel):
    targets: list[TargetDef] = Field(min_length=1, max_length=20)


class MilestoneIn(StrictModel):
    milestone: MilestoneCode = Field(
        description="departed (source); door, first_examination, imaging, treatment_start, "
        "departed_onward (target). referral_sent and target_notified are automatic."
    )
    at: Instant = Field(description="When it happened; may be back-dated, never in the future.")


class TargetResultOut(ResponseModel):
    code: str
    name: str
    from_milestone: str
    to_milestone: str
    target_minutes: int
    actual_minutes: float | None
    status: str = Field(description="met, missed or pending")


class MilestonesOut(ResponseModel):
    pathway_code: str
    pathway_version: int | None = Field(description="The targets' version this referral keeps.")
    milestones: dict[str, datetime]
    targets: list[TargetResultOut]
    overflow: bool


class IntervalOut(ResponseModel):
    target: str
    target_minutes: int
    measured: int
    median_minutes: float | None
    p90_minutes: float | None
    met_share: float | None = Field(description="Share meeting the target among decided ones.")


class GreenChannelRow(ResponseModel):
    pathway: str
    institution_id: str | None
    month: str
    referrals: int
    overflow: int
    intervals: list[IntervalOut]
