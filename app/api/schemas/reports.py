from __future__ import annotations

from pydantic import Field

from app.api.schemas.common import ResponseModel


class ReferralReportRow(ResponseModel):
    key: str | None = Field(
        description="Institution id (group_by=institution), specialty code "
        "(group_by=specialty) or null (group_by=month)."
    )
    name: str | None = Field(description="Institution name (group_by=institution).")
    month: str = Field(description="YYYY-MM (UTC)")
    up_sent: int
    up_received: int
    down_sent: int
    down_received: int
    accepted: int
    acceptance_rate: float | None
    accept_minutes_median: float | None
    accept_minutes_p90: float | None
    rejected: int
    rejections: dict[str, int] = Field(description="Rejections by reason code.")
    expired: int
    rerouted: int
    waitlisted: int
    overflow: int
    out_of_consortium: int
    up_treated_in_consortium_share: float | None
    up_treated_in_county_share: float | None
    up_completed_received: int
    down_share_of_completed_up: float | None
    follow_ups_due: int
    follow_ups_on_time: int
    follow_ups_on_time_share: float | None
