from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import Field, StringConstraints, model_validator

from app.api.schemas.common import IsoDate, ResponseModel, StrictModel


class FollowUpIn(StrictModel):
    kind: Literal["visit", "guidance"] = Field(
        description="visit: by the primary institution; guidance: by the referring hospital."
    )
    visit_date: IsoDate | None = Field(None, description="Required for a visit; not in the future.")
    findings: Annotated[str, StringConstraints(max_length=4000)] | None = None
    adherence: Literal["good", "partial", "poor"] | None = None
    next_visit: IsoDate | None = Field(None, description="Adds a planned visit on that day.")
    guidance: Annotated[str, StringConstraints(max_length=4000)] | None = None

    @model_validator(mode="after")
    def _complete(self) -> FollowUpIn:
        if self.kind == "visit" and self.visit_date is None:
            raise ValueError("a visit needs visit_date")
        if self.kind == "guidance" and not self.guidance:
            raise ValueError("guidance needs its text")
        return self


class FollowUpOut(ResponseModel):
    id: str
    kind: str = Field(description="planned, visit or guidance")
    due_date: date | None
    done_at: date | None
    visit_date: date | None
    adherence: str | None
    overdue: bool
    content: dict[str, str | None] = Field(description="purpose, findings or guidance")
    author_institution_id: str | None
    author_user: str | None
    created_at: datetime


class OverdueOut(ResponseModel):
    follow_up_id: str
    referral_id: str
    referral_number: str
    due_date: date | None
    source_institution_id: str
    target_institution_id: str | None


class EpisodeReferral(ResponseModel):
    id: str
    number: str
    direction: str
    status: str
    source_institution_id: str
    target_institution_id: str | None
    parent_referral_id: str | None
    created_at: datetime


class EpisodeOut(ResponseModel):
    id: str
    referrals: list[EpisodeReferral] = Field(description="In the order they were sent.")
