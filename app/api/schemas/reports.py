from __future__ import annotations

from pydantic import Field

from app.api.schemas.common import ResponseModel


class ReferralReportRow(ResponseModel):
    key: str | None = Field(
        description="Institution id (group_by=institution), specialty code "
        "(group_by=specialty) or null (group_by=month)."
    )
    name: str | None = Field(description="Institution name (group_by=institution).")
    month: str = Field(description="YYYY-MM: the month in the consortium's time zone")
    up_sent: int = Field(description="Up-referrals the member sent (by creation time).")
    up_received: int = Field(
        description="Routing attempts that named the member as target of an up-referral."
    )
    down_sent: int = Field(description="Down-referrals the member sent.")
    down_received: int = Field(
        description="Routing attempts that named the member as target of a down-referral."
    )
    accepted: int = Field(description="Referrals the member accepted (by acceptance time).")
    acceptance_rate: float | None = Field(
        description="accepted / (up_received + down_received); null without any."
    )
    accept_minutes_median: float | None = Field(
        description="Minutes from the routing that reached the member to its acceptance."
    )
    accept_minutes_p90: float | None = Field(description="90th percentile of the same.")
    rejected: int = Field(description="Rejections by the member (all reasons).")
    rejections: dict[str, int] = Field(description="Rejections by reason code.")
    expired: int = Field(description="Referrals that expired unanswered at the member.")
    rerouted: int = Field(description="Re-routings of referrals the member sent.")
    waitlisted: int = Field(
        description="Times referrals the member sent entered the waitlist (at creation or "
        "when a re-routing found no place)."
    )
    waitlist_placed: int = Field(
        description="Referrals the member sent that left the waitlist with a place."
    )
    waitlist_minutes_median: float | None = Field(
        description="Minutes those referrals waited, from entering the waitlist to the place."
    )
    waitlist_minutes_p90: float | None = Field(description="90th percentile of the same.")
    overflow: int = Field(
        description="Green-channel referrals placed at the member without a free bed."
    )
    out_of_consortium: int = Field(
        description="Up-referrals the member sent that went to an upstream partner."
    )
    up_treated_in_consortium_share: float | None = Field(
        description="Of the up-referrals the member sent that have a target: share inside "
        "the consortium."
    )
    up_treated_in_county_share: float | None = Field(
        description="The same: share whose target is in the sender's county."
    )
    up_placed_signed: int = Field(
        0,
        description="Up-referrals the member sent that have a target, for residents with a "
        "family-doctor signing (from the referral or the signing registry).",
    )
    up_to_signed: int = Field(0, description="Of those, sent to one of the signed institutions.")
    up_to_signed_share: float | None = Field(
        None, description="up_to_signed / up_placed_signed (001: visits inside the signing)."
    )
    up_completed_received: int = Field(description="Up-referrals completed at the member.")
    down_share_of_completed_up: float | None = Field(
        description="down_sent / up_completed_received."
    )
    follow_ups_due: int = Field(
        description="Planned follow-up visits of down-referrals the member received, due in "
        "the month (and already due)."
    )
    follow_ups_on_time: int = Field(description="Of those, done by their due date.")
    follow_ups_on_time_share: float | None = Field(
        description="follow_ups_on_time / follow_ups_due."
    )
    satisfaction_count: int = Field(
        0,
        description="Satisfaction scores recorded in the month (by the referring primary "
        "institution) about referrals this member received.",
    )
    satisfaction_mean: float | None = Field(
        None, description="Their mean score (1 to 5), rounded to 2 places; none without scores."
    )
    tests_recognised: int = Field(
        0,
        description="Prior results of up-referrals the member received (created in the month) "
        "that mutual recognition covered when they were made.",
    )
    tests_repeated: int = Field(0, description="Of those, repeated by the member anyway.")
    yuan_not_spent_twice: float = Field(
        0.0,
        description="What repeating the recognised, not repeated results would have cost "
        "(the recognition catalogue's example prices), in yuan.",
    )
    reserved_slots: int = Field(
        0,
        description="Outpatient and examination slots of the member's slot days in the month "
        "kept for patients signed with it (the signed reserve).",
    )
    reserved_used: int = Field(
        0, description="Of those, held or used by signed referrals (the signed pool)."
    )
    reserved_released: int = Field(
        0,
        description="Of those, unused when the reserve was released to every consortium "
        "referral (release time passed).",
    )
    remote_received: int = Field(
        0,
        description="Consults and remote reads made in the month that were routed to the "
        "member (each once, however often).",
    )
    reads_received: int = Field(0, description="Of those, remote reads.")
    consults_received: int = Field(0, description="Of those, consults.")
    remote_reported: int = Field(
        0, description="Consults and remote reads made in the month that the member answered."
    )
    remote_turnaround_minutes_median: float | None = Field(
        None, description="Minutes from the request to the member's report (median)."
    )
    remote_turnaround_minutes_p90: float | None = Field(
        None, description="90th percentile of the same."
    )
    remote_within_target: int = Field(
        0, description="Reports within the target of the request's kind and urgency."
    )
    remote_within_target_share: float | None = Field(
        None, description="remote_within_target / remote_reported."
    )
    remote_converted: int = Field(
        0, description="Reported requests the asker then converted into a transfer."
    )


