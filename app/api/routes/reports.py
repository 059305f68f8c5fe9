"""The council's monthly referral figures and leak analytics (JSON, or CSV for spreadsheets)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response

from app.api import csv_export
from app.api.deps import PrincipalDep, SessionDep, SettingsDep
from app.api.errors import problem_responses
from app.api.schemas.common import IsoDate
from app.api.schemas.reports import (
    AppraisalCardOut,
    AppraisalMemberOut,
    AppraisalMonthOut,
    AppraisalOut,
    AppraisalTargetOut,
    LeakDestinationOut,
    LeakRowOut,
    ReferralReportRow,
)
from app.domain.lifecycle import RejectReason
from app.services import appraisal, leaks, reports

router = APIRouter(prefix="/v1", tags=["reports"], responses=problem_responses(401, 422, 429))


def _row(r: reports.ReportRow) -> ReferralReportRow:
    c = r.counts
    return ReferralReportRow(
        key=r.key,
        name=r.name,
        month=r.month,
        up_sent=c["up_sent"],
        up_received=c["up_received"],
        down_sent=c["down_sent"],
        down_received=c["down_received"],
        accepted=c["accepted"],
        acceptance_rate=r.acceptance_rate,
        accept_minutes_median=r.accept_minutes_median,
        accept_minutes_p90=r.accept_minutes_p90,
        rejected=r.rejected,
        rejections=r.rejections,
        expired=c["expired"],
        rerouted=c["rerouted"],
        waitlisted=c["waitlisted"],
        waitlist_placed=c["waitlist_placed"],
        waitlist_minutes_median=r.waitlist_minutes_median,
        waitlist_minutes_p90=r.waitlist_minutes_p90,
        overflow=c["overflow"],
        out_of_consortium=c["out_of_consortium"],
        up_treated_in_consortium_share=r.ratio("up_in_consortium", "up_placed"),
        up_treated_in_county_share=r.ratio("up_in_county", "up_placed"),
        up_placed_signed=c["up_placed_signed"],
        up_to_signed=c["up_to_signed"],
        up_to_signed_share=r.ratio("up_to_signed", "up_placed_signed"),
        up_completed_received=c["up_completed_received"],
        down_share_of_completed_up=r.ratio("down_sent", "up_completed_received"),
        follow_ups_due=c["follow_ups_due"],
        follow_ups_on_time=c["follow_ups_on_time"],
        follow_ups_on_time_share=r.ratio("follow_ups_on_time", "follow_ups_due"),
        satisfaction_count=c["satisfaction_count"],
        tests_recognised=c["tests_recognised"],
        tests_repeated=c["tests_repeated"],
        yuan_not_spent_twice=c["fen_not_spent_twice"] / 100,
        reserved_slots=c["reserved_slots"],
        reserved_used=c["reserved_used"],
        reserved_released=c["reserved_released"],
        satisfaction_mean=r.satisfaction_mean,
        **r.remote.counts,
        remote_within_target_share=r.remote.within_target_share,
        remote_turnaround_minutes_median=r.remote.median,
        remote_turnaround_minutes_p90=r.remote.p90,
    )


def csv_columns() -> list[str]:
    cols = [f for f in ReferralReportRow.model_fields if f != "rejections"]
    return cols + [f"rejections_{r.value}" for r in RejectReason]


def to_csv(rows: list[ReferralReportRow]) -> bytes:
    flat: list[dict[str, Any]] = []
    for row in rows:
        data: dict[str, Any] = row.model_dump(mode="json")
        rejections = data.pop("rejections")
        data.update({f"rejections_{k}": v for k, v in rejections.items()})
        flat.append(data)
    return csv_export.to_csv(csv_columns(), flat)


@router.get(
    "/reports/referrals",
    response_model=list[ReferralReportRow],
    responses={**problem_responses(403), 200: {"content": {"text/csv": {}}}},
)
async def referral_report(
    request: Request,
    session: SessionDep,
    principal: PrincipalDep,
    from_: Annotated[IsoDate, Query(alias="from", description="First local day, inclusive.")],
    to: Annotated[IsoDate, Query(description="Last local day, exclusive.")],
    consortium: Annotated[str | None, Query(max_length=36)] = None,
    group_by: Literal["institution", "month", "specialty"] = "institution",
) -> Response:
    """Per member (or specialty) and month: the figures of the performance appraisal
    (definitions in the README). `Accept: text/csv` gives one row per member and month,
    UTF-8 with BOM so spreadsheet programs show the Chinese names."""
    rows = [
        _row(r)
        for r in await reports.monthly(
            session, principal, consortium_id=consortium, start=from_, end=to, group_by=group_by
        )
    ]
    if csv_export.wants_csv(request):
        return csv_export.csv_response(to_csv(rows), "referrals.csv")
    return csv_export.json_list(rows)


def _leak_row(r: leaks.LeakRow, destinations: dict[str, leaks.Destination]) -> LeakRowOut:
    counted = r.destinations()
    dests = []
    for dest, n in counted.most_common():
        if dest == leaks.WAITLIST:
            dests.append(LeakDestinationOut(institution_id=None, code=None, name=None, referrals=n))
        else:
            d = destinations.get(dest)
            dests.append(
                LeakDestinationOut(
                    institution_id=dest,
                    code=d.code if d else None,
                    name=d.name if d else None,
                    referrals=n,
                )
            )
    summary, summary_zh = leaks.sentence(r, destinations)
    waited = counted.get(leaks.WAITLIST, 0)
    return LeakRowOut(
        month=r.month,
        specialty_code=r.specialty_code,
        specialty_name=r.specialty_name,
        specialty_name_en=r.specialty_name_en,
        institution_id=r.institution_id,
        institution_code=r.institution_code,
        institution_name=r.institution_name,
        reason=r.reason,
        days=len(r.days),
        decisions=r.decisions,
        referrals=r.referrals,
        out_of_consortium=r.referrals - waited,
        waitlisted=waited,
        destinations=dests,
        summary=summary,
        summary_zh=summary_zh,
    )


LEAK_CSV_COLUMNS = [
    f for f in LeakRowOut.model_fields if f not in ("destinations", "summary_zh")
] + ["destinations"]


def leaks_csv(rows: list[LeakRowOut]) -> bytes:
    flat: list[dict[str, Any]] = []
    for row in rows:
        data: dict[str, Any] = row.model_dump(mode="json", exclude={"summary_zh"})
        data["destinations"] = "; ".join(
            f"{d['code'] or 'waitlist'} {d['referrals']}" for d in data["destinations"]
        )
        flat.append(data)
    return csv_export.to_csv(LEAK_CSV_COLUMNS, flat)


@router.get(
    "/reports/leaks",
    response_model=list[LeakRowOut],
    responses={**problem_responses(403), 200: {"content": {"text/csv": {}}}},
)
async def leak_report(
    request: Request,
    session: SessionDep,
    principal: PrincipalDep,
    from_: Annotated[IsoDate, Query(alias="from", description="First local day, inclusive.")],
    to: Annotated[IsoDate, Query(description="Last local day, exclusive.")],
    consortium: Annotated[str | None, Query(max_length=36)] = None,
) -> Response:
    """Why up-referrals left the consortium or waited, from the stored routing decisions:
    per local month, specialty, member and reason (full, stale census, only the parent
    subject, declined; or no member offers it), on how many days, how many patients and where
    they went. `Accept: text/csv` for a spreadsheet (UTF-8 with BOM)."""
    found, destinations = await leaks.report(
        session, principal, consortium_id=consortium, start=from_, end=to
    )
    rows = [_leak_row(r, destinations) for r in found]
    if csv_export.wants_csv(request):
        return csv_export.csv_response(leaks_csv(rows), "leaks.csv")
    return csv_export.json_list(rows)


def _appraisal_out(card: appraisal.Scorecard) -> AppraisalOut:
    members = []
    for m in card.members:
        cards = [
            AppraisalCardOut(
                code=t.target.code,
                months=[
                    AppraisalMonthOut(
                        month=x.month,
                        version=x.version,
                        min=float(x.min),
                        numerator=x.numerator,
                        denominator=x.denominator,
                        value=x.value,
                        met=x.met,
                    )
                    for x in t.months
                ],
                months_met=t.count(True),
                months_missed=t.count(False),
                months_measured=t.months_measured,
                year_numerator=t.year_numerator,
                year_denominator=t.year_denominator,
                year_value=round(t.year_numerator / t.year_denominator, 4)
                if t.year_denominator
                else None,
            )
            for t in m.targets
        ]
        members.append(
            AppraisalMemberOut(
                institution_id=m.institution_id,
                code=m.code,
                name=m.name,
                level=m.level,
                targets=cards,
                months_met=sum(c.months_met for c in cards),
                months_missed=sum(c.months_missed for c in cards),
            )
        )
    return AppraisalOut(
        consortium_id=card.consortium_id,
        consortium_code=card.consortium_code,
        year=card.year,
        time_zone=card.time_zone,
        targets_are_example=card.is_example,
        targets=[
            AppraisalTargetOut(
                code=t.code, figure=t.figure, name=t.name, name_zh=t.name_zh, source=t.source
            )
            for t in card.targets
        ],
        members=members,
    )


APPRAISAL_CSV_COLUMNS = [
    "institution_id",
    "institution_code",
    "institution_name",
    "target",
    "month",
    "version",
    "min",
    "numerator",
    "denominator",
    "value",
    "met",
]


def appraisal_csv(card: AppraisalOut) -> bytes:
    flat = [
        {
            "institution_id": m.institution_id,
            "institution_code": m.code,
            "institution_name": m.name,
            "target": t.code,
            "month": x.month,
            "version": x.version,
            "min": x.min,
            "numerator": x.numerator,
            "denominator": x.denominator,
            "value": x.value,
            "met": "" if x.met is None else ("met" if x.met else "missed"),
        }
        for m in card.members
        for t in m.targets
        for x in t.months
    ]
    return csv_export.to_csv(APPRAISAL_CSV_COLUMNS, flat)


@router.get(
    "/reports/appraisal",
    response_model=AppraisalOut,
    responses={**problem_responses(403, 404), 200: {"content": {"text/csv": {}}}},
)
async def appraisal_report(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    principal: PrincipalDep,
    year: Annotated[int, Query(ge=2000, le=2100, description="The local calendar year.")],
    consortium: Annotated[
        str | None,
        Query(max_length=36, description="Id or code; a council's own by default."),
    ] = None,
) -> Response:
    """One scorecard per member for the year: each target of the council (app/data/targets.json,
    versioned) met or missed per local month, with the figures behind it. `Accept: text/csv`
    gives one row per member, target and month."""
    card = _appraisal_out(
        await appraisal.scorecard(
            session, principal, settings, consortium_ref=consortium, year=year
        )
    )
    if csv_export.wants_csv(request):
        return csv_export.csv_response(appraisal_csv(card), "appraisal.csv")
    return Response(card.model_dump_json(), media_type="application/json")