class LeakDestinationOut(ResponseModel):
    institution_id: str | None = Field(description="The upstream partner; null: the waitlist.")
    code: str | None
    name: str | None
    referrals: int


class LeakRowOut(ResponseModel):
    month: str = Field(description="YYYY-MM: the month of the routing decisions (local).")
    specialty_code: str
    specialty_name: str | None = None
    specialty_name_en: str | None = None
    institution_id: str | None = Field(
        description="The member the decisions left out; null with reason no_member_offers."
    )
    institution_code: str | None = None
    institution_name: str | None = None
    reason: str = Field(
        description="Why the member was left out: no_free_capacity, stale_census, "
        "only_parent_specialty, previously_declined; no_member_offers: no member offers the "
        "care at a level above the source."
    )
    days: int = Field(description="Local days on which a leaking decision left it out so.")
    decisions: int = Field(description="Leaking routing decisions that left it out so.")
    referrals: int = Field(description="Referrals (patients) those decisions concerned.")
    out_of_consortium: int = Field(
        description="Of those referrals, sent to an upstream partner (their last leaking "
        "decision of the month)."
    )
    waitlisted: int = Field(description="Of those referrals, put on the waitlist.")
    destinations: list[LeakDestinationOut] = Field(
        description="Where the referrals went, most first (the waitlist as null)."
    )
    summary: str = Field(description="The row in words.")
    summary_zh: str = Field(description="The same in Chinese.")


class AppraisalTargetOut(ResponseModel):
    code: str
    figure: str = Field(
        description="up_treated_in_county_share, accepted_in_time_share, "
        "follow_ups_on_time_share or green_channel_met_share."
    )
    name: str
    name_zh: str
    source: str


class AppraisalMonthOut(ResponseModel):
    month: str = Field(description="YYYY-MM (local).")
    version: int = Field(description="The targets version in force on the month's first day.")
    min: float = Field(description="The target: the share to reach.")
    numerator: int
    denominator: int
    value: float | None = Field(description="numerator / denominator; null without any.")
    met: bool | None = Field(description="value reaches min; null: not measured this month.")


class AppraisalCardOut(ResponseModel):
    code: str
    months: list[AppraisalMonthOut]
    months_met: int
    months_missed: int
    months_measured: int
    year_numerator: int
    year_denominator: int
    year_value: float | None


class AppraisalMemberOut(ResponseModel):
    institution_id: str
    code: str
    name: str
    level: str
    targets: list[AppraisalCardOut]
    months_met: int = Field(description="Months met over all targets.")
    months_missed: int = Field(description="Months missed over all targets.")


class AppraisalOut(ResponseModel):
    consortium_id: str
    consortium_code: str
    year: int
    time_zone: str
    targets_are_example: bool = Field(description="The targets file is marked as an example.")
    targets: list[AppraisalTargetOut]
    members: list[AppraisalMemberOut]
